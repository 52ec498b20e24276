// One cluster for an e2e suite file, every part real where it can run here:
//   control plane (etcd, kube-apiserver, kube-controller-manager) from test/cluster/control-plane.ts;
//   a real XFS (reflink=1) loop filesystem whose `volumes/` directory is HOSTPATH_PREFIX;
//   `pg-reflinker node` (our node plugin) on its own socket, called by the test kubelet's
//     publishClaim/unpublishClaim the way kubelet calls NodePublishVolume/NodeUnpublishVolume;
//   `pg-reflinker controller` as a process with a kubeconfig whose user has exactly the chart's
//     RBAC (src/backends/kube/rbac.ts), on its own socket;
//   csi-provisioner v6.3.0 on that socket (--extra-create-metadata, no leader election,
//     --timeout=1s so that every long CreateVolume is retried);
//   the test kubelet, which runs the populator and cleanup Jobs the controller renders (the
//     PostgreSQL image is PostgreSQL 15's binaries here, the driver image is this build).
// Played by the test, because nothing here runs them: node-driver-registrar + kubelet's CSINode
// and topology label (created once below), and the scheduler (selected-node, spec.nodeName).
import { chmodSync, mkdirSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import {
  ApiextensionsV1Api,
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  RbacAuthorizationV1Api,
  StorageV1Api,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type KubeConfig,
  type V1Job,
  type V1PersistentVolumeClaim,
  type V1Pod,
  type V1Volume,
} from '@kubernetes/client-node';
import { CONTROLLER_NAMESPACE_RBAC_RULES, CONTROLLER_RBAC_RULES } from '../../../src/backends/kube/rbac.js';
import { createLoopFs, type LoopFs } from '../../../testbed/xfs.js';
import { csiClient, type CsiClient } from '../../support/csi-client.js';
import { MAIN } from '../../support/driver-process.js';
import { componentPath } from '../components.js';
import { startControlPlane, type ControlPlane } from '../control-plane.js';
import { TestKubelet } from '../kubelet.js';
import { PG_BIN } from '../../../testbed/postgres.js';
import { startProc, waitForSocket, type Proc } from './processes.js';

export const NODE = 'pgr-e2e-node';
export const DRIVER = 'pg-reflinker.csi';
export const TOPOLOGY_KEY = 'topology.pg-reflinker.csi/node';
export const DRIVER_NS = 'pg-reflinker';
export const DRIVER_IMAGE = 'ghcr.io/pg-reflinker/pg-reflinker:0.1.0';
export const PG_IMAGE = 'ghcr.io/cloudnative-pg/postgresql:15.10';
export const CLASS_LOCAL = 'pg-reflinker-local';
export const CLASS_CLONE = 'pg-reflinker';
export const CLASS_CLONE_DELETE = 'pg-reflinker-delete';
export const CONTROLLER_USER = 'pg-reflinker-controller';

/** RFC 7386 merge patches (the client's default patch type is JSON patch). */
export const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a value other than undefined/false. */
export async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 90_000, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

export interface ClusterOptions {
  namespaces: string[];
  /** The controller's --namespace-path. */
  namespacePath?: string[];
  sizeMb?: number;
}

/** Every Job the driver made while the suite ran (by uid), seen through a watch: deleted ones too. */
export class JobLedger {
  readonly seen = new Map<string, V1Job>();
  private abort?: () => void;
  private stopped = false;

  constructor(private readonly cluster: { kubeConfig: () => KubeConfig }) {}

  async start(): Promise<void> {
    const loop = async () => {
      while (!this.stopped) {
        await new Promise<void>((resolve) => {
          void new Watch(this.cluster.kubeConfig())
            .watch('/apis/batch/v1/jobs', { labelSelector: 'app.kubernetes.io/managed-by=pg-reflinker.csi' }, (_type: string, job: V1Job) => {
              if (job.metadata?.uid) this.seen.set(job.metadata.uid, job);
            }, () => resolve())
            .then((req) => (this.abort = () => req.abort()), () => resolve());
        });
      }
    };
    void loop();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.();
  }

  /** The Jobs of one volume and role (`populate` or `cleanup`), each once. */
  of(volume: string, role: 'populate' | 'cleanup'): V1Job[] {
    return [...this.seen.values()].filter((j) => j.metadata?.labels?.['pg-reflinker.csi/volume'] === volume && j.metadata?.labels?.['pg-reflinker.csi/role'] === role);
  }
}

export class E2eCluster {
  readonly core: CoreV1Api;
  readonly batch: BatchV1Api;
  readonly storage: StorageV1Api;
  readonly custom: CustomObjectsApi;
  readonly jobs: JobLedger;
  controller!: Proc;
  provisioner!: Proc;
  node!: Proc;
  kubelet!: TestKubelet;
  nodeClient!: CsiClient;
  private readonly published = new Map<string, string>(); // target path → volume id
  private stopping = false;
  provisionerRestarts = 0;

  private constructor(
    readonly cp: ControlPlane,
    readonly fs: LoopFs,
    readonly prefix: string,
    readonly dir: string,
    private readonly options: ClusterOptions,
  ) {
    const config = cp.kubeConfig();
    this.core = config.makeApiClient(CoreV1Api);
    this.batch = config.makeApiClient(BatchV1Api);
    this.storage = config.makeApiClient(StorageV1Api);
    this.custom = config.makeApiClient(CustomObjectsApi);
    this.jobs = new JobLedger(cp);
  }

  static async start(options: ClusterOptions): Promise<E2eCluster> {
    const t0 = Date.now();
    const [cp, fs] = await Promise.all([startControlPlane(), createLoopFs({ kind: 'xfs', sizeMb: options.sizeMb ?? 2048 })]);
    const prefix = join(fs.mountPoint, 'volumes');
    mkdirSync(prefix);
    const dir = mkdtempSync(join(fs.base, 'run-'));
    chmodSync(dir, 0o755); // postgres reads its certificates and writes its log here
    const cluster = new E2eCluster(cp, fs, prefix, dir, options);
    try {
      await cluster.setUp();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    console.log(`e2e cluster ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return cluster;
  }

  private get controllerSocket(): string {
    return join(this.dir, 'controller.sock');
  }

  private async setUp(): Promise<void> {
    const config = this.cp.kubeConfig();
    for (const name of [DRIVER_NS, ...this.options.namespaces]) await this.core.createNamespace({ body: { metadata: { name } } });
    await this.installCnpgCrd();
    await this.grantControllerRbac();
    await this.storage.createCSIDriver({ body: { metadata: { name: DRIVER }, spec: { attachRequired: false, podInfoOnMount: false, volumeLifecycleModes: ['Persistent'] } } });
    const sc = (name: string, binding: string, reclaimPolicy: string) =>
      this.storage.createStorageClass({ body: { metadata: { name }, provisioner: DRIVER, volumeBindingMode: binding, reclaimPolicy } });
    await sc(CLASS_LOCAL, 'WaitForFirstConsumer', 'Delete');
    await sc(CLASS_CLONE, 'Immediate', 'Retain');
    await sc(CLASS_CLONE_DELETE, 'Immediate', 'Delete');

    const nodeSocket = join(this.dir, 'node.sock');
    this.node = startProc('node plugin', process.execPath, [MAIN, 'node', '--endpoint', `unix://${nodeSocket}`, '--node-id', NODE, '--root', this.prefix, '--log-level', 'debug'], { logFile: join(this.dir, 'node.log') });
    await waitForSocket(this.node, nodeSocket);
    this.nodeClient = csiClient(nodeSocket);

    this.kubelet = await TestKubelet.start({
      config,
      nodeName: NODE,
      images: {
        [DRIVER_IMAGE.replace(/:[^:/]*$/, '')]: { entrypoint: [process.execPath, MAIN] },
        // The CloudNativePG PostgreSQL image: this host's PostgreSQL 15 (psql, pg_* and GNU tools).
        [PG_IMAGE.replace(/:[^:/]*$/, '')]: { env: { PATH: `${PG_BIN}:/usr/local/bin:/usr/bin:/bin` } },
      },
      publishClaim: (pod, volume) => this.publishClaim(pod, volume),
      unpublishClaim: (_pod, _volume, target) => this.unpublishClaim(target),
      log: (line) => { if (process.env.PGR_E2E_VERBOSE) console.log(`kubelet: ${line}`); },
    });
    // node-driver-registrar and kubelet would publish the driver's topology: CSINode keys, Node label.
    await this.core.patchNode({ name: NODE, body: { metadata: { labels: { [TOPOLOGY_KEY]: NODE } } } }, mergePatch);
    await this.storage.createCSINode({ body: { metadata: { name: NODE }, spec: { drivers: [{ name: DRIVER, nodeID: NODE, topologyKeys: [TOPOLOGY_KEY] }] } } });

    await this.startController();
    this.startProvisioner();
    await this.jobs.start();
  }

  /**
   * csi-provisioner exits when it loses its CSI connection (the controller killed): kubelet would
   * restart the sidecar container, so the test does, after a second.
   */
  private startProvisioner(): void {
    const proc = startProc('csi-provisioner', componentPath('csi-provisioner'), [
      `--csi-address=${this.controllerSocket}`,
      `--kubeconfig=${this.cp.adminKubeconfigPath}`,
      '--extra-create-metadata',
      '--leader-election=false',
      '--timeout=1s',
      '--retry-interval-start=500ms',
      '--retry-interval-max=3s',
      '--v=3',
    ], { logFile: join(this.dir, 'csi-provisioner.log') });
    this.provisioner = proc;
    proc.child.once('exit', (code, signal) => {
      if (this.stopping) return;
      this.provisionerRestarts++;
      console.log(`csi-provisioner exited (${code ?? signal}); restarting it as kubelet would`);
      setTimeout(() => { if (!this.stopping) this.startProvisioner(); }, 1000);
    });
  }

  /** `pg-reflinker controller` as a process, authenticated as a user bound to exactly the chart's rules. */
  async startController(): Promise<void> {
    const kubeconfig = this.cp.kubeconfigFileFor(CONTROLLER_USER);
    this.controller = startProc('controller', process.execPath, [
      MAIN, 'controller',
      '--endpoint', `unix://${this.controllerSocket}`,
      '--root', this.prefix,
      '--driver-namespace', DRIVER_NS,
      '--driver-image', DRIVER_IMAGE,
      '--namespace-path', (this.options.namespacePath ?? []).join(','),
      '--log-level', 'debug',
    ], { env: { KUBECONFIG: kubeconfig }, logFile: join(this.dir, 'controller.log') });
    await waitForSocket(this.controller, this.controllerSocket);
  }

  private async installCnpgCrd(): Promise<void> {
    const api = this.cp.kubeConfig().makeApiClient(ApiextensionsV1Api);
    // Only what the driver reads matters: spec and status are kept as given. (The client's
    // model spells the field x_kubernetes_preserve_unknown_fields; it drops the JSON spelling.)
    const open = { type: 'object', x_kubernetes_preserve_unknown_fields: true };
    const schema = { type: 'object', properties: { spec: open, status: open } };
    await api.createCustomResourceDefinition({
      body: {
        metadata: { name: 'clusters.postgresql.cnpg.io' },
        spec: {
          group: 'postgresql.cnpg.io',
          scope: 'Namespaced',
          names: { plural: 'clusters', singular: 'cluster', kind: 'Cluster', listKind: 'ClusterList' },
          versions: [{ name: 'v1', served: true, storage: true, subresources: { status: {} }, schema: { openAPIV3Schema: schema } }],
        },
      },
    });
    await until('the Cluster CRD to be established', async () => {
      const crd = await api.readCustomResourceDefinition({ name: 'clusters.postgresql.cnpg.io' });
      return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
    }, 30_000, 100);
  }

  private async grantControllerRbac(): Promise<void> {
    const rbac = this.cp.kubeConfig().makeApiClient(RbacAuthorizationV1Api);
    const subjects = [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: CONTROLLER_USER }];
    await rbac.createClusterRole({ body: { metadata: { name: CONTROLLER_USER }, rules: [...CONTROLLER_RBAC_RULES] } });
    await rbac.createClusterRoleBinding({ body: { metadata: { name: CONTROLLER_USER }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: CONTROLLER_USER }, subjects } });
    await rbac.createNamespacedRole({ namespace: DRIVER_NS, body: { metadata: { name: `${CONTROLLER_USER}-records` }, rules: [...CONTROLLER_NAMESPACE_RBAC_RULES] } });
    await rbac.createNamespacedRoleBinding({ namespace: DRIVER_NS, body: { metadata: { name: `${CONTROLLER_USER}-records` }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `${CONTROLLER_USER}-records` }, subjects } });
  }

  /** kubelet's NodePublishVolume for a pod's claim: our node plugin bind-mounts the volume at a fresh target. */
  private async publishClaim(pod: V1Pod, volume: V1Volume): Promise<string> {
    const claim = volume.persistentVolumeClaim!;
    const pvc = await this.core.readNamespacedPersistentVolumeClaim({ namespace: pod.metadata!.namespace!, name: claim.claimName });
    if (pvc.status?.phase !== 'Bound' || !pvc.spec?.volumeName) throw new Error(`claim ${claim.claimName} is not bound`);
    const pv = await this.core.readPersistentVolume({ name: pvc.spec.volumeName });
    const csi = pv.spec?.csi;
    if (csi?.driver !== DRIVER) throw new Error(`PV ${pv.metadata?.name} is not a ${DRIVER} volume`);
    const target = join(mkdtempSync(join(this.dir, 'target-')), 'mount');
    await this.nodeClient.node('NodePublishVolume', {
      volume_id: csi.volumeHandle,
      target_path: target,
      volume_capability: { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } },
      readonly: claim.readOnly ?? false,
      volume_context: csi.volumeAttributes ?? {},
    });
    this.published.set(target, csi.volumeHandle);
    return target;
  }

  /** The volume ids our node plugin has published and not unpublished, one entry per target. */
  publishedVolumes(): string[] {
    return [...this.published.values()];
  }

  private async unpublishClaim(target: string): Promise<void> {
    const volumeId = this.published.get(target);
    if (!volumeId) return;
    await this.nodeClient.node('NodeUnpublishVolume', { volume_id: volumeId, target_path: target });
    this.published.delete(target);
  }

  async pvc(namespace: string, name: string): Promise<V1PersistentVolumeClaim | undefined> {
    return this.core.readNamespacedPersistentVolumeClaim({ namespace, name }).catch(() => undefined);
  }

  async waitForBound(namespace: string, name: string, timeoutMs = 120_000): Promise<V1PersistentVolumeClaim> {
    return until(`PVC ${namespace}/${name} to bind`, async () => {
      const pvc = await this.pvc(namespace, name);
      return pvc?.status?.phase === 'Bound' ? pvc : undefined;
    }, timeoutMs).catch((err: Error) => {
      throw new Error(`${err.message}\n--- controller ---\n${this.controller.tail(15)}\n--- csi-provisioner ---\n${this.provisioner.tail(15)}`);
    });
  }

  /** Events on an object: reason and message, oldest first. */
  async events(namespace: string, name: string): Promise<{ reason: string; type: string; message: string; source: string }[]> {
    const list = await this.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` });
    return list.items
      .sort((a, b) => String(a.firstTimestamp ?? a.eventTime ?? '').localeCompare(String(b.firstTimestamp ?? b.eventTime ?? '')))
      .map((e) => ({ reason: e.reason ?? '', type: e.type ?? '', message: e.message ?? '', source: e.source?.component ?? e.reportingComponent ?? '' }));
  }

  /** The clone records (ConfigMaps `pgr-clone-*`) in the driver's namespace. */
  async recordNames(): Promise<string[]> {
    const list = await this.core.listNamespacedConfigMap({ namespace: DRIVER_NS });
    return list.items.map((c) => c.metadata!.name!).filter((n) => n.startsWith('pgr-clone-'));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.jobs.stop();
    await this.provisioner?.stop();
    await this.controller?.stop();
    await this.kubelet?.stop().catch((err: Error) => console.warn(`test kubelet stop: ${err.message}`));
    this.nodeClient?.close();
    await this.node?.stop();
    await this.cp.stop();
    await this.fs.teardown();
  }
}
