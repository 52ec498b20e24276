// Reports the status of a Job's pod the way kubelet would (status subresource), for pods on the
// nodes of these suites, which have no kubelet. The Job controller that made the pod is the real
// one and reacts to what is reported (Job conditions, counters, pod finalizers).
//
// Why not run the pods: a populator pod succeeds only against a live CloudNativePG-like source
// over TLS (the end-to-end suites under test/cluster run that for real); these tests need exact
// outcomes a real populator would not give on demand (given LSNs, a missing GRANT, a failed
// init container, a forged "success", a pod that never stops), so the node's answer is played.
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import type { AdminApi, KubeObject } from './admin-api.js';

export interface FinishOptions {
  exitCode?: number;
  /** What the main container wrote to its termination message. */
  message?: string;
  /** Fail the first init container instead (exit 1, this message). */
  initFailure?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(fn: () => Promise<T | undefined | false>, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

export class KubeletStandIn {
  constructor(private readonly api: AdminApi) {}

  /** The pods the Job controls (by its uid in their controller reference). */
  async pods(namespace: string, jobName: string): Promise<KubeObject[]> {
    const job = await this.api.get<KubeObject & V1Job>('jobs.batch', namespace, jobName);
    if (!job) return [];
    const pods = await this.api.list('pods', namespace, `batch.kubernetes.io/controller-uid=${job.metadata.uid}`);
    return pods.filter((p) => p.metadata.ownerReferences?.some((o) => o.controller && o.uid === job.metadata.uid));
  }

  /** The Job's pod, once the Job controller has made it. */
  async pod(namespace: string, jobName: string): Promise<KubeObject & V1Pod> {
    return until(async () => (await this.pods(namespace, jobName))[0] as (KubeObject & V1Pod) | undefined, 15_000, `a pod of Job ${namespace}/${jobName}`);
  }

  /** The pod runs: init containers done, the main container running. */
  async start(namespace: string, jobName: string): Promise<KubeObject & V1Pod> {
    const pod = await this.pod(namespace, jobName);
    const now = new Date().toISOString();
    const spec = pod.spec!;
    await this.api.patchStatus('pods', namespace, pod.metadata.name, {
      phase: 'Running',
      startTime: now,
      podIP: '127.0.0.1',
      podIPs: [{ ip: '127.0.0.1' }],
      hostIP: '127.0.0.1',
      hostIPs: [{ ip: '127.0.0.1' }],
      conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }],
      initContainerStatuses: (spec.initContainers ?? []).map((c) => ({
        ...common(c.name, c.image ?? ''),
        ready: true,
        state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: now, finishedAt: now } },
      })),
      containerStatuses: spec.containers.map((c) => ({ ...common(c.name, c.image ?? ''), ready: true, started: true, state: { running: { startedAt: now } } })),
    });
    return (await this.api.get('pods', namespace, pod.metadata.name)) as KubeObject & V1Pod;
  }

  /** The pod ends (exit 0: Succeeded, else Failed); resolves once the Job controller has concluded the Job. */
  async finish(namespace: string, jobName: string, opts: FinishOptions = {}): Promise<void> {
    const pod = await this.pod(namespace, jobName);
    const spec = pod.spec!;
    const now = new Date().toISOString();
    const exitCode = opts.initFailure ? 1 : (opts.exitCode ?? 0);
    const ok = exitCode === 0;
    const init = (spec.initContainers ?? []).map((c, i) => ({
      ...common(c.name, c.image ?? ''),
      ready: false,
      state: {
        terminated:
          opts.initFailure && i === 0
            ? { exitCode: 1, reason: 'Error', message: opts.initFailure, startedAt: now, finishedAt: now }
            : { exitCode: 0, reason: 'Completed', startedAt: now, finishedAt: now },
      },
    }));
    const main = spec.containers.map((c) => ({
      ...common(c.name, c.image ?? ''),
      ready: false,
      started: false,
      state: opts.initFailure
        ? { waiting: { reason: 'PodInitializing' } }
        : { terminated: { exitCode, reason: ok ? 'Completed' : 'Error', ...(opts.message !== undefined ? { message: opts.message } : {}), startedAt: now, finishedAt: now } },
    }));
    await this.api.patchStatus('pods', namespace, pod.metadata.name, {
      phase: ok ? 'Succeeded' : 'Failed',
      startTime: pod.status?.startTime ?? now,
      conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: now }],
      initContainerStatuses: init,
      containerStatuses: main,
    });
    await until(
      async () => {
        const job = await this.api.get<KubeObject & V1Job>('jobs.batch', namespace, jobName);
        const s = job?.status;
        return !!s?.conditions?.some((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True') && !s.active && !s.terminating;
      },
      15_000,
      `the Job controller to conclude Job ${namespace}/${jobName}`,
    );
  }
}

const common = (name: string, image: string) => ({ name, image, imageID: `docker-pullable://${image}`, restartCount: 0 });
