import { errorOf } from '../support/csi-client.js';
import { afterEach, describe, expect, test } from '@jest/globals';
import { status } from '@grpc/grpc-js';
import type { FakeKubeApiServer } from '../support/kube-apiserver.js';
import type { FakeKubelet } from '../support/kube-apiserver-kubelet.js';
import { DRIVER_IMAGE, DRIVER_NS, PREFIX, addClonePvc, addCnpgCluster, addVolume, cloneRequest, recordedJobName, startCluster, startController, until, type Controller } from './fixtures.js';

// DeleteVolume: a cleanup Job on the volume's node, idempotent, ABORTED while it runs.

let api: FakeKubeApiServer;
let kubelet: FakeKubelet;
let ctl: Controller;

afterEach(async () => {
  await ctl?.stop();
  await api?.stop();
});

async function setup(tuning: Parameters<typeof startController>[1] = {}) {
  ({ api, kubelet } = await startCluster());
  ctl = await startController(api, tuning);
}


const VOLUME = 'node-b/pvc-11111111-2222-3333-4444-555555555555';
const JOB = 'pgr-cleanup-pvc-11111111-2222-3333-4444-555555555555';
const cleanupCreates = () => api.requests.filter((r) => r.method === 'POST' && r.path === `/apis/batch/v1/namespaces/${DRIVER_NS}/jobs`).length;

describe('DeleteVolume with the Kubernetes backend', () => {
  test('a cleanup Job on the node: ABORTED while it runs, OK once it succeeded, OK again without a second Job', async () => {
    await setup();
    const running = await errorOf(ctl.call('DeleteVolume', { volume_id: VOLUME }));
    expect(running.code).toBe(status.ABORTED);
    expect(running.details).toMatch(/being deleted: cleanup Job pg-reflinker\/pgr-cleanup-pvc-.* on node node-b: no pod yet/);
    const job = api.get('jobs.batch', DRIVER_NS, JOB)!;
    const spec = job.spec as { backoffLimit: number; ttlSecondsAfterFinished: number; template: { spec: { nodeName: string; containers: Array<{ image: string; args: string[]; securityContext: { runAsUser: number } }>; volumes: unknown[] } } };
    expect(spec.backoffLimit).toBe(0);
    expect(spec.ttlSecondsAfterFinished).toBe(3600);
    expect(spec.template.spec.nodeName).toBe('node-b');
    expect(spec.template.spec.containers[0]).toMatchObject({ image: DRIVER_IMAGE, args: ['cleanup', '--root', PREFIX, '--volume-id', VOLUME], securityContext: { runAsUser: 0 } });
    expect(spec.template.spec.volumes).toEqual([{ name: 'prefix', hostPath: { path: PREFIX, type: 'Directory' } }]);

    kubelet.start(DRIVER_NS, JOB);
    const still = await errorOf(ctl.call('DeleteVolume', { volume_id: VOLUME }));
    expect(still.code).toBe(status.ABORTED);
    expect(still.details).toMatch(/Running/);

    kubelet.finish(DRIVER_NS, JOB, { message: '' });
    expect(await ctl.call('DeleteVolume', { volume_id: VOLUME })).toEqual({});
    expect(await ctl.call('DeleteVolume', { volume_id: VOLUME })).toEqual({});
    expect(cleanupCreates()).toBe(1);
    expect(api.list('jobs.batch', DRIVER_NS)).toHaveLength(1);
  });

  test('a cleanup finishing during the call is seen on the watch: OK in one call', async () => {
    await setup({ deleteWaitMs: 8000 });
    const started = Date.now();
    const call = ctl.call('DeleteVolume', { volume_id: VOLUME });
    await until(() => !!api.get('jobs.batch', DRIVER_NS, JOB) && api.openWatches > 0, 5000, 'the cleanup Job and its watch');
    kubelet.finish(DRIVER_NS, JOB);
    expect(await call).toEqual({});
    expect(Date.now() - started).toBeLessThan(3000);
  });

  test('a failed cleanup reports the command\'s reason and starts over on the next call', async () => {
    await setup();
    await errorOf(ctl.call('DeleteVolume', { volume_id: VOLUME }));
    kubelet.finish(DRIVER_NS, JOB, { exitCode: 3, message: '{"level":"info"}\npg-reflinker cleanup: /var/lib/pg-reflinker/pvc-x is a symlink; refusing to follow it out of the root' });
    const err = await errorOf(ctl.call('DeleteVolume', { volume_id: VOLUME }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/removing volume node-b\/pvc-.* on node node-b failed: .*is a symlink; refusing/);
    expect(api.get('jobs.batch', DRIVER_NS, JOB)).toBeUndefined();
    expect((await errorOf(ctl.call('DeleteVolume', { volume_id: VOLUME }))).code).toBe(status.ABORTED);
    expect(cleanupCreates()).toBe(2);
  });

  test('the node object is gone: FAILED_PRECONDITION telling the admin how to remove the PV', async () => {
    await setup();
    const err = await errorOf(ctl.call('DeleteVolume', { volume_id: 'node-gone/pvc-x' }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/node node-gone of volume node-gone\/pvc-x no longer exists.*kubectl patch pv pvc-x .*finalizers.*kubectl delete pv pvc-x/);
    expect(api.list('jobs.batch')).toHaveLength(0);
  });

  test('ids that cannot be ours are OK at once, with no Job', async () => {
    await setup();
    expect(await ctl.call('DeleteVolume', { volume_id: '../../etc' })).toEqual({});
    expect(api.list('jobs.batch')).toHaveLength(0);
  });

  test('deleting a clone whose population still runs stops the populator first', async () => {
    await setup();
    const source = addVolume(api, { namespace: 'db', pvc: 'pg-1', node: 'node-a', labels: { 'cnpg.io/cluster': 'pg' } });
    addCnpgCluster(api, source);
    const clone = addClonePvc(api, 'db', 'c', 'pg-1');
    await errorOf(ctl.call('CreateVolume', cloneRequest(clone.name, source.volumeId, { clonePvc: { namespace: 'db', name: 'c' } })));
    const populate = recordedJobName(api, clone.name)!;
    const pod = kubelet.start('db', populate);
    api.patch('pods', 'db', pod.metadata.name, { metadata: { finalizers: ['test/keep'] } }); // a pod that takes a while to stop
    const first = await errorOf(ctl.call('DeleteVolume', { volume_id: `node-a/${clone.name}` }));
    expect(first.code).toBe(status.ABORTED);
    expect(first.details).toMatch(/waiting for populator pod db\/pgr-populate-.* to stop/);
    expect(api.get('jobs.batch', 'db', populate)).toBeUndefined();
    api.patch('pods', 'db', pod.metadata.name, { metadata: { finalizers: null }, status: { phase: 'Failed' } });
    expect((await errorOf(ctl.call('DeleteVolume', { volume_id: `node-a/${clone.name}` }))).code).toBe(status.ABORTED);
    expect(api.get('jobs.batch', DRIVER_NS, `pgr-cleanup-${clone.name}`)).toBeDefined();
  });

  test('a new volume under a deleted name is not answered by the old deletion', async () => {
    await setup();
    await errorOf(ctl.call('DeleteVolume', { volume_id: VOLUME }));
    kubelet.finish(DRIVER_NS, JOB);
    expect(await ctl.call('DeleteVolume', { volume_id: VOLUME })).toEqual({});
    await ctl.call('CreateVolume', {
      name: 'pvc-11111111-2222-3333-4444-555555555555',
      volume_capabilities: [{ mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }],
      accessibility_requirements: { preferred: [{ segments: { 'topology.pg-reflinker.csi/node': 'node-b' } }] },
    });
    expect(api.get('jobs.batch', DRIVER_NS, JOB)).toBeUndefined();
    expect((await errorOf(ctl.call('DeleteVolume', { volume_id: VOLUME }))).code).toBe(status.ABORTED);
  });
});
