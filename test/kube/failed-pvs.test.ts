import { afterEach, describe, expect, test } from '@jest/globals';
import type { FakeKubeApiServer } from '../support/kube-apiserver.js';
import type { FakeKubelet } from '../support/kube-apiserver-kubelet.js';
import { DRIVER_NS, addVolume, startCluster, startController, until, type Controller } from './fixtures.js';

// The Failed-PV reconciler: Delete policy → data removed on the node, PV deleted; Retain → reported.

let api: FakeKubeApiServer;
let kubelet: FakeKubelet;
let ctl: Controller;

afterEach(async () => {
  await ctl?.stop();
  await api?.stop();
});

function failVolume(pvName: string, policy: 'Delete' | 'Retain', claimGone = true): void {
  const pv = api.get('persistentvolumes', undefined, pvName)!;
  const claim = (pv.spec as { claimRef: { namespace: string; name: string } }).claimRef;
  if (claimGone) {
    api.patch('persistentvolumeclaims', claim.namespace, claim.name, { metadata: { finalizers: null } });
    api.delete('persistentvolumeclaims', claim.namespace, claim.name);
  }
  api.patch('persistentvolumes', undefined, pvName, { spec: { persistentVolumeReclaimPolicy: policy }, status: { phase: 'Failed', message: 'the recycler failed' } });
}

describe('PVs in phase Failed', () => {
  test('reclaim policy Delete: a cleanup Job on the node, then the PV object goes', async () => {
    ({ api, kubelet } = await startCluster());
    ctl = await startController(api);
    const v = addVolume(api, { namespace: 'db', pvc: 'old', node: 'node-a' });
    const healthy = addVolume(api, { namespace: 'db', pvc: 'fine', node: 'node-a' });
    failVolume(v.pvName, 'Delete');
    await ctl.reconciler!.tick();
    const job = api.get('jobs.batch', DRIVER_NS, `pgr-cleanup-${v.pvName}`)!;
    expect(job.metadata.annotations!['pg-reflinker.csi/volume-id']).toBe(v.volumeId);
    expect(api.get('persistentvolumes', undefined, v.pvName)).toBeDefined();
    kubelet.finish(DRIVER_NS, `pgr-cleanup-${v.pvName}`);
    await ctl.reconciler!.tick();
    const pv = api.get('persistentvolumes', undefined, v.pvName);
    // Only kubernetes.io/pv-protection is left (the PV controller removes it for an unbound PV).
    expect(pv?.metadata.finalizers).toEqual(['kubernetes.io/pv-protection']);
    expect(pv?.metadata.deletionTimestamp).toBeDefined();
    expect(api.get('jobs.batch', DRIVER_NS, `pgr-cleanup-${healthy.pvName}`)).toBeUndefined();
    expect((await ctl.http('/metrics')).body).toMatch(/^pg_reflinker_failed_volumes\{reclaim_policy="Delete"\} 1$/m);
  });

  test('reclaim policy Retain: nothing removed, a Warning Event on the PV says where the data is', async () => {
    ({ api, kubelet } = await startCluster());
    ctl = await startController(api);
    const v = addVolume(api, { namespace: 'db', pvc: 'kept', node: 'node-b' });
    failVolume(v.pvName, 'Retain');
    await ctl.reconciler!.tick();
    await ctl.reconciler!.tick();
    expect(api.list('jobs.batch')).toHaveLength(0);
    const events = api.list('events', 'default');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'Warning', reason: 'VolumeFailed', involvedObject: { kind: 'PersistentVolume', name: v.pvName } });
    expect(events[0]!.message).toMatch(new RegExp(`is Failed \\(the recycler failed\\); reclaim policy Retain: its data stays at /var/lib/pg-reflinker/${v.pvName} on node node-b`));
  });

  test('reclaim policy Delete while the claim still exists: reported, not removed', async () => {
    ({ api, kubelet } = await startCluster());
    ctl = await startController(api);
    const v = addVolume(api, { namespace: 'db', pvc: 'still-here', node: 'node-a' });
    failVolume(v.pvName, 'Delete', false);
    await ctl.reconciler!.tick();
    expect(api.list('jobs.batch')).toHaveLength(0);
    expect(api.list('events', 'default')[0]!.message).toMatch(/its claim db\/still-here still exists/);
  });

  test('the reconciler runs by itself on its interval', async () => {
    ({ api, kubelet } = await startCluster());
    ctl = await startController(api, { failedPvIntervalMs: 50 });
    const v = addVolume(api, { namespace: 'db', pvc: 'auto', node: 'node-a' });
    failVolume(v.pvName, 'Delete');
    await until(() => !!api.get('jobs.batch', DRIVER_NS, `pgr-cleanup-${v.pvName}`), 5000, 'a cleanup Job from the periodic pass');
  });
});
