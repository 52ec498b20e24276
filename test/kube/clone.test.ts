import { errorOf } from '../support/csi-client.js';
import { expect, test } from '@jest/globals';
import { status } from '@grpc/grpc-js';
import { ApiError, FaultyKubeApiServer } from '../support/kube-apiserver.js';
import {
  DRIVER_IMAGE,
  PG_IMAGE,
  TOPOLOGY_KEY,
  addClonePvc,
  addCnpgCluster,
  addRunningPod,
  addVolume,
  cloneRecord,
  cloneRequest,
  controllerRequests,
  describeOnRealApiServer,
  eventsOn,
  jobCreates,
  jobsInWorld,
  populateJobsIn,
  recordedJobName,
  startController,
  successLine,
  until,
  type ControllerOptions,
  type SourceVolumeFixture,
  type TestEnv,
} from './fixtures.js';

// CreateVolume with a clone source, over the real gRPC socket, against the real API server.

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

/** The sidecar's part after an OK: the PV named after the volume, carrying our answer. */
async function createPv(t: TestEnv, name: string, res: CreateResponse, clonePvc: { namespace: string; name: string; uid: string }): Promise<void> {
  await t.api.create('persistentvolumes', {
    metadata: { name },
    spec: {
      capacity: { storage: String(res.volume.capacity_bytes) },
      accessModes: ['ReadWriteOnce'],
      claimRef: { namespace: clonePvc.namespace, name: clonePvc.name, uid: clonePvc.uid },
      persistentVolumeReclaimPolicy: 'Retain',
      csi: { driver: 'pg-reflinker.csi', volumeHandle: res.volume.volume_id, volumeAttributes: { ...res.volume.volume_context, 'storage.kubernetes.io/csiProvisionerIdentity': 'x' } },
    },
  });
}

describeOnRealApiServer('CreateVolume clones with the Kubernetes backend', (suite) => {
  async function setup(opts: { cluster?: boolean; tuning?: ControllerOptions } = {}) {
    const t = await suite.env();
    const { w } = t;
    const source: SourceVolumeFixture = await addVolume(t, { namespace: w.db, pvc: 'pg-1', node: 'node-a', capacity: '10Gi', labels: { 'cnpg.io/cluster': 'pg', 'cnpg.io/pvcRole': 'PG_DATA' } });
    if (opts.cluster !== false) await addCnpgCluster(t, source);
    const clone = await addClonePvc(t, w.db, 'pg-clone-1', 'pg-1');
    const ctl = await startController(suite, t, opts.tuning);
    const request = cloneRequest(clone.name, source.volumeId, { clonePvc: { namespace: w.db, name: 'pg-clone-1' } });
    return { t, w, api: t.api, kubelet: t.kubelet, source, clone, ctl, request, jobName: async () => (await recordedJobName(t, clone.name))! };
  }

  test('success: one Job on the source node, ABORTED while it runs, then the volume with LSNs, Events on the PVC', async () => {
    const { t, w, api, kubelet, source, clone, ctl, request, jobName } = await setup();

    const first = await errorOf(ctl.call('CreateVolume', request));
    expect(first.code).toBe(status.ABORTED);
    // The real Job controller may have made the pod already (Pending: no kubelet has run it).
    expect(first.details).toMatch(new RegExp(`being populated: populator Job ${w.db}/pgr-populate-pvc-.* on node node-a: (no pod yet|Pending)`));
    const job = (await populateJobsIn(t, w.db))[0]!;
    expect(job).toBeDefined();
    expect((job.spec as { template: { spec: { nodeName: string } } }).template.spec.nodeName).toBe('node-a');
    expect((job.spec as { template: { spec: { containers: Array<{ image: string }> } } }).template.spec.containers[0]!.image).toBe(PG_IMAGE);

    await kubelet.start(w.db, await jobName());
    const running = await errorOf(ctl.call('CreateVolume', request));
    expect(running.code).toBe(status.ABORTED);
    expect(running.details).toMatch(/Running, \d+ s/);

    await kubelet.finish(w.db, await jobName(), { message: successLine(clone.name) });
    const res = await ctl.call<CreateResponse>('CreateVolume', request);
    expect(res.volume).toMatchObject({
      volume_id: `node-a/${clone.name}`,
      capacity_bytes: 10 * 2 ** 30,
      content_source: { volume: { volume_id: source.volumeId } },
      accessible_topology: [{ segments: { [TOPOLOGY_KEY]: 'node-a' } }],
    });
    expect(res.volume.volume_context).toMatchObject({
      'pg-reflinker.csi/kind': 'clone',
      'pg-reflinker.csi/source': `${w.db}/pg-1`,
      'pg-reflinker.csi/sourceVolumeId': source.volumeId,
      'pg-reflinker.csi/node': 'node-a',
      'pg-reflinker.csi/mode': 'online',
      'pg-reflinker.csi/seconds': '2.345',
      'pg-reflinker.csi/startLsn': '0/5000028',
      'pg-reflinker.csi/stopLsn': '0/5000138',
      'pg-reflinker.csi/timeline': '1',
      'pg-reflinker.csi/backupFrom': 'standby',
    });
    expect(await jobCreates(t, w.db)).toBe(1);

    const events = await eventsOn(t, w.db, 'pg-clone-1');
    expect(events.map((e) => e.reason)).toEqual(['Populating', 'Populated']);
    expect(events.every((e) => e.uid === clone.uid)).toBe(true);
    expect(events[0]!.message).toMatch(/online backup of replica instance pg-1 of cluster pg/);
    expect(events[1]!.message).toMatch(/in 2\.3 s, backup from standby, LSN 0\/5000028 to 0\/5000138 on timeline 1/);

    // Retries answer the same, from the Job (its result was recorded on it), then from the PV.
    expect(await ctl.call<CreateResponse>('CreateVolume', request)).toEqual(res);
    expect((await cloneRecord(t, clone.name))!.result).toContain('0/5000138');
    for (const pod of await kubelet.pods(w.db, await jobName())) await api.delete('pods', w.db, pod.metadata.name);
    expect(await ctl.call<CreateResponse>('CreateVolume', request)).toEqual(res);
    await createPv(t, clone.name, res, { namespace: w.db, name: 'pg-clone-1', uid: clone.uid });
    await api.delete('jobs.batch', w.db, await jobName(), 'Background'); // ttlSecondsAfterFinished
    expect(await ctl.call<CreateResponse>('CreateVolume', request)).toEqual(res);
    expect(await jobCreates(t, w.db)).toBe(1);
    expect(await eventsOn(t, w.db, 'pg-clone-1')).toHaveLength(2);
  });

  test('a finishing Job is noticed on the watch, not after a sleep', async () => {
    const { t, w, kubelet, clone, ctl, request, jobName } = await setup({ tuning: { cloneWaitMs: 8000 } });
    const started = Date.now();
    const call = ctl.call<CreateResponse>('CreateVolume', request);
    await until(async () => (await populateJobsIn(t, w.db))[0], 5000, 'the Job');
    const name = await jobName();
    const watchesJob = (r: { verb: string; objectRef?: { resource?: string }; requestURI: string }) =>
      r.verb === 'watch' && r.objectRef?.resource === 'jobs' && decodeURIComponent(r.requestURI).includes(`fieldSelector=metadata.name=${name}`);
    await until(async () => (await controllerRequests(t)).some(watchesJob), 5000, 'a watch on the Job');
    await kubelet.finish(w.db, name, { message: successLine(clone.name) });
    const res = await call;
    expect(res.volume.volume_id).toBe(`node-a/${clone.name}`);
    // Well before the 8 s the call would otherwise wait (the real control plane takes its time under load).
    expect(Date.now() - started).toBeLessThan(5000);
  });

  test('Job failure: the GRANT message surfaces, the destination is cleaned on the node, the Job goes, a retry starts a new Job', async () => {
    const { t, w, api, kubelet, clone, ctl, request, jobName } = await setup();
    await errorOf(ctl.call('CreateVolume', request));
    const firstUid = (await populateJobsIn(t, w.db))[0]!.metadata.uid;
    await kubelet.finish(w.db, await jobName(), { exitCode: 1, message: GRANT_FAILURE });

    const failed = await errorOf(ctl.call('CreateVolume', request));
    expect(failed.code).toBe(status.FAILED_PRECONDITION);
    expect(failed.details).toContain('GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean), pg_backup_stop(boolean) TO streaming_replica;');
    expect(failed.details).toMatch(new RegExp(`^populating pvc-.* from ${w.db}/pg-1 failed: permission denied`));
    expect((await populateJobsIn(t, w.db))[0]).toBeUndefined();
    // The garbage collector removes the deleted Job's pod (the driver asked for Background propagation).
    await until(async () => (await api.list('pods', w.db, `batch.kubernetes.io/controller-uid=${firstUid}`)).length === 0, 15_000, "the failed Job's pod to go");
    const warning = (await eventsOn(t, w.db, 'pg-clone-1')).find((e) => e.reason === 'PopulateFailed')!;
    expect(warning.type).toBe('Warning');
    expect(warning.message).toContain('GRANT EXECUTE ON FUNCTION');

    const cleanup = (await api.get('jobs.batch', w.driver, `pgr-cleanup-${clone.name}`))!;
    const pod = (cleanup.spec as { template: { spec: { nodeName: string; containers: Array<{ image: string; args: string[] }> } } }).template.spec;
    expect(pod.nodeName).toBe('node-a');
    expect(pod.containers[0]!.image).toBe(DRIVER_IMAGE);
    expect(pod.containers[0]!.args).toEqual(['cleanup', '--root', '/var/lib/pg-reflinker', '--volume-id', `node-a/${clone.name}`]);

    // While the cleanup runs, no new population may write into the directory.
    const waiting = await errorOf(ctl.call('CreateVolume', request));
    expect(waiting.code).toBe(status.ABORTED);
    expect(waiting.details).toMatch(/cleaning up after a failed attempt \(permission denied/);
    expect((await populateJobsIn(t, w.db))[0]).toBeUndefined();

    await kubelet.finish(w.driver, `pgr-cleanup-${clone.name}`, { message: `{"volumeId":"node-a/${clone.name}","outcome":"deleted"}` });
    const retry = await errorOf(ctl.call('CreateVolume', request));
    expect(retry.code).toBe(status.ABORTED);
    const second = (await populateJobsIn(t, w.db))[0]!;
    expect(second.metadata.uid).not.toBe(firstUid);
    expect(await api.get('jobs.batch', w.driver, `pgr-cleanup-${clone.name}`)).toBeUndefined();

    await kubelet.finish(w.db, await jobName(), { message: successLine(clone.name) });
    expect((await ctl.call<CreateResponse>('CreateVolume', request)).volume.volume_id).toBe(`node-a/${clone.name}`);
  });

  test('a populator that found another population still holding the volume: no cleanup Job removes what that one is writing', async () => {
    const { t, w, api, kubelet, clone, ctl, request, jobName } = await setup();
    await errorOf(ctl.call('CreateVolume', request));
    const busy = 'pg-reflinker populate: another population of /pgr/volume is still running; refusing to start a second';
    await kubelet.finish(w.db, await jobName(), { exitCode: 1, message: busy });
    const failed = await errorOf(ctl.call('CreateVolume', request));
    expect(failed.details).toContain('another population of /pgr/volume is still running');
    expect((await populateJobsIn(t, w.db))[0]).toBeUndefined();
    expect(await api.get('jobs.batch', w.driver, `pgr-cleanup-${clone.name}`)).toBeUndefined();
  });

  test("a deadline: INTERNAL with the Job controller's reason", async () => {
    const { w, api, kubelet, ctl, request, jobName } = await setup();
    await errorOf(ctl.call('CreateVolume', request));
    const name = await jobName();
    const running = await kubelet.start(w.db, name);
    // The real Job controller enforces the deadline: shorten it (the field is mutable) ...
    await api.patch('jobs.batch', w.db, name, { spec: { activeDeadlineSeconds: 1 } });
    // ... it deletes the running pod; as kubelet, stop the container (SIGTERM) and confirm the deletion.
    await until(async () => (await api.get('pods', w.db, running.metadata.name))?.metadata.deletionTimestamp, 15_000, 'the Job controller to delete the pod');
    const t0 = new Date().toISOString();
    await api.patchStatus('pods', w.db, running.metadata.name, {
      phase: 'Failed',
      containerStatuses: [{ name: 'populate', image: PG_IMAGE, imageID: `docker-pullable://${PG_IMAGE}`, restartCount: 0, ready: false, started: false, state: { terminated: { exitCode: 143, reason: 'Error', startedAt: t0, finishedAt: t0 } } }],
    });
    await api.core.deleteNamespacedPod({ namespace: w.db, name: running.metadata.name, body: { gracePeriodSeconds: 0 } }).catch(() => undefined);
    await until(async () => {
      const s = (await api.get<{ metadata: { name: string }; status?: { conditions?: Array<{ type: string; status: string }>; active?: number; terminating?: number } }>('jobs.batch', w.db, name))?.status;
      return !!s?.conditions?.some((c) => c.type === 'Failed' && c.status === 'True') && !s.active && !s.terminating;
    }, 15_000, 'the Job to fail');
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.INTERNAL);
    // The pod may be gone by the time the Job is Failed (the Job controller's finalizer released it): its part is optional.
    expect(err.details).toMatch(/failed: (container populate exited with status 143 \(Error\); )?DeadlineExceeded: Job was active longer than specified deadline$/);
  });

  test('a failed init container: its message is the reason', async () => {
    const { w, kubelet, ctl, request, jobName } = await setup();
    await errorOf(ctl.call('CreateVolume', request));
    await kubelet.finish(w.db, await jobName(), { initFailure: "chown: changing ownership of '/pg-reflinker/volume': Operation not permitted" });
    const err = await errorOf(ctl.call('CreateVolume', request));
    // The status is failureStatus()'s call (src/controller/populator/outcome.ts); the reason is ours.
    expect([status.INTERNAL, status.FAILED_PRECONDITION]).toContain(err.code);
    expect(err.details).toContain("init container prepare failed (exit 1, Error): chown: changing ownership of '/pg-reflinker/volume': Operation not permitted");
  });

  test('controller restart mid-clone: the new instance adopts the running Job', async () => {
    const { t, w, api, kubelet, clone, ctl, request, jobName } = await setup();
    await errorOf(ctl.call('CreateVolume', request));
    const uid = (await populateJobsIn(t, w.db))[0]!.metadata.uid;
    await kubelet.start(w.db, await jobName());
    suite.controllers.splice(suite.controllers.indexOf(ctl), 1);
    await ctl.stop();

    const restarted = await startController(suite, t);
    const running = await errorOf(restarted.call('CreateVolume', request));
    expect(running.code).toBe(status.ABORTED);
    await kubelet.finish(w.db, await jobName(), { message: successLine(clone.name) });
    const res = await restarted.call<CreateResponse>('CreateVolume', request);
    expect(res.volume.volume_context['pg-reflinker.csi/stopLsn']).toBe('0/5000138');
    expect(await api.list('jobs.batch', w.db)).toHaveLength(1);
    expect((await populateJobsIn(t, w.db))[0]!.metadata.uid).toBe(uid);
    expect(await jobCreates(t, w.db)).toBe(1);
  });

  test('20 rapid concurrent retries of the same name make exactly one Job', async () => {
    const { t, w, api, ctl, request, jobName } = await setup();
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => ctl.call('CreateVolume', request)));
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect(((r as PromiseRejectedResult).reason as { code: number }).code).toBe(status.ABORTED);
    }
    expect((await api.list('jobs.batch', w.db)).map((j) => j.metadata.name)).toEqual([await jobName()]);
    expect((await eventsOn(t, w.db, 'pg-clone-1')).filter((e) => e.reason === 'Populating')).toHaveLength(1);
  });

  test('no pod uses the source: a plain reflink copy in the driver image', async () => {
    const { t, w, kubelet, ctl, request, jobName, clone } = await setup({ cluster: false });
    await errorOf(ctl.call('CreateVolume', request));
    const job = (await populateJobsIn(t, w.db))[0]!;
    const pod = (job.spec as { template: { spec: { containers: Array<{ image: string; env: Array<{ name: string; value: string }>; securityContext: { runAsUser: number } }>; volumes: Array<{ name: string }> } } }).template.spec;
    expect(pod.containers[0]!.image).toBe(DRIVER_IMAGE);
    expect(pod.containers[0]!.securityContext.runAsUser).toBe(0);
    expect(pod.containers[0]!.env.find((e) => e.name === 'PGR_MODE')?.value).toBe('plain');
    expect(pod.containers[0]!.env.find((e) => e.name === 'PGR_CRASH_CONSISTENT')).toBeUndefined();
    expect(pod.volumes.map((v) => v.name)).not.toContain('tls');
    expect(job.metadata.annotations!['pg-reflinker.csi/mode']).toBe('plain');
    await kubelet.finish(w.db, await jobName(), {
      message: JSON.stringify({ mode: 'plain', label: clone.name, startLsn: null, stopLsn: null, timeline: null, backupFrom: null, files: 3, bytes: 10, seconds: 0.2, checkpointSeconds: 0, copySeconds: 0.1, walSeconds: 0 }),
    });
    const res = await ctl.call<CreateResponse>('CreateVolume', request);
    expect(res.volume.volume_context).toMatchObject({ 'pg-reflinker.csi/mode': 'plain' });
    expect(res.volume.volume_context['pg-reflinker.csi/startLsn']).toBeUndefined();
  });

  test('source used by a non-CloudNativePG pod: FAILED_PRECONDITION, unless the StorageClass allows crash-consistent copies', async () => {
    const { t, w, source, ctl, request } = await setup({ cluster: false });
    await addRunningPod(t, { namespace: w.db, name: 'some-app', claimName: source.pvc });
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/in use by pod\(s\) some-app, which are not CloudNativePG instances.*allowCrashConsistent/);
    expect((await populateJobsIn(t, w.db))[0]).toBeUndefined();

    const allowed = { ...request, parameters: { ...(request.parameters as object), allowCrashConsistent: 'true' } };
    expect((await errorOf(ctl.call('CreateVolume', allowed))).code).toBe(status.ABORTED);
    const job = (await populateJobsIn(t, w.db))[0]!;
    expect(job.metadata.annotations!['pg-reflinker.csi/mode']).toBe('plain');
    // The populator is told the copy may be crash-consistent (it refuses a live postmaster.pid otherwise).
    const env = (job.spec as { template: { spec: { containers: Array<{ env: Array<{ name: string; value: string }> }> } } }).template.spec.containers[0]!.env;
    expect(env.find((e) => e.name === 'PGR_CRASH_CONSISTENT')?.value).toBe('1');
  });

  test('a Cluster whose postgres uid or gid is 0 (or no id at all): FAILED_PRECONDITION naming the Cluster and the field, no Job', async () => {
    const { t, w, api, ctl, request } = await setup();
    for (const [field, value] of [['postgresUID', 0], ['postgresGID', 0], ['postgresUID', '26; id'], ['postgresGID', -1]] as const) {
      await api.patch('clusters.postgresql.cnpg.io', w.db, 'pg', { spec: { postgresUID: 26, postgresGID: 26, [field]: value } });
      const err = await errorOf(ctl.call('CreateVolume', request));
      expect(err.code).toBe(status.FAILED_PRECONDITION);
      expect(err.details).toContain(`Cluster ${w.db}/pg: spec.${field}`);
      expect(await jobsInWorld(t)).toHaveLength(0);
    }
  });

  test('a plain copy of a volume whose Cluster says postgresUID 0: FAILED_PRECONDITION too', async () => {
    const { t, w, api, ctl, request, source } = await setup();
    // The instance pod is gone: deleted, and its node (kubelet) confirmed it (grace period 0).
    await api.core.deleteNamespacedPod({ namespace: w.db, name: source.pvc, body: { gracePeriodSeconds: 0 } });
    await api.patch('clusters.postgresql.cnpg.io', w.db, 'pg', { spec: { postgresUID: 0 } });
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain(`Cluster ${w.db}/pg: spec.postgresUID`);
    expect(await jobsInWorld(t)).toHaveLength(0);
  });

  test('an instance pod that is not Ready yet: ABORTED, no Job', async () => {
    const { t, w, api, ctl, request, source } = await setup();
    await api.patchStatus('pods', w.db, source.pvc, { conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: new Date().toISOString() }] });
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.ABORTED);
    expect(err.details).toMatch(/instance pod pg-1 .* not Ready/);
    expect((await populateJobsIn(t, w.db))[0]).toBeUndefined();
  });

  test('requisite topology without the source node: RESOURCE_EXHAUSTED naming the node', async () => {
    const { w, api, source, clone, ctl } = await setup();
    const err = await errorOf(ctl.call('CreateVolume', cloneRequest(clone.name, source.volumeId, { requisite: ['node-b'] })));
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err.details).toContain('node-a');
    expect(await api.list('jobs.batch', w.db)).toHaveLength(0);
  });

  test('unknown source volume: NOT_FOUND; same name with another source: ALREADY_EXISTS', async () => {
    const { t, w, clone, ctl, request } = await setup();
    expect((await errorOf(ctl.call('CreateVolume', cloneRequest(clone.name, 'node-a/pvc-nope')))).code).toBe(status.NOT_FOUND);
    await errorOf(ctl.call('CreateVolume', request));
    const other = await addVolume(t, { namespace: w.db, pvc: 'pg-2', node: 'node-a' });
    const err = await errorOf(ctl.call('CreateVolume', cloneRequest(clone.name, other.volumeId)));
    expect(err.code).toBe(status.ALREADY_EXISTS);
  });

  test('a clone name that cannot be a backup label: INVALID_ARGUMENT before any API request', async () => {
    const { t, w, source, ctl } = await setup();
    for (const name of ['my clone', '-starts-with-dash', `pvc-${'x'.repeat(240)}`, "pvc-1'; DROP"]) {
      const before = (await controllerRequests(t)).length;
      const err = await errorOf(ctl.call('CreateVolume', cloneRequest(name, source.volumeId, { clonePvc: { namespace: w.db, name: 'pg-clone-1' } })));
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toMatch(/volume name .* cannot be used as a backup label/);
      expect((await controllerRequests(t)).length).toBe(before);
    }
    expect(await jobsInWorld(t)).toHaveLength(0);
  });

  test('a clone PVC parameter that is no object name: INVALID_ARGUMENT, no Job, no Event', async () => {
    const { t, w, api, source, clone, ctl } = await setup();
    const err = await errorOf(ctl.call('CreateVolume', cloneRequest(clone.name, source.volumeId, { clonePvc: { namespace: w.db, name: 'Not/A PVC' } })));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/do not name a PVC/);
    expect(await jobsInWorld(t)).toHaveLength(0);
    for (const ns of [w.db, w.apps, w.other, w.driver]) expect(await api.list('events', ns)).toHaveLength(0);
  });

  test('the API server answers 503: UNAVAILABLE (the sidecar retries in the background)', async () => {
    // A 503 on demand is what a real server cannot give: the fault proxy in front of it does.
    const { t, source, clone, w } = await setup();
    const proxy = await new FaultyKubeApiServer(w.controllerConfig).start();
    try {
      const ctl = await startController(suite, t, { kubeConfig: proxy.kubeConfig() });
      proxy.intercept = () => new ApiError(503, 'ServiceUnavailable', 'etcd is down');
      const err = await errorOf(ctl.call('CreateVolume', cloneRequest(clone.name, source.volumeId, { clonePvc: { namespace: w.db, name: 'pg-clone-1' } })));
      expect(err.code).toBe(status.UNAVAILABLE);
      expect(err.details).toContain('etcd is down');
    } finally {
      for (const c of suite.controllers.splice(0)) await c.stop();
      await proxy.stop();
    }
  });

  test('a watch the server drops mid-wait: the finished Job is still noticed within the call', async () => {
    // A closed watch (an API server restart, an idle timeout) on demand: the fault proxy again.
    const { t, source, clone, w, kubelet } = await setup();
    const proxy = await new FaultyKubeApiServer(w.controllerConfig).start();
    try {
      const ctl = await startController(suite, t, { kubeConfig: proxy.kubeConfig(), cloneWaitMs: 10_000 });
      const request = cloneRequest(clone.name, source.volumeId, { clonePvc: { namespace: w.db, name: 'pg-clone-1' } });
      const started = Date.now();
      const call = ctl.call<CreateResponse>('CreateVolume', request);
      await until(async () => proxy.openWatches > 0, 5000, 'a watch on the Job');
      proxy.dropWatches();
      await until(async () => proxy.openWatches > 0, 5000, 'the watch opened again');
      await kubelet.finish(w.db, (await recordedJobName(t, clone.name))!, { message: successLine(clone.name) });
      expect((await call).volume.volume_id).toBe(`node-a/${clone.name}`);
      expect(Date.now() - started).toBeLessThan(8000);
    } finally {
      for (const c of suite.controllers.splice(0)) await c.stop();
      await proxy.stop();
    }
  });

  test('empty volumes: no node work, placed on the first preferred node; ValidateVolumeCapabilities sees PVs and Jobs', async () => {
    const { t, ctl, source } = await setup();
    const empty = await ctl.call<CreateResponse>('CreateVolume', {
      name: 'pvc-empty',
      capacity_range: { required_bytes: 1024 },
      volume_capabilities: [{ mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }],
      accessibility_requirements: { preferred: [{ segments: { [TOPOLOGY_KEY]: 'node-b' } }] },
    });
    expect(empty.volume).toMatchObject({ volume_id: 'node-b/pvc-empty', volume_context: { 'pg-reflinker.csi/kind': 'empty' } });
    expect(await jobsInWorld(t)).toHaveLength(0);
    const caps = [{ mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }];
    expect(await ctl.call('ValidateVolumeCapabilities', { volume_id: source.volumeId, volume_capabilities: caps })).toMatchObject({ confirmed: {} });
    expect((await errorOf(ctl.call('ValidateVolumeCapabilities', { volume_id: 'node-b/pvc-empty', volume_capabilities: caps }))).code).toBe(status.NOT_FOUND);
  });
});
