import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { checkPgbenchInvariant, freePort, grantBackup, revokeBackup, startClone, startPgbench } from '../../../testbed/postgres.js';
import { OPENSSL, POSTGRES, ROOT, XFS, describeWithRealParts } from '../../support/requirements.js';
import { CONTROL_PLANE, components } from '../components.js';
import { CLASS_CLONE, DRIVER_NS, E2eCluster, NODE, TOPOLOGY_KEY, sleep, until } from './cluster.js';
import { createCnpgClone, createCnpgSource, type CnpgSource } from './cnpg.js';

// Clones of a live CloudNativePG-shaped PostgreSQL 15 through the real csi-provisioner, our
// controller and node plugin as processes, and Jobs run by the test kubelet (cluster.ts says
// what is real and what the test plays). One cluster and one source database for the file.

const NS = 'db';
const GRANT = 'GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean), pg_backup_stop(boolean) TO streaming_replica';

describeWithRealParts('e2e: CloudNativePG clones on the real control plane', [CONTROL_PLANE, components('csi-provisioner'), ROOT, XFS, POSTGRES, OPENSSL], () => {
  let env: E2eCluster;
  let source: CnpgSource;

  beforeAll(async () => {
    env = await E2eCluster.start({ namespaces: [NS] });
    const t0 = Date.now();
    source = await createCnpgSource(env, NS, 'pg', 4);
    console.log(`source Cluster ${NS}/pg with pgbench (scale 4) ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }, 240_000);

  afterAll(async () => {
    await source?.server.stop();
    await env?.stop();
  }, 120_000);

  const populateJobsNow = async (volume: string) =>
    (await env.batch.listNamespacedJob({ namespace: NS, labelSelector: `pg-reflinker.csi/role=populate,pg-reflinker.csi/volume=${volume}` })).items;

  const cleanupJobs = async (volume: string) =>
    (await env.batch.listNamespacedJob({ namespace: DRIVER_NS, labelSelector: `pg-reflinker.csi/role=cleanup,pg-reflinker.csi/volume=${volume}` })).items;

  test('1. a clone of the live instance binds to pvc-<UID> on the source node after one populator Job, starts with no archive and keeps pgbench\'s invariant', async () => {
    const load = startPgbench(source.server, { clients: 2, jobs: 1 });
    await sleep(1000);
    const t0 = Date.now();
    const clone = await createCnpgClone(env, { namespace: NS, cluster: 'copy', source: source.instance, storageClass: CLASS_CLONE });
    const volume = `pvc-${clone.uid}`;
    const pvc = await env.waitForBound(NS, clone.pvc);
    console.log(`scenario 1: clone PVC bound ${((Date.now() - t0) / 1000).toFixed(1)} s after it was created`);
    await load.stop();

    expect(pvc.spec?.volumeName).toBe(volume);
    const pv = await env.core.readPersistentVolume({ name: volume });
    expect(pv.spec?.csi?.volumeHandle).toBe(`${NODE}/${volume}`);
    expect(pv.spec?.nodeAffinity?.required?.nodeSelectorTerms).toEqual([{ matchExpressions: [{ key: TOPOLOGY_KEY, operator: 'In', values: [NODE] }] }]);
    expect(pv.spec?.persistentVolumeReclaimPolicy).toBe('Retain');
    expect(pv.spec?.csi?.volumeAttributes).toMatchObject({ 'pg-reflinker.csi/kind': 'clone', 'pg-reflinker.csi/mode': 'online', 'pg-reflinker.csi/backupFrom': 'primary' });

    // Exactly one populator Job, ever (the ledger watched every Job the driver made), with one pod that succeeded.
    const jobs = env.jobs.of(volume, 'populate');
    expect(jobs.map((j) => j.metadata?.name)).toHaveLength(1);
    const [job] = await populateJobsNow(volume);
    expect(job?.metadata?.uid).toBe(jobs[0]!.metadata?.uid);
    expect(job?.status).toMatchObject({ succeeded: 1 });
    expect(job?.status?.failed ?? 0).toBe(0);
    expect(job?.spec?.template.spec?.nodeName).toBe(NODE);
    // The populator pod's read-only publication of the source was unpublished when it ended: only the instance pod's remains.
    const instanceOnly = JSON.stringify([`${NODE}/pvc-${source.pvcUid}`]);
    await until('the populator pod\'s publication to be unpublished', async () => JSON.stringify(env.publishedVolumes()) === instanceOnly, 10_000, 100);

    const events = await env.events(NS, clone.pvc);
    const ours = events.filter((e) => e.source === 'pg-reflinker.csi').map((e) => e.reason);
    expect(ours).toEqual(['Populating', 'Populated']);
    expect(events.find((e) => e.reason === 'Populated')?.message).toMatch(/populated from db\/pg-1 \(cluster pg\) on node pgr-e2e-node in [\d.]+ s, backup from primary, LSN/);

    // The clone starts as its own primary from the populator's backup_label and copied WAL.
    const port = await freePort();
    const server = await startClone({ volumeDir: join(env.prefix, volume), port, socketDir: join(env.dir, `sock-clone-${port}`), logFile: join(env.dir, `clone-${port}.log`) });
    try {
      expect(await server.sql('SHOW restore_command')).toBe('');
      expect(await server.sql('SHOW archive_mode')).toBe('off');
      expect(await server.log()).toMatch(/starting backup recovery with redo LSN/);
      const sums = await checkPgbenchInvariant(server);
      expect(sums.historyRows).toBeGreaterThan(0); // pgbench really wrote while the clone was made
      console.log(`scenario 1: clone consistent, ${sums.historyRows} pgbench transactions in it`);
    } finally {
      await server.stop();
    }
  }, 240_000);

  test('3. without the GRANT the clone PVC\'s Events quote it, and nothing is left behind', async () => {
    await revokeBackup(source.server);
    try {
      const clone = await createCnpgClone(env, { namespace: NS, cluster: 'nogrant', source: source.instance, storageClass: CLASS_CLONE });
      const volume = `pvc-${clone.uid}`;
      const failed = await until('a PopulateFailed Event on the clone PVC', async () =>
        (await env.events(NS, clone.pvc)).find((e) => e.reason === 'PopulateFailed'), 90_000);
      expect(failed.type).toBe('Warning');
      expect(failed.message).toContain(GRANT);
      // The sidecar's own Events say it is failing and retrying. (With --timeout=1s the call that
      // finds the failed Job has usually timed out on the sidecar's side, so the GRANT reaches
      // its Events mostly through the next calls' "cleaning up after a failed attempt" message.)
      await until('a ProvisioningFailed Event from the sidecar', async () => (await env.events(NS, clone.pvc)).find((e) => e.reason === 'ProvisioningFailed'), 30_000);
      expect((await env.pvc(NS, clone.pvc))?.status?.phase).toBe('Pending');

      // The user gives up: the PVC goes (the sidecar stops retrying). Whatever attempt was under
      // way ends and is cleaned up; then nothing of the clone remains.
      await env.core.deleteNamespacedPersistentVolumeClaim({ namespace: NS, name: clone.pvc });
      await until('the clone PVC to be gone', async () => !(await env.pvc(NS, clone.pvc)), 30_000);
      await until('no populator Job, record or directory of the clone left', async () => {
        const left = [
          ...(await populateJobsNow(volume)).map((j) => `Job ${j.metadata?.name} (${JSON.stringify(j.status?.conditions?.map((c) => c.type))})`),
          ...(await env.recordNames()).filter((n) => n === `pgr-clone-${volume}`),
          ...(existsSync(join(env.prefix, volume)) ? [`directory ${volume}`] : []),
          ...(await source.server.sql('SELECT slot_name FROM pg_replication_slots')).split('\n').filter(Boolean).map((s) => `slot ${s}`),
          ...(await cleanupJobs(volume)).filter((j) => !j.status?.conditions?.some((c) => c.status === 'True' && (c.type === 'Complete' || c.type === 'Failed'))).map((j) => `running cleanup Job ${j.metadata?.name}`),
        ];
        if (left.length) console.log(`scenario 3: left for now: ${left.join(', ')}`);
        return left.length === 0;
      }, 60_000, 1000);
      // What the design keeps: finished cleanup Jobs (TTL), none still running.
      for (const c of await cleanupJobs(volume)) expect(c.status?.conditions?.filter((x) => x.status === 'True').map((x) => x.type)).toContain('Complete');
      expect(env.jobs.of(volume, 'populate').length).toBeGreaterThanOrEqual(1);
      expect(readdirSync(env.prefix).filter((d) => d.includes(clone.uid))).toEqual([]);
    } finally {
      await grantBackup(source.server);
    }
  }, 240_000);

  test('4. the controller SIGKILLed while its populator Job runs, then restarted: one Job, one volume, the PVC binds', async () => {
    const clone = await createCnpgClone(env, { namespace: NS, cluster: 'killed', source: source.instance, storageClass: CLASS_CLONE });
    const volume = `pvc-${clone.uid}`;
    await until('the populator Job to be created', async () => env.jobs.of(volume, 'populate').length > 0, 60_000, 20);
    await env.controller.stop('SIGKILL');
    const killedAt = Date.now();
    // The Job goes on without the controller (and the sidecar's calls fail meanwhile).
    const [job] = env.jobs.of(volume, 'populate');
    const finished = await until('the populator Job to finish', async () => {
      const j = await env.batch.readNamespacedJob({ namespace: NS, name: job!.metadata!.name! });
      return j.status?.conditions?.find((c) => c.status === 'True' && (c.type === 'Complete' || c.type === 'Failed'));
    }, 90_000);
    expect(finished.type).toBe('Complete');
    await env.startController();
    const pvc = await env.waitForBound(NS, clone.pvc);
    console.log(`scenario 4: bound ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the controller was killed`);

    expect(pvc.spec?.volumeName).toBe(volume);
    expect(env.jobs.of(volume, 'populate').map((j) => j.metadata?.name)).toHaveLength(1);
    const pvs = (await env.core.listPersistentVolume()).items.filter((p) => p.spec?.csi?.volumeHandle === `${NODE}/${volume}`);
    expect(pvs.map((p) => p.metadata?.name)).toEqual([volume]);
    expect(readdirSync(env.prefix).filter((d) => d.includes(clone.uid))).toEqual([volume]);
    expect(readdirSync(join(env.prefix, volume)).sort()).toEqual(['.pgr-populated', 'pgdata']);
    // Populating is recorded just after the Job is made: a controller killed in between never
    // records it (the restarted one adopts the Job). Populated, once, is always there.
    const reasons = (await env.events(NS, clone.pvc)).filter((e) => e.source === 'pg-reflinker.csi').map((e) => e.reason);
    expect(reasons.filter((r) => r !== 'Populating')).toEqual(['Populated']);
  }, 240_000);
});
