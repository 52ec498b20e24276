import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { join } from 'node:path';
import { PgServer, checkPgbenchInvariant, freePort, startClone, startPgbench, startStandby } from '../../../testbed/postgres.js';
import { OPENSSL, POSTGRES, ROOT, XFS, describeWithRealParts } from '../../support/requirements.js';
import { CONTROL_PLANE, components } from '../components.js';
import { CLASS_LOCAL, DRIVER, E2eCluster, NODE, PG_IMAGE, mergePatch, sleep, until } from './cluster.js';
import { CNPG_VERSION, SOURCE_PORT, clusterOwner, createCnpgClone, createCnpgSource, type CnpgSource } from './cnpg.js';

// preferStandby end to end: Cluster pg has its primary pg-1 and a real streaming replica pg-2
// (PostgreSQL 15, pg_basebackup -R of the primary), both on pg-reflinker-local volumes; a new
// Cluster bootstrapped from pg-1 through a StorageClass with preferStandby must be populated
// from pg-2 by the real csi-provisioner, our controller and a Job run by the test kubelet, and
// start as a consistent database.
//
// The test kubelet reports every pod IP as 127.0.0.1 and the populator dials port 5432 there,
// so the replica's server listens on 127.0.0.1:5432 and the primary is moved to a unix socket
// (the replica streams from it through that socket): only the replica is reachable at a pod IP.

const NS = 'db';
const CLASS_STANDBY = 'pg-reflinker-standby';

describeWithRealParts('e2e: preferStandby clones a CloudNativePG primary from its streaming replica', [CONTROL_PLANE, components('csi-provisioner'), ROOT, XFS, POSTGRES, OPENSSL], () => {
  let env: E2eCluster;
  let source: CnpgSource;
  let primary: PgServer | undefined;
  let replica: PgServer | undefined;

  beforeAll(async () => {
    env = await E2eCluster.start({ namespaces: [NS] });
    await env.storage.createStorageClass({ body: { metadata: { name: CLASS_STANDBY }, provisioner: DRIVER, volumeBindingMode: 'Immediate', reclaimPolicy: 'Retain', parameters: { preferStandby: 'true' } } });
    source = await createCnpgSource(env, NS, 'pg', 4);
    await source.server.stop();
    primary = await PgServer.start({ dataDir: source.server.dataDir, port: await freePort(), socketDir: source.server.socketDir, logFile: source.server.logFile });
    replica = await addStreamingReplica(env, primary, 'pg-2');
  }, 300_000);

  afterAll(async () => {
    await replica?.stop();
    await primary?.stop();
    await env?.stop();
  }, 120_000);

  /** Instance pg-2 as CloudNativePG makes a replica (PVC and pod controlled by Cluster pg), its server a real standby of `primary`; the Cluster's status lists it healthy. */
  async function addStreamingReplica(e: E2eCluster, from: PgServer, instance: string): Promise<PgServer> {
    const cluster = (await e.custom.getNamespacedCustomObject({ group: 'postgresql.cnpg.io', version: 'v1', namespace: NS, plural: 'clusters', name: 'pg' })) as { metadata: { uid: string } };
    const owner = clusterOwner('pg', cluster.metadata.uid);
    const labels = { 'cnpg.io/cluster': 'pg', 'cnpg.io/instanceName': instance };
    await e.core.createNamespacedPersistentVolumeClaim({
      namespace: NS,
      body: {
        metadata: {
          name: instance,
          labels: { ...labels, 'cnpg.io/pvcRole': 'PG_DATA' },
          annotations: { 'cnpg.io/nodeSerial': '2', 'cnpg.io/operatorVersion': CNPG_VERSION, 'cnpg.io/pvcStatus': 'ready', 'volume.kubernetes.io/selected-node': NODE },
          ownerReferences: [owner],
        },
        spec: { accessModes: ['ReadWriteOnce'], storageClassName: CLASS_LOCAL, volumeMode: 'Filesystem', resources: { requests: { storage: '1Gi' } } },
      },
    });
    const bound = await e.waitForBound(NS, instance);
    await e.core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: instance, labels: { ...labels, 'cnpg.io/podRole': 'instance', 'cnpg.io/instanceRole': 'replica', role: 'replica' }, ownerReferences: [owner] },
        spec: {
          nodeName: NODE,
          restartPolicy: 'Always',
          automountServiceAccountToken: false,
          containers: [{ name: 'postgres', image: PG_IMAGE, command: ['sleep', 'infinity'], volumeMounts: [{ name: 'pgdata', mountPath: '/var/lib/postgresql/data' }] }],
          volumes: [{ name: 'pgdata', persistentVolumeClaim: { claimName: instance } }],
        },
      },
    });
    await until(`replica pod ${NS}/${instance} to run`, async () => {
      const pod = await e.core.readNamespacedPod({ namespace: NS, name: instance });
      return pod.status?.phase === 'Running' && pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    }, 60_000);
    const server = await startStandby(from, { volumeDir: join(e.prefix, bound.spec!.volumeName!), port: SOURCE_PORT, socketDir: join(e.dir, `sock-${instance}`), logFile: join(e.dir, `${instance}.log`) });
    await e.custom.patchNamespacedCustomObjectStatus(
      { group: 'postgresql.cnpg.io', version: 'v1', namespace: NS, plural: 'clusters', name: 'pg', body: { status: { instances: 2, readyInstances: 2, instancesStatus: { healthy: ['pg-1', instance] } } } },
      mergePatch,
    );
    return server;
  }

  test('the clone of pg-1 is populated from replica pg-2 (BACKUP FROM standby), says so, and starts consistent', async () => {
    const load = startPgbench(primary!, { clients: 2, jobs: 1 });
    await sleep(1000);
    const t0 = Date.now();
    const clone = await createCnpgClone(env, { namespace: NS, cluster: 'copy', source: source.instance, storageClass: CLASS_STANDBY });
    const volume = `pvc-${clone.uid}`;
    await env.waitForBound(NS, clone.pvc);
    console.log(`preferStandby: clone PVC bound ${((Date.now() - t0) / 1000).toFixed(1)} s after it was created`);
    await load.stop();

    const pv = await env.core.readPersistentVolume({ name: volume });
    expect(pv.spec?.csi?.volumeAttributes).toMatchObject({
      'pg-reflinker.csi/mode': 'online',
      'pg-reflinker.csi/backupFrom': 'standby',
      'pg-reflinker.csi/clonedInstance': 'pg-2',
      'pg-reflinker.csi/standbyFor': 'pg-1',
      'pg-reflinker.csi/source': `${NS}/pg-2`,
    });
    const jobs = env.jobs.of(volume, 'populate');
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.spec?.template.spec?.volumes?.map((v) => v.persistentVolumeClaim?.claimName)).toContain('pg-2');
    const events = await env.events(NS, clone.pvc);
    // Events carry whole seconds: these three may share one, so their order is not asserted.
    expect(events.filter((e) => e.source === 'pg-reflinker.csi').map((e) => e.reason).sort()).toEqual(['Populated', 'Populating', 'PreferStandby']);
    expect(events.find((e) => e.reason === 'PreferStandby')?.message).toBe('cloning replica pg-2 instead of primary pg-1: preferStandby');

    const port = await freePort();
    const server = await startClone({ volumeDir: join(env.prefix, volume), port, socketDir: join(env.dir, `sock-clone-${port}`), logFile: join(env.dir, `clone-${port}.log`) });
    try {
      expect(await server.sql('SHOW restore_command')).toBe('');
      const sums = await checkPgbenchInvariant(server);
      expect(sums.historyRows).toBeGreaterThan(0);
      console.log(`preferStandby: clone consistent, ${sums.historyRows} pgbench transactions in it`);
    } finally {
      await server.stop();
    }
  }, 240_000);
});
