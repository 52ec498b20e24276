import type { V1Job } from '@kubernetes/client-node';
import type { DeleteState } from '../../../controller/backend.js';
import { CsiError, failedPrecondition, internal } from '../../../csi/errors.js';
import type { Logger } from '../../../log.js';
import type { Metrics } from '../../../metrics.js';
import type { VolumeRef } from '../../../volume/id.js';
import { CLEANUP_CONTAINER, cleanupJobFor } from './cleanup-job.js';
import { kubeCall, mergePatch, orNone, type KubeClient } from '../api/client.js';
import type { CloneRecord, CloneRecords } from '../clone/record.js';
import { ANN_COUNTED, ANN_VOLUME_ID } from '../constants.js';
import { Jobs, failedJobReason, isFinished, jobAgeSeconds, jobAnnotation, jobPhase, podVerdict } from '../api/jobs.js';
import { cleanupJobName } from '../api/names.js';
import type { KubeSettings } from '../settings.js';

// DeleteVolume: the volume's directory is removed on its node by a cleanup Job (driver image,
// `pg-reflinker cleanup`). The succeeded Job is kept until its TTL as the record that the
// volume is gone, so a repeated DeleteVolume answers OK without another Job.

export interface DeleteDeps {
  client: KubeClient;
  jobs: Jobs;
  records: CloneRecords;
  log: Logger;
  metrics: Metrics;
  settings: KubeSettings;
}


export class Deleter {
  constructor(private readonly d: DeleteDeps) {}

  async delete(ref: VolumeRef): Promise<DeleteState> {
    return kubeCall(`deleting volume ${ref.volumeId}`, async () => {
      // A population still writing into the directory stops first: the record names its Job.
      const record = await this.d.records.get(ref.dir);
      const ours = record?.volumeId === ref.volumeId ? record : undefined;
      if (ours) {
        const stopping = await this.stopPopulation(ref, ours);
        if (stopping) return { done: false, message: stopping };
      }

      const namespace = this.d.settings.driverNamespace;
      const name = cleanupJobName(ref.dir);
      let job = await this.d.jobs.get(namespace, name);
      if (job && jobAnnotation(job, ANN_VOLUME_ID) !== ref.volumeId) {
        if (!isFinished(job)) return { done: false, message: `cleanup Job ${namespace}/${name} is still removing volume ${jobAnnotation(job, ANN_VOLUME_ID)}` };
        await this.d.jobs.delete(job);
        job = undefined;
      }
      if (!job) {
        const node = await orNone(this.d.client.core.readNode({ name: ref.node }));
        if (!node) {
          throw failedPrecondition(
            `node ${ref.node} of volume ${ref.volumeId} no longer exists, so its data cannot be removed. ` +
              `If the node is gone for good, remove the PersistentVolume by hand: ` +
              `kubectl patch pv ${ref.dir} --type=merge -p '{"metadata":{"finalizers":null}}' && kubectl delete pv ${ref.dir}`,
          );
        }
        job = (await this.d.jobs.createOrAdopt(this.manifest(ref))).job;
      }
      const seen = await this.d.jobs.waitFor(namespace, name, isFinished, this.d.settings.deleteWaitMs);
      if (!seen) return { done: false, message: `cleanup Job ${namespace}/${name} was deleted; it will be started again` };
      const verdict = podVerdict(await this.d.jobs.pods(seen), CLEANUP_CONTAINER);
      switch (jobPhase(seen)) {
        case 'running':
          return { done: false, message: `cleanup Job ${namespace}/${name} on node ${ref.node}: ${verdict.state}, ${jobAgeSeconds(seen)} s` };
        case 'succeeded':
          if (!jobAnnotation(seen, ANN_COUNTED)) {
            this.d.metrics.cleanupsTotal.inc({ result: 'deleted' });
            await this.d.client.batch
              .patchNamespacedJob({ namespace, name, body: { metadata: { annotations: { [ANN_COUNTED]: 'true' } } } }, mergePatch)
              .catch(() => undefined);
          }
          if (ours) await this.d.records.delete(ours);
          return { done: true, outcome: 'deleted' };
        case 'failed': {
          const reason = cleanupFailure(verdict.message) ?? verdict.problem ?? lastLine(verdict.message) ?? (failedJobReason(seen) || 'the cleanup Job failed without a message');
          this.d.metrics.cleanupsTotal.inc({ result: 'failed' });
          this.d.log.warn('volume cleanup failed', { volume_id: ref.volumeId, reason });
          await this.d.jobs.delete(seen);
          const message = `removing volume ${ref.volumeId} on node ${ref.node} failed: ${reason}`;
          // Exit 3 is a refused removal (e.g. a symlink out of the prefix): retrying will not help.
          throw verdict.exitCode === 3 ? failedPrecondition(message) : internal(message);
        }
      }
    });
  }

  /** Deletes the record's populator Job (only if it is the one we created); a message while its pods still run. */
  private async stopPopulation(ref: VolumeRef, record: CloneRecord): Promise<string | undefined> {
    let job: V1Job | undefined;
    try {
      job = (await this.d.records.job(ref.dir, record, (ns, name) => this.d.jobs.get(ns, name))).job;
    } catch (err) {
      // A Job under the recorded name that we did not create is not ours to delete; our own is gone.
      if (!(err instanceof CsiError)) throw err;
      this.d.log.warn('not deleting a Job the driver did not create', { volume_id: ref.volumeId, error: err.message });
    }
    if (job) await this.d.jobs.delete(job);
    // Without a recorded uid (and no Job left to read it from), its pods are found by the Job's secret name.
    const alive = await this.d.jobs.livePodsOf(record.jobNamespace, record.jobName, record.jobUid ?? job?.metadata?.uid);
    return alive.length > 0 ? `waiting for populator pod ${alive[0]!.metadata?.namespace}/${alive[0]!.metadata?.name} to stop` : undefined;
  }

  /** A new volume under a name that was deleted before must not be answered by the old deletion's record. */
  async forgetDeletion(ref: VolumeRef): Promise<void> {
    const job = await this.d.jobs.get(this.d.settings.driverNamespace, cleanupJobName(ref.dir));
    if (job && isFinished(job)) await this.d.jobs.delete(job);
  }

  private manifest(ref: VolumeRef): V1Job {
    return cleanupJobFor(ref, this.d.settings);
  }
}

const lastLine = (text: string | undefined) => text?.split('\n').map((l) => l.trim()).filter(Boolean).pop();

/** The `pg-reflinker cleanup: <reason>` line in a termination message (the container's last log lines). */
function cleanupFailure(message: string | undefined): string | undefined {
  const line = message?.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('pg-reflinker cleanup:')).pop();
  return line?.slice('pg-reflinker cleanup:'.length).trim();
}
