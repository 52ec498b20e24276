// A pod's status as the test kubelet reports it: the phase, conditions and one status per
// (init) container, sent whole to the status subresource as a merge patch after each change.
import { PatchStrategy, setHeaderOptions, type CoreV1Api, type V1ContainerStatus, type V1Pod, type V1PodCondition, type V1PodStatus } from '@kubernetes/client-node';
import { POD_IP } from './container-env.js';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export interface Terminated {
  exitCode: number;
  reason: string;
  message: string;
  startedAt: Date;
  finishedAt: Date;
}

type ContainerState = { waiting: string } | { runningSince: Date; pid: number } | { terminated: Terminated };

export class PodStatusReporter {
  private phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' = 'Pending';
  private reason?: string;
  private message?: string;
  private readonly startTime = new Date();
  private readonly init = new Map<string, ContainerState>();
  private readonly main = new Map<string, ContainerState>();
  private sending: Promise<void> = Promise.resolve();

  constructor(private readonly core: CoreV1Api, private readonly pod: V1Pod) {
    for (const c of pod.spec?.initContainers ?? []) this.init.set(c.name, { waiting: 'PodInitializing' });
    for (const c of pod.spec?.containers ?? []) this.main.set(c.name, { waiting: pod.spec?.initContainers?.length ? 'PodInitializing' : 'ContainerCreating' });
  }

  private states(name: string): Map<string, ContainerState> {
    return this.init.has(name) ? this.init : this.main;
  }

  running(name: string, pid: number): Promise<void> {
    this.states(name).set(name, { runningSince: new Date(), pid });
    if (this.main.has(name)) this.phase = 'Running';
    return this.send();
  }

  terminated(name: string, t: Terminated): Promise<void> {
    this.states(name).set(name, { terminated: t });
    return this.send();
  }

  /** The pod's end: Succeeded when every container exited 0, Failed otherwise (restartPolicy Never). */
  finished(phase: 'Succeeded' | 'Failed', reason?: string, message?: string): Promise<void> {
    this.phase = phase;
    this.reason = reason;
    this.message = message;
    // Containers that never started stay waiting, as kubelet leaves them.
    return this.send();
  }

  private containerStatus(name: string, s: ContainerState): V1ContainerStatus {
    const image = [...(this.pod.spec?.initContainers ?? []), ...(this.pod.spec?.containers ?? [])].find((c) => c.name === name)?.image ?? '';
    const common = { name, image, imageID: `pgr-test-kubelet://${image}`, restartCount: 0 };
    if ('waiting' in s) return { ...common, ready: false, started: false, state: { waiting: { reason: s.waiting } } };
    if ('runningSince' in s) {
      return { ...common, containerID: `pgr-test-kubelet://${s.pid}`, ready: true, started: true, state: { running: { startedAt: s.runningSince } } };
    }
    const t = s.terminated;
    return {
      ...common,
      ready: false,
      started: false,
      state: { terminated: { exitCode: t.exitCode, reason: t.reason, message: t.message || undefined, startedAt: t.startedAt, finishedAt: t.finishedAt } },
    };
  }

  private status(): V1PodStatus {
    const now = new Date();
    const initDone = [...this.init.values()].every((s) => 'terminated' in s && s.terminated.exitCode === 0);
    const allReady = this.phase === 'Running' && [...this.main.values()].every((s) => 'runningSince' in s);
    const condition = (type: string, ok: boolean): V1PodCondition => ({ type, status: ok ? 'True' : 'False', lastTransitionTime: now });
    return {
      phase: this.phase,
      reason: this.reason,
      message: this.message,
      hostIP: POD_IP,
      hostIPs: [{ ip: POD_IP }],
      podIP: POD_IP,
      podIPs: [{ ip: POD_IP }],
      startTime: this.startTime,
      conditions: [
        condition('PodScheduled', true),
        condition('Initialized', initDone),
        condition('ContainersReady', allReady),
        condition('Ready', allReady),
      ],
      initContainerStatuses: [...this.init].map(([name, s]) => this.containerStatus(name, s)),
      containerStatuses: [...this.main].map(([name, s]) => this.containerStatus(name, s)),
    };
  }

  /** Sends the current status; patches go out one at a time, in order. */
  private send(): Promise<void> {
    const status = this.status();
    const { name = '', namespace = 'default' } = this.pod.metadata ?? {};
    const next = this.sending.then(async () => {
      try {
        await this.core.patchNamespacedPodStatus({ name, namespace, body: { status } }, mergePatch);
      } catch (err) {
        // The pod may be gone (deleted with its Job): nothing to report to.
        if ((err as { code?: number }).code !== 404) throw err;
      }
    });
    this.sending = next.catch(() => undefined);
    return next;
  }
}
