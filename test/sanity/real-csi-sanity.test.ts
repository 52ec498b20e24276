import { expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { components } from '../cluster/components.js';
import { ROOT, XFS, describeWithRealParts } from '../support/requirements.js';

// The real csi-sanity (kubernetes-csi/csi-test v5.4.0, built from its Go module by
// test/cluster/tools/build.sh) against `pg-reflinker standalone` on a real XFS loop filesystem.

describeWithRealParts('the real csi-sanity against pg-reflinker standalone', [ROOT, XFS, components('csi-sanity')], () => {
  it('passes every spec it runs for the capabilities we advertise', async () => {
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      const child = spawn('bash', ['test/sanity/run-csi-sanity.sh', '--ginkgo.no-color'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
      child.once('error', reject);
      child.once('close', (c) => resolve({ code: c, output }));
    });
    const summary = /(\d+) Passed \| (\d+) Failed \| (\d+) Pending \| (\d+) Skipped/.exec(output);
    console.log(`csi-sanity: ${summary?.[0] ?? 'no summary'}`);
    expect([code, summary?.[2]]).toEqual([0, '0']);
    expect(Number(summary?.[1])).toBeGreaterThanOrEqual(34);
  }, 300_000);
});
