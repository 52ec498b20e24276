import { errorOf } from '../support/csi-client.js';
import { expect, test } from '@jest/globals';
import { status } from '@grpc/grpc-js';
import {
  PG_IMAGE,
  addClonePvc,
  addCnpgCluster,
  addVolume,
  cloneRecord,
  cloneRequest,
  describeOnRealApiServer,
  eventsOn,
  jobCreates,
  populateJobsIn,
  recordedJobName,
  startController,
  successLine,
  type KubeObject,
  type SourceVolumeFixture,
  type TestEnv,
} from './fixtures.js';

// preferStandby on the real API server: a clone of a CloudNativePG primary's PVC is taken from a
// healthy replica of the same Cluster. The Cluster, its instance pods and PVCs are written as
// CloudNativePG and kubelet would leave them (status through the status subresource).

interface JobShape {
  spec: { template: { spec: { nodeName: string; volumes: Array<{ name: string; persistentVolumeClaim?: { claimName: string } }> } } };
}
const claimsOf = (job: KubeObject) => (job as unknown as JobShape).spec.template.spec.volumes.flatMap((v) => (v.persistentVolumeClaim ? [v.persistentVolumeClaim.claimName] : []));
const nodeOf = (job: KubeObject) => (job as unknown as JobShape).spec.template.spec.nodeName;

interface ReplicaOptions {
  ready?: boolean;
  role?: string;
  /** The Cluster whose uid the pod's controller reference carries (default: the source's Cluster). */
  controller?: KubeObject;
  node?: string;
}

describeOnRealApiServer('preferStandby: cloning a primary from a healthy replica', (suite) => {
  /** Cluster pg: primary pg-1 on node-a, and the replicas asked for; all healthy in the Cluster status unless `healthy` says otherwise. */
  async function setup(replicas: Record<string, ReplicaOptions>, opts: { healthy?: string[]; walStorage?: boolean; parameters?: Record<string, string> } = {}) {
    const t = await suite.env();
    const { w, api } = t;
    const pgData = { 'cnpg.io/cluster': 'pg', 'cnpg.io/pvcRole': 'PG_DATA' };
    const primary = await addVolume(t, { namespace: w.db, pvc: 'pg-1', node: 'node-a', labels: pgData });
    await addCnpgCluster(t, primary, { role: 'primary' });
    const cluster = (await api.get('clusters.postgresql.cnpg.io', w.db, 'pg'))!;
    if (opts.walStorage) await api.patch('clusters.postgresql.cnpg.io', w.db, 'pg', { spec: { walStorage: { size: '1Gi' } } });
    const names = Object.keys(replicas);
    await api.patchStatus('clusters.postgresql.cnpg.io', w.db, 'pg', { instancesStatus: { healthy: opts.healthy ?? ['pg-1', ...names] } });
    await ownByCluster(t, 'pg-1', cluster);
    const volumes: Record<string, SourceVolumeFixture> = {};
    for (const [name, r] of Object.entries(replicas)) volumes[name] = await addReplica(t, cluster, name, r, !!opts.walStorage);
    const clone = await addClonePvc(t, w.db, 'pg-clone', 'pg-1');
    const ctl = await startController(suite, t);
    const request = cloneRequest(clone.name, primary.volumeId, { clonePvc: { namespace: w.db, name: 'pg-clone' }, parameters: opts.parameters ?? { preferStandby: 'true' } });
    return { t, w, api, ctl, clone, primary, volumes, cluster, request };
  }

  async function ownByCluster({ api, w }: TestEnv, pvc: string, cluster: KubeObject): Promise<void> {
    await api.patch('persistentvolumeclaims', w.db, pvc, {
      metadata: { ownerReferences: [{ apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', name: 'pg', uid: cluster.metadata.uid!, controller: true }] },
    });
  }

  /** A replica instance of `cluster` as CloudNativePG makes it: PG_DATA PVC (and WAL PVC) owned by the Cluster, pod controlled by it. */
  async function addReplica(t: TestEnv, cluster: KubeObject, name: string, r: ReplicaOptions, walStorage: boolean): Promise<SourceVolumeFixture> {
    const { api, w } = t;
    const node = r.node ?? 'node-b';
    const volume = await addVolume(t, { namespace: w.db, pvc: name, node, labels: { 'cnpg.io/cluster': 'pg', 'cnpg.io/pvcRole': 'PG_DATA' } });
    await ownByCluster(t, name, cluster);
    const volumes = [{ name: 'pgdata', persistentVolumeClaim: { claimName: name } }];
    if (walStorage) {
      await addVolume(t, { namespace: w.db, pvc: `${name}-wal`, node, labels: { 'cnpg.io/cluster': 'pg', 'cnpg.io/pvcRole': 'PG_WAL' } });
      await ownByCluster(t, `${name}-wal`, cluster);
      volumes.push({ name: 'pg-wal', persistentVolumeClaim: { claimName: `${name}-wal` } });
    }
    const controller = r.controller ?? cluster;
    const role = r.role ?? 'replica';
    await api.create('pods', {
      metadata: {
        namespace: w.db,
        name,
        labels: { 'cnpg.io/cluster': 'pg', 'cnpg.io/instanceName': name, 'cnpg.io/podRole': 'instance', 'cnpg.io/instanceRole': role, role },
        ownerReferences: [{ apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', name: controller.metadata.name, uid: controller.metadata.uid!, controller: true }],
      },
      spec: { nodeName: node, containers: [{ name: 'postgres', image: PG_IMAGE }], volumes },
    });
    const ip = `10.0.2.${name.replace(/\D/g, '')}`;
    await api.patchStatus('pods', w.db, name, {
      phase: 'Running',
      podIP: ip,
      podIPs: [{ ip }],
      conditions: [{ type: 'Ready', status: r.ready === false ? 'False' : 'True', lastTransitionTime: new Date().toISOString() }],
    });
    return volume;
  }

  const aborted = async (ctl: { call: (m: string, r: object) => Promise<unknown> }, request: object) => {
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err).toMatchObject({ code: status.ABORTED });
    return err;
  };

  test('a healthy replica: the Job copies pg-2 on its node, an Event and the volume context say so', async () => {
    const { t, w, ctl, clone, primary, volumes, request } = await setup({ 'pg-2': {} });
    await aborted(ctl, request);
    const [job] = await populateJobsIn(t, w.db);
    expect(nodeOf(job!)).toBe('node-b');
    expect(claimsOf(job!)).toContain('pg-2');
    expect(claimsOf(job!)).not.toContain('pg-1');
    expect(await eventsOn(t, w.db, 'pg-clone')).toContainEqual(expect.objectContaining({ reason: 'PreferStandby', type: 'Normal', message: 'cloning replica pg-2 instead of primary pg-1: preferStandby' }));
    expect(await cloneRecord(t, clone.name)).toMatchObject({ 'source-volume-id': volumes['pg-2']!.volumeId, 'requested-source-volume-id': primary.volumeId });

    await t.kubelet.finish(w.db, (await recordedJobName(t, clone.name))!, { message: successLine(clone.name) });
    const res = await ctl.call<{ volume: { volume_id: string; volume_context: Record<string, string> } }>('CreateVolume', request);
    expect(res.volume.volume_id).toBe(`node-b/${clone.name}`);
    expect(res.volume.volume_context).toMatchObject({
      'pg-reflinker.csi/clonedInstance': 'pg-2',
      'pg-reflinker.csi/standbyFor': 'pg-1',
      'pg-reflinker.csi/requestedSource': `${w.db}/pg-1`,
      'pg-reflinker.csi/source': `${w.db}/pg-2`,
      'pg-reflinker.csi/backupFrom': 'standby',
    });
  });

  test('several qualify: the lowest instance number (pg-3 before pg-10), the first unready one skipped; walStorage brings its WAL PVC', async () => {
    const { t, w, ctl, request } = await setup({ 'pg-10': {}, 'pg-2': { ready: false }, 'pg-3': {} }, { walStorage: true });
    await aborted(ctl, request);
    const [job] = await populateJobsIn(t, w.db);
    expect(claimsOf(job!)).toEqual(expect.arrayContaining(['pg-3', 'pg-3-wal']));
    expect(await eventsOn(t, w.db, 'pg-clone')).toContainEqual(expect.objectContaining({ reason: 'PreferStandby', message: 'cloning replica pg-3 instead of primary pg-1: preferStandby' }));
  });

  test('replica pod not Ready: the primary is cloned, and the Event says why', async () => {
    const { t, w, ctl, request } = await setup({ 'pg-2': { ready: false } });
    await aborted(ctl, request);
    const [job] = await populateJobsIn(t, w.db);
    expect(nodeOf(job!)).toBe('node-a');
    expect(claimsOf(job!)).toContain('pg-1');
    expect(await eventsOn(t, w.db, 'pg-clone')).toContainEqual(
      expect.objectContaining({ reason: 'PreferStandby', message: 'cloning primary pg-1: preferStandby found no replica to clone instead: no replica of Cluster pg qualifies (pg-2: pod not Running and Ready)' }),
    );
  });

  test('replica not among the Cluster status healthy instances: the primary is cloned', async () => {
    const { t, w, ctl, request } = await setup({ 'pg-2': {} }, { healthy: ['pg-1'] });
    await aborted(ctl, request);
    expect(claimsOf((await populateJobsIn(t, w.db))[0]!)).toContain('pg-1');
  });

  test("a pod labelled as pg's replica but controlled by another Cluster: never cloned", async () => {
    const { t, w, ctl, request } = await setupWithForeignReplica();
    await aborted(ctl, request);
    const [job] = await populateJobsIn(t, w.db);
    expect(claimsOf(job!)).toContain('pg-1');
    expect(claimsOf(job!)).not.toContain('pg-2');
    expect(await eventsOn(t, w.db, 'pg-clone')).toContainEqual(expect.objectContaining({ reason: 'PreferStandby', message: 'cloning primary pg-1: preferStandby found no replica to clone instead: Cluster pg has no replica instance' }));
  });

  /** Replica pg-2 is labelled cnpg.io/cluster=pg, but its controller reference is Cluster other's uid. */
  async function setupWithForeignReplica() {
    const t = await suite.env();
    const { w, api } = t;
    const primary = await addVolume(t, { namespace: w.db, pvc: 'pg-1', node: 'node-a', labels: { 'cnpg.io/cluster': 'pg', 'cnpg.io/pvcRole': 'PG_DATA' } });
    await addCnpgCluster(t, primary, { role: 'primary' });
    const cluster = (await api.get('clusters.postgresql.cnpg.io', w.db, 'pg'))!;
    const other = await api.create('clusters.postgresql.cnpg.io', { metadata: { namespace: w.db, name: 'other' }, spec: { instances: 2 } });
    await api.patchStatus('clusters.postgresql.cnpg.io', w.db, 'pg', { instancesStatus: { healthy: ['pg-1', 'pg-2'] } });
    await ownByCluster(t, 'pg-1', cluster);
    await addReplica(t, cluster, 'pg-2', { controller: other }, false);
    const clone = await addClonePvc(t, w.db, 'pg-clone', 'pg-1');
    const ctl = await startController(suite, t);
    const request = cloneRequest(clone.name, primary.volumeId, { clonePvc: { namespace: w.db, name: 'pg-clone' }, parameters: { preferStandby: 'true' } });
    return { t, w, ctl, request };
  }

  test('parameter off or absent: the primary is cloned, no PreferStandby Event', async () => {
    for (const parameters of [{ preferStandby: 'false' }, {}] as Array<Record<string, string>>) {
      const { t, w, ctl, request } = await setup({ 'pg-2': {} }, { parameters });
      await aborted(ctl, request);
      expect(claimsOf((await populateJobsIn(t, w.db))[0]!)).toContain('pg-1');
      expect((await eventsOn(t, w.db, 'pg-clone')).map((e) => e.reason)).not.toContain('PreferStandby');
    }
  });

  test('a bad value: INVALID_ARGUMENT naming the parameter, nothing made', async () => {
    const { t, w, ctl, request } = await setup({ 'pg-2': {} }, { parameters: { preferStandby: 'yes' } });
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain('preferStandby "yes" must be "true" or "false"');
    expect(await populateJobsIn(t, w.db)).toHaveLength(0);
  });

  test('the source is already a replica: copied as asked, no redirect and no Event', async () => {
    const { t, w, ctl, clone, volumes } = await setup({ 'pg-2': {}, 'pg-3': {} });
    const request = cloneRequest(clone.name, volumes['pg-3']!.volumeId, { clonePvc: { namespace: w.db, name: 'pg-clone' }, parameters: { preferStandby: 'true' } });
    await aborted(ctl, request);
    const [job] = await populateJobsIn(t, w.db);
    expect(claimsOf(job!)).toContain('pg-3');
    expect((await eventsOn(t, w.db, 'pg-clone')).map((e) => e.reason)).not.toContain('PreferStandby');
  });

  test('retries keep the first decision: the replica turning unready after the Job started makes no second Job', async () => {
    const { t, w, api, ctl, clone, request } = await setup({ 'pg-2': {} });
    await aborted(ctl, request);
    await api.patchStatus('pods', w.db, 'pg-2', { conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: new Date().toISOString() }] });
    for (let i = 0; i < 3; i++) await aborted(ctl, request);
    const jobs = await populateJobsIn(t, w.db);
    expect(jobs).toHaveLength(1);
    expect(claimsOf(jobs[0]!)).toContain('pg-2');
    expect(await jobCreates(t, w.db)).toBe(1);

    await t.kubelet.finish(w.db, (await recordedJobName(t, clone.name))!, { message: successLine(clone.name) });
    const res = await ctl.call<{ volume: { volume_id: string; volume_context: Record<string, string> } }>('CreateVolume', request);
    expect(res.volume.volume_id).toBe(`node-b/${clone.name}`);
    expect(res.volume.volume_context['pg-reflinker.csi/clonedInstance']).toBe('pg-2');
  });
});
