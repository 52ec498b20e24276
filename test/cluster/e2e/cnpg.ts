// CloudNativePG as the e2e suites play it: there is no operator here, so the test creates what
// CloudNativePG 1.28 would (Cluster objects, TLS Secrets, instance PVCs and pods, a new
// Cluster's first PVC with a dataSource), shaped as CloudNativePG makes them.
//
// The source instance: its PVC is provisioned by csi-provisioner as an empty pg-reflinker-local
// volume (the test sets `volume.kubernetes.io/selected-node`, as the scheduler would), and its
// pod (controlled by the Cluster, labelled as CloudNativePG labels instances, bound to the node)
// is run by the test kubelet, so the node plugin publishes the volume. Its PostgreSQL 15 server,
// though, is a host process the test starts in that volume's directory, listening on
// 127.0.0.1:5432 (the pod IP the test kubelet reports; the populator always dials port 5432):
// CloudNativePG's instance manager (initdb, its certificates copied with postgres as owner,
// readiness from PostgreSQL) has no stand-in here, and the test kubelet has no readiness probes,
// so the pod's container only holds the mount while the test owns the server.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { V1OwnerReference, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { initPrimary, grantBackup, pgbenchInit, postgresUser, type PgServer } from '../../../testbed/postgres.js';
import { createTls } from '../../../testbed/tls.js';
import { CLASS_LOCAL, NODE, PG_IMAGE, mergePatch, until, type E2eCluster } from './cluster.js';

const GROUP = 'postgresql.cnpg.io';
const VERSION = 'v1';
/** The CloudNativePG release whose objects these mimic. */
export const CNPG_VERSION = '1.28.1';
export const SOURCE_PORT = 5432;

export interface CnpgSource {
  namespace: string;
  cluster: string;
  /** The instance (pod and PG_DATA PVC name). */
  instance: string;
  pvcUid: string;
  volumeDir: string;
  server: PgServer;
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

const b64 = (file: string) => readFileSync(file).toString('base64');

export function clusterOwner(name: string, uid: string): V1OwnerReference {
  return { apiVersion: `${GROUP}/${VERSION}`, kind: 'Cluster', name, uid, controller: true, blockOwnerDeletion: true };
}

/** A Cluster object; `status` is set through the status subresource, as the operator does. */
export async function createCluster(env: E2eCluster, namespace: string, name: string, spec: object, status?: object): Promise<string> {
  const created = (await env.custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'clusters', body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'Cluster', metadata: { name, namespace }, spec } })) as { metadata: { uid: string } };
  if (status) await env.custom.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace, plural: 'clusters', name, body: { status } }, mergePatch);
  return created.metadata.uid;
}

/**
 * A one-instance Cluster `cluster` in `namespace` whose primary `<cluster>-1` serves a pgbench
 * database on a pg-reflinker-local volume. `streaming_replica` has the backup GRANT.
 */
export async function createCnpgSource(env: E2eCluster, namespace: string, cluster: string, pgbenchScale: number): Promise<CnpgSource> {
  const pg = postgresUser();
  const instance = `${cluster}-1`;
  // CloudNativePG's secrets: <cluster>-ca (server and client CA by default), <cluster>-server
  // (SANs include <cluster>-rw.<ns>.svc, which the populator verifies), <cluster>-replication
  // (CN=streaming_replica).
  const tls = await createTls(join(env.dir, `tls-${namespace}-${cluster}`), {
    serverNames: [`${cluster}-rw`, `${cluster}-rw.${namespace}`, `${cluster}-rw.${namespace}.svc`, `${cluster}-rw.${namespace}.svc.cluster.local`],
    clientCn: 'streaming_replica',
    serverKeyOwner: { uid: pg.uid, gid: pg.gid },
  });
  const secret = (name: string, type: string, data: Record<string, string>) =>
    env.core.createNamespacedSecret({ namespace, body: { metadata: { name, labels: { 'cnpg.io/cluster': cluster } }, type, data } });
  await secret(`${cluster}-ca`, 'Opaque', { 'ca.crt': b64(tls.caCert), 'ca.key': b64(tls.caKey) });
  await secret(`${cluster}-server`, 'kubernetes.io/tls', { 'tls.crt': b64(tls.serverCert), 'tls.key': b64(tls.serverKey) });
  await secret(`${cluster}-replication`, 'kubernetes.io/tls', { 'tls.crt': b64(tls.clientCert), 'tls.key': b64(tls.clientKey) });

  // postgresUID/GID: this host's postgres account (CloudNativePG's default 26 has no account
  // here, and initdb refuses to run as a uid without one).
  const clusterUid = await createCluster(env, namespace, cluster, {
    instances: 1,
    imageName: PG_IMAGE,
    postgresUID: pg.uid,
    postgresGID: pg.gid,
    storage: { storageClass: CLASS_LOCAL, size: '1Gi' },
  }, {
    image: PG_IMAGE,
    instances: 1,
    readyInstances: 1,
    currentPrimary: instance,
    targetPrimary: instance,
    phase: 'Cluster in healthy state',
    certificates: { serverCASecret: `${cluster}-ca`, serverTLSSecret: `${cluster}-server`, clientCASecret: `${cluster}-ca`, replicationTLSSecret: `${cluster}-replication` },
  });
  const owner = clusterOwner(cluster, clusterUid);
  const instanceLabels = { 'cnpg.io/cluster': cluster, 'cnpg.io/instanceName': instance };

  const pvc = await env.core.createNamespacedPersistentVolumeClaim({
    namespace,
    body: {
      metadata: {
        name: instance,
        labels: { ...instanceLabels, 'cnpg.io/pvcRole': 'PG_DATA' },
        annotations: {
          'cnpg.io/nodeSerial': '1',
          'cnpg.io/operatorVersion': CNPG_VERSION,
          'cnpg.io/pvcStatus': 'ready',
          // The scheduler's choice for a WaitForFirstConsumer claim, played by the test.
          'volume.kubernetes.io/selected-node': NODE,
        },
        ownerReferences: [owner],
      },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: CLASS_LOCAL, volumeMode: 'Filesystem', resources: { requests: { storage: '1Gi' } } },
    },
  });
  const bound = await env.waitForBound(namespace, instance);

  await env.core.createNamespacedPod({
    namespace,
    body: {
      metadata: {
        name: instance,
        labels: { ...instanceLabels, 'cnpg.io/podRole': 'instance', 'cnpg.io/instanceRole': 'primary', role: 'primary' },
        annotations: { 'cnpg.io/operatorVersion': CNPG_VERSION },
        ownerReferences: [owner],
      },
      spec: {
        nodeName: NODE, // the scheduler's choice, played by the test (the PV is pinned there)
        restartPolicy: 'Always',
        automountServiceAccountToken: false,
        securityContext: { runAsUser: pg.uid, runAsGroup: pg.gid, fsGroup: pg.gid },
        containers: [{
          name: 'postgres',
          image: PG_IMAGE,
          // Holds the volume's mount; the server is the test's host process (see the top comment).
          command: ['sleep', 'infinity'],
          volumeMounts: [{ name: 'pgdata', mountPath: '/var/lib/postgresql/data' }],
        }],
        volumes: [{ name: 'pgdata', persistentVolumeClaim: { claimName: instance } }],
      },
    },
  });
  await until(`instance pod ${namespace}/${instance} to run`, async () => {
    const pod = await env.core.readNamespacedPod({ namespace, name: instance });
    return pod.status?.phase === 'Running' && pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  }, 60_000);

  if (!(await portIsFree(SOURCE_PORT))) throw new Error(`port ${SOURCE_PORT} on 127.0.0.1 is in use: the source instance needs it (the populator dials port 5432 at the pod IP, 127.0.0.1 here)`);
  const volumeDir = join(env.prefix, bound.spec!.volumeName!);
  const socketDir = join(env.dir, `sock-${namespace}-${cluster}`);
  const server = await initPrimary({ volumeDir, port: SOURCE_PORT, socketDir, logFile: join(env.dir, `${namespace}-${cluster}.log`), tls });
  await grantBackup(server);
  await pgbenchInit(server, pgbenchScale);
  return { namespace, cluster, instance, pvcUid: pvc.metadata!.uid!, volumeDir, server };
}

export interface CnpgClone {
  namespace: string;
  cluster: string;
  /** `<cluster>-1`, the PVC CloudNativePG creates first. */
  pvc: string;
  uid: string;
}

/**
 * A new Cluster bootstrapped from `bootstrap.recovery.volumeSnapshots.storage` (kind
 * PersistentVolumeClaim) and the PG_DATA PVC CloudNativePG 1.28 creates for its first
 * instance: controlled by the Cluster, its labels and annotations, `dataSource` the named PVC.
 */
export async function createCnpgClone(env: E2eCluster, opts: { namespace: string; cluster: string; source: string; storageClass: string; size?: string }): Promise<CnpgClone> {
  const size = opts.size ?? '1Gi';
  const { namespace, cluster } = opts;
  const uid = await createCluster(env, namespace, cluster, {
    instances: 1,
    imageName: PG_IMAGE,
    postgresUID: postgresUser().uid,
    postgresGID: postgresUser().gid,
    storage: { storageClass: opts.storageClass, size },
    bootstrap: { recovery: { database: 'postgres', owner: 'postgres', volumeSnapshots: { storage: { kind: 'PersistentVolumeClaim', name: opts.source } } } },
  });
  const instance = `${cluster}-1`;
  const pvc: V1PersistentVolumeClaim = {
    metadata: {
      name: instance,
      namespace,
      labels: { 'cnpg.io/cluster': cluster, 'cnpg.io/instanceName': instance, 'cnpg.io/pvcRole': 'PG_DATA' },
      annotations: { 'cnpg.io/nodeSerial': '1', 'cnpg.io/operatorVersion': CNPG_VERSION, 'cnpg.io/pvcStatus': 'initializing' },
      ownerReferences: [clusterOwner(cluster, uid)],
    },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: opts.storageClass,
      volumeMode: 'Filesystem',
      resources: { requests: { storage: size } },
      dataSource: { kind: 'PersistentVolumeClaim', name: opts.source },
    },
  };
  const created = await env.core.createNamespacedPersistentVolumeClaim({ namespace, body: pvc });
  return { namespace, cluster, pvc: instance, uid: created.metadata!.uid! };
}
