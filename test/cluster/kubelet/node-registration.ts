// The Node object of the test kubelet and its heartbeat: a Ready condition and a Lease in
// kube-node-lease renewed every few seconds, so the node lifecycle controller never marks it
// unreachable (which would taint it and, after the toleration, evict its pods).
import { arch, release } from 'node:os';
import { CoordinationV1Api, CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1NodeStatus } from '@kubernetes/client-node';
import { POD_IP } from './container-env.js';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const LEASE_NAMESPACE = 'kube-node-lease';
const LEASE_SECONDS = 40;
export const HEARTBEAT_MS = 5_000;

/** A Lease's MicroTime: the API server wants six fractional digits, Date.toISOString gives three. */
const microTime = (d: Date) => d.toISOString().replace(/Z$/, '000Z') as unknown as Date;

function nodeStatus(now: Date, since: Date): V1NodeStatus {
  const condition = (type: string, status: string, reason: string) => ({ type, status, reason, message: 'pg-reflinker test kubelet', lastHeartbeatTime: now, lastTransitionTime: since });
  const resources = { cpu: '2', memory: '8Gi', pods: '110', 'ephemeral-storage': '100Gi' };
  return {
    conditions: [
      condition('Ready', 'True', 'KubeletReady'),
      condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory'),
      condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure'),
      condition('PIDPressure', 'False', 'KubeletHasSufficientPID'),
    ],
    addresses: [{ type: 'InternalIP', address: POD_IP }, { type: 'Hostname', address: 'localhost' }],
    capacity: resources,
    allocatable: resources,
    nodeInfo: {
      machineID: 'pgr-test', systemUUID: 'pgr-test', bootID: 'pgr-test', kernelVersion: release(), osImage: 'host processes',
      containerRuntimeVersion: 'pgr-test-kubelet://0', kubeletVersion: 'pgr-test-kubelet', kubeProxyVersion: '',
      operatingSystem: 'linux', architecture: arch() === 'x64' ? 'amd64' : arch(),
    },
  };
}

export class NodeRegistration {
  private timer?: NodeJS.Timeout;
  private readonly core: CoreV1Api;
  private readonly coordination: CoordinationV1Api;
  private readonly since = new Date();

  constructor(config: KubeConfig, private readonly nodeName: string) {
    this.core = config.makeApiClient(CoreV1Api);
    this.coordination = config.makeApiClient(CoordinationV1Api);
  }

  async register(): Promise<void> {
    const node = await this.core.createNode({
      body: { metadata: { name: this.nodeName, labels: { 'kubernetes.io/hostname': this.nodeName, 'kubernetes.io/os': 'linux' } } },
    });
    await this.core.patchNodeStatus({ name: this.nodeName, body: { status: nodeStatus(new Date(), this.since) } }, mergePatch);
    await this.coordination.createNamespacedLease({
      namespace: LEASE_NAMESPACE,
      body: {
        metadata: { name: this.nodeName, ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: this.nodeName, uid: node.metadata!.uid! }] },
        spec: { holderIdentity: this.nodeName, leaseDurationSeconds: LEASE_SECONDS, renewTime: microTime(new Date()) },
      },
    });
    this.timer = setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
  }

  private async heartbeat(): Promise<void> {
    try {
      const now = new Date();
      await this.coordination.patchNamespacedLease({ name: this.nodeName, namespace: LEASE_NAMESPACE, body: { spec: { renewTime: microTime(now) } } }, mergePatch);
      await this.core.patchNodeStatus({ name: this.nodeName, body: { status: nodeStatus(now, this.since) } }, mergePatch);
    } catch {
      // The next beat retries; a lapse only shows if it lasts the node monitor grace period.
    }
  }

  /** Stops the heartbeat and removes the Node (its Lease goes with it, by owner reference). */
  async deregister(): Promise<void> {
    clearInterval(this.timer);
    await this.core.deleteNode({ name: this.nodeName }).catch(() => undefined);
  }
}
