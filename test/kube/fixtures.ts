import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { FailedPvReconciler } from '../../src/backends/kube/deletion/failed-pvs.js';
import { createKubeBackendFactory, type KubeFactoryOptions } from '../../src/backends/kube/factory.js';
import type { Config } from '../../src/config.js';
import { loadCsi } from '../../src/csi/proto.js';
import { startDriver, type RunningDriver } from '../../src/driver.js';
import { silentLogger } from '../../src/log.js';
import { FakeKubelet } from '../support/kube-apiserver-kubelet.js';
import { FakeKubeApiServer, startKubeApiServer, type KubeObject } from '../support/kube-apiserver.js';

// A cluster to clone in: an API-server double seeded with CloudNativePG-shaped objects, and the
// controller role serving CSI on a real unix socket, wired to it exactly as in production.

export const DRIVER_NS = 'pg-reflinker';
export const DRIVER_IMAGE = 'registry.example/pg-reflinker:test';
export const PREFIX = '/var/lib/pg-reflinker';
export const PG_IMAGE = 'ghcr.io/cloudnative-pg/postgresql:16.4';
export const TOPOLOGY_KEY = 'topology.pg-reflinker.csi/node';

export interface SourceVolumeFixture {
  namespace: string;
  pvc: string;
  pvName: string;
  volumeId: string;
  node: string;
}

/** A pg-reflinker PV + bound PVC, as the sidecar would have made them. */
export function addVolume(
  api: FakeKubeApiServer,
  opts: { namespace: string; pvc: string; node: string; capacity?: string; labels?: Record<string, string>; annotations?: Record<string, string> },
): SourceVolumeFixture {
  const pvc = api.create('persistentvolumeclaims', {
    metadata: { namespace: opts.namespace, name: opts.pvc, labels: opts.labels, annotations: opts.annotations },
    spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'pg-reflinker-local', resources: { requests: { storage: opts.capacity ?? '10Gi' } } },
  });
  const pvName = `pvc-${pvc.metadata.uid}`;
  const volumeId = `${opts.node}/${pvName}`;
  api.create('persistentvolumes', {
    metadata: { name: pvName, annotations: { 'pv.kubernetes.io/provisioned-by': 'pg-reflinker.csi' }, finalizers: ['kubernetes.io/pv-protection', 'external-provisioner.volume.kubernetes.io/finalizer'] },
    spec: {
      capacity: { storage: opts.capacity ?? '10Gi' },
      accessModes: ['ReadWriteOnce'],
      persistentVolumeReclaimPolicy: 'Delete',
      storageClassName: 'pg-reflinker-local',
      claimRef: { kind: 'PersistentVolumeClaim', namespace: opts.namespace, name: opts.pvc, uid: pvc.metadata.uid },
      csi: { driver: 'pg-reflinker.csi', volumeHandle: volumeId, volumeAttributes: { 'pg-reflinker.csi/kind': 'empty', 'storage.kubernetes.io/csiProvisionerIdentity': '123-pg-reflinker.csi' } },
      nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: TOPOLOGY_KEY, operator: 'In', values: [opts.node] }] }] } },
    },
  });
  api.patch('persistentvolumes', undefined, pvName, { status: { phase: 'Bound' } });
  api.patch('persistentvolumeclaims', opts.namespace, opts.pvc, { spec: { volumeName: pvName }, status: { phase: 'Bound', capacity: { storage: opts.capacity ?? '10Gi' } } });
  return { namespace: opts.namespace, pvc: opts.pvc, pvName, volumeId, node: opts.node };
}

/** A CloudNativePG Cluster with one instance pod using `volume` (its PG_DATA PVC). */
export function addCnpgCluster(api: FakeKubeApiServer, volume: SourceVolumeFixture, opts: { cluster?: string; role?: string; podIP?: string; postgresUID?: number } = {}): KubeObject {
  const cluster = opts.cluster ?? 'pg';
  const created = api.create('clusters.postgresql.cnpg.io', {
    metadata: { namespace: volume.namespace, name: cluster },
    spec: { instances: 2, imageName: 'ghcr.io/cloudnative-pg/postgresql:16', postgresUID: opts.postgresUID ?? 26, postgresGID: opts.postgresUID ?? 26, storage: { size: '10Gi' } },
  });
  api.patch('clusters.postgresql.cnpg.io', volume.namespace, cluster, {
    status: {
      image: PG_IMAGE,
      currentPrimary: `${cluster}-1`,
      certificates: { serverCASecret: `${cluster}-ca`, serverTLSSecret: `${cluster}-server`, clientCASecret: `${cluster}-ca`, replicationTLSSecret: `${cluster}-replication` },
    },
  });
  const pod = api.create('pods', {
    metadata: {
      namespace: volume.namespace,
      name: volume.pvc,
      labels: {
        'cnpg.io/cluster': cluster,
        'cnpg.io/instanceName': volume.pvc,
        'cnpg.io/podRole': 'instance',
        'cnpg.io/instanceRole': opts.role ?? 'replica',
        role: opts.role ?? 'replica',
      },
      // CloudNativePG makes its instance pods controlled by their Cluster.
      ownerReferences: [{ apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', name: cluster, uid: created.metadata.uid!, controller: true, blockOwnerDeletion: true } as never],
    },
    spec: {
      nodeName: volume.node,
      containers: [{ name: 'postgres', image: PG_IMAGE }],
      volumes: [{ name: 'pgdata', persistentVolumeClaim: { claimName: volume.pvc } }],
    },
  });
  api.patch('pods', volume.namespace, pod.metadata.name, {
    status: { phase: 'Running', podIP: opts.podIP ?? '10.0.1.12', conditions: [{ type: 'Ready', status: 'True' }] },
  });
  return api.get('pods', volume.namespace, pod.metadata.name)!;
}

export function seedCluster(api: FakeKubeApiServer, namespaces: string[] = ['db', 'apps', 'other']): void {
  for (const name of ['default', 'kube-system', DRIVER_NS, ...namespaces]) api.create('namespaces', { metadata: { name } });
  for (const name of ['node-a', 'node-b']) {
    api.create('nodes', { metadata: { name, labels: { 'kubernetes.io/hostname': name, [TOPOLOGY_KEY]: name } } });
  }
}

/** The clone's PVC (so Events have something to land on); returns the sidecar's volume name for it. */
export function addClonePvc(api: FakeKubeApiServer, namespace: string, name: string, dataSource: string): { name: string; pvcName: string; namespace: string; uid: string } {
  const pvc = api.create('persistentvolumeclaims', {
    metadata: { namespace, name },
    spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'pg-reflinker', resources: { requests: { storage: '10Gi' } }, dataSource: { kind: 'PersistentVolumeClaim', name: dataSource } },
  });
  return { name: `pvc-${pvc.metadata.uid}`, pvcName: name, namespace, uid: pvc.metadata.uid! };
}

export function cloneRequest(
  name: string,
  sourceVolumeId: string,
  opts: { clonePvc?: { namespace: string; name: string }; requisite?: string[]; parameters?: Record<string, string>; requiredBytes?: number } = {},
): Record<string, unknown> {
  const requisite = (opts.requisite ?? ['node-a', 'node-b']).map((node) => ({ segments: { [TOPOLOGY_KEY]: node } }));
  return {
    name,
    capacity_range: { required_bytes: opts.requiredBytes ?? 10 * 1024 ** 3 },
    volume_capabilities: [{ mount: { fs_type: '' }, access_mode: { mode: 'SINGLE_NODE_WRITER' } }],
    parameters: {
      ...(opts.clonePvc ? { 'csi.storage.k8s.io/pvc/namespace': opts.clonePvc.namespace, 'csi.storage.k8s.io/pvc/name': opts.clonePvc.name, 'csi.storage.k8s.io/pv/name': name } : {}),
      ...opts.parameters,
    },
    volume_content_source: { volume: { volume_id: sourceVolumeId } },
    accessibility_requirements: { requisite, preferred: requisite },
  };
}

export interface RpcError extends Error {
  code: grpc.status;
  details: string;
}

export interface Controller {
  driver: RunningDriver;
  reconciler?: FailedPvReconciler;
  call<T = Record<string, unknown>>(method: string, request: object, deadlineMs?: number): Promise<T>;
  /** GET on the health/metrics endpoint (/metrics, /readyz). */
  http(path: string): Promise<{ status: number; body: string }>;
  stop(): Promise<void>;
}

/** The controller role on a unix socket in a temp dir, talking to `api`. */
export async function startController(api: FakeKubeApiServer, opts: Omit<KubeFactoryOptions, 'kubeConfig'> & { namespacePath?: string[] } = {}): Promise<Controller> {
  const dir = await mkdtemp(join(tmpdir(), 'pgr-kube-'));
  const socketPath = join(dir, 'csi.sock');
  const config: Config = {
    role: 'controller',
    socketPath,
    nodeId: '',
    root: PREFIX,
    logLevel: 'error',
    metricsAddress: '127.0.0.1:0',
    namespacePath: opts.namespacePath ?? [],
    driverNamespace: DRIVER_NS,
    driverImage: DRIVER_IMAGE,
    jobServiceAccount: 'pg-reflinker-jobs',
    volumeId: '',
  };
  let reconciler: FailedPvReconciler | undefined;
  const { namespacePath: _np, ...tuning } = opts;
  const factory = createKubeBackendFactory({
    cloneWaitMs: 300,
    deleteWaitMs: 300,
    failedPvIntervalMs: 0,
    ...tuning,
    kubeConfig: api.kubeConfig(),
    onReconciler: (r) => (reconciler = r),
  });
  const driver = await startDriver(config, silentLogger(), factory);
  const csi = loadCsi();
  const client = new csi.Controller(`unix://${socketPath}`, grpc.credentials.createInsecure()) as unknown as grpc.Client &
    Record<string, (req: object, opts: grpc.CallOptions, cb: (err: RpcError | null, res: unknown) => void) => void>;
  return {
    driver,
    reconciler,
    call<T>(method: string, request: object, deadlineMs = 30_000): Promise<T> {
      return new Promise((resolve, reject) => {
        client[method]!.call(client, request, { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res as T)));
      });
    },
    async http(path: string) {
      const { port } = driver.health!.address() as AddressInfo;
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: res.status, body: await res.text() };
    },
    async stop() {
      await reconciler?.stop();
      client.close();
      await driver.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function startCluster(): Promise<{ api: FakeKubeApiServer; kubelet: FakeKubelet }> {
  const api = await startKubeApiServer();
  seedCluster(api);
  return { api, kubelet: new FakeKubelet(api) };
}

/** Resolves when `predicate` holds (polling the in-memory store, which the test owns). */
export async function until(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export const successLine = (label: string) =>
  JSON.stringify({
    mode: 'online',
    label,
    startLsn: '0/5000028',
    stopLsn: '0/5000138',
    timeline: 1,
    backupFrom: 'standby',
    files: 1052,
    bytes: 3_500_000_000,
    seconds: 2.345,
    checkpointSeconds: 0.5,
    copySeconds: 0.9,
    walSeconds: 0.1,
  });

export const uuid = () => randomUUID();

/** The name the driver's record gives a volume's populator Job (it ends in a random suffix). */
export function recordedJobName(api: FakeKubeApiServer, volumeName: string): string | undefined {
  return (api.get('configmaps', DRIVER_NS, `pgr-clone-${volumeName}`)?.data as Record<string, string> | undefined)?.['job-name'];
}

/** The record's data (a ConfigMap in the driver's namespace). */
export const cloneRecord = (api: FakeKubeApiServer, volumeName: string) => api.get('configmaps', DRIVER_NS, `pgr-clone-${volumeName}`)?.data as Record<string, string> | undefined;

export const populateJobsIn = (api: FakeKubeApiServer, namespace: string) => api.list('jobs.batch', namespace, 'pg-reflinker.csi/role=populate');
