import { errorOf } from '../support/csi-client.js';
import { afterEach, describe, expect, test } from '@jest/globals';
import { status } from '@grpc/grpc-js';
import type { FakeKubelet } from '../support/kube-apiserver-kubelet.js';
import { ApiError, type FakeKubeApiServer } from '../support/kube-apiserver.js';
import {
  DRIVER_IMAGE,
  DRIVER_NS,
  PG_IMAGE,
  TOPOLOGY_KEY,
  addClonePvc,
  addCnpgCluster,
  addVolume,
  cloneRequest,
  startCluster,
  startController,
  successLine,
  until,
  type Controller,
  type RpcError,
  type SourceVolumeFixture,
  cloneRecord,
  populateJobsIn,
  recordedJobName,
} from './fixtures.js';

// CreateVolume with a clone source, over the real gRPC socket, against the API-server double.

const GRANT_FAILURE =
  'pg-reflinker populate: permission denied: role streaming_replica may not run the backup functions; as a superuser, run once on the primary: ' +
  'GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean), pg_backup_stop(boolean) TO streaming_replica;';

interface CreateResponse {
  volume: {
    volume_id: string;
    capacity_bytes: number;
    volume_context: Record<string, string>;
    content_source: { volume: { volume_id: string } };
    accessible_topology: Array<{ segments: Record<string, string> }>;
  };
}

let api: FakeKubeApiServer;
let kubelet: FakeKubelet;
const controllers: Controller[] = [];

afterEach(async () => {
  for (const c of controllers.splice(0)) await c.stop();
  await api?.stop();
});

async function setup(opts: { cluster?: boolean; tuning?: Parameters<typeof startController>[1] } = {}) {
  ({ api, kubelet } = await startCluster());
  const source = addVolume(api, { namespace: 'db', pvc: 'pg-1', node: 'node-a', capacity: '10Gi', labels: { 'cnpg.io/cluster': 'pg', 'cnpg.io/pvcRole': 'PG_DATA' } });
  if (opts.cluster !== false) addCnpgCluster(api, source);
  const clone = addClonePvc(api, 'db', 'pg-clone-1', 'pg-1');
  const ctl = await startController(api, opts.tuning);
  controllers.push(ctl);
  const request = cloneRequest(clone.name, source.volumeId, { clonePvc: { namespace: 'db', name: 'pg-clone-1' } });
  return { source, clone, ctl, request, jobName: () => recordedJobName(api, clone.name)! };
}


const eventsOn = (pvcName: string) =>
  api
    .list('events', 'db')
    .filter((e) => (e.involvedObject as { name: string }).name === pvcName)
    .map((e) => ({ reason: e.reason as string, type: e.type as string, message: e.message as string, uid: (e.involvedObject as { uid?: string }).uid }));

const jobCreates = (namespace: string) => api.requests.filter((r) => r.method === 'POST' && r.path === `/apis/batch/v1/namespaces/${namespace}/jobs`).length;

/** The sidecar's part after an OK: the PV named after the volume, carrying our answer. */
function createPv(name: string, source: SourceVolumeFixture, res: CreateResponse, clonePvc: { namespace: string; name: string; uid: string }): void {
  api.create('persistentvolumes', {
    metadata: { name },
    spec: {
      capacity: { storage: String(res.volume.capacity_bytes) },
      claimRef: { namespace: clonePvc.namespace, name: clonePvc.name, uid: clonePvc.uid },
      persistentVolumeReclaimPolicy: 'Retain',
      csi: { driver: 'pg-reflinker.csi', volumeHandle: res.volume.volume_id, volumeAttributes: { ...res.volume.volume_context, 'storage.kubernetes.io/csiProvisionerIdentity': 'x' } },
    },
  });
  void source;
}

describe('CreateVolume clones with the Kubernetes backend', () => {
  test('success: one Job on the source node, ABORTED while it runs, then the volume with LSNs, Events on the PVC', async () => {
    const { source, clone, ctl, request, jobName } = await setup();

    const first = await errorOf(ctl.call('CreateVolume', request));
    expect(first.code).toBe(status.ABORTED);
    expect(first.details).toMatch(/being populated: populator Job db\/pgr-populate-pvc-.* on node node-a: no pod yet/);
    const job = populateJobsIn(api, 'db')[0]!;
    expect(job).toBeDefined();
    expect((job.spec as { template: { spec: { nodeName: string } } }).template.spec.nodeName).toBe('node-a');
    expect(((job.spec as { template: { spec: { containers: Array<{ image: string }> } } }).template.spec.containers[0]!.image)).toBe(PG_IMAGE);

    kubelet.start('db', jobName());
    const running = await errorOf(ctl.call('CreateVolume', request));
    expect(running.code).toBe(status.ABORTED);
    expect(running.details).toMatch(/Running, \d+ s/);

    kubelet.finish('db', jobName(), { message: successLine(clone.name) });
    const res = await ctl.call<CreateResponse>('CreateVolume', request);
    expect(res.volume).toMatchObject({
      volume_id: `node-a/${clone.name}`,
      capacity_bytes: 10 * 2 ** 30,
      content_source: { volume: { volume_id: source.volumeId } },
      accessible_topology: [{ segments: { [TOPOLOGY_KEY]: 'node-a' } }],
    });
    expect(res.volume.volume_context).toMatchObject({
      'pg-reflinker.csi/kind': 'clone',
      'pg-reflinker.csi/source': 'db/pg-1',
      'pg-reflinker.csi/sourceVolumeId': source.volumeId,
      'pg-reflinker.csi/node': 'node-a',
      'pg-reflinker.csi/mode': 'online',
      'pg-reflinker.csi/seconds': '2.345',
      'pg-reflinker.csi/startLsn': '0/5000028',
      'pg-reflinker.csi/stopLsn': '0/5000138',
      'pg-reflinker.csi/timeline': '1',
      'pg-reflinker.csi/backupFrom': 'standby',
    });
    expect(jobCreates('db')).toBe(1);

    const events = eventsOn('pg-clone-1');
    expect(events.map((e) => e.reason)).toEqual(['Populating', 'Populated']);
    expect(events.every((e) => e.uid === clone.uid)).toBe(true);
    expect(events[0]!.message).toMatch(/online backup of replica instance pg-1 of cluster pg/);
    expect(events[1]!.message).toMatch(/in 2\.3 s, backup from standby, LSN 0\/5000028 to 0\/5000138 on timeline 1/);

    // Retries answer the same, from the Job (its result was recorded on it), then from the PV.
    expect(await ctl.call<CreateResponse>('CreateVolume', request)).toEqual(res);
    expect(cloneRecord(api, clone.name)!.result).toContain('0/5000138');
    for (const pod of kubelet.pods('db', jobName())) api.delete('pods', 'db', pod.metadata.name);
    expect(await ctl.call<CreateResponse>('CreateVolume', request)).toEqual(res);
    createPv(clone.name, source, res, { namespace: 'db', name: 'pg-clone-1', uid: clone.uid });
    api.delete('jobs.batch', 'db', jobName(), 'Background'); // ttlSecondsAfterFinished
    expect(await ctl.call<CreateResponse>('CreateVolume', request)).toEqual(res);
    expect(jobCreates('db')).toBe(1);
    expect(eventsOn('pg-clone-1')).toHaveLength(2);
  });

  test('a finishing Job is noticed on the watch, not after a sleep', async () => {
    const { clone, ctl, request, jobName } = await setup({ tuning: { cloneWaitMs: 8000 } });
    const started = Date.now();
    const call = ctl.call<CreateResponse>('CreateVolume', request);
    await until(() => !!populateJobsIn(api, 'db')[0], 5000, 'the Job');
    await until(() => api.openWatches > 0, 5000, 'a watch on the Job');
    await new Promise((resolve) => setTimeout(resolve, 200));
    kubelet.finish('db', jobName(), { message: successLine(clone.name) });
    const res = await call;
    expect(res.volume.volume_id).toBe(`node-a/${clone.name}`);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(api.requests.some((r) => r.query.watch === 'true' && r.query.fieldSelector === `metadata.name=${jobName()}`)).toBe(true);
  });

  test('Job failure: the GRANT message surfaces, the destination is cleaned on the node, the Job goes, a retry starts a new Job', async () => {
    const { clone, ctl, request, jobName } = await setup();
    await errorOf(ctl.call('CreateVolume', request));
    const firstUid = populateJobsIn(api, 'db')[0]!.metadata.uid;
    kubelet.finish('db', jobName(), { exitCode: 1, message: GRANT_FAILURE });

    const failed = await errorOf(ctl.call('CreateVolume', request));
    expect(failed.code).toBe(status.FAILED_PRECONDITION);
    expect(failed.details).toContain('GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean), pg_backup_stop(boolean) TO streaming_replica;');
    expect(failed.details).toMatch(/^populating pvc-.* from db\/pg-1 failed: permission denied/);
    expect(populateJobsIn(api, 'db')[0]).toBeUndefined();
    expect(api.list('pods', 'db', `batch.kubernetes.io/controller-uid=${firstUid}`)).toHaveLength(0);
    const warning = eventsOn('pg-clone-1').find((e) => e.reason === 'PopulateFailed')!;
    expect(warning.type).toBe('Warning');
    expect(warning.message).toContain('GRANT EXECUTE ON FUNCTION');

    const cleanup = api.get('jobs.batch', DRIVER_NS, `pgr-cleanup-${clone.name}`)!;
    const pod = (cleanup.spec as { template: { spec: { nodeName: string; containers: Array<{ image: string; args: string[] }> } } }).template.spec;
    expect(pod.nodeName).toBe('node-a');
    expect(pod.containers[0]!.image).toBe(DRIVER_IMAGE);
    expect(pod.containers[0]!.args).toEqual(['cleanup', '--root', '/var/lib/pg-reflinker', '--volume-id', `node-a/${clone.name}`]);

    // While the cleanup runs, no new population may write into the directory.
    const waiting = await errorOf(ctl.call('CreateVolume', request));
    expect(waiting.code).toBe(status.ABORTED);
    expect(waiting.details).toMatch(/cleaning up after a failed attempt \(permission denied/);
    expect(populateJobsIn(api, 'db')[0]).toBeUndefined();

    kubelet.finish(DRIVER_NS, `pgr-cleanup-${clone.name}`, { message: `{"volumeId":"node-a/${clone.name}","outcome":"deleted"}` });
    const retry = await errorOf(ctl.call('CreateVolume', request));
    expect(retry.code).toBe(status.ABORTED);
    const second = populateJobsIn(api, 'db')[0]!;
    expect(second.metadata.uid).not.toBe(firstUid);
    expect(api.get('jobs.batch', DRIVER_NS, `pgr-cleanup-${clone.name}`)).toBeUndefined();

    kubelet.finish('db', jobName(), { message: successLine(clone.name) });
    expect((await ctl.call<CreateResponse>('CreateVolume', request)).volume.volume_id).toBe(`node-a/${clone.name}`);
  });

  test('a deadline: INTERNAL with the Job controller\'s reason', async () => {
    const { ctl, request, jobName } = await setup();
    await errorOf(ctl.call('CreateVolume', request));
    kubelet.finish('db', jobName(), { jobReason: { reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' } });
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.INTERNAL);
    expect(err.details).toMatch(/failed: container populate exited with status 1 \(Error\); DeadlineExceeded: Job was active longer than specified deadline$/);
  });

  test('a failed init container: its message is the reason', async () => {
    const { ctl, request, jobName } = await setup();
    await errorOf(ctl.call('CreateVolume', request));
    kubelet.finish('db', jobName(), { initFailure: "chown: changing ownership of '/pg-reflinker/volume': Operation not permitted" });
    const err = await errorOf(ctl.call('CreateVolume', request));
    // The status is failureStatus()'s call (src/controller/populator/outcome.ts); the reason is ours.
    expect([status.INTERNAL, status.FAILED_PRECONDITION]).toContain(err.code);
    expect(err.details).toContain("init container prepare failed (exit 1, Error): chown: changing ownership of '/pg-reflinker/volume': Operation not permitted");
  });

  test('controller restart mid-clone: the new instance adopts the running Job', async () => {
    const { clone, ctl, request, jobName } = await setup();
    await errorOf(ctl.call('CreateVolume', request));
    const uid = populateJobsIn(api, 'db')[0]!.metadata.uid;
    kubelet.start('db', jobName());
    await controllers.splice(0)[0]!.stop();
    void ctl;

    const restarted = await startController(api);
    controllers.push(restarted);
    const running = await errorOf(restarted.call('CreateVolume', request));
    expect(running.code).toBe(status.ABORTED);
    kubelet.finish('db', jobName(), { message: successLine(clone.name) });
    const res = await restarted.call<CreateResponse>('CreateVolume', request);
    expect(res.volume.volume_context['pg-reflinker.csi/stopLsn']).toBe('0/5000138');
    expect(api.list('jobs.batch', 'db')).toHaveLength(1);
    expect(populateJobsIn(api, 'db')[0]!.metadata.uid).toBe(uid);
    expect(jobCreates('db')).toBe(1);
  });

  test('20 rapid concurrent retries of the same name make exactly one Job', async () => {
    const { ctl, request, jobName } = await setup();
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => ctl.call('CreateVolume', request)));
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect(((r as PromiseRejectedResult).reason as RpcError).code).toBe(status.ABORTED);
    }
    expect(api.list('jobs.batch', 'db').map((j) => j.metadata.name)).toEqual([jobName()]);
    expect(eventsOn('pg-clone-1').filter((e) => e.reason === 'Populating')).toHaveLength(1);
  });

  test('no pod uses the source: a plain reflink copy in the driver image', async () => {
    const { ctl, request, jobName, clone } = await setup({ cluster: false });
    await errorOf(ctl.call('CreateVolume', request));
    const job = populateJobsIn(api, 'db')[0]!;
    const pod = (job.spec as { template: { spec: { containers: Array<{ image: string; env: Array<{ name: string; value: string }>; securityContext: { runAsUser: number } }>; volumes: Array<{ name: string }> } } }).template.spec;
    expect(pod.containers[0]!.image).toBe(DRIVER_IMAGE);
    expect(pod.containers[0]!.securityContext.runAsUser).toBe(0);
    expect(pod.containers[0]!.env.find((e) => e.name === 'PGR_MODE')?.value).toBe('plain');
    expect(pod.containers[0]!.env.find((e) => e.name === 'PGR_CRASH_CONSISTENT')).toBeUndefined();
    expect(pod.volumes.map((v) => v.name)).not.toContain('tls');
    expect(job.metadata.annotations!['pg-reflinker.csi/mode']).toBe('plain');
    kubelet.finish('db', jobName(), {
      message: JSON.stringify({ mode: 'plain', label: clone.name, startLsn: null, stopLsn: null, timeline: null, backupFrom: null, files: 3, bytes: 10, seconds: 0.2, checkpointSeconds: 0, copySeconds: 0.1, walSeconds: 0 }),
    });
    const res = await ctl.call<CreateResponse>('CreateVolume', request);
    expect(res.volume.volume_context).toMatchObject({ 'pg-reflinker.csi/mode': 'plain' });
    expect(res.volume.volume_context['pg-reflinker.csi/startLsn']).toBeUndefined();
  });

  test('source used by a non-CloudNativePG pod: FAILED_PRECONDITION, unless the StorageClass allows crash-consistent copies', async () => {
    const { source, ctl, request, jobName } = await setup({ cluster: false });
    const pod = api.create('pods', { metadata: { namespace: 'db', name: 'some-app' }, spec: { nodeName: 'node-a', volumes: [{ name: 'd', persistentVolumeClaim: { claimName: source.pvc } }] } });
    api.patch('pods', 'db', pod.metadata.name, { status: { phase: 'Running' } });
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/in use by pod\(s\) some-app, which are not CloudNativePG instances.*allowCrashConsistent/);
    expect(populateJobsIn(api, 'db')[0]).toBeUndefined();

    const allowed = { ...request, parameters: { ...(request.parameters as object), allowCrashConsistent: 'true' } };
    expect((await errorOf(ctl.call('CreateVolume', allowed))).code).toBe(status.ABORTED);
    const job = populateJobsIn(api, 'db')[0]!;
    expect(job.metadata.annotations!['pg-reflinker.csi/mode']).toBe('plain');
    // The populator is told the copy may be crash-consistent (it refuses a live postmaster.pid otherwise).
    const env = (job.spec as { template: { spec: { containers: Array<{ env: Array<{ name: string; value: string }> }> } } }).template.spec.containers[0]!.env;
    expect(env.find((e) => e.name === 'PGR_CRASH_CONSISTENT')?.value).toBe('1');
  });

  test('a Cluster whose postgres uid or gid is 0 (or no id at all): FAILED_PRECONDITION naming the Cluster and the field, no Job', async () => {
    const { ctl, request } = await setup();
    for (const [field, value] of [['postgresUID', 0], ['postgresGID', 0], ['postgresUID', '26; id'], ['postgresGID', -1]] as const) {
      api.patch('clusters.postgresql.cnpg.io', 'db', 'pg', { spec: { postgresUID: 26, postgresGID: 26, [field]: value } });
      const err = await errorOf(ctl.call('CreateVolume', request));
      expect(err.code).toBe(status.FAILED_PRECONDITION);
      expect(err.details).toContain(`Cluster db/pg: spec.${field}`);
      expect(api.list('jobs.batch')).toHaveLength(0);
    }
  });

  test('a plain copy of a volume whose Cluster says postgresUID 0: FAILED_PRECONDITION too', async () => {
    const { ctl, request, source } = await setup();
    api.delete('pods', 'db', source.pvc);
    api.patch('clusters.postgresql.cnpg.io', 'db', 'pg', { spec: { postgresUID: 0 } });
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain('Cluster db/pg: spec.postgresUID');
    expect(api.list('jobs.batch')).toHaveLength(0);
  });

  test('an instance pod that is not Ready yet: ABORTED, no Job', async () => {
    const { ctl, request, jobName, source } = await setup();
    api.patch('pods', 'db', source.pvc, { status: { conditions: [{ type: 'Ready', status: 'False' }] } });
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.ABORTED);
    expect(err.details).toMatch(/instance pod pg-1 .* not Ready/);
    expect(populateJobsIn(api, 'db')[0]).toBeUndefined();
  });

  test('requisite topology without the source node: RESOURCE_EXHAUSTED naming the node', async () => {
    const { source, clone, ctl } = await setup();
    const err = await errorOf(ctl.call('CreateVolume', cloneRequest(clone.name, source.volumeId, { requisite: ['node-b'] })));
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err.details).toContain('node-a');
    expect(api.list('jobs.batch', 'db')).toHaveLength(0);
  });

  test('unknown source volume: NOT_FOUND; same name with another source: ALREADY_EXISTS', async () => {
    const { clone, ctl, request } = await setup();
    expect((await errorOf(ctl.call('CreateVolume', cloneRequest(clone.name, 'node-a/pvc-nope')))).code).toBe(status.NOT_FOUND);
    await errorOf(ctl.call('CreateVolume', request));
    const other = addVolume(api, { namespace: 'db', pvc: 'pg-2', node: 'node-a' });
    const err = await errorOf(ctl.call('CreateVolume', cloneRequest(clone.name, other.volumeId)));
    expect(err.code).toBe(status.ALREADY_EXISTS);
  });

  test('a clone name that cannot be a backup label: INVALID_ARGUMENT before any API request', async () => {
    const { source, ctl } = await setup();
    for (const name of ['my clone', '-starts-with-dash', `pvc-${'x'.repeat(240)}`, "pvc-1'; DROP"]) {
      const before = api.requests.length;
      const err = await errorOf(ctl.call('CreateVolume', cloneRequest(name, source.volumeId, { clonePvc: { namespace: 'db', name: 'pg-clone-1' } })));
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toMatch(/volume name .* cannot be used as a backup label/);
      expect(api.requests.length).toBe(before);
    }
    expect(api.list('jobs.batch')).toHaveLength(0);
  });

  test('a clone PVC parameter that is no object name: INVALID_ARGUMENT, no Job, no Event', async () => {
    const { source, clone, ctl } = await setup();
    const err = await errorOf(ctl.call('CreateVolume', cloneRequest(clone.name, source.volumeId, { clonePvc: { namespace: 'db', name: 'Not/A PVC' } })));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/do not name a PVC/);
    expect(api.list('jobs.batch')).toHaveLength(0);
    expect(api.list('events')).toHaveLength(0);
  });

  test('the API server is unreachable: UNAVAILABLE (the sidecar retries in the background)', async () => {
    const { ctl, request } = await setup();
    api.intercept = () => new ApiError(503, 'ServiceUnavailable', 'etcd is down');
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(err.details).toContain('etcd is down');
    api.intercept = undefined;
  });

  test('empty volumes: no node work, placed on the first preferred node; ValidateVolumeCapabilities sees PVs and Jobs', async () => {
    const { ctl, source } = await setup();
    const empty = await ctl.call<CreateResponse>('CreateVolume', {
      name: 'pvc-empty',
      capacity_range: { required_bytes: 1024 },
      volume_capabilities: [{ mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }],
      accessibility_requirements: { preferred: [{ segments: { [TOPOLOGY_KEY]: 'node-b' } }] },
    });
    expect(empty.volume).toMatchObject({ volume_id: 'node-b/pvc-empty', volume_context: { 'pg-reflinker.csi/kind': 'empty' } });
    expect(api.list('jobs.batch')).toHaveLength(0);
    const caps = [{ mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }];
    expect(await ctl.call('ValidateVolumeCapabilities', { volume_id: source.volumeId, volume_capabilities: caps })).toMatchObject({ confirmed: {} });
    expect((await errorOf(ctl.call('ValidateVolumeCapabilities', { volume_id: 'node-b/pvc-empty', volume_capabilities: caps }))).code).toBe(status.NOT_FOUND);
  });
});
