import { errorOf } from '../support/csi-client.js';
import { afterEach, describe, expect, test } from '@jest/globals';
import { status } from '@grpc/grpc-js';
import type { FakeKubeApiServer } from '../support/kube-apiserver.js';
import { addClonePvc, addCnpgCluster, addVolume, cloneRequest, populateJobsIn, startCluster, startController, type Controller } from './fixtures.js';

// CloudNativePG builds each new replica of a Cluster bootstrapped with
// bootstrap.recovery.volumeSnapshots as a fresh clone of the PVC named there: the SOURCE, not
// the Cluster's own data. Such a replica carries a diverged history, so it is refused.

let api: FakeKubeApiServer;
let ctl: Controller;

afterEach(async () => {
  await ctl?.stop();
  await api?.stop();
});

/** Source: instance pg-1 of Cluster db/pg (which has a primary). The copy: Cluster db/copy, bootstrapped from pg-1. */
async function setup(copyStatus: Record<string, unknown>, clonePvcMeta: Record<string, unknown> = { labels: { 'cnpg.io/cluster': 'copy' } }) {
  ({ api } = await startCluster());
  const source = addVolume(api, { namespace: 'db', pvc: 'pg-1', node: 'node-a', labels: { 'cnpg.io/cluster': 'pg', 'cnpg.io/pvcRole': 'PG_DATA' } });
  addCnpgCluster(api, source);
  const copy = api.create('clusters.postgresql.cnpg.io', {
    metadata: { namespace: 'db', name: 'copy' },
    spec: { instances: 2, bootstrap: { recovery: { volumeSnapshots: { storage: { kind: 'PersistentVolumeClaim', name: 'pg-1' } } } } },
  });
  api.patch('clusters.postgresql.cnpg.io', 'db', 'copy', { status: copyStatus });
  const clone = addClonePvc(api, 'db', 'copy-2', 'pg-1');
  const meta = JSON.parse(JSON.stringify(clonePvcMeta).replaceAll('COPY_UID', copy.metadata.uid!)) as Record<string, unknown>;
  api.patch('persistentvolumeclaims', 'db', 'copy-2', { metadata: meta });
  ctl = await startController(api);
  return { source, clone, request: cloneRequest(clone.name, source.volumeId, { clonePvc: { namespace: 'db', name: 'copy-2' } }) };
}

describe('a clone into a CloudNativePG Cluster that already has a primary', () => {
  test('from another Cluster: FAILED_PRECONDITION with the reason and the fix, no Job', async () => {
    const { request } = await setup({ currentPrimary: 'copy-1', readyInstances: 1 });
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/PVC db\/copy-2 belongs to CloudNativePG Cluster db\/copy, which already has a primary \(copy-1\)/);
    expect(err.details).toMatch(/diverged history/);
    expect(err.details).toMatch(/remove bootstrap\.recovery\.volumeSnapshots from the spec of Cluster db\/copy/);
    expect(populateJobsIn(api, 'db')).toHaveLength(0);
  });

  test('membership by owner reference alone, primary known from readyInstances alone: refused too', async () => {
    const { request } = await setup(
      { readyInstances: 1 },
      { ownerReferences: [{ apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', name: 'copy', uid: 'COPY_UID', controller: true }] },
    );
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/belongs to CloudNativePG Cluster db\/copy, which already has a primary/);
  });

  test('the first bootstrap (no primary yet) proceeds', async () => {
    const { request } = await setup({ phase: 'Setting up primary', targetPrimary: 'copy-1' });
    expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.ABORTED);
    expect(populateJobsIn(api, 'db')).toHaveLength(1);
  });

  test("a replica cloned from the Cluster's own instance proceeds", async () => {
    const { request } = await setup({ currentPrimary: 'copy-1' }, { labels: { 'cnpg.io/cluster': 'pg' } });
    expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.ABORTED);
    expect(populateJobsIn(api, 'db')).toHaveLength(1);
  });
});
