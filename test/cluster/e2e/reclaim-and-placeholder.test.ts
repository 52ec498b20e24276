import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FailedPvReconciler } from '../../../src/backends/kube/deletion/failed-pvs.js';
import { createKubeBackendFactory } from '../../../src/backends/kube/factory.js';
import { parseConfig, type Config } from '../../../src/config.js';
import { silentLogger } from '../../../src/log.js';
import { Metrics } from '../../../src/metrics.js';
import { OPENSSL, POSTGRES, ROOT, XFS, describeWithRealParts } from '../../support/requirements.js';
import { CONTROL_PLANE, components } from '../components.js';
import { CLASS_CLONE, CLASS_CLONE_DELETE, CONTROLLER_USER, DRIVER_IMAGE, DRIVER_NS, E2eCluster, mergePatch, sleep, until } from './cluster.js';
import { createCnpgClone, createCnpgSource, type CnpgSource } from './cnpg.js';

// Scenario 2 (what happens to a clone's data when its PVC goes: Delete, Retain, a PV gone
// Failed) and scenario 5 (a clone from another namespace through a placeholder, with and
// without the source owner's consent), on one cluster and one source database.

const NS = 'db';
const APPS = 'apps';

describeWithRealParts('e2e: clone reclaim and cross-namespace placeholders on the real control plane', [CONTROL_PLANE, components('csi-provisioner'), ROOT, XFS, POSTGRES, OPENSSL], () => {
  let env: E2eCluster;
  let source: CnpgSource;

  beforeAll(async () => {
    env = await E2eCluster.start({ namespaces: [NS, APPS], namespacePath: [NS] });
    source = await createCnpgSource(env, NS, 'pg', 2);
  }, 240_000);

  afterAll(async () => {
    await source?.server.stop();
    await env?.stop();
  }, 120_000);

  async function boundClone(cluster: string, storageClass: string, namespace = NS, from = source.instance) {
    const clone = await createCnpgClone(env, { namespace, cluster, source: from, storageClass });
    await env.waitForBound(namespace, clone.pvc);
    const volume = `pvc-${clone.uid}`;
    expect(existsSync(join(env.prefix, volume, 'pgdata', 'PG_VERSION'))).toBe(true);
    return { ...clone, volume };
  }

  const pvOf = (name: string) => env.core.readPersistentVolume({ name }).catch(() => undefined);

  test('2a. reclaim policy Delete: deleting the clone PVC runs the cleanup Job on the node, which removes the directory; the PV goes', async () => {
    const clone = await boundClone('deleted', CLASS_CLONE_DELETE);
    const t0 = Date.now();
    await env.core.deleteNamespacedPersistentVolumeClaim({ namespace: NS, name: clone.pvc });
    await until('the PV to be deleted', async () => !(await pvOf(clone.volume)), 90_000);
    console.log(`scenario 2a: PV gone ${((Date.now() - t0) / 1000).toFixed(1)} s after the PVC was deleted`);
    expect(existsSync(join(env.prefix, clone.volume))).toBe(false);
    const cleanups = env.jobs.of(clone.volume, 'cleanup');
    expect(cleanups).toHaveLength(1);
    const job = await env.batch.readNamespacedJob({ namespace: DRIVER_NS, name: cleanups[0]!.metadata!.name! });
    expect(job.status?.succeeded).toBe(1);
  }, 180_000);

  let retained: { volume: string; pvc: string };

  test('2b. reclaim policy Retain: the PV stays Released and the directory stays, no cleanup Job', async () => {
    retained = await boundClone('kept', CLASS_CLONE);
    await env.core.deleteNamespacedPersistentVolumeClaim({ namespace: NS, name: retained.pvc });
    await until('the PV to be Released', async () => (await pvOf(retained.volume))?.status?.phase === 'Released', 60_000);
    await sleep(5000); // time for a wrong DeleteVolume and its cleanup Job to show
    expect((await pvOf(retained.volume))?.status?.phase).toBe('Released');
    expect(existsSync(join(env.prefix, retained.volume, 'pgdata', 'PG_VERSION'))).toBe(true);
    expect(env.jobs.of(retained.volume, 'cleanup')).toEqual([]);
  }, 180_000);

  test('2c. a PV gone Failed is reconciled per its reclaim policy: Retain is reported and kept, Delete is cleaned up and the PV deleted', async () => {
    // The controller process runs its Failed-PV reconciler every 5 minutes. The test runs passes
    // of the same reconciler on demand: a second controller backend in this process, with the
    // controller's own RBAC, whose periodic timer is off.
    let reconciler: FailedPvReconciler | undefined;
    const config = parseConfig(['controller', '--endpoint', 'unix:///nonexistent/csi.sock', '--root', env.prefix, '--driver-namespace', DRIVER_NS, '--driver-image', DRIVER_IMAGE], {}) as Config;
    const made = await createKubeBackendFactory({ kubeConfig: env.cp.kubeConfigFor(CONTROLLER_USER), failedPvIntervalMs: 0, onReconciler: (r) => (reconciler = r) })(config, { log: silentLogger(), metrics: new Metrics() });
    try {
      // The PV controller marks a PV Failed when its reclaim fails; the test sets that phase.
      await env.core.patchPersistentVolumeStatus({ name: retained.volume, body: { status: { phase: 'Failed', message: 'e2e: reclaim failed' } } }, mergePatch);
      await reconciler!.tick();
      const reported = await until('a VolumeFailed Event on the Retain PV', async () =>
        (await env.events('default', retained.volume)).find((e) => e.reason === 'VolumeFailed'), 30_000);
      expect(reported.type).toBe('Warning');
      expect(reported.message).toContain(`reclaim policy Retain: its data stays at ${env.prefix}/${retained.volume} on node`);
      expect(existsSync(join(env.prefix, retained.volume, 'pgdata', 'PG_VERSION'))).toBe(true);
      expect((await pvOf(retained.volume))?.status?.phase).toBe('Failed');

      await env.core.patchPersistentVolume({ name: retained.volume, body: { spec: { persistentVolumeReclaimPolicy: 'Delete' } } }, mergePatch);
      await until('the Failed Delete PV to be cleaned up and deleted', async () => {
        await reconciler!.tick();
        return !(await pvOf(retained.volume));
      }, 90_000, 1000);
      expect(existsSync(join(env.prefix, retained.volume))).toBe(false);
      expect(env.jobs.of(retained.volume, 'cleanup')).toHaveLength(1);
    } finally {
      made.stop?.();
      await reconciler?.stop();
    }
  }, 180_000);

  test('5. a placeholder in another namespace: refused without the source owner\'s consent, cloned once the source PVC allows that namespace', async () => {
    // The placeholder: an empty pg-reflinker PVC in the clone's namespace naming the real source.
    await env.core.createNamespacedPersistentVolumeClaim({
      namespace: APPS,
      body: {
        metadata: { name: 'prod-data', labels: { 'cnpg.io/pvcRole': 'PG_DATA' }, annotations: { 'pg-reflinker.csi/source': source.instance } },
        spec: { accessModes: ['ReadWriteOnce'], storageClassName: CLASS_CLONE, resources: { requests: { storage: '1Mi' } } },
      },
    });
    await env.waitForBound(APPS, 'prod-data');
    const clone = await createCnpgClone(env, { namespace: APPS, cluster: 'copy', source: 'prod-data', storageClass: CLASS_CLONE });
    const volume = `pvc-${clone.uid}`;
    const refused = await until('a ProvisioningFailed Event asking for the owner\'s consent', async () =>
      (await env.events(APPS, clone.pvc)).find((e) => e.reason === 'ProvisioningFailed' && e.message.includes('pg-reflinker.csi/allow-clone-to')), 60_000);
    expect(refused.message).toContain('PermissionDenied');
    expect(refused.message).toContain(`names source PVC ${NS}/${source.instance}, whose owner has not allowed clones into namespace ${APPS}`);
    await sleep(3000); // several retries by now
    expect((await env.pvc(APPS, clone.pvc))?.status?.phase).toBe('Pending');
    expect(env.jobs.of(volume, 'populate')).toEqual([]);
    expect(existsSync(join(env.prefix, volume))).toBe(false);

    // The source's owner consents.
    await env.core.patchNamespacedPersistentVolumeClaim({ namespace: NS, name: source.instance, body: { metadata: { annotations: { 'pg-reflinker.csi/allow-clone-to': APPS } } } }, mergePatch);
    const pvc = await env.waitForBound(APPS, clone.pvc);
    expect(pvc.spec?.volumeName).toBe(volume);
    const jobs = env.jobs.of(volume, 'populate');
    expect(jobs.map((j) => j.metadata?.namespace)).toEqual([NS]); // in the source's namespace
    expect(readdirSync(join(env.prefix, volume)).sort()).toEqual(['.pgr-populated', 'pgdata']);
    const populated = (await env.events(APPS, clone.pvc)).find((e) => e.reason === 'Populated');
    expect(populated?.message).toContain(`populated from ${NS}/${source.instance} (cluster pg)`);
  }, 180_000);
});
