import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll } from '@jest/globals';
import type { KubeConfig } from '@kubernetes/client-node';
import type { FailedPvReconciler } from '../../src/backends/kube/deletion/failed-pvs.js';
import { createKubeBackendFactory, type KubeFactoryOptions } from '../../src/backends/kube/factory.js';
import type { Config } from '../../src/config.js';
import { loadCsi } from '../../src/csi/proto.js';
import { startDriver, type RunningDriver } from '../../src/driver.js';
import { silentLogger } from '../../src/log.js';
import { describeWithRealParts, type Requirement } from '../support/requirements.js';
import type { AdminApi, KubeObject } from './admin-api.js';
import { KUBE_SUITE_NEEDS, TOPOLOGY_KEY, startKubeCluster, type KubeCluster, type World } from './kube-cluster.js';
import { KubeletStandIn } from './kubelet-stand-in.js';

export { TOPOLOGY_KEY } from './kube-cluster.js';
export { until } from './kubelet-stand-in.js';
export type { KubeObject } from './admin-api.js';

// A cluster to clone in: the real control plane (kube-cluster.ts) with CloudNativePG-shaped
// objects made by the test as their owners would make them, and the controller role serving
// CSI on a real unix socket, wired to the API exactly as in production (the chart's RBAC).

export const DRIVER_IMAGE = 'registry.example/pg-reflinker:test';
export const PREFIX = '/var/lib/pg-reflinker';
export const PG_IMAGE = 'ghcr.io/cloudnative-pg/postgresql:16.4';

/** What one test works with: the admin API, its own namespaces, the node's stand-in. */
export interface TestEnv {
  k: KubeCluster;
  api: AdminApi;
  w: World;
  kubelet: KubeletStandIn;
}

export interface Suite {
  /** A fresh world (namespaces, controller identity) for one test. */
  env(): Promise<TestEnv>;
  /** Controllers started by the current test, stopped after it. */
  controllers: Controller[];
  cluster(): KubeCluster;
}

/** A suite on its own real control plane (fails in CI, skips elsewhere, when the parts are missing). */
export function describeOnRealApiServer(title: string, body: (suite: Suite) => void, alsoNeeds: Requirement[] = []): void {
  describeWithRealParts(title, [...KUBE_SUITE_NEEDS, ...alsoNeeds], () => {
    let k: KubeCluster | undefined;
    const controllers: Controller[] = [];
    beforeAll(async () => {
      k = await startKubeCluster();
    }, 120_000);
    afterEach(async () => {
      for (const c of controllers.splice(0)) await c.stop();
    });
    afterAll(async () => {
      await k?.stop();
    }, 60_000);
    body({
      controllers,
      cluster: () => k!,
      async env() {
        const w = await k!.world();
        return { k: k!, api: k!.admin, w, kubelet: new KubeletStandIn(k!.admin) };
      },
    });
  });
}

export interface SourceVolumeFixture {
  namespace: string;
  pvc: string;
  pvName: string;
  volumeId: string;
  node: string;
}

/** A pg-reflinker PV + bound PVC, as the sidecar and the PV controller would have left them. */
export async function addVolume(
  { api }: TestEnv,
  opts: { namespace: string; pvc: string; node: string; capacity?: string; labels?: Record<string, string>; annotations?: Record<string, string> },
): Promise<SourceVolumeFixture> {
  const capacity = opts.capacity ?? '10Gi';
  const pvc = await api.create('persistentvolumeclaims', {
    metadata: { namespace: opts.namespace, name: opts.pvc, labels: opts.labels, annotations: opts.annotations },
    spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'pg-reflinker-local', resources: { requests: { storage: capacity } } },
  });
  const pvName = `pvc-${pvc.metadata.uid}`;
  const volumeId = `${opts.node}/${pvName}`;
  await api.create('persistentvolumes', {
    metadata: { name: pvName, annotations: { 'pv.kubernetes.io/provisioned-by': 'pg-reflinker.csi' }, finalizers: ['external-provisioner.volume.kubernetes.io/finalizer'] },
    spec: {
      capacity: { storage: capacity },
      accessModes: ['ReadWriteOnce'],
      persistentVolumeReclaimPolicy: 'Delete',
      storageClassName: 'pg-reflinker-local',
      claimRef: { kind: 'PersistentVolumeClaim', apiVersion: 'v1', namespace: opts.namespace, name: opts.pvc, uid: pvc.metadata.uid },
      csi: { driver: 'pg-reflinker.csi', volumeHandle: volumeId, volumeAttributes: { 'pg-reflinker.csi/kind': 'empty', 'storage.kubernetes.io/csiProvisionerIdentity': '123-pg-reflinker.csi' } },
      nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: TOPOLOGY_KEY, operator: 'In', values: [opts.node] }] }] } },
    },
  });
  // The PV controller's part: the binding, and both phases.
  await api.patchStatus('persistentvolumes', undefined, pvName, { phase: 'Bound' });
  await api.patch('persistentvolumeclaims', opts.namespace, opts.pvc, { spec: { volumeName: pvName } });
  await api.patchStatus('persistentvolumeclaims', opts.namespace, opts.pvc, { phase: 'Bound', accessModes: ['ReadWriteOnce'], capacity: { storage: capacity } });
  return { namespace: opts.namespace, pvc: opts.pvc, pvName, volumeId, node: opts.node };
}

/** A CloudNativePG Cluster with one instance pod using `volume` (its PG_DATA PVC), as CloudNativePG and kubelet leave them. */
export async function addCnpgCluster(
  { api }: TestEnv,
  volume: SourceVolumeFixture,
  opts: { cluster?: string; role?: string; podIP?: string; postgresUID?: number } = {},
): Promise<KubeObject> {
  const cluster = opts.cluster ?? 'pg';
  const created = await api.create('clusters.postgresql.cnpg.io', {
    metadata: { namespace: volume.namespace, name: cluster },
    spec: { instances: 2, imageName: 'ghcr.io/cloudnative-pg/postgresql:16', postgresUID: opts.postgresUID ?? 26, postgresGID: opts.postgresUID ?? 26, storage: { size: '10Gi' } },
  });
  await api.patchStatus('clusters.postgresql.cnpg.io', volume.namespace, cluster, {
    image: PG_IMAGE,
    currentPrimary: `${cluster}-1`,
    certificates: { serverCASecret: `${cluster}-ca`, serverTLSSecret: `${cluster}-server`, clientCASecret: `${cluster}-ca`, replicationTLSSecret: `${cluster}-replication` },
  });
  const pod = await api.create('pods', {
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
      ownerReferences: [{ apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', name: cluster, uid: created.metadata.uid!, controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      nodeName: volume.node,
      containers: [{ name: 'postgres', image: PG_IMAGE }],
      volumes: [{ name: 'pgdata', persistentVolumeClaim: { claimName: volume.pvc } }],
    },
  });
  const ip = opts.podIP ?? '10.0.1.12';
  await api.patchStatus('pods', volume.namespace, pod.metadata.name, {
    phase: 'Running',
    podIP: ip,
    podIPs: [{ ip }],
    conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date().toISOString() }],
  });
  return (await api.get('pods', volume.namespace, pod.metadata.name))!;
}

/** A running pod (kubelet's report included) that mounts `claimName`, for tests of who uses a source. */
export async function addRunningPod(
  { api }: TestEnv,
  opts: { namespace: string; name: string; labels?: Record<string, string>; claimName?: string; owner?: KubeObject; node?: string },
): Promise<KubeObject> {
  const owner = opts.owner;
  const pod = await api.create('pods', {
    metadata: {
      namespace: opts.namespace,
      name: opts.name,
      labels: opts.labels,
      ...(owner ? { ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: owner.metadata.name, uid: owner.metadata.uid!, controller: true }] } : {}),
    },
    spec: {
      nodeName: opts.node ?? 'node-a',
      containers: [{ name: 'app', image: 'app' }],
      volumes: opts.claimName ? [{ name: 'd', persistentVolumeClaim: { claimName: opts.claimName } }] : [],
    },
  });
  await api.patchStatus('pods', opts.namespace, pod.metadata.name, { phase: 'Running' });
  return (await api.get('pods', opts.namespace, pod.metadata.name))!;
}

/** The clone's PVC (so Events have something to land on); returns the sidecar's volume name for it. */
export async function addClonePvc(
  { api }: TestEnv,
  namespace: string,
  name: string,
  dataSource: string,
  meta: Pick<KubeObject["metadata"], "labels" | "ownerReferences"> = {},
): Promise<{ name: string; pvcName: string; namespace: string; uid: string }> {
  const pvc = await api.create('persistentvolumeclaims', {
    metadata: { namespace, name, ...meta },
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

export type ControllerOptions = Omit<KubeFactoryOptions, 'kubeConfig'> & {
  namespacePath?: string[];
  /** Default: the chart's controller ServiceAccount of the test's world. */
  kubeConfig?: KubeConfig;
  /** HOSTPATH_PREFIX (default PREFIX). */
  root?: string;
};

/** The controller role on a unix socket in a temp dir, as the world's controller ServiceAccount; stopped after the test. */
export async function startController(suite: Suite, { w }: TestEnv, opts: ControllerOptions = {}): Promise<Controller> {
  const dir = await mkdtemp(join(tmpdir(), 'pgr-kube-'));
  const socketPath = join(dir, 'csi.sock');
  const config: Config = {
    role: 'controller',
    socketPath,
    nodeId: '',
    root: opts.root ?? PREFIX,
    logLevel: 'error',
    metricsAddress: '127.0.0.1:0',
    namespacePath: opts.namespacePath ?? [],
    driverNamespace: w.driver,
    driverImage: DRIVER_IMAGE,
    // The chart's default: Job pods run as each namespace's `default` ServiceAccount.
    jobServiceAccount: 'default',
    volumeId: '',
  };
  let reconciler: FailedPvReconciler | undefined;
  const { namespacePath: _np, kubeConfig, root: _root, ...tuning } = opts;
  const factory = createKubeBackendFactory({
    cloneWaitMs: 300,
    deleteWaitMs: 300,
    failedPvIntervalMs: 0,
    ...tuning,
    kubeConfig: kubeConfig ?? w.controllerConfig,
    onReconciler: (r) => (reconciler = r),
  });
  const driver = await startDriver(config, silentLogger(), factory);
  const csi = loadCsi();
  const client = new csi.Controller(`unix://${socketPath}`, grpc.credentials.createInsecure()) as unknown as grpc.Client &
    Record<string, (req: object, opts: grpc.CallOptions, cb: (err: RpcError | null, res: unknown) => void) => void>;
  const controller: Controller = {
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
  suite.controllers.push(controller);
  return controller;
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

/** The record's data (a ConfigMap in the driver's namespace). */
export async function cloneRecord({ api, w }: TestEnv, volumeName: string): Promise<Record<string, string> | undefined> {
  return (await api.get('configmaps', w.driver, `pgr-clone-${volumeName}`))?.data as Record<string, string> | undefined;
}

/** The name the driver's record gives a volume's populator Job (it ends in a random suffix). */
export async function recordedJobName(t: TestEnv, volumeName: string): Promise<string | undefined> {
  return (await cloneRecord(t, volumeName))?.['job-name'];
}

export const populateJobsIn = ({ api }: TestEnv, namespace: string) => api.list('jobs.batch', namespace, 'pg-reflinker.csi/role=populate');

/** What the controller asked the API server so far (kube-apiserver's audit log, given a moment to be written). */
export async function controllerRequests({ k, w }: TestEnv) {
  await new Promise((r) => setTimeout(r, 250));
  return k.audit.requestsOf(w.controllerUser);
}

/** How many times the controller asked to create a Job in `namespace`. */
export const jobCreates = async (t: TestEnv, namespace: string) =>
  (await controllerRequests(t)).filter((r) => r.verb === 'create' && r.objectRef?.resource === 'jobs' && r.objectRef.namespace === namespace).length;

/** Every Job in the test's namespaces. */
export async function jobsInWorld({ api, w }: TestEnv) {
  return (await Promise.all([w.db, w.apps, w.other, w.driver].map((ns) => api.list('jobs.batch', ns)))).flat();
}

/** Events on the clone's PVC, as `kubectl describe pvc` lists them. */
export async function eventsOn({ api }: TestEnv, namespace: string, pvcName: string) {
  return (await api.list('events', namespace))
    .filter((e) => (e.involvedObject as { name: string }).name === pvcName)
    // In the order they were recorded (a list is ordered by name).
    .sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion))
    .map((e) => ({ reason: e.reason as string, type: e.type as string, message: e.message as string, uid: (e.involvedObject as { uid?: string }).uid }));
}
