import { expect, it } from '@jest/globals';
import { lstat, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readMounts } from '../../src/volume/mountinfo.js';
import { codeOf, grpc } from '../support/csi-client.js';
import { ROOT, XFS, describeWithRealParts } from '../support/requirements.js';
import { NODE, mountCap, useStandaloneDriver } from './fixture.js';

const { status } = grpc;

/** Every entry under `dir` with the facts a write, delete, chmod or mount would change. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (path: string) => {
    const info = await lstat(path);
    out.push(`${path} ${info.mode} ${info.size} ${info.mtimeMs} ${info.ino}`);
    if (info.isDirectory()) for (const entry of (await readdir(path)).sort()) await walk(join(path, entry));
  };
  await walk(dir);
  return out;
}

const MALFORMED_IDS = [
  '../x',
  '/etc/passwd',
  `${NODE}/../outside`,
  `${NODE}/..`,
  `${NODE}/.`,
  `${NODE}/.pg-reflinker`,
  `${NODE}/evil-link`,
  `${NODE}/plain-file`,
  `${NODE}/a b`,
  `${NODE}/x;rm -rf /`,
  `${NODE}/with/slash`,
  `${NODE}/\u00e9t\u00e9`,
  'UPPER/pvc-1',
  'other-node/pvc-1',
  `${NODE}/${'a'.repeat(130)}`,
];

describeWithRealParts('bad input changes nothing, and nothing outside the root is touched', [ROOT, XFS], () => {
  const ctx = useStandaloneDriver();

  it('answers every malformed or hostile volume id precisely and leaves the disk and the mount table alone', async () => {
    const { fs, client } = ctx();
    const outside = join(fs.mountPoint, 'outside');
    await mkdir(join(outside, 'pgdata'), { recursive: true });
    await writeFile(join(outside, 'pgdata', 'PG_VERSION'), '15\n');
    await symlink(outside, join(fs.root, 'evil-link'));
    await writeFile(join(fs.root, 'plain-file'), 'not a volume');
    await mkdir(join(fs.root, 'half-populated'));

    const before = { outside: await snapshot(fs.mountPoint), mounts: (await readMounts()).length };
    const target = join(fs.base, 'bad-target');
    const expectations: Array<[string, () => Promise<unknown>, number[]]> = [];
    for (const id of MALFORMED_IDS) {
      const tooLong = Buffer.byteLength(id) > 128;
      const absent = tooLong ? [status.INVALID_ARGUMENT] : [status.NOT_FOUND, status.FAILED_PRECONDITION];
      const contexts = [{}, { 'pg-reflinker.csi/kind': 'empty' }, { 'pg-reflinker.csi/kind': 'clone' }];
      for (const volume_context of contexts) {
        expectations.push([`publish ${id}`, () => client.node('NodePublishVolume', { volume_id: id, target_path: target, volume_capability: mountCap(), volume_context }), absent]);
      }
      // Unpublishing a well-formed id with nothing mounted is idempotent success.
      expectations.push([`unpublish ${id}`, () => client.node('NodeUnpublishVolume', { volume_id: id, target_path: target }), tooLong ? absent : [...absent, status.OK]]);
      expectations.push([`stats ${id}`, () => client.node('NodeGetVolumeStats', { volume_id: id, volume_path: target }), absent]);
      expectations.push([`validate ${id}`, () => client.controller('ValidateVolumeCapabilities', { volume_id: id, volume_capabilities: [mountCap()] }), absent]);
      expectations.push([`clone from ${id}`, () => client.controller('CreateVolume', { name: 'never-made', volume_capabilities: [mountCap()], volume_content_source: { volume: { volume_id: id } } }), absent]);
      // DeleteVolume: an id that cannot be ours is "already gone" (CSI: OK); a symlink or file in a volume's place is refused.
      const deleteCodes = tooLong ? [status.INVALID_ARGUMENT] : [status.OK, status.FAILED_PRECONDITION];
      expectations.push([`delete ${id}`, () => client.controller('DeleteVolume', { volume_id: id }), deleteCodes]);
    }
    expectations.push(['publish half-populated clone', () => client.node('NodePublishVolume', { volume_id: `${NODE}/half-populated`, target_path: target, volume_capability: mountCap(), volume_context: { 'pg-reflinker.csi/kind': 'clone' } }), [status.FAILED_PRECONDITION]]);
    expectations.push(['relative target', () => client.node('NodePublishVolume', { volume_id: `${NODE}/half-populated`, target_path: 'relative/target', volume_capability: mountCap() }), [status.INVALID_ARGUMENT]]);
    expectations.push(['target in the root', () => client.node('NodePublishVolume', { volume_id: `${NODE}/half-populated`, target_path: join(fs.root, 'x'), volume_capability: mountCap() }), [status.INVALID_ARGUMENT]]);
    expectations.push(['target above the root', () => client.node('NodePublishVolume', { volume_id: `${NODE}/half-populated`, target_path: fs.mountPoint, volume_capability: mountCap() }), [status.INVALID_ARGUMENT]]);

    const failures: string[] = [];
    for (const [what, call, codes] of expectations) {
      const code = await codeOf(call());
      if (!codes.includes(code)) failures.push(`${what}: got ${status[code]}, expected ${codes.map((c) => status[c]).join('|')}`);
    }
    expect(failures).toEqual([]);
    expect(await codeOf(client.controller('DeleteVolume', { volume_id: `${NODE}/evil-link` }))).toBe(status.FAILED_PRECONDITION);

    const after = { outside: await snapshot(fs.mountPoint), mounts: (await readMounts()).length };
    // The driver's own state directory may appear under the root; nothing else may change.
    const withoutState = (lines: string[]) => lines.filter((l) => !l.startsWith(join(fs.root, '.pg-reflinker')) && !l.startsWith(`${fs.root} `));
    expect(withoutState(after.outside)).toEqual(withoutState(before.outside));
    expect(after.mounts).toBe(before.mounts);
  });
});
