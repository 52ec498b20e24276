import { errorOf } from '../support/csi-client.js';
import { expect, test } from '@jest/globals';
import { status } from '@grpc/grpc-js';
import { addClonePvc, addCnpgCluster, addVolume, cloneRequest, describeOnRealApiServer, populateJobsIn, startController } from './fixtures.js';

// CloudNativePG builds each new replica of a Cluster bootstrapped with
// bootstrap.recovery.volumeSnapshots as a fresh clone of the PVC named there: the SOURCE, not
// the Cluster's own data. Such a replica carries a diverged history, so it is refused.

describeOnRealApiServer('a clone into a CloudNativePG Cluster that already has a primary', (suite) => {
  /** Source: instance pg-1 of Cluster pg (which has a primary). The copy: Cluster copy, bootstrapped from pg-1. */
  async function setup(copyStatus: Record<string, unknown>, clonePvcMeta: { labels?: Record<string, string>; ownedByCopy?: boolean } = { labels: { 'cnpg.io/cluster': 'copy' } }) {
    const t = await suite.env();
    const { w, api } = t;
    const source = await addVolume(t, { namespace: w.db, pvc: 'pg-1', node: 'node-a', labels: { 'cnpg.io/cluster': 'pg', 'cnpg.io/pvcRole': 'PG_DATA' } });
    await addCnpgCluster(t, source);
    const copy = await api.create('clusters.postgresql.cnpg.io', {
      metadata: { namespace: w.db, name: 'copy' },
      spec: { instances: 2, bootstrap: { recovery: { volumeSnapshots: { storage: { kind: 'PersistentVolumeClaim', name: 'pg-1' } } } } },
    });
    await api.patchStatus('clusters.postgresql.cnpg.io', w.db, 'copy', copyStatus);
    const clone = await addClonePvc(t, w.db, 'copy-2', 'pg-1', {
      labels: clonePvcMeta.labels,
      ...(clonePvcMeta.ownedByCopy ? { ownerReferences: [{ apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', name: 'copy', uid: copy.metadata.uid!, controller: true }] } : {}),
    });
    const ctl = await startController(suite, t);
    return { t, w, ctl, request: cloneRequest(clone.name, source.volumeId, { clonePvc: { namespace: w.db, name: 'copy-2' } }) };
  }

  test('from another Cluster: FAILED_PRECONDITION with the reason and the fix, no Job', async () => {
    const { t, w, ctl, request } = await setup({ currentPrimary: 'copy-1', readyInstances: 1 });
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain(`PVC ${w.db}/copy-2 belongs to CloudNativePG Cluster ${w.db}/copy, which already has a primary (copy-1)`);
    expect(err.details).toMatch(/diverged history/);
    expect(err.details).toContain(`remove bootstrap.recovery.volumeSnapshots from the spec of Cluster ${w.db}/copy`);
    expect(await populateJobsIn(t, w.db)).toHaveLength(0);
  });

  test('membership by owner reference alone, primary known from readyInstances alone: refused too', async () => {
    const { w, ctl, request } = await setup({ readyInstances: 1 }, { ownedByCopy: true });
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toContain(`belongs to CloudNativePG Cluster ${w.db}/copy, which already has a primary`);
  });

  test('the first bootstrap (no primary yet) proceeds', async () => {
    const { t, w, ctl, request } = await setup({ phase: 'Setting up primary', targetPrimary: 'copy-1' });
    expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.ABORTED);
    expect(await populateJobsIn(t, w.db)).toHaveLength(1);
  });

  test("a replica cloned from the Cluster's own instance proceeds", async () => {
    const { t, w, ctl, request } = await setup({ currentPrimary: 'copy-1' }, { labels: { 'cnpg.io/cluster': 'pg' } });
    expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.ABORTED);
    expect(await populateJobsIn(t, w.db)).toHaveLength(1);
  });
});
