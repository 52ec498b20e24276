import { errorOf } from '../support/csi-client.js';
import { describe, expect, test } from '@jest/globals';
import { status } from '@grpc/grpc-js';
import { ApiError, FaultyKubeApiServer } from '../support/kube-apiserver.js';
import {
  addClonePvc,
  addCnpgCluster,
  addRunningPod,
  addVolume,
  cloneRecord,
  cloneRequest,
  describeOnRealApiServer,
  recordedJobName,
  startController,
  successLine,
  until,
  type KubeObject,
  type TestEnv,
} from './fixtures.js';

// What a namespace user can create cannot steer the driver: Jobs and pods that carry the
// driver's labels, names or annotations but that the driver did not create are not its own.

const DRIVER_LABELS = (dir: string, role = 'populate') => ({ 'app.kubernetes.io/managed-by': 'pg-reflinker.csi', 'pg-reflinker.csi/role': role, 'pg-reflinker.csi/volume': dir });

/** A Job anyone with Job rights in `namespace` could make, dressed as the driver's (the real Job controller makes its pod). */
function forgedJob({ api }: TestEnv, namespace: string, name: string, dir: string, annotations: Record<string, string>): Promise<KubeObject> {
  return api.create('jobs.batch', {
    metadata: { namespace, name, labels: DRIVER_LABELS(dir), annotations },
    spec: { template: { metadata: { labels: DRIVER_LABELS(dir) }, spec: { nodeName: 'node-a', restartPolicy: 'Never', containers: [{ name: 'populate', image: 'evil' }] } } },
  });
}

const populateJobs = async ({ api }: TestEnv, namespace: string) => (await api.list('jobs.batch', namespace)).filter((j) => j.metadata.labels?.['pg-reflinker.csi/role'] === 'populate');

describeOnRealApiServer('trust: what users can create in their namespaces', (suite) => {
  async function setup(opts: { cluster?: boolean } = {}) {
    const t = await suite.env();
    const { w } = t;
    const source = await addVolume(t, { namespace: w.db, pvc: 'pg-1', node: 'node-a', labels: { 'cnpg.io/cluster': 'pg', 'cnpg.io/pvcRole': 'PG_DATA' } });
    if (opts.cluster !== false) await addCnpgCluster(t, source);
    const clone = await addClonePvc(t, w.db, 'pg-clone-1', 'pg-1');
    const ctl = await startController(suite, t);
    const request = cloneRequest(clone.name, source.volumeId, { clonePvc: { namespace: w.db, name: 'pg-clone-1' } });
    return { t, w, api: t.api, kubelet: t.kubelet, ctl, source, clone, request };
  }

  describe("who uses the source: only the driver's own Job pods are ignored", () => {
    test('a live writer labelled managed-by pg-reflinker.csi is a foreign user: FAILED_PRECONDITION, no Job', async () => {
      const { t, w, ctl, source, request } = await setup({ cluster: false });
      await addRunningPod(t, { namespace: w.db, name: 'writer', labels: DRIVER_LABELS('pvc-whatever'), claimName: source.pvc });
      const err = await errorOf(ctl.call('CreateVolume', request));
      expect(err.code).toBe(status.FAILED_PRECONDITION);
      expect(err.details).toMatch(/in use by pod\(s\) writer, which are not CloudNativePG instances/);
      expect(await populateJobs(t, w.db)).toHaveLength(0);
    });

    test('a writer owned by a Job the driver did not create (labels and all) is a foreign user too', async () => {
      const { t, w, ctl, source, request } = await setup({ cluster: false });
      const job = await forgedJob(t, w.db, 'pgr-populate-pvc-forged', 'pvc-forged', {});
      await addRunningPod(t, { namespace: w.db, name: 'writer', labels: DRIVER_LABELS('pvc-forged'), claimName: source.pvc, owner: job });
      const err = await errorOf(ctl.call('CreateVolume', request));
      expect(err.code).toBe(status.FAILED_PRECONDITION);
      expect(err.details).toMatch(/in use by pod\(s\) writer/);
    });

    test("the pod of the driver's own populator for another clone of the same source is not a user", async () => {
      const { t, w, kubelet, ctl, source, request } = await setup({ cluster: false });
      expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.ABORTED);
      const [first] = await populateJobs(t, w.db);
      await kubelet.start(w.db, first!.metadata.name);
      const second = await addClonePvc(t, w.db, 'pg-clone-2', 'pg-1');
      const err = await errorOf(ctl.call('CreateVolume', cloneRequest(second.name, source.volumeId, { clonePvc: { namespace: w.db, name: 'pg-clone-2' } })));
      expect(err.code).toBe(status.ABORTED);
      expect(await populateJobs(t, w.db)).toHaveLength(2);
    });
  });

  describe('Jobs and pods the driver did not create are never trusted, adopted or deleted', () => {
    test('a forged populator Job in another namespace does not make CreateVolume answer ALREADY_EXISTS', async () => {
      const { t, w, api, ctl, clone, request } = await setup();
      await forgedJob(t, w.other, `pgr-populate-${clone.name}`, clone.name, {
        'pg-reflinker.csi/volume-name': clone.name,
        'pg-reflinker.csi/volume-id': `node-b/${clone.name}`,
        'pg-reflinker.csi/capacity-bytes': '1',
      });
      const err = await errorOf(ctl.call('CreateVolume', request));
      expect(err.code).toBe(status.ABORTED);
      expect(err.details).toMatch(/being populated/);
      expect(await api.list('jobs.batch', w.other)).toHaveLength(1);
    });

    test('a Job pre-made under the name the driver would derive is neither adopted nor deleted', async () => {
      const { t, w, api, kubelet, ctl, clone, request } = await setup();
      const forged = await forgedJob(t, w.db, `pgr-populate-${clone.name}`, clone.name, { 'pg-reflinker.csi/volume-id': `node-a/${clone.name}`, 'pg-reflinker.csi/volume-name': clone.name });
      const err = await errorOf(ctl.call('CreateVolume', request));
      expect(err.code).toBe(status.ABORTED);
      const ours = (await populateJobs(t, w.db)).filter((j) => j.metadata.uid !== forged.metadata.uid);
      expect(ours).toHaveLength(1);
      // Its "success" is not the clone's.
      await kubelet.finish(w.db, forged.metadata.name, { message: '{"mode":"online"}' });
      expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.ABORTED);
      expect((await api.get('jobs.batch', w.db, forged.metadata.name))?.metadata.uid).toBe(forged.metadata.uid);
    });

    test('a forged populator pod in another namespace does not block DeleteVolume, and is left alone', async () => {
      const { t, w, api, ctl } = await setup();
      const dir = 'pvc-11111111-2222-3333-4444-555555555555';
      await addRunningPod(t, { namespace: w.other, name: 'blocker', labels: DRIVER_LABELS(dir) });
      const err = await errorOf(ctl.call('DeleteVolume', { volume_id: `node-b/${dir}` }));
      expect(err.code).toBe(status.ABORTED);
      expect(err.details).toContain(`cleanup Job ${w.driver}/pgr-cleanup-`);
      expect(await api.get('jobs.batch', w.driver, `pgr-cleanup-${dir}`)).toBeDefined();
      expect(await api.get('pods', w.other, 'blocker')).toBeDefined();
    });

    test('a forged populator Job in another namespace is not deleted by DeleteVolume', async () => {
      const { t, w, api, ctl } = await setup();
      const dir = 'pvc-11111111-2222-3333-4444-555555555555';
      await forgedJob(t, w.other, `pgr-populate-${dir}`, dir, { 'pg-reflinker.csi/volume-id': `node-b/${dir}` });
      await errorOf(ctl.call('DeleteVolume', { volume_id: `node-b/${dir}` }));
      expect(await api.get('jobs.batch', w.other, `pgr-populate-${dir}`)).toBeDefined();
    });

    test('a labelled Job does not make a volume exist for ValidateVolumeCapabilities', async () => {
      const { t, w, ctl } = await setup();
      const dir = 'pvc-11111111-2222-3333-4444-555555555555';
      await forgedJob(t, w.other, `pgr-populate-${dir}`, dir, { 'pg-reflinker.csi/volume-id': `node-b/${dir}` });
      const caps = [{ mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }];
      const err = await errorOf(ctl.call('ValidateVolumeCapabilities', { volume_id: `node-b/${dir}`, volume_capabilities: caps }));
      expect(err.code).toBe(status.NOT_FOUND);
    });
  });

  describe("the clone's record: which Job is the driver's", () => {
    test('a Job under the recorded name that the driver did not create: FAILED_PRECONDITION, neither adopted nor deleted', async () => {
      const { t, w, api, ctl, clone, request } = await setup();
      await errorOf(ctl.call('CreateVolume', request));
      const name = (await recordedJobName(t, clone.name))!;
      expect(name).toMatch(new RegExp(`^pgr-populate-${clone.name}-[a-z0-9]{8}$`));
      expect(await cloneRecord(t, clone.name)).toMatchObject({ 'job-namespace': w.db, 'job-name': name, 'job-uid': (await api.get('jobs.batch', w.db, name))!.metadata.uid });
      await api.delete('jobs.batch', w.db, name, 'Background');
      await until(async () => !(await api.get('jobs.batch', w.db, name)), 15_000, 'the Job to be gone');
      const forged = await forgedJob(t, w.db, name, clone.name, { 'pg-reflinker.csi/volume-id': `node-a/${clone.name}` });
      const err = await errorOf(ctl.call('CreateVolume', request));
      expect(err.code).toBe(status.FAILED_PRECONDITION);
      expect(err.details).toMatch(new RegExp(`Job ${w.db}/${name} was not created by pg-reflinker .*neither used nor deleted`));
      expect((await api.get('jobs.batch', w.db, name))?.metadata.uid).toBe(forged.metadata.uid);
      expect(await populateJobs(t, w.db)).toHaveLength(1);
      // DeleteVolume does not delete it either.
      await errorOf(ctl.call('DeleteVolume', { volume_id: `node-a/${clone.name}` }));
      expect((await api.get('jobs.batch', w.db, name))?.metadata.uid).toBe(forged.metadata.uid);
    });

    test('a populator Job deleted by someone while its pod still runs: no second Job writes into the volume until that pod has stopped', async () => {
      const { t, w, api, kubelet, ctl, clone, request } = await setup();
      expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.ABORTED);
      const first = (await recordedJobName(t, clone.name))!;
      const pod = await kubelet.start(w.db, first);
      // Deleted with its pods orphaned: the old populator goes on writing. (The real garbage
      // collector then removes the pod's owner reference to the Job.)
      await api.delete('jobs.batch', w.db, first, 'Orphan');
      await until(async () => !(await api.get('jobs.batch', w.db, first)), 15_000, 'the Job to be gone');
      const waiting = await errorOf(ctl.call('CreateVolume', request));
      expect(waiting.code).toBe(status.ABORTED);
      expect(waiting.details).toMatch(new RegExp(`waiting for its pod ${pod.metadata.name} to stop`));
      expect(await populateJobs(t, w.db)).toHaveLength(0);
      await api.patchStatus('pods', w.db, pod.metadata.name, { phase: 'Failed' });
      expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.ABORTED);
      const second = (await recordedJobName(t, clone.name))!;
      expect(second).not.toBe(first);
      expect((await populateJobs(t, w.db)).map((j) => j.metadata.name)).toEqual([second]);
    });

    test('the same with a StorageClass that allows crash-consistent copies: the orphaned populator is no "foreign user" to copy beside', async () => {
      const { t, w, api, kubelet, ctl, clone, request } = await setup();
      const allowed = { ...request, parameters: { ...(request.parameters as object), allowCrashConsistent: 'true' } };
      expect((await errorOf(ctl.call('CreateVolume', allowed))).code).toBe(status.ABORTED);
      const first = (await recordedJobName(t, clone.name))!;
      const pod = await kubelet.start(w.db, first);
      await api.delete('jobs.batch', w.db, first, 'Orphan');
      await until(async () => !(await api.get('jobs.batch', w.db, first)), 15_000, 'the Job to be gone');
      const waiting = await errorOf(ctl.call('CreateVolume', allowed));
      expect(waiting.code).toBe(status.ABORTED);
      expect(waiting.details).toMatch(new RegExp(`waiting for its pod ${pod.metadata.name} to stop`));
      expect(await populateJobs(t, w.db)).toHaveLength(0);
    });

    test('the same when the record never got the Job uid (a 503 on that update): CreateVolume, with or without crash-consistent copies, and DeleteVolume wait for the orphaned pod', async () => {
      // An answer 503 to exactly one record update: only the fault proxy can give it.
      const { t, w, api, kubelet, clone, request } = await setup();
      for (const c of suite.controllers.splice(0)) await c.stop();
      const proxy = await new FaultyKubeApiServer(w.controllerConfig).start();
      try {
        const ctl = await startController(suite, t, { kubeConfig: proxy.kubeConfig() });
        let failed = false;
        proxy.intercept = (r) => {
          if (failed || r.method !== 'PUT' || !r.path.startsWith(`/api/v1/namespaces/${w.driver}/configmaps/`)) return undefined;
          failed = true;
          return new ApiError(503, 'ServiceUnavailable', 'apiserver restarting');
        };
        expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.UNAVAILABLE);
        const first = (await recordedJobName(t, clone.name))!;
        expect((await cloneRecord(t, clone.name))!['job-uid']).toBeUndefined();
        const pod = await kubelet.start(w.db, first);
        await api.delete('jobs.batch', w.db, first, 'Orphan');
        await until(async () => !(await api.get('jobs.batch', w.db, first)), 15_000, 'the Job to be gone');
        const allowed = { ...request, parameters: { ...(request.parameters as object), allowCrashConsistent: 'true' } };
        for (const req of [request, allowed]) {
          const waiting = await errorOf(ctl.call('CreateVolume', req));
          expect(waiting.code).toBe(status.ABORTED);
          expect(waiting.details).toMatch(new RegExp(`waiting for its pod ${pod.metadata.name} to stop`));
          expect(await populateJobs(t, w.db)).toHaveLength(0);
        }
        const deleting = await errorOf(ctl.call('DeleteVolume', { volume_id: `node-a/${clone.name}` }));
        expect(deleting.code).toBe(status.ABORTED);
        expect(deleting.details).toContain(`waiting for populator pod ${w.db}/${pod.metadata.name} to stop`);
        expect(await api.get('jobs.batch', w.driver, `pgr-cleanup-${clone.name}`)).toBeUndefined();
      } finally {
        for (const c of suite.controllers.splice(0)) await c.stop();
        await proxy.stop();
      }
    });

    test("another clone's orphaned populator on the same source is no foreign user: the second clone waits for it", async () => {
      const { t, w, api, kubelet, ctl, source, clone, request } = await setup();
      expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.ABORTED);
      const first = (await recordedJobName(t, clone.name))!;
      const pod = await kubelet.start(w.db, first);
      await api.delete('jobs.batch', w.db, first, 'Orphan');
      await until(async () => !(await api.get('jobs.batch', w.db, first)), 15_000, 'the Job to be gone');
      const other = await addClonePvc(t, w.db, 'pg-clone-2', 'pg-1');
      const second = cloneRequest(other.name, source.volumeId, { clonePvc: { namespace: w.db, name: 'pg-clone-2' } });
      const allowed = { ...second, parameters: { ...(second.parameters as object), allowCrashConsistent: 'true' } };
      for (const req of [second, allowed]) {
        const waiting = await errorOf(ctl.call('CreateVolume', req));
        expect(waiting.code).toBe(status.ABORTED);
        expect(waiting.details).toContain(pod.metadata.name);
        expect(await populateJobs(t, w.db)).toHaveLength(0);
      }
    });

    test('a controller that stops between the record and the Job makes the recorded Job on the next call, once', async () => {
      // An answer 500 to exactly one create: only the fault proxy can give it.
      const { t, w, api, clone, request } = await setup();
      for (const c of suite.controllers.splice(0)) await c.stop();
      const proxy = await new FaultyKubeApiServer(w.controllerConfig).start();
      try {
        const ctl = await startController(suite, t, { kubeConfig: proxy.kubeConfig() });
        let failed = false;
        proxy.intercept = (r) => {
          if (failed || r.method !== 'POST' || r.path !== `/apis/batch/v1/namespaces/${w.db}/jobs`) return undefined;
          failed = true;
          return new ApiError(500, 'InternalError', 'etcd hiccup');
        };
        expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.UNAVAILABLE);
        const name = (await recordedJobName(t, clone.name))!;
        expect(await populateJobs(t, w.db)).toHaveLength(0);
        expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.ABORTED);
        expect((await populateJobs(t, w.db)).map((j) => j.metadata.name)).toEqual([name]);
        expect((await cloneRecord(t, clone.name))!['job-uid']).toBe((await api.get('jobs.batch', w.db, name))!.metadata.uid);
      } finally {
        for (const c of suite.controllers.splice(0)) await c.stop();
        await proxy.stop();
      }
    });

    test('a controller that stops between the Job and recording its uid adopts that Job on the next call', async () => {
      // An answer 503 to exactly one update: only the fault proxy can give it.
      const { t, w, api, clone, request } = await setup();
      for (const c of suite.controllers.splice(0)) await c.stop();
      const proxy = await new FaultyKubeApiServer(w.controllerConfig).start();
      try {
        const ctl = await startController(suite, t, { kubeConfig: proxy.kubeConfig() });
        let failed = false;
        proxy.intercept = (r) => {
          if (failed || r.method !== 'PUT' || !r.path.startsWith(`/api/v1/namespaces/${w.driver}/configmaps/`)) return undefined;
          failed = true;
          return new ApiError(503, 'ServiceUnavailable', 'apiserver restarting');
        };
        expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.UNAVAILABLE);
        const name = (await recordedJobName(t, clone.name))!;
        expect((await cloneRecord(t, clone.name))!['job-uid']).toBeUndefined();
        const uid = (await api.get('jobs.batch', w.db, name))!.metadata.uid;
        expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.ABORTED);
        expect((await cloneRecord(t, clone.name))!['job-uid']).toBe(uid);
        expect(await populateJobs(t, w.db)).toHaveLength(1);
      } finally {
        for (const c of suite.controllers.splice(0)) await c.stop();
        await proxy.stop();
      }
    });

    test('DeleteVolume removes the record once the data is gone; the result of a clone is read from the record, not the Job', async () => {
      const { t, w, api, kubelet, ctl, clone, request } = await setup();
      await errorOf(ctl.call('CreateVolume', request));
      const name = (await recordedJobName(t, clone.name))!;
      await kubelet.finish(w.db, name, { message: successLine(clone.name) });
      const res = (await ctl.call('CreateVolume', request)) as { volume: { volume_context: Record<string, string> } };
      expect(res.volume.volume_context['pg-reflinker.csi/stopLsn']).toBe('0/5000138');
      // A namespace user edits the Job: the answer does not change.
      await api.patch('jobs.batch', w.db, name, { metadata: { annotations: { 'pg-reflinker.csi/result': '{"mode":"online","stopLsn":"9/FFFFFFFF"}', 'pg-reflinker.csi/mode': 'plain' } } });
      expect(await ctl.call('CreateVolume', request)).toEqual(res);

      await errorOf(ctl.call('DeleteVolume', { volume_id: `node-a/${clone.name}` }));
      await kubelet.finish(w.driver, `pgr-cleanup-${clone.name}`);
      expect(await ctl.call('DeleteVolume', { volume_id: `node-a/${clone.name}` })).toEqual({});
      expect(await cloneRecord(t, clone.name)).toBeUndefined();
    });
  });

  describe('what pods and Clusters in the source namespace say', () => {
    test("a pod that only carries the Job's controller-uid label does not speak for the populator", async () => {
      const { t, w, api, kubelet, ctl, clone, request } = await setup();
      await errorOf(ctl.call('CreateVolume', request));
      const name = (await recordedJobName(t, clone.name))!;
      const uid = (await api.get('jobs.batch', w.db, name))!.metadata.uid!;
      await kubelet.finish(w.db, name, { message: successLine(clone.name) });
      const forged = await api.create('pods', {
        metadata: { namespace: w.db, name: 'aaa-forged', labels: { 'batch.kubernetes.io/controller-uid': uid } },
        spec: { nodeName: 'node-a', containers: [{ name: 'populate', image: 'evil' }] },
      });
      const lie = successLine(clone.name).replace('0/5000138', '9/FFFFFF00');
      await api.patchStatus('pods', w.db, forged.metadata.name, {
        phase: 'Succeeded',
        containerStatuses: [{ name: 'populate', image: 'evil', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode: 0, message: lie } } }],
      });
      const res = (await ctl.call('CreateVolume', request)) as { volume: { volume_context: Record<string, string> } };
      expect(res.volume.volume_context['pg-reflinker.csi/stopLsn']).toBe('0/5000138');
    });

    test('a writer that only carries CloudNativePG labels, beside the real instance, is a foreign user: FAILED_PRECONDITION, no Job', async () => {
      const { t, w, ctl, source, request } = await setup();
      await addRunningPod(t, { namespace: w.db, name: 'impostor', labels: { 'cnpg.io/cluster': 'pg', 'cnpg.io/instanceName': 'pg-1', 'cnpg.io/podRole': 'instance' }, claimName: source.pvc });
      const err = await errorOf(ctl.call('CreateVolume', request));
      expect(err.code).toBe(status.FAILED_PRECONDITION);
      expect(err.details).toMatch(/in use by pod\(s\) impostor, which are not CloudNativePG instances/);
      expect(await populateJobs(t, w.db)).toHaveLength(0);
    });

    test("an instance pod controlled by another Cluster is not the Cluster's instance: a foreign user, FAILED_PRECONDITION, no Job", async () => {
      // On a real server the pod's controller reference must name an existing owner by name and
      // uid, or the garbage collector deletes the pod (a stale uid under the right name is only a
      // transient state there): here it names another Cluster that exists.
      const { t, w, api, ctl, source, request } = await setup();
      const other = await api.create('clusters.postgresql.cnpg.io', { metadata: { namespace: w.db, name: 'pg-old' }, spec: { instances: 1 } });
      await api.patch('pods', w.db, source.pvc, { metadata: { ownerReferences: [{ apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', name: 'pg-old', uid: other.metadata.uid, controller: true }] } });
      const err = await errorOf(ctl.call('CreateVolume', request));
      expect(err.code).toBe(status.FAILED_PRECONDITION);
      expect(err.details).toContain(`source PVC ${w.db}/pg-1 is in use by pod(s) pg-1, which are not CloudNativePG instances`);
      expect(await populateJobs(t, w.db)).toHaveLength(0);
    });

    test("the WAL volume is the source PVC's own (<pvc>-wal), not whatever the instance pod's label names", async () => {
      const { t, w, api, ctl, source, request } = await setup();
      await api.patch('clusters.postgresql.cnpg.io', w.db, 'pg', { spec: { walStorage: { size: '1Gi' } } });
      await api.patch('pods', w.db, source.pvc, { metadata: { labels: { 'cnpg.io/instanceName': 'other-db' } } });
      await errorOf(ctl.call('CreateVolume', request));
      const [job] = await populateJobs(t, w.db);
      const volumes = (job!.spec as { template: { spec: { volumes: Array<{ name: string; persistentVolumeClaim?: { claimName: string } }> } } }).template.spec.volumes;
      expect(volumes.find((v) => v.name === 'wal')?.persistentVolumeClaim?.claimName).toBe('pg-1-wal');
    });

    test('a Cluster naming a TLS secret that is no object name: FAILED_PRECONDITION naming the field, no Job', async () => {
      const { t, w, api, ctl, request } = await setup();
      await api.patchStatus('clusters.postgresql.cnpg.io', w.db, 'pg', { certificates: { serverCASecret: 'Not A Name', replicationTLSSecret: 'pg-replication' } });
      const err = await errorOf(ctl.call('CreateVolume', request));
      expect(err.code).toBe(status.FAILED_PRECONDITION);
      expect(err.details).toContain(`Cluster ${w.db}/pg: status.certificates.serverCASecret`);
      expect(await populateJobs(t, w.db)).toHaveLength(0);
    });
  });
});
