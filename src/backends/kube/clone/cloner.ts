import type { V1Job } from '@kubernetes/client-node';
import type { CloneSpec, CloneState } from '../../../controller/backend.js';
import { failedPrecondition } from '../../../csi/errors.js';
import type { Logger } from '../../../log.js';
import type { Metrics } from '../../../metrics.js';
import { failureError } from '../../../populator/failure.js';
import { FAILURE_PREFIX } from '../../../populator/layout.js';
import { parsePopulatorFailure, parsePopulatorResult, type PopulatorResult } from '../../../populator/result.js';
import { cloneContext } from '../../../volume/context.js';
import type { VolumeRef } from '../../../volume/id.js';
import { apiMessage, isConflict, kubeCall, type KubeClient } from '../api/client.js';
import type { EventRecorder } from '../api/events.js';
import { Jobs, failedJobReason, isFinished, jobAgeSeconds, jobAnnotation, jobPhase, podVerdict } from '../api/jobs.js';
import { cleanupJobName } from '../api/names.js';
import { contextOfPv, handleOf, pvByName } from '../api/volumes.js';
import { ANN_AFTER_FAILURE, ANN_CLUSTER } from '../constants.js';
import { cleanupJobFor } from '../deletion/cleanup-job.js';
import type { KubeSettings } from '../settings.js';
import { planClone, type ClonePlan } from './plan.js';
import { POPULATE_CONTAINER, populateJobFor } from './populate-job.js';
import type { CloneRecord, CloneRecords } from './record.js';
import type { KubeSourceVolume } from './source.js';
import { checkCloneTarget } from './target.js';

// CreateVolume for clones: one populator Job per volume, named in the clone's record (a
// ConfigMap in the driver's namespace, record.ts) and found again through it on every call and
// by every controller instance. The record and the Job are the state; nothing that matters lives
// only in this process, and nothing in a user's namespace is trusted. The source arrives
// resolved (source.ts); a new Job is made from the clone's plan (plan.ts), which nothing after
// it resolves again.

export interface CloneDeps {
  client: KubeClient;
  jobs: Jobs;
  records: CloneRecords;
  events: EventRecorder;
  log: Logger;
  metrics: Metrics;
  settings: KubeSettings;
}

type KubeClone = CloneSpec<KubeSourceVolume>;

export class Cloner {
  constructor(private readonly d: CloneDeps) {}

  async ensure(spec: KubeClone): Promise<CloneState> {
    return kubeCall(`populating volume ${spec.name}`, async () => {
      // Provisioned already: the sidecar made the PV from our earlier answer.
      const pv = await pvByName(this.d.client, spec.name);
      if (pv && handleOf(pv) === spec.ref.volumeId) return { phase: 'ready', context: contextOfPv(pv) };

      const dir = spec.ref.dir;
      let record = await this.d.records.get(dir);
      if (record && record.volumeId !== spec.ref.volumeId) {
        throw failedPrecondition(`volume name ${spec.name} is recorded for volume ${record.volumeId}, not ${spec.ref.volumeId}`);
      }
      if (record?.result) return { phase: 'ready', context: cloneContext(spec, record.mode ?? 'online', recordedResult(record.result)) };

      let job: V1Job | undefined;
      if (record) ({ job, record } = await this.d.records.job(dir, record, this.getJob));
      if (!job || !record) {
        const started = await this.startAttempt(spec, record);
        if ('running' in started) return { phase: 'running', message: started.running };
        ({ job, record } = started);
        if (!job) return { phase: 'running', message: `populator Job ${record.jobNamespace}/${record.jobName} was deleted; it will be started again` };
      }
      return this.follow(spec, record, job);
    });
  }

  /** A new attempt: no cleanup pending, a plan, the clone target checked, then the record and its Job. */
  private async startAttempt(spec: KubeClone, record: CloneRecord | undefined): Promise<{ running: string } | { job?: V1Job; record: CloneRecord }> {
    // The record's Job is gone (deleted, or expired by TTL): nothing starts while a pod of it
    // still writes into the volume. Checked before anything else looks at who uses the source:
    // an orphaned populator pod no longer looks like the driver's own.
    const alive = record ? await this.d.jobs.livePodsOf(record.jobNamespace, record.jobName, record.jobUid) : [];
    if (record && alive.length > 0) {
      return { running: `populator Job ${record.jobNamespace}/${record.jobName} was deleted; waiting for its pod ${alive[0]!.metadata?.name} to stop before starting again` };
    }
    const waiting = await this.cleanupPending(spec.ref);
    if (waiting) return { running: waiting };
    // Another clone's populator orphaned from its Job reads the source (and may still copy):
    // wait for it rather than take it for a foreign user of the source.
    const orphans = await this.d.records.orphanedPopulators(spec.source.kube.namespace, spec.source.kube.pvc);
    if (orphans.length > 0) {
      return { running: `populator pod ${orphans[0]!.metadata?.namespace}/${orphans[0]!.metadata?.name} of another clone of ${spec.source.description} lost its Job; waiting for it to stop` };
    }
    const outcome = await planClone(this.d.client, spec, await this.d.records.ownPodFilter());
    if ('wait' in outcome) return { running: outcome.wait };
    const { plan } = outcome;
    await checkCloneTarget(this.d.client, plan);
    const dir = spec.ref.dir;
    const namespace = spec.source.kube.namespace;
    const mode = plan.copy.mode;
    if (!record) {
      record = await this.d.records.create(dir, {
        volumeName: spec.name,
        volumeId: spec.ref.volumeId,
        capacityBytes: spec.capacityBytes,
        sourceVolumeId: spec.source.ref.volumeId,
        ...(spec.source.standby ? { requestedSourceVolumeId: spec.source.standby.requested.volumeId } : {}),
        jobNamespace: namespace,
        mode,
      });
    } else if (record.jobUid || record.jobNamespace !== namespace) {
      // Its Job is gone and no pod of it runs (checked above): a new attempt under a new name.
      record = await this.d.records.renew(dir, record, namespace, mode);
    }
    return this.createJob(record, plan);
  }

  /** Waits a little for the record's Job, then answers from what it did. */
  private async follow(spec: KubeClone, record: CloneRecord, job: V1Job): Promise<CloneState> {
    const namespace = record.jobNamespace;
    const name = record.jobName;
    const seen = await this.d.jobs.waitFor(namespace, name, isFinished, this.d.settings.cloneWaitMs);
    if (!seen || seen.metadata?.uid !== job.metadata?.uid) return { phase: 'running', message: `populator Job ${namespace}/${name} was deleted; it will be started again` };
    switch (jobPhase(seen)) {
      case 'running':
        return { phase: 'running', message: await this.progress(seen) };
      case 'succeeded':
        return { phase: 'ready', context: cloneContext(spec, record.mode ?? 'online', await this.succeeded(seen, record, spec)) };
      case 'failed':
        throw await this.failed(seen, record, spec);
    }
  }

  private readonly getJob = (namespace: string, name: string) => this.d.jobs.get(namespace, name);

  /** Creates the record's Job; a concurrent call's Job under the same (secret) name is adopted. */
  private async createJob(record: CloneRecord, plan: ClonePlan): Promise<{ job?: V1Job; record: CloneRecord }> {
    const spec = plan.clone;
    const dir = spec.ref.dir;
    const manifest = populateJobFor(plan, record.jobName, this.d.settings);
    let job: V1Job;
    try {
      job = await this.d.client.batch.createNamespacedJob({ namespace: record.jobNamespace, body: manifest });
    } catch (err) {
      if (!isConflict(err)) throw err;
      return this.d.records.job(dir, (await this.d.records.get(dir)) ?? record, this.getJob);
    }
    this.d.log.info('job created', { job: `${record.jobNamespace}/${record.jobName}`, node: spec.ref.node });
    const updated = await this.d.records.setJobUid(dir, record, job.metadata!.uid!);
    const standby = standbyMessage(spec.source);
    if (standby) await this.d.events.onPvc(spec.source.kube.clonePvc, { type: 'Normal', reason: 'PreferStandby', instance: job.metadata!.uid!, message: standby });
    await this.d.events.onPvc(spec.source.kube.clonePvc, {
      type: 'Normal',
      reason: 'Populating',
      instance: job.metadata!.uid!,
      message: `populating from ${spec.source.description} on node ${plan.node} (${describePlan(plan)}) with Job ${record.jobNamespace}/${record.jobName}`,
    });
    return { job, record: updated };
  }

  /** A cleanup of an earlier failed attempt must finish before a new population writes to the same directory. */
  private async cleanupPending(ref: VolumeRef): Promise<string | undefined> {
    const namespace = this.d.settings.driverNamespace;
    const job = await this.d.jobs.get(namespace, cleanupJobName(ref.dir));
    if (!job) return undefined;
    if (jobPhase(job) === 'running') {
      const after = jobAnnotation(job, ANN_AFTER_FAILURE);
      const verdict = podVerdict(await this.d.jobs.pods(job), 'cleanup');
      return `cleaning up after ${after ? `a failed attempt (${after})` : 'an earlier deletion'}: Job ${namespace}/${job.metadata?.name} ${verdict.state}`;
    }
    // Finished (a failed cleanup leaves nothing the populator cannot handle: it never overwrites).
    await this.d.jobs.delete(job);
    return undefined;
  }

  private async progress(job: V1Job): Promise<string> {
    const verdict = podVerdict(await this.d.jobs.pods(job), POPULATE_CONTAINER);
    const age = jobAgeSeconds(job);
    // A Job that cannot make its pod (missing service account, quota, admission) says so only in its Events.
    const hint = verdict.state === 'no pod yet' && age > 30 ? ` (see kubectl -n ${job.metadata?.namespace} describe job ${job.metadata?.name})` : '';
    return `populator Job ${job.metadata?.namespace}/${job.metadata?.name} on node ${job.spec?.template.spec?.nodeName}: ${verdict.state}${hint}, ${age} s`;
  }

  private async succeeded(job: V1Job, record: CloneRecord, spec: KubeClone): Promise<PopulatorResult> {
    const source = spec.source;
    const verdict = podVerdict(await this.d.jobs.pods(job), POPULATE_CONTAINER);
    let result: PopulatorResult;
    try {
      result = parsePopulatorResult(verdict.message ?? '');
    } catch (err) {
      // The pod is gone or said nothing usable; the copy itself succeeded (the Job says so).
      this.d.log.warn('populator result unreadable', { job: job.metadata?.name, error: (err as Error).message });
      result = unknownResult(spec.name, record.mode ?? 'online', jobAgeSeconds(job));
    }
    // Recorded in the clone's record, so later calls (and a restarted controller) answer the same
    // without the pod or the Job, and nobody in the source namespace can change the answer.
    await this.d.records
      .setResult(spec.ref.dir, record, JSON.stringify(result))
      .catch((err: unknown) => this.d.log.warn('could not record the populator result', { job: job.metadata?.name, error: apiMessage(err) }));
    const m = this.d.metrics;
    m.clonesTotal.inc({ result: 'succeeded', mode: result.mode });
    m.cloneSeconds.observe(result.seconds);
    m.clonedBytes.inc(result.bytes);
    const lsns = result.mode === 'online' ? `, backup from ${result.backupFrom}, LSN ${result.startLsn} to ${result.stopLsn} on timeline ${result.timeline}` : ', plain copy';
    const cluster = jobAnnotation(job, ANN_CLUSTER);
    await this.d.events.onPvc(source.kube.clonePvc, {
      type: 'Normal',
      reason: 'Populated',
      instance: job.metadata!.uid!,
      message: `populated from ${source.description}${cluster ? ` (cluster ${cluster})` : ''} on node ${spec.ref.node} in ${result.seconds.toFixed(1)} s${lsns}; ${result.files} files, ${result.bytes} bytes shared by reflink`,
    });
    this.d.log.info('clone populated', { volume: spec.name, source: source.description, mode: result.mode, seconds: result.seconds });
    return result;
  }

  /**
   * A failed Job: its reason becomes the error (and a Warning Event), the partial destination is
   * cleaned on the node, and the Job goes, so the next call starts clean.
   */
  private async failed(job: V1Job, record: CloneRecord, spec: KubeClone): Promise<Error> {
    const source = spec.source;
    const verdict = podVerdict(await this.d.jobs.pods(job), POPULATE_CONTAINER);
    const jobSays = failedJobReason(job);
    const reason = verdict.message?.startsWith(FAILURE_PREFIX.trim())
      ? parsePopulatorFailure(verdict.message)
      : [verdict.problem ?? verdict.message, jobSays].filter(Boolean).join('; ') || 'the populator Job failed without a message';
    const current = await this.d.jobs.get(job.metadata!.namespace!, job.metadata!.name!);
    if (current?.metadata?.uid === job.metadata?.uid) {
      // Refused on the volume directory's lock: another populator still writes there, and a
      // cleanup now would remove files under it (that one's own Job answers for the directory).
      if (!LOCK_HELD.test(reason)) await this.d.jobs.createOrAdopt(cleanupJobFor(spec.ref, this.d.settings, reason));
      await this.d.events.onPvc(source.kube.clonePvc, { type: 'Warning', reason: 'PopulateFailed', instance: job.metadata!.uid!, message: `populating from ${source.description} failed: ${reason}` });
      this.d.metrics.clonesTotal.inc({ result: 'failed', mode: record.mode ?? 'online' });
      this.d.log.warn('clone population failed', { volume: spec.name, source: source.description, reason });
      await this.d.jobs.delete(job);
      // The next attempt starts with a new record (and a new Job name) once the cleanup is done.
      await this.d.records.delete(record);
    }
    const message = `populating ${spec.name} from ${source.description} failed: ${reason}`;
    return failureError(reason, message);
  }
}

/** The populator's refusal when another population holds the lock on the volume's directory (populator/script.ts). */
const LOCK_HELD = /^another population of .* is still running/;

/** A result this controller recorded (a degraded one may not pass the populator's own parser). */
function recordedResult(recorded: string): PopulatorResult {
  try {
    return parsePopulatorResult(recorded);
  } catch {
    return JSON.parse(recorded) as PopulatorResult;
  }
}

/** What preferStandby decided for this attempt, when it had a primary to decide about. */
function standbyMessage(source: KubeSourceVolume): string | undefined {
  if (source.standby) return `cloning replica ${source.standby.replica} instead of primary ${source.standby.primary}: preferStandby`;
  if (source.standbyDeclined) return `cloning primary ${source.standbyDeclined.primary}: preferStandby found no replica to clone instead: ${source.standbyDeclined.why}`;
  return undefined;
}

function describePlan({ copy }: ClonePlan): string {
  if (copy.mode === 'online') return `online backup of ${copy.pod.role} instance ${copy.pod.name} of cluster ${copy.cluster.name}`;
  return copy.why === 'unused' ? 'plain copy: no pod uses the source' : 'crash-consistent plain copy (allowed by the StorageClass)';
}

function unknownResult(label: string, mode: 'online' | 'plain', seconds: number): PopulatorResult {
  return { mode, label, startLsn: null, stopLsn: null, timeline: null, backupFrom: null, files: 0, bytes: 0, seconds, checkpointSeconds: 0, copySeconds: 0, walSeconds: 0 };
}
