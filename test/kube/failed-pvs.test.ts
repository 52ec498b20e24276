import { expect, test } from '@jest/globals';
import { addVolume, describeOnRealApiServer, jobsInWorld, startController, until, type TestEnv } from './fixtures.js';

// The Failed-PV reconciler: Delete policy → data removed on the node, PV deleted; Retain → reported.

/** What the PV controller does to a PV it gives up on (phase Failed), after its claim went (or not). */
async function failVolume({ api }: TestEnv, pvName: string, policy: 'Delete' | 'Retain', claimGone = true): Promise<void> {
  const pv = (await api.get('persistentvolumes', undefined, pvName))!;
  const claim = (pv.spec as { claimRef: { namespace: string; name: string } }).claimRef;
  if (claimGone) {
    // kubernetes.io/pvc-protection (admission) would keep the claim while the PV is in use.
    await api.patch('persistentvolumeclaims', claim.namespace, claim.name, { metadata: { finalizers: null } });
    await api.delete('persistentvolumeclaims', claim.namespace, claim.name);
  }
  await api.patch('persistentvolumes', undefined, pvName, { spec: { persistentVolumeReclaimPolicy: policy } });
  await api.patchStatus('persistentvolumes', undefined, pvName, { phase: 'Failed', message: 'the recycler failed' });
}

/** The Events the reconciler recorded on a PV (cluster-scoped objects' Events go to `default`). */
async function eventsOnPv({ api }: TestEnv, pvName: string) {
  return (await api.list('events', 'default')).filter((e) => (e.involvedObject as { name: string }).name === pvName);
}

describeOnRealApiServer('PVs in phase Failed', (suite) => {
  test('reclaim policy Delete: a cleanup Job on the node, then the PV object goes', async () => {
    const t = await suite.env();
    const { w, api, kubelet } = t;
    const ctl = await startController(suite, t);
    const v = await addVolume(t, { namespace: w.db, pvc: 'old', node: 'node-a' });
    const healthy = await addVolume(t, { namespace: w.db, pvc: 'fine', node: 'node-a' });
    await failVolume(t, v.pvName, 'Delete');
    await ctl.reconciler!.tick();
    const job = (await api.get('jobs.batch', w.driver, `pgr-cleanup-${v.pvName}`))!;
    expect(job.metadata.annotations!['pg-reflinker.csi/volume-id']).toBe(v.volumeId);
    expect(await api.get('persistentvolumes', undefined, v.pvName)).toBeDefined();
    await kubelet.finish(w.driver, `pgr-cleanup-${v.pvName}`);
    await ctl.reconciler!.tick();
    // The reconciler removed the sidecar's finalizer and deleted the PV; the real PV-protection
    // controller then releases kubernetes.io/pv-protection (the PV is not Bound) and the PV goes.
    await until(async () => !(await api.get('persistentvolumes', undefined, v.pvName)), 15_000, 'the Failed PV to be deleted');
    expect(await api.get('jobs.batch', w.driver, `pgr-cleanup-${healthy.pvName}`)).toBeUndefined();
    expect((await ctl.http('/metrics')).body).toMatch(/^pg_reflinker_failed_volumes\{reclaim_policy="Delete"\} 1$/m);
  });

  test('reclaim policy Retain: nothing removed, a Warning Event on the PV says where the data is', async () => {
    const t = await suite.env();
    const ctl = await startController(suite, t);
    const v = await addVolume(t, { namespace: t.w.db, pvc: 'kept', node: 'node-b' });
    await failVolume(t, v.pvName, 'Retain');
    await ctl.reconciler!.tick();
    await ctl.reconciler!.tick();
    expect(await jobsInWorld(t)).toHaveLength(0);
    const events = await eventsOnPv(t, v.pvName);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'Warning', reason: 'VolumeFailed', involvedObject: { kind: 'PersistentVolume', name: v.pvName } });
    expect(events[0]!.message).toMatch(new RegExp(`is Failed \\(the recycler failed\\); reclaim policy Retain: its data stays at /var/lib/pg-reflinker/${v.pvName} on node node-b`));
  });

  test('reclaim policy Delete while the claim still exists: reported, not removed', async () => {
    const t = await suite.env();
    const ctl = await startController(suite, t);
    const v = await addVolume(t, { namespace: t.w.db, pvc: 'still-here', node: 'node-a' });
    await failVolume(t, v.pvName, 'Delete', false);
    await ctl.reconciler!.tick();
    expect(await jobsInWorld(t)).toHaveLength(0);
    expect((await eventsOnPv(t, v.pvName))[0]!.message).toContain(`its claim ${t.w.db}/still-here still exists`);
  });

  test('the reconciler runs by itself on its interval', async () => {
    const t = await suite.env();
    await startController(suite, t, { failedPvIntervalMs: 50 });
    const v = await addVolume(t, { namespace: t.w.db, pvc: 'auto', node: 'node-a' });
    await failVolume(t, v.pvName, 'Delete');
    await until(async () => !!(await t.api.get('jobs.batch', t.w.driver, `pgr-cleanup-${v.pvName}`)), 5000, 'a cleanup Job from the periodic pass');
  });
});
