import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { errorOf, grpc } from '../support/csi-client.js';
import { ROOT, XFS, describeWithRealParts } from '../support/requirements.js';
import { startStandaloneOnLoopFs, type StandaloneOnLoopFs } from '../support/standalone.js';

const mountCap = { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };

// The populator never runs as root: a volume root it cannot reach is refused up front, with the
// fix, instead of a child that dies before it can say why.
describeWithRealParts('standalone: a volume root the populator cannot reach', [ROOT, XFS], () => {
  let standalone: StandaloneOnLoopFs | undefined;

  beforeAll(async () => {
    standalone = await startStandaloneOnLoopFs({ sizeMb: 320, node: 'reach-node' });
  }, 60_000);

  afterAll(async () => {
    await standalone?.stop();
  });

  it('refuses a clone with FAILED_PRECONDITION naming the directory and the fix; nothing is left behind', async () => {
    const { client, fs, root } = standalone!;
    const source = (await client.controller('CreateVolume', { name: 'reach-src', volume_capabilities: [mountCap] })).volume;
    await chmod(fs.base, 0o700);
    try {
      const err = await errorOf(client.controller('CreateVolume', { name: 'reach-clone', volume_capabilities: [mountCap], volume_content_source: { volume: { volume_id: source.volume_id } } }));
      expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(err.details).toMatch(new RegExp(`uid 65534, which cannot reach ${fs.base} \\(mode 0700, owner 0:0\\); .*chmod o\\+x`));
      expect(existsSync(join(root, 'reach-clone'))).toBe(false);
    } finally {
      await chmod(fs.base, 0o755);
    }
    const clone = (await client.controller('CreateVolume', { name: 'reach-clone', volume_capabilities: [mountCap], volume_content_source: { volume: { volume_id: source.volume_id } } })).volume;
    expect(clone.volume_context['pg-reflinker.csi/mode']).toBe('plain');
  });
});
