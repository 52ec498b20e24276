// A kubelet for tests: registers one Node, watches the pods bound to it and runs each for real
// as host processes (test/cluster/kubelet/*), reporting their status to the API server. There
// is no container runtime: images map to host programs through the test's image table.
//
// Supported and not: see test/cluster/README.md ("The test kubelet").
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, Watch, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { ImageTable } from './kubelet/container-env.js';
import { NodeRegistration } from './kubelet/node-registration.js';
import { PodRunner } from './kubelet/pod-runner.js';
import type { ClaimPublisher, ClaimUnpublisher } from './kubelet/pod-volumes.js';

export type { ImageTable, ImageDefaults } from './kubelet/container-env.js';
export type { ClaimPublisher, ClaimUnpublisher } from './kubelet/pod-volumes.js';

export interface TestKubeletOptions {
  config: KubeConfig;
  nodeName: string;
  images: ImageTable;
  publishClaim?: ClaimPublisher;
  unpublishClaim?: ClaimUnpublisher;
  log?: (line: string) => void;
}

const TERMINAL = new Set(['Succeeded', 'Failed']);

export class TestKubelet {
  private readonly core: CoreV1Api;
  private readonly node: NodeRegistration;
  private readonly runners = new Map<string, PodRunner>();
  private readonly forgotten = new Set<string>();
  private readonly dir = mkdtempSync(join(tmpdir(), 'pgr-test-kubelet-'));
  private abortWatch?: () => void;
  private stopped = false;
  private watching: Promise<void> = Promise.resolve();

  private constructor(private readonly options: TestKubeletOptions) {
    this.core = options.config.makeApiClient(CoreV1Api);
    this.node = new NodeRegistration(options.config, options.nodeName);
  }

  static async start(options: TestKubeletOptions): Promise<TestKubelet> {
    const kubelet = new TestKubelet(options);
    try {
      await kubelet.node.register();
      const resourceVersion = await kubelet.syncAll();
      kubelet.watching = kubelet.watchFrom(resourceVersion);
    } catch (err) {
      await kubelet.stop();
      throw err;
    }
    return kubelet;
  }

  get nodeName(): string {
    return this.options.nodeName;
  }

  /** Where a pod's volumes, container roots and logs are (`<dir>/pods/<uid>/containers/<name>/log`). */
  podDir(uid: string): string {
    return join(this.dir, 'pods', uid);
  }

  private log(line: string): void {
    (this.options.log ?? ((l) => console.log(`test kubelet ${this.nodeName}: ${l}`)))(line);
  }

  private fieldSelector(): string {
    return `spec.nodeName=${this.nodeName}`;
  }

  /** Lists this node's pods, handles each, and gives the list's resourceVersion to watch from. */
  private async syncAll(): Promise<string> {
    const list = await this.core.listPodForAllNamespaces({ fieldSelector: this.fieldSelector() });
    for (const pod of list.items) this.handle(pod, false);
    return list.metadata?.resourceVersion ?? '';
  }

  private async watchFrom(resourceVersion: string): Promise<void> {
    while (!this.stopped) {
      const ended = new Promise<void>((resolve) => {
        void new Watch(this.options.config)
          .watch('/api/v1/pods', { fieldSelector: this.fieldSelector(), resourceVersion, allowWatchBookmarks: true },
            (type: string, pod: V1Pod) => {
              if (pod.metadata?.resourceVersion) resourceVersion = pod.metadata.resourceVersion;
              if (type !== 'BOOKMARK') this.handle(pod, type === 'DELETED');
            },
            () => resolve())
          .then((req) => (this.abortWatch = () => req.abort()), () => resolve());
      });
      await ended;
      if (this.stopped) return;
      // A closed or expired watch: list again (handling is idempotent by pod uid) and go on.
      resourceVersion = await this.syncAll().catch(() => resourceVersion);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  private handle(pod: V1Pod, deleted: boolean): void {
    const uid = pod.metadata?.uid;
    if (!uid || this.stopped) return;
    const runner = this.runners.get(uid);
    if (deleted) {
      runner?.stop('Killed', 'the pod was deleted', 0);
      return;
    }
    if (pod.metadata?.deletionTimestamp) {
      if (!runner) void this.forget(pod);
      else {
        runner.stop('Killed', 'the pod was deleted', (pod.metadata.deletionGracePeriodSeconds ?? 30) * 1000);
        void runner.done.then(() => this.forget(pod));
      }
      return;
    }
    if (runner || TERMINAL.has(pod.status?.phase ?? '')) return;
    this.log(`running pod ${pod.metadata?.namespace}/${pod.metadata?.name}`);
    this.runners.set(uid, PodRunner.start({ core: this.core, images: this.options.images, publishClaim: this.options.publishClaim, unpublishClaim: this.options.unpublishClaim, log: (l) => this.log(l) }, pod, join(this.dir, 'pods')));
  }

  /** Finishes a graceful deletion, as kubelet does once the pod's processes are gone. */
  private async forget(pod: V1Pod): Promise<void> {
    const { name = '', namespace = 'default', uid } = pod.metadata ?? {};
    if (!uid || this.forgotten.has(uid)) return;
    this.forgotten.add(uid);
    // The grace period goes in the body: with a body, the API server ignores the query's.
    await this.core.deleteNamespacedPod({ name, namespace, body: { gracePeriodSeconds: 0, preconditions: { uid } } })
      .catch((err: Error) => this.log(`deleting pod ${namespace}/${name}: ${err.message}`));
  }

  /** Kills every pod's processes, deregisters the Node and removes the kubelet's temp dir. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abortWatch?.();
    for (const runner of this.runners.values()) runner.stop('Killed', 'the test kubelet stopped', 500);
    await Promise.all([...this.runners.values()].map((r) => r.done));
    await this.watching;
    await this.node.deregister();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
