import { expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cowExtentSize } from '../../src/node/xfs.js';
import { readMounts } from '../../src/volume/mountinfo.js';
import { codeOf, errorOf, grpc } from '../support/csi-client.js';
import { ROOT, XFS, describeWithRealParts } from '../support/requirements.js';
import { NODE, mountCap, useStandaloneDriver } from './fixture.js';

const { status } = grpc;
let seq = 0;

describeWithRealParts('CSI conformance: Node (standalone driver over its unix socket)', [ROOT, XFS], () => {
  const ctx = useStandaloneDriver();
  const node = (method: string, request: object) => ctx().client.node(method, request);
  const newVolume = async () =>
    (await ctx().client.controller('CreateVolume', { name: `nodevol-${process.pid}-${++seq}`, volume_capabilities: [mountCap()] })).volume;
  const target = (name: string) => join(ctx().fs.base, `target-${name}-${++seq}`);
  const isMounted = async (path: string) => (await readMounts()).some((m) => m.mountPoint === path);

  it('NodeGetInfo returns the node name and its topology', async () => {
    const info = await node('NodeGetInfo', {});
    expect(info.node_id).toBe(NODE);
    expect(info.accessible_topology).toEqual({ segments: { 'topology.pg-reflinker.csi/node': NODE } });
  });

  it('NodeGetCapabilities lists volume stats and mount group (no staging)', async () => {
    const caps = await node('NodeGetCapabilities', {});
    expect(caps.capabilities.map((c: { rpc: { type: string } }) => c.rpc.type)).toEqual(['GET_VOLUME_STATS', 'VOLUME_MOUNT_GROUP']);
  });

  it('gives an empty volume to the pod\'s fsGroup on its top directory only', async () => {
    const volume = await newVolume();
    const path = target('group');
    const [, dir] = volume.volume_id.split('/');
    const volumeDir = join(ctx().fs.root, dir);
    const cap = { mount: { volume_mount_group: '26' }, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
    expect(await codeOf(node('NodePublishVolume', { volume_id: volume.volume_id, target_path: path, volume_capability: { ...cap, mount: { volume_mount_group: 'wheel' } }, volume_context: volume.volume_context }))).toBe(status.INVALID_ARGUMENT);
    await node('NodePublishVolume', { volume_id: volume.volume_id, target_path: path, volume_capability: cap, volume_context: volume.volume_context });
    const info = await stat(volumeDir);
    expect(info.gid).toBe(26);
    expect(info.mode & 0o7777).toBe(0o2775);
    await node('NodeUnpublishVolume', { volume_id: volume.volume_id, target_path: path });
  });

  it('NodePublishVolume rejects missing arguments and block access', async () => {
    const volume = await newVolume();
    const base = { volume_id: volume.volume_id, target_path: target('args'), volume_capability: mountCap(), volume_context: volume.volume_context };
    expect(await codeOf(node('NodePublishVolume', { ...base, volume_id: '' }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(node('NodePublishVolume', { ...base, target_path: '' }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(node('NodePublishVolume', { ...base, volume_capability: null }))).toBe(status.INVALID_ARGUMENT);
    const block = await errorOf(node('NodePublishVolume', { ...base, volume_capability: { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } } }));
    expect(block.code).toBe(status.INVALID_ARGUMENT);
    expect(existsSync(base.target_path)).toBe(false);
    expect(await codeOf(node('NodeUnpublishVolume', { target_path: base.target_path }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(node('NodeUnpublishVolume', { volume_id: volume.volume_id }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(node('NodeGetVolumeStats', { volume_path: base.target_path }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(node('NodeGetVolumeStats', { volume_id: volume.volume_id }))).toBe(status.INVALID_ARGUMENT);
  });

  it('publishes by bind mount (created on first publish), idempotently, and unpublishes twice', async () => {
    const volume = await newVolume();
    const path = target('rw');
    const request = { volume_id: volume.volume_id, target_path: path, volume_capability: mountCap(), volume_context: volume.volume_context };
    await node('NodePublishVolume', request);
    await node('NodePublishVolume', request);
    expect((await readMounts()).filter((m) => m.mountPoint === path)).toHaveLength(1);
    await writeFile(join(path, 'hello'), 'through the mount');
    const [, dir] = volume.volume_id.split('/');
    expect(await readFile(join(ctx().fs.root, dir, 'hello'), 'utf8')).toBe('through the mount');

    const stats = await node('NodeGetVolumeStats', { volume_id: volume.volume_id, volume_path: path });
    const bytes = stats.usage.find((u: { unit: string }) => u.unit === 'BYTES');
    expect(bytes.total).toBeGreaterThan(0);
    expect(bytes.available).toBeLessThanOrEqual(bytes.total);

    const other = await errorOf(node('NodePublishVolume', { ...request, readonly: true }));
    expect(other.code).toBe(status.ALREADY_EXISTS);

    const busy = await errorOf(ctx().client.controller('DeleteVolume', { volume_id: volume.volume_id }));
    expect(busy.code).toBe(status.FAILED_PRECONDITION);
    expect(busy.details).toContain(path);

    await node('NodeUnpublishVolume', { volume_id: volume.volume_id, target_path: path });
    expect(await isMounted(path)).toBe(false);
    expect(existsSync(path)).toBe(false);
    await node('NodeUnpublishVolume', { volume_id: volume.volume_id, target_path: path });
    await ctx().client.controller('DeleteVolume', { volume_id: volume.volume_id });
    expect(existsSync(join(ctx().fs.root, dir!))).toBe(false);
  });

  it('applies the StorageClass\'s copy-on-write extent size hint to a new empty volume (inherited by its files)', async () => {
    const bad = await errorOf(ctx().client.controller('CreateVolume', { name: `cow-bad-${++seq}`, volume_capabilities: [mountCap()], parameters: { cowExtentSize: '5000' } }));
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.details).toContain('multiple of 4 KiB');
    const volume = (await ctx().client.controller('CreateVolume', { name: `cow-${++seq}`, volume_capabilities: [mountCap()], parameters: { cowExtentSize: '8k' } })).volume;
    expect(volume.volume_context['pg-reflinker.csi/cowExtentSize']).toBe('8192');
    const path = target('cow');
    await node('NodePublishVolume', { volume_id: volume.volume_id, target_path: path, volume_capability: mountCap(), volume_context: volume.volume_context });
    await mkdir(join(path, 'pgdata'));
    await writeFile(join(path, 'pgdata', 'relation'), 'x');
    const [, dir] = volume.volume_id.split('/');
    expect(await cowExtentSize(join(ctx().fs.root, dir!))).toBe(8192);
    expect(await cowExtentSize(join(ctx().fs.root, dir!, 'pgdata', 'relation'))).toBe(8192);
    const plain = await newVolume();
    const plainPath = target('nocow');
    await node('NodePublishVolume', { volume_id: plain.volume_id, target_path: plainPath, volume_capability: mountCap(), volume_context: plain.volume_context });
    expect(await cowExtentSize(join(ctx().fs.root, plain.volume_id.split('/')[1]!))).toBe(0);
    await node('NodeUnpublishVolume', { volume_id: volume.volume_id, target_path: path });
    await node('NodeUnpublishVolume', { volume_id: plain.volume_id, target_path: plainPath });
  });

  it('publishes nosuid and nodev, read-write or read-only (a copied setuid file or device node gives a pod nothing)', async () => {
    const volume = await newVolume();
    for (const readonly of [false, true]) {
      const path = target(`flags-${readonly}`);
      await node('NodePublishVolume', { volume_id: volume.volume_id, target_path: path, volume_capability: mountCap(), readonly, volume_context: volume.volume_context });
      const entry = (await readMounts()).filter((m) => m.mountPoint === path).pop();
      expect(entry?.options).toEqual(expect.arrayContaining(['nosuid', 'nodev', readonly ? 'ro' : 'rw']));
      await node('NodeUnpublishVolume', { volume_id: volume.volume_id, target_path: path });
    }
  });

  it('publishes read-only when asked', async () => {
    const volume = await newVolume();
    const path = target('ro');
    await node('NodePublishVolume', { volume_id: volume.volume_id, target_path: path, volume_capability: mountCap(), readonly: true, volume_context: volume.volume_context });
    await expect(writeFile(join(path, 'x'), 'no')).rejects.toMatchObject({ code: 'EROFS' });
    await node('NodeUnpublishVolume', { volume_id: volume.volume_id, target_path: path });
  });

  it('NodeGetVolumeStats is NOT_FOUND for unknown volumes and for paths where the volume is not published', async () => {
    const volume = await newVolume();
    expect(await codeOf(node('NodeGetVolumeStats', { volume_id: `${NODE}/nope`, volume_path: '/tmp' }))).toBe(status.NOT_FOUND);
    const path = target('stats');
    await node('NodePublishVolume', { volume_id: volume.volume_id, target_path: path, volume_capability: mountCap(), volume_context: volume.volume_context });
    expect(await codeOf(node('NodeGetVolumeStats', { volume_id: volume.volume_id, volume_path: ctx().fs.base }))).toBe(status.NOT_FOUND);
    await node('NodeUnpublishVolume', { volume_id: volume.volume_id, target_path: path });
    expect(await codeOf(node('NodeGetVolumeStats', { volume_id: volume.volume_id, volume_path: path }))).toBe(status.NOT_FOUND);
  });

  it('refuses to publish a volume of another node, and a volume that was never created', async () => {
    const path = target('foreign');
    const foreign = await errorOf(node('NodePublishVolume', { volume_id: 'other-node/pvc-1', target_path: path, volume_capability: mountCap() }));
    expect(foreign.code).toBe(status.NOT_FOUND);
    expect(foreign.details).toContain('other-node');
    expect(await codeOf(node('NodePublishVolume', { volume_id: `${NODE}/never-made`, target_path: path, volume_capability: mountCap() }))).toBe(status.NOT_FOUND);
    expect(existsSync(path)).toBe(false);
  });

  it('never serves a clone that is not populated', async () => {
    const path = target('clone');
    const err = await errorOf(
      node('NodePublishVolume', {
        volume_id: `${NODE}/unpopulated`,
        target_path: path,
        volume_capability: mountCap(),
        volume_context: { 'pg-reflinker.csi/kind': 'clone' },
      }),
    );
    expect(err.code).toBe(status.NOT_FOUND);
    expect(existsSync(join(ctx().fs.root, 'unpopulated'))).toBe(false);
  });

  it('refuses a target path inside the volume root', async () => {
    const volume = await newVolume();
    const inside = join(ctx().fs.root, 'sneaky-target');
    const err = await errorOf(node('NodePublishVolume', { volume_id: volume.volume_id, target_path: inside, volume_capability: mountCap(), volume_context: volume.volume_context }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(existsSync(inside)).toBe(false);
    // The same through a symlink outside the root that points into it.
    const link = join(ctx().fs.base, `link-into-root-${++seq}`);
    await symlink(ctx().fs.root, link);
    const viaLink = await errorOf(node('NodePublishVolume', { volume_id: volume.volume_id, target_path: join(link, 'sneaky'), volume_capability: mountCap(), volume_context: volume.volume_context }));
    expect(viaLink.code).toBe(status.INVALID_ARGUMENT);
    expect(existsSync(join(ctx().fs.root, 'sneaky'))).toBe(false);
    expect((await stat(ctx().fs.root)).isDirectory()).toBe(true);
  });
});
