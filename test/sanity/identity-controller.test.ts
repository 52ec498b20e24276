import { expect, it } from '@jest/globals';
import { codeOf, errorOf, grpc } from '../support/csi-client.js';
import { ROOT, XFS, describeWithRealParts } from '../support/requirements.js';
import { GiB, NODE, mountCap, useStandaloneDriver } from './fixture.js';

const { status } = grpc;
const topology = (node: string) => ({ segments: { 'topology.pg-reflinker.csi/node': node } });
let seq = 0;
const uniqueName = (prefix: string) => `${prefix}-${process.pid}-${++seq}`;

describeWithRealParts('CSI conformance: Identity and Controller (standalone driver over its unix socket)', [ROOT, XFS], () => {
  const ctx = useStandaloneDriver();
  const create = (request: object) => ctx().client.controller('CreateVolume', request);

  it('GetPluginInfo names the driver and its version', async () => {
    const info = await ctx().client.identity('GetPluginInfo', {});
    expect(info.name).toBe('pg-reflinker.csi');
    expect(info.vendor_version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('GetPluginCapabilities advertises the controller service and topology', async () => {
    const caps = await ctx().client.identity('GetPluginCapabilities', {});
    const types = caps.capabilities.map((c: { service: { type: string } }) => c.service.type).sort();
    expect(types).toEqual(['CONTROLLER_SERVICE', 'VOLUME_ACCESSIBILITY_CONSTRAINTS']);
  });

  it('Probe reports ready when the root is writable', async () => {
    expect((await ctx().client.identity('Probe', {})).ready).toEqual({ value: true });
  });

  it('ControllerGetCapabilities lists create/delete and clone, nothing it does not implement', async () => {
    const caps = await ctx().client.controller('ControllerGetCapabilities', {});
    expect(caps.capabilities.map((c: { rpc: { type: string } }) => c.rpc.type).sort()).toEqual(['CLONE_VOLUME', 'CREATE_DELETE_VOLUME']);
  });

  it('unimplemented controller RPCs answer UNIMPLEMENTED', async () => {
    expect(await codeOf(ctx().client.controller('ControllerPublishVolume', { volume_id: `${NODE}/x`, node_id: NODE }))).toBe(status.UNIMPLEMENTED);
    expect(await codeOf(ctx().client.controller('ListVolumes', {}))).toBe(status.UNIMPLEMENTED);
  });

  it.each([
    ['no name', { volume_capabilities: [mountCap()] }, 'volume name missing'],
    ['no capabilities', { name: 'v-nocaps' }, 'volume capabilities missing'],
    ['block access', { name: 'v-block', volume_capabilities: [{ block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }] }, 'block access is not supported'],
    ['a multi-node access mode', { name: 'v-multi', volume_capabilities: [mountCap('MULTI_NODE_MULTI_WRITER')] }, 'MULTI_NODE_MULTI_WRITER is not supported'],
    ['an unknown access mode', { name: 'v-unknown', volume_capabilities: [mountCap('UNKNOWN')] }, 'no access mode'],
    ['a capability without access mode', { name: 'v-noam', volume_capabilities: [{ mount: {} }] }, 'no access mode'],
    ['a snapshot source', { name: 'v-snap', volume_capabilities: [mountCap()], volume_content_source: { snapshot: { snapshot_id: 'x' } } }, 'snapshots are not supported'],
    ['a negative capacity', { name: 'v-neg', volume_capabilities: [mountCap()], capacity_range: { required_bytes: -1 } }, 'must not be negative'],
  ])('CreateVolume with %s is INVALID_ARGUMENT with a precise message', async (_what, request, message) => {
    const err = await errorOf(create(request));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain(message);
  });

  it('CreateVolume with required above limit is OUT_OF_RANGE', async () => {
    const err = await errorOf(create({ name: 'v-range', volume_capabilities: [mountCap()], capacity_range: { required_bytes: 2 * GiB, limit_bytes: GiB } }));
    expect(err.code).toBe(status.OUT_OF_RANGE);
  });

  it('CreateVolume places on the driver node, with its topology, and is idempotent on the name', async () => {
    const request = { name: uniqueName('idem'), volume_capabilities: [mountCap()], capacity_range: { required_bytes: GiB } };
    const first = (await create(request)).volume;
    expect(first.volume_id).toBe(`${NODE}/${request.name}`);
    expect(first.capacity_bytes).toBe(GiB);
    expect(first.accessible_topology).toEqual([topology(NODE)]);
    expect(first.volume_context['pg-reflinker.csi/kind']).toBe('empty');
    expect((await create(request)).volume).toEqual(first);
  });

  it('CreateVolume with the same name and a different capacity is ALREADY_EXISTS', async () => {
    const name = uniqueName('cap');
    await create({ name, volume_capabilities: [mountCap()], capacity_range: { required_bytes: GiB } });
    const err = await errorOf(create({ name, volume_capabilities: [mountCap()], capacity_range: { required_bytes: 2 * GiB } }));
    expect(err.code).toBe(status.ALREADY_EXISTS);
    expect(err.details).toContain(`its capacity is ${GiB} bytes`);
  });

  it('CreateVolume accepts a maximum-length (128 byte) name and keeps the id within 128 bytes', async () => {
    const name = 'n'.repeat(128);
    const volume = (await create({ name, volume_capabilities: [mountCap()] })).volume;
    expect(Buffer.byteLength(volume.volume_id)).toBeLessThanOrEqual(128);
    expect((await create({ name, volume_capabilities: [mountCap()] })).volume.volume_id).toBe(volume.volume_id);
    await ctx().client.controller('DeleteVolume', { volume_id: volume.volume_id });
  });

  it('CreateVolume honours requisite topology: RESOURCE_EXHAUSTED when this node is not allowed', async () => {
    const err = await errorOf(
      create({ name: uniqueName('topo'), volume_capabilities: [mountCap()], accessibility_requirements: { requisite: [topology('other-node')] } }),
    );
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err.details).toContain(NODE);
    const ok = await create({
      name: uniqueName('topo'),
      volume_capabilities: [mountCap()],
      accessibility_requirements: { requisite: [topology('other-node'), topology(NODE)], preferred: [topology(NODE)] },
    });
    expect(ok.volume.accessible_topology).toEqual([topology(NODE)]);
  });

  it('CreateVolume from a source that does not exist is NOT_FOUND', async () => {
    for (const volume_id of [`${NODE}/no-such-volume`, 'not-an-id', `other-node/pvc-x`]) {
      const err = await errorOf(create({ name: uniqueName('clone'), volume_capabilities: [mountCap()], volume_content_source: { volume: { volume_id } } }));
      expect(err.code).toBe(status.NOT_FOUND);
    }
  });

  it('CreateVolume clones an idle volume on its node, echoes the source and keeps its capacity', async () => {
    const source = (await create({ name: uniqueName('src'), volume_capabilities: [mountCap()], capacity_range: { required_bytes: 2 * GiB } })).volume;
    const request = {
      name: uniqueName('clone'),
      volume_capabilities: [mountCap()],
      capacity_range: { required_bytes: GiB },
      volume_content_source: { volume: { volume_id: source.volume_id } },
    };
    const clone = (await create(request)).volume;
    expect(clone.content_source).toEqual({ volume: { volume_id: source.volume_id }, type: 'volume' });
    expect(clone.capacity_bytes).toBe(2 * GiB);
    expect(clone.accessible_topology).toEqual([topology(NODE)]);
    expect(clone.volume_context['pg-reflinker.csi/kind']).toBe('clone');
    expect((await create(request)).volume).toEqual(clone);
    const other = await errorOf(create({ ...request, volume_content_source: undefined }));
    expect(other.code).toBe(status.ALREADY_EXISTS);
  });

  it('DeleteVolume: missing id is INVALID_ARGUMENT; unknown ids are OK; deleting twice is OK', async () => {
    expect(await codeOf(ctx().client.controller('DeleteVolume', {}))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(ctx().client.controller('DeleteVolume', { volume_id: 'reallyfakevolumeid' }))).toBe(status.OK);
    const volume = (await create({ name: uniqueName('del'), volume_capabilities: [mountCap()] })).volume;
    expect(await codeOf(ctx().client.controller('DeleteVolume', { volume_id: volume.volume_id }))).toBe(status.OK);
    expect(await codeOf(ctx().client.controller('DeleteVolume', { volume_id: volume.volume_id }))).toBe(status.OK);
    expect(await codeOf(ctx().client.controller('ValidateVolumeCapabilities', { volume_id: volume.volume_id, volume_capabilities: [mountCap()] }))).toBe(status.NOT_FOUND);
  });

  it('ValidateVolumeCapabilities confirms what it supports and says why not otherwise', async () => {
    const call = (request: object) => ctx().client.controller('ValidateVolumeCapabilities', request);
    expect(await codeOf(call({ volume_capabilities: [mountCap()] }))).toBe(status.INVALID_ARGUMENT);
    const volume = (await create({ name: uniqueName('val'), volume_capabilities: [mountCap()] })).volume;
    expect(await codeOf(call({ volume_id: volume.volume_id }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(call({ volume_id: `${NODE}/missing`, volume_capabilities: [mountCap()] }))).toBe(status.NOT_FOUND);
    const ok = await call({ volume_id: volume.volume_id, volume_capabilities: [mountCap()] });
    expect(ok.confirmed.volume_capabilities).toHaveLength(1);
    const no = await call({ volume_id: volume.volume_id, volume_capabilities: [mountCap('MULTI_NODE_READER_ONLY')] });
    expect(no.confirmed).toBeNull();
    expect(no.message).toContain('MULTI_NODE_READER_ONLY');
  });
});
