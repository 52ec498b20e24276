import type { V1Job } from '@kubernetes/client-node';
import type { DeleteState } from '../../controller/backend.js';
import { failedPrecondition, internal } from '../../csi/errors.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import type { VolumeRef } from '../../volume/id.js';
import { CLEANUP_CONTAINER, cleanupJobFor } from './cleanup-job.js';
import { kubeCall, mergePatch, orNone, type KubeClient } from './client.js';
import { ANN_VOLUME_ID, LABEL_ROLE, LABEL_VOLUME } from './constants.js';
import { Jobs, isFinished, jobAgeSeconds, jobPhase, podVerdict } from './jobs.js';
import { cleanupJobName, volumeKey } from './names.js';
import type { KubeSettings } from './settings.js';

// DeleteVolume: the volume's directory is removed on its node by a cleanup Job (driver image,
// `pg-reflinker cleanup`). The succeeded Job is kept until its TTL as the record that the
// volume is gone, so a repeated DeleteVolume answers OK without another Job.

export interface DeleteDeps {
  client: KubeClient;
  jobs: Jobs;
  log: Logger;
  metrics: Metrics;
  settings: KubeSettings;
}

const annotation = (job: V1Job, key: string) => job.metadata?.annotations?.[key];
const ANN_COUNTED = 'pg-reflinker.csi/counted';

export class Deleter {
  constructor(private readonly d: DeleteDeps) {}

  /** Populator Jobs of this volume, in whatever namespace its source was. */
  async populateJobs(ref: VolumeRef): Promise<V1Job[]> {
    return (await this.d.jobs.forVolume('populate', ref.dir)).filter((j) => annotation(j, ANN_VOLUME_ID) === ref.volumeId);
  }

  async delete(ref: VolumeRef): Promise<DeleteState> {
    return kubeCall(`deleting volume ${ref.volumeId}`, async () => {
      // A population still writing into the directory stops first.
      for (const job of await this.populateJobs(ref)) await this.d.jobs.delete(job);
      const writers = await this.d.client.core.listPodForAllNamespaces({ labelSelector: `${LABEL_ROLE}=populate,${LABEL_VOLUME}=${volumeKey(ref.dir)}` });
      const alive = writers.items.filter((p) => p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
      if (alive.length > 0) return { done: false, message: `waiting for populator pod ${alive[0]!.metadata?.namespace}/${alive[0]!.metadata?.name} to stop` };

      const namespace = this.d.settings.driverNamespace;
      const name = cleanupJobName(ref.dir);
      let job = await this.d.jobs.get(namespace, name);
      if (job && annotation(job, ANN_VOLUME_ID) !== ref.volumeId) {
        if (!isFinished(job)) return { done: false, message: `cleanup Job ${namespace}/${name} is still removing volume ${annotation(job, ANN_VOLUME_ID)}` };
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
          if (!annotation(seen, ANN_COUNTED)) {
            this.d.metrics.cleanupsTotal.inc({ result: 'deleted' });
            await this.d.client.batch
              .patchNamespacedJob({ namespace, name, body: { metadata: { annotations: { [ANN_COUNTED]: 'true' } } } }, mergePatch)
              .catch(() => undefined);
          }
          return { done: true, outcome: 'deleted' };
        case 'failed': {
          const condition = seen.status?.conditions?.find((c) => c.type === 'Failed');
          const reason =
            cleanupFailure(verdict.message) ??
            verdict.problem ??
            lastLine(verdict.message) ??
            ([condition?.reason, condition?.message].filter(Boolean).join(': ') || 'the cleanup Job failed without a message');
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
