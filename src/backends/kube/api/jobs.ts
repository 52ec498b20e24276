import type { V1Job, V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../../log.js';
import { isConflict, isNotFound, orNone, type KubeClient } from './client.js';
import { JOB_CONTROLLER_UID_LABEL } from '../constants.js';

/** The Job controller's label with the Job's name on each pod it makes (Kubernetes ≥ 1.27). */
export const JOB_NAME_LABEL = 'batch.kubernetes.io/job-name';

// Jobs as the backend's durable state: create-or-adopt under a deterministic name, wait for a
// change on a watch (never a sleep loop), read the verdict from the pod's termination message.

export type JobPhase = 'running' | 'succeeded' | 'failed';

const condition = (job: V1Job, type: string) => job.status?.conditions?.find((c) => c.type === type && c.status === 'True');

/** Complete / Failed are set by the Job controller once no pod of the Job runs any more. */
export function jobPhase(job: V1Job): JobPhase {
  if (condition(job, 'Complete')) return 'succeeded';
  if (condition(job, 'Failed') && !(job.status?.active ?? 0) && !(job.status?.terminating ?? 0)) return 'failed';
  return 'running';
}

export const isFinished = (job: V1Job) => jobPhase(job) !== 'running';

/** An annotation of a Job (ours: the Job is the state). */
export const jobAnnotation = (job: V1Job, key: string) => job.metadata?.annotations?.[key];

/** What the Job controller says of a failed Job (its Failed condition's reason and message), or ''. */
export function failedJobReason(job: V1Job): string {
  const failed = job.status?.conditions?.find((c) => c.type === 'Failed');
  return [failed?.reason, failed?.message].filter(Boolean).join(': ');
}

/** A pod that runs, or is about to. */
export const isPodAlive = (pod: V1Pod) => pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed';

export interface PodVerdict {
  /** The container's termination message (our wrapper writes the result or the failure line there). */
  message?: string;
  /** Why the pod did not get that far: a failed init container, eviction, deadline, admission. */
  problem?: string;
  /** The container's exit code, once it terminated. */
  exitCode?: number;
  /** For progress messages: Pending / ContainerCreating / ImagePullBackOff / Running ... */
  state: string;
}

/** What the newest pod of a Job says about the container `name`. */
export function podVerdict(pods: V1Pod[], container: string): PodVerdict {
  const pod = [...pods].sort((a, b) => time(b.metadata?.creationTimestamp) - time(a.metadata?.creationTimestamp))[0];
  if (!pod) return { state: 'no pod yet' };
  const status = pod.status ?? {};
  const main = status.containerStatuses?.find((c) => c.name === container);
  const failedInit = status.initContainerStatuses?.find((c) => c.state?.terminated && c.state.terminated.exitCode !== 0);
  const waiting = [...(status.initContainerStatuses ?? []), ...(status.containerStatuses ?? [])].find((c) => c.state?.waiting?.reason);
  const terminated = main?.state?.terminated;
  let problem: string | undefined;
  if (failedInit?.state?.terminated) {
    const t = failedInit.state.terminated;
    problem = `init container ${failedInit.name} failed (exit ${t.exitCode}${t.reason ? `, ${t.reason}` : ''})${t.message ? `: ${t.message.trim()}` : ''}`;
  } else if (status.reason || (status.phase === 'Failed' && status.message)) {
    problem = `pod ${pod.metadata?.name}: ${[status.reason, status.message].filter(Boolean).join(': ')}`;
  } else if (terminated && terminated.exitCode !== 0 && !terminated.message) {
    problem = `container ${container} exited with status ${terminated.exitCode}${terminated.reason ? ` (${terminated.reason})` : ''}`;
  }
  const state = waiting?.state?.waiting?.reason
    ? `${waiting.state.waiting.reason}${waiting.state.waiting.message ? `: ${waiting.state.waiting.message}` : ''}`
    : (status.phase ?? 'Pending');
  return { message: terminated?.message?.trim() || undefined, problem, exitCode: terminated?.exitCode, state };
}

const time = (t: Date | string | undefined) => (t ? new Date(t).getTime() : 0);

export function jobAgeSeconds(job: V1Job): number {
  const started = time(job.status?.startTime) || time(job.metadata?.creationTimestamp);
  return started ? Math.max(0, Math.round((Date.now() - started) / 1000)) : 0;
}

export class Jobs {
  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
  ) {}

  get(namespace: string, name: string): Promise<V1Job | undefined> {
    return orNone(this.client.batch.readNamespacedJob({ namespace, name }));
  }

  /** Creates the Job, or adopts the one someone else (a concurrent call, an earlier controller) created. */
  async createOrAdopt(job: V1Job): Promise<{ job: V1Job; created: boolean }> {
    const namespace = job.metadata!.namespace!;
    const name = job.metadata!.name!;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const created = await this.client.batch.createNamespacedJob({ namespace, body: job });
        this.log.info('job created', { job: `${namespace}/${name}`, node: job.spec?.template.spec?.nodeName });
        return { job: created, created: true };
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
      const existing = await this.get(namespace, name);
      if (existing) return { job: existing, created: false };
      // Deleted between our create and our read: try again.
    }
    throw new Error(`job ${namespace}/${name} keeps appearing and disappearing`);
  }

  /** Deletes this very Job (uid precondition) and, in the background, its pods. */
  async delete(job: V1Job): Promise<void> {
    const namespace = job.metadata!.namespace!;
    const name = job.metadata!.name!;
    try {
      await this.client.batch.deleteNamespacedJob({
        namespace,
        name,
        propagationPolicy: 'Background',
        body: { propagationPolicy: 'Background', preconditions: { uid: job.metadata!.uid } },
      });
      this.log.info('job deleted', { job: `${namespace}/${name}` });
    } catch (err) {
      // Gone already, or replaced by a newer Job of the same name that is not ours to delete.
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }

  /**
   * Pods still running (or about to) for the Job with this uid: those it controls, and those with
   * its uid label and no controller at all. The second kind is what the garbage collector leaves
   * when the Job is deleted with propagationPolicy Orphan: it removes the pods' owner reference
   * to the Job, the label stays, and the populator goes on writing. Counting a pod that merely
   * carries the label can only delay a new attempt, never start one beside a live populator.
   */
  async livePods(namespace: string, uid: string): Promise<V1Pod[]> {
    const list = await this.client.core.listNamespacedPod({ namespace, labelSelector: `${JOB_CONTROLLER_UID_LABEL}=${uid}` });
    return list.items.filter((p) => {
      const controller = p.metadata?.ownerReferences?.find((o) => o.controller);
      return (!controller || controller.uid === uid) && isPodAlive(p);
    });
  }

  /**
   * Pods still running for the Job `name`, with `uid` when it is known. Without the uid (the
   * controller stopped, or its record update failed, between creating the Job and recording its
   * uid) they are found by the Job controller's name label: pods with no controller (orphaned)
   * or controlled by a Job of that name. The name carries a random suffix only the record knows.
   */
  async livePodsOf(namespace: string, name: string, uid: string | undefined): Promise<V1Pod[]> {
    if (uid) return this.livePods(namespace, uid);
    const list = await this.client.core.listNamespacedPod({ namespace, labelSelector: `${JOB_NAME_LABEL}=${name}` });
    return list.items.filter((p) => {
      const controller = p.metadata?.ownerReferences?.find((o) => o.controller);
      return (!controller || (controller.kind === 'Job' && controller.name === name)) && isPodAlive(p);
    });
  }

  /** The Job's pods: selected by its uid label, kept only with its controller reference (a label alone anyone in the namespace can set). */
  async pods(job: V1Job): Promise<V1Pod[]> {
    const uid = job.metadata!.uid;
    const list = await this.client.core.listNamespacedPod({ namespace: job.metadata!.namespace!, labelSelector: `${JOB_CONTROLLER_UID_LABEL}=${uid}` });
    return list.items.filter((pod) => pod.metadata?.ownerReferences?.some((o) => o.controller && o.kind === 'Job' && o.uid === uid));
  }

  /**
   * The Job once `done(job)` holds, or as it is when `timeoutMs` runs out; undefined when it is
   * deleted. Waits on a watch from the Job's resourceVersion, so no change is missed.
   */
  async waitFor(namespace: string, name: string, done: (job: V1Job) => boolean, timeoutMs: number): Promise<V1Job | undefined> {
    const deadline = Date.now() + timeoutMs;
    let job = await this.get(namespace, name);
    while (job && !done(job) && Date.now() < deadline) {
      const outcome = await this.watchOnce(namespace, name, job.metadata!.resourceVersion!, done, deadline - Date.now());
      if (outcome === 'deleted') return undefined;
      if (outcome === 'closed') await new Promise((resolve) => setTimeout(resolve, Math.min(200, Math.max(0, deadline - Date.now()))));
      job = await this.get(namespace, name);
    }
    return job;
  }

  /** One watch session: resolves on the first event that makes `done` true, on deletion, on timeout, or when the server closes it. */
  private watchOnce(
    namespace: string,
    name: string,
    resourceVersion: string,
    done: (job: V1Job) => boolean,
    ms: number,
  ): Promise<'done' | 'deleted' | 'timeout' | 'closed'> {
    return new Promise((resolve) => {
      let settled = false;
      let abort: AbortController | undefined;
      const finish = (outcome: 'done' | 'deleted' | 'timeout' | 'closed') => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        abort?.abort();
        resolve(outcome);
      };
      const timer = setTimeout(() => finish('timeout'), ms);
      this.client.watch
        .watch(
          `/apis/batch/v1/namespaces/${encodeURIComponent(namespace)}/jobs`,
          { fieldSelector: `metadata.name=${name}`, resourceVersion, allowWatchBookmarks: false },
          (type: string, object: V1Job) => {
            if (type === 'DELETED') finish('deleted');
            else if (type === 'ERROR') finish('closed');
            else if (done(object)) finish('done');
          },
          () => finish('closed'),
        )
        .then(
          (controller) => {
            abort = controller;
            if (settled) controller.abort();
          },
          () => finish('closed'),
        );
    });
  }
}
