import type { FakeKubeApiServer, KubeObject } from './kube-apiserver.js';

// Plays the Job controller and the kubelet for tests: makes a Job's pod, runs it, and ends it
// the way Kubernetes reports it (pod phase, container terminated state with the termination
// message, Job counters and Complete/Failed conditions).

interface PodTemplate {
  metadata?: { labels?: Record<string, string> };
  spec?: { containers?: Array<{ name: string }>; initContainers?: Array<{ name: string }>; [k: string]: unknown };
}

export interface FinishOptions {
  exitCode?: number;
  /** What the main container wrote to its termination message. */
  message?: string;
  /** Fail the init container instead (exit 1, this message). */
  initFailure?: string;
  /** Job-level failure without a pod verdict (e.g. DeadlineExceeded). */
  jobReason?: { reason: string; message: string };
}

const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

export class FakeKubelet {
  constructor(private readonly api: FakeKubeApiServer) {}

  private job(namespace: string, name: string): KubeObject {
    const job = this.api.get('jobs.batch', namespace, name);
    if (!job) throw new Error(`no Job ${namespace}/${name}`);
    return job;
  }

  pods(namespace: string, name: string): KubeObject[] {
    const job = this.job(namespace, name);
    return this.api.list('pods', namespace, `batch.kubernetes.io/controller-uid=${job.metadata.uid}`);
  }

  /** The Job's pod runs (init containers done, main container running). */
  start(namespace: string, name: string): KubeObject {
    const job = this.job(namespace, name);
    const template = (job.spec as { template: PodTemplate }).template;
    const existing = this.pods(namespace, name)[0];
    const startedAt = now();
    const containers = template.spec?.containers ?? [];
    const pod =
      existing ??
      this.api.create('pods', {
        metadata: {
          generateName: `${name}-`,
          namespace,
          labels: { ...template.metadata?.labels },
          ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name, uid: job.metadata.uid!, controller: true, blockOwnerDeletion: true } as never],
        },
        spec: structuredClone(template.spec ?? {}),
      });
    this.api.patch('pods', namespace, pod.metadata.name, {
      status: {
        phase: 'Running',
        startTime: startedAt,
        podIP: '10.0.9.9',
        initContainerStatuses: (template.spec?.initContainers ?? []).map((c) => ({
          name: c.name,
          ready: true,
          state: { terminated: { exitCode: 0, reason: 'Completed', startedAt, finishedAt: startedAt } },
        })),
        containerStatuses: containers.map((c) => ({ name: c.name, ready: true, started: true, state: { running: { startedAt } } })),
      },
    });
    this.api.patch('jobs.batch', namespace, name, { status: { active: 1, ready: 1, startTime: startedAt } });
    return this.api.get('pods', namespace, pod.metadata.name)!;
  }

  /** The pod ends; the Job becomes Complete (exit 0) or Failed (anything else). */
  finish(namespace: string, name: string, opts: FinishOptions = {}): void {
    const pod = this.pods(namespace, name)[0] ?? this.start(namespace, name);
    const job = this.job(namespace, name);
    const template = (job.spec as { template: PodTemplate }).template;
    const exitCode = opts.initFailure || opts.jobReason ? 1 : (opts.exitCode ?? 0);
    const t = now();
    const ok = exitCode === 0;
    const init = (template.spec?.initContainers ?? []).map((c, i) => ({
      name: c.name,
      ready: false,
      state: {
        terminated:
          opts.initFailure && i === 0
            ? { exitCode: 1, reason: 'Error', message: opts.initFailure, startedAt: t, finishedAt: t }
            : { exitCode: 0, reason: 'Completed', startedAt: t, finishedAt: t },
      },
    }));
    const main = (template.spec?.containers ?? []).map((c) => ({
      name: c.name,
      ready: false,
      state: opts.initFailure
        ? { waiting: { reason: 'PodInitializing' } }
        : { terminated: { exitCode, reason: ok ? 'Completed' : 'Error', message: opts.message, startedAt: t, finishedAt: t } },
    }));
    this.api.patch('pods', namespace, pod.metadata.name, {
      status: { phase: ok ? 'Succeeded' : 'Failed', initContainerStatuses: init, containerStatuses: main },
    });
    const conditions = ok
      ? [
          { type: 'SuccessCriteriaMet', status: 'True', reason: 'CompletionsReached', lastTransitionTime: t },
          { type: 'Complete', status: 'True', reason: 'CompletionsReached', lastTransitionTime: t },
        ]
      : [
          { type: 'FailureTarget', status: 'True', reason: opts.jobReason?.reason ?? 'BackoffLimitExceeded', lastTransitionTime: t },
          {
            type: 'Failed',
            status: 'True',
            reason: opts.jobReason?.reason ?? 'BackoffLimitExceeded',
            message: opts.jobReason?.message ?? 'Job has reached the specified backoff limit',
            lastTransitionTime: t,
          },
        ];
    this.api.patch('jobs.batch', namespace, name, {
      status: { active: 0, ready: 0, terminating: 0, ...(ok ? { succeeded: 1, completionTime: t } : { failed: 1 }), conditions },
    });
  }
}
