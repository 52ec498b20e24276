import { errorOf } from '../support/csi-client.js';
import { afterEach, describe, expect, test } from '@jest/globals';
import { status } from '@grpc/grpc-js';
import type { FakeKubeApiServer, KubeObject } from '../support/kube-apiserver.js';
import type { FakeKubelet } from '../support/kube-apiserver-kubelet.js';
import { ApiError } from '../support/kube-apiserver.js';
import { DRIVER_NS, addClonePvc, addCnpgCluster, addVolume, cloneRecord, cloneRequest, recordedJobName, startCluster, startController, successLine, type Controller } from './fixtures.js';

// What a namespace user can create cannot steer the driver: Jobs and pods that carry the
// driver's labels, names or annotations but that the driver did not create are not its own.

let api: FakeKubeApiServer;
let kubelet: FakeKubelet;
let ctl: Controller;

afterEach(async () => {
  await ctl?.stop();
  await api?.stop();
});

async function setup(opts: { cluster?: boolean } = {}) {
  ({ api, kubelet } = await startCluster());
  const source = addVolume(api, { namespace: 'db', pvc: 'pg-1', node: 'node-a', labels: { 'cnpg.io/cluster': 'pg', 'cnpg.io/pvcRole': 'PG_DATA' } });
  if (opts.cluster !== false) addCnpgCluster(api, source);
  const clone = addClonePvc(api, 'db', 'pg-clone-1', 'pg-1');
  ctl = await startController(api);
  const request = cloneRequest(clone.name, source.volumeId, { clonePvc: { namespace: 'db', name: 'pg-clone-1' } });
  return { source, clone, request };
}

const DRIVER_LABELS = (dir: string, role = 'populate') => ({ 'app.kubernetes.io/managed-by': 'pg-reflinker.csi', 'pg-reflinker.csi/role': role, 'pg-reflinker.csi/volume': dir });

/** A Job anyone with Job rights in `namespace` could make, dressed as the driver's. */
function forgedJob(namespace: string, name: string, dir: string, annotations: Record<string, string>): KubeObject {
  return api.create('jobs.batch', {
    metadata: { namespace, name, labels: DRIVER_LABELS(dir), annotations },
    spec: { template: { metadata: { labels: DRIVER_LABELS(dir) }, spec: { nodeName: 'node-a', restartPolicy: 'Never', containers: [{ name: 'populate', image: 'evil' }] } } },
  });
}

function runningPod(namespace: string, name: string, labels: Record<string, string>, claimName?: string, owner?: KubeObject): KubeObject {
  const pod = api.create('pods', {
    metadata: {
      namespace,
      name,
      labels,
      ...(owner ? { ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: owner.metadata.name, uid: owner.metadata.uid!, controller: true } as never] } : {}),
    },
    spec: { nodeName: 'node-a', containers: [{ name: 'app', image: 'app' }], volumes: claimName ? [{ name: 'd', persistentVolumeClaim: { claimName } }] : [] },
  });
  return api.patch('pods', namespace, pod.metadata.name, { status: { phase: 'Running' } });
}

const populateJobs = (namespace: string) => api.list('jobs.batch', namespace).filter((j) => j.metadata.labels?.['pg-reflinker.csi/role'] === 'populate');

describe('who uses the source: only the driver\'s own Job pods are ignored', () => {
  test('a live writer labelled managed-by pg-reflinker.csi is a foreign user: FAILED_PRECONDITION, no Job', async () => {
    const { source, request } = await setup({ cluster: false });
    runningPod('db', 'writer', DRIVER_LABELS('pvc-whatever'), source.pvc);
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/in use by pod\(s\) writer, which are not CloudNativePG instances/);
    expect(populateJobs('db')).toHaveLength(0);
  });

  test('a writer owned by a Job the driver did not create (labels and all) is a foreign user too', async () => {
    const { source, request } = await setup({ cluster: false });
    const job = forgedJob('db', 'pgr-populate-pvc-forged', 'pvc-forged', {});
    runningPod('db', 'writer', DRIVER_LABELS('pvc-forged'), source.pvc, job);
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/in use by pod\(s\) writer/);
  });

  test("the pod of the driver's own populator for another clone of the same source is not a user", async () => {
    const { source, request } = await setup({ cluster: false });
    expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.ABORTED);
    const [first] = populateJobs('db');
    kubelet.start('db', first!.metadata.name);
    const second = addClonePvc(api, 'db', 'pg-clone-2', 'pg-1');
    const err = await errorOf(ctl.call('CreateVolume', cloneRequest(second.name, source.volumeId, { clonePvc: { namespace: 'db', name: 'pg-clone-2' } })));
    expect(err.code).toBe(status.ABORTED);
    expect(populateJobs('db')).toHaveLength(2);
  });
});

describe('Jobs and pods the driver did not create are never trusted, adopted or deleted', () => {
  test('a forged populator Job in another namespace does not make CreateVolume answer ALREADY_EXISTS', async () => {
    const { clone, request } = await setup();
    forgedJob('other', `pgr-populate-${clone.name}`, clone.name, {
      'pg-reflinker.csi/volume-name': clone.name,
      'pg-reflinker.csi/volume-id': `node-b/${clone.name}`,
      'pg-reflinker.csi/capacity-bytes': '1',
    });
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.ABORTED);
    expect(err.details).toMatch(/being populated/);
    expect(api.list('jobs.batch', 'other')).toHaveLength(1);
  });

  test('a Job pre-made under the name the driver would derive is neither adopted nor deleted', async () => {
    const { clone, request } = await setup();
    const forged = forgedJob('db', `pgr-populate-${clone.name}`, clone.name, { 'pg-reflinker.csi/volume-id': `node-a/${clone.name}`, 'pg-reflinker.csi/volume-name': clone.name });
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.ABORTED);
    const ours = populateJobs('db').filter((j) => j.metadata.uid !== forged.metadata.uid);
    expect(ours).toHaveLength(1);
    // Its "success" is not the clone's.
    kubelet.finish('db', forged.metadata.name, { message: '{"mode":"online"}' });
    expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.ABORTED);
    expect(api.get('jobs.batch', 'db', forged.metadata.name)?.metadata.uid).toBe(forged.metadata.uid);
  });

  test('a forged populator pod in another namespace does not block DeleteVolume, and is left alone', async () => {
    await setup();
    const dir = 'pvc-11111111-2222-3333-4444-555555555555';
    runningPod('other', 'blocker', DRIVER_LABELS(dir));
    const err = await errorOf(ctl.call('DeleteVolume', { volume_id: `node-b/${dir}` }));
    expect(err.code).toBe(status.ABORTED);
    expect(err.details).toMatch(/cleanup Job pg-reflinker\/pgr-cleanup-/);
    expect(api.get('jobs.batch', DRIVER_NS, `pgr-cleanup-${dir}`)).toBeDefined();
    expect(api.get('pods', 'other', 'blocker')).toBeDefined();
  });

  test('a forged populator Job in another namespace is not deleted by DeleteVolume', async () => {
    await setup();
    const dir = 'pvc-11111111-2222-3333-4444-555555555555';
    forgedJob('other', `pgr-populate-${dir}`, dir, { 'pg-reflinker.csi/volume-id': `node-b/${dir}` });
    await errorOf(ctl.call('DeleteVolume', { volume_id: `node-b/${dir}` }));
    expect(api.get('jobs.batch', 'other', `pgr-populate-${dir}`)).toBeDefined();
  });

  test('a labelled Job does not make a volume exist for ValidateVolumeCapabilities', async () => {
    await setup();
    const dir = 'pvc-11111111-2222-3333-4444-555555555555';
    forgedJob('other', `pgr-populate-${dir}`, dir, { 'pg-reflinker.csi/volume-id': `node-b/${dir}` });
    const caps = [{ mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }];
    const err = await errorOf(ctl.call('ValidateVolumeCapabilities', { volume_id: `node-b/${dir}`, volume_capabilities: caps }));
    expect(err.code).toBe(status.NOT_FOUND);
  });
});

describe("the clone's record: which Job is the driver's", () => {
  test('a Job under the recorded name that the driver did not create: FAILED_PRECONDITION, neither adopted nor deleted', async () => {
    const { clone, request } = await setup();
    await errorOf(ctl.call('CreateVolume', request));
    const name = recordedJobName(api, clone.name)!;
    expect(name).toMatch(new RegExp(`^pgr-populate-${clone.name}-[a-z0-9]{8}$`));
    expect(cloneRecord(api, clone.name)).toMatchObject({ 'job-namespace': 'db', 'job-name': name, 'job-uid': api.get('jobs.batch', 'db', name)!.metadata.uid });
    api.delete('jobs.batch', 'db', name);
    const forged = forgedJob('db', name, clone.name, { 'pg-reflinker.csi/volume-id': `node-a/${clone.name}` });
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toMatch(new RegExp(`Job db/${name} was not created by pg-reflinker .*neither used nor deleted`));
    expect(api.get('jobs.batch', 'db', name)?.metadata.uid).toBe(forged.metadata.uid);
    expect(populateJobs('db')).toHaveLength(1);
    // DeleteVolume does not delete it either.
    await errorOf(ctl.call('DeleteVolume', { volume_id: `node-a/${clone.name}` }));
    expect(api.get('jobs.batch', 'db', name)?.metadata.uid).toBe(forged.metadata.uid);
  });

  test('a populator Job deleted by someone while its pod still runs: no second Job writes into the volume until that pod has stopped', async () => {
    const { clone, request } = await setup();
    expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.ABORTED);
    const first = recordedJobName(api, clone.name)!;
    const pod = kubelet.start('db', first);
    // Deleted with its pods orphaned (or still terminating): the old populator goes on writing.
    api.delete('jobs.batch', 'db', first, 'Orphan');
    const waiting = await errorOf(ctl.call('CreateVolume', request));
    expect(waiting.code).toBe(status.ABORTED);
    expect(waiting.details).toMatch(new RegExp(`waiting for its pod ${pod.metadata.name} to stop`));
    expect(populateJobs('db')).toHaveLength(0);
    api.patch('pods', 'db', pod.metadata.name, { status: { phase: 'Failed' } });
    expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.ABORTED);
    const second = recordedJobName(api, clone.name)!;
    expect(second).not.toBe(first);
    expect(populateJobs('db').map((j) => j.metadata.name)).toEqual([second]);
  });

  test('a controller that stops between the record and the Job makes the recorded Job on the next call, once', async () => {
    const { clone, request } = await setup();
    let failed = false;
    api.intercept = (r) => {
      if (failed || r.method !== 'POST' || r.path !== '/apis/batch/v1/namespaces/db/jobs') return undefined;
      failed = true;
      return new ApiError(500, 'InternalError', 'etcd hiccup');
    };
    expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.UNAVAILABLE);
    const name = recordedJobName(api, clone.name)!;
    expect(populateJobs('db')).toHaveLength(0);
    expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.ABORTED);
    expect(populateJobs('db').map((j) => j.metadata.name)).toEqual([name]);
    expect(cloneRecord(api, clone.name)!['job-uid']).toBe(api.get('jobs.batch', 'db', name)!.metadata.uid);
  });

  test('a controller that stops between the Job and recording its uid adopts that Job on the next call', async () => {
    const { clone, request } = await setup();
    let failed = false;
    api.intercept = (r) => {
      if (failed || r.method !== 'PUT' || !r.path.startsWith(`/api/v1/namespaces/${DRIVER_NS}/configmaps/`)) return undefined;
      failed = true;
      return new ApiError(503, 'ServiceUnavailable', 'apiserver restarting');
    };
    expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.UNAVAILABLE);
    const name = recordedJobName(api, clone.name)!;
    expect(cloneRecord(api, clone.name)!['job-uid']).toBeUndefined();
    const uid = api.get('jobs.batch', 'db', name)!.metadata.uid;
    expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.ABORTED);
    expect(cloneRecord(api, clone.name)!['job-uid']).toBe(uid);
    expect(populateJobs('db')).toHaveLength(1);
  });

  test('DeleteVolume removes the record once the data is gone; the result of a clone is read from the record, not the Job', async () => {
    const { clone, request } = await setup();
    await errorOf(ctl.call('CreateVolume', request));
    const name = recordedJobName(api, clone.name)!;
    kubelet.finish('db', name, { message: successLine(clone.name) });
    const res = (await ctl.call('CreateVolume', request)) as { volume: { volume_context: Record<string, string> } };
    expect(res.volume.volume_context['pg-reflinker.csi/stopLsn']).toBe('0/5000138');
    // A namespace user edits the Job: the answer does not change.
    api.patch('jobs.batch', 'db', name, { metadata: { annotations: { 'pg-reflinker.csi/result': '{"mode":"online","stopLsn":"9/FFFFFFFF"}', 'pg-reflinker.csi/mode': 'plain' } } });
    expect(await ctl.call('CreateVolume', request)).toEqual(res);

    await errorOf(ctl.call('DeleteVolume', { volume_id: `node-a/${clone.name}` }));
    kubelet.finish(DRIVER_NS, `pgr-cleanup-${clone.name}`);
    expect(await ctl.call('DeleteVolume', { volume_id: `node-a/${clone.name}` })).toEqual({});
    expect(cloneRecord(api, clone.name)).toBeUndefined();
  });
});

describe('what pods and Clusters in the source namespace say', () => {
  test("a pod that only carries the Job's controller-uid label does not speak for the populator", async () => {
    const { clone, request } = await setup();
    await errorOf(ctl.call('CreateVolume', request));
    const name = recordedJobName(api, clone.name)!;
    const uid = api.get('jobs.batch', 'db', name)!.metadata.uid!;
    kubelet.finish('db', name, { message: successLine(clone.name) });
    const forged = api.create('pods', {
      metadata: { namespace: 'db', name: 'aaa-forged', labels: { 'batch.kubernetes.io/controller-uid': uid } },
      spec: { containers: [{ name: 'populate', image: 'evil' }] },
    });
    const lie = successLine(clone.name).replace('0/5000138', '9/FFFFFF00');
    api.patch('pods', 'db', forged.metadata.name, {
      status: { phase: 'Succeeded', containerStatuses: [{ name: 'populate', state: { terminated: { exitCode: 0, message: lie } } }] },
    });
    const res = (await ctl.call('CreateVolume', request)) as { volume: { volume_context: Record<string, string> } };
    expect(res.volume.volume_context['pg-reflinker.csi/stopLsn']).toBe('0/5000138');
  });

  test('a writer that only carries CloudNativePG labels, beside the real instance, is a foreign user: FAILED_PRECONDITION, no Job', async () => {
    const { source, request } = await setup();
    runningPod('db', 'impostor', { 'cnpg.io/cluster': 'pg', 'cnpg.io/instanceName': 'pg-1', 'cnpg.io/podRole': 'instance' }, source.pvc);
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/in use by pod\(s\) impostor, which are not CloudNativePG instances/);
    expect(populateJobs('db')).toHaveLength(0);
  });

  test("an instance pod controlled by another Cluster's uid is not the Cluster's instance", async () => {
    const { source, request } = await setup();
    api.patch('pods', 'db', source.pvc, { metadata: { ownerReferences: [{ apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', name: 'pg', uid: 'a-deleted-cluster', controller: true }] } });
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/pod pg-1 is not controlled by Cluster db\/pg/);
    expect(populateJobs('db')).toHaveLength(0);
  });

  test("the WAL volume is the source PVC's own (<pvc>-wal), not whatever the instance pod's label names", async () => {
    const { request, source } = await setup();
    api.patch('clusters.postgresql.cnpg.io', 'db', 'pg', { spec: { walStorage: { size: '1Gi' } } });
    api.patch('pods', 'db', source.pvc, { metadata: { labels: { 'cnpg.io/instanceName': 'other-db' } } });
    await errorOf(ctl.call('CreateVolume', request));
    const [job] = populateJobs('db');
    const volumes = (job!.spec as { template: { spec: { volumes: Array<{ name: string; persistentVolumeClaim?: { claimName: string } }> } } }).template.spec.volumes;
    expect(volumes.find((v) => v.name === 'wal')?.persistentVolumeClaim?.claimName).toBe('pg-1-wal');
  });

  test('a Cluster naming a TLS secret that is no object name: FAILED_PRECONDITION naming the field, no Job', async () => {
    const { request } = await setup();
    api.patch('clusters.postgresql.cnpg.io', 'db', 'pg', { status: { certificates: { serverCASecret: 'Not A Name', replicationTLSSecret: 'pg-replication' } } });
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain('Cluster db/pg: status.certificates.serverCASecret');
    expect(populateJobs('db')).toHaveLength(0);
  });
});
