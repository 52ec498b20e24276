import type { V1PersistentVolume } from '@kubernetes/client-node';
import { Gauge } from 'prom-client';
import type { DeleteState } from '../../../controller/backend.js';
import type { Logger } from '../../../log.js';
import type { Metrics } from '../../../metrics.js';
import { InvalidVolumeId, parseVolumeId, type VolumeRef } from '../../../volume/id.js';
import { apiMessage, ignoreNotFound, mergePatch, orNone, type KubeClient } from '../api/client.js';
import { PROVISIONER_PV_FINALIZER } from '../constants.js';
import type { EventRecorder } from '../api/events.js';
import { handleOf, listOurPvs } from '../api/volumes.js';

// A pg-reflinker PV in phase Failed is one the PV controller gave up on; csi-provisioner never
// calls DeleteVolume for it (it deletes only Released PVs), so its data would stay on the node
// silently. A small periodic reconciler in the controller handles them per reclaim policy:
//   Delete → the data is removed on its node (the same cleanup Job as DeleteVolume), then the PV
//            object is deleted (the sidecar's finalizer removed) — what the policy asked for;
//   Retain (or Recycle) → nothing is removed: a Warning Event on the PV and a log line say where
//            the data is and how to reclaim it.
// Both are counted in the gauge pg_reflinker_failed_volumes.

export interface FailedPvDeps {
  client: KubeClient;
  events: EventRecorder;
  log: Logger;
  metrics: Metrics;
  hostPathPrefix: string;
  deleteVolume: (ref: VolumeRef) => Promise<DeleteState>;
}

export class FailedPvReconciler {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private readonly gauge: Gauge;

  constructor(private readonly d: FailedPvDeps) {
    this.gauge = new Gauge({
      name: 'pg_reflinker_failed_volumes',
      help: 'pg-reflinker PersistentVolumes in phase Failed, by reclaim policy (Delete ones are being cleaned up)',
      labelNames: ['reclaim_policy'],
      registers: [d.metrics.registry],
    });
  }

  start(intervalMs: number): void {
    if (intervalMs <= 0 || this.timer) return;
    this.timer = setInterval(() => void this.tick(), intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One pass; never throws (errors are logged), never overlaps with itself. */
  tick(): Promise<void> {
    if (!this.running) {
      this.running = this.pass()
        .catch((err: unknown) => {
          this.d.log.warn('failed-volume reconciler pass failed', { error: apiMessage(err) });
        })
        .finally(() => {
          this.running = undefined;
        });
    }
    return this.running;
  }

  private async pass(): Promise<void> {
    const failed = (await listOurPvs(this.d.client)).filter((pv) => pv.status?.phase === 'Failed');
    this.gauge.reset();
    for (const pv of failed) this.gauge.inc({ reclaim_policy: pv.spec?.persistentVolumeReclaimPolicy ?? 'Retain' });
    for (const pv of failed) {
      try {
        await this.handle(pv);
      } catch (err) {
        this.d.log.warn('failed volume not handled', { pv: pv.metadata?.name, error: apiMessage(err) });
      }
    }
  }

  private async handle(pv: V1PersistentVolume): Promise<void> {
    const name = pv.metadata!.name!;
    let ref: VolumeRef;
    try {
      ref = parseVolumeId(handleOf(pv));
    } catch (err) {
      return this.report(pv, `its volume handle "${handleOf(pv)}" is not a pg-reflinker volume id (${(err as InvalidVolumeId).message}); nothing can be removed automatically`);
    }
    const where = `${this.d.hostPathPrefix.replace(/\/+$/, '')}/${ref.dir} on node ${ref.node}`;
    if (pv.spec?.persistentVolumeReclaimPolicy !== 'Delete') {
      return this.report(pv, `reclaim policy ${pv.spec?.persistentVolumeReclaimPolicy ?? 'Retain'}: its data stays at ${where}. Copy what you need, then delete the PV and set its reclaim policy to Delete first if the data should go`);
    }
    if (await this.claimStillExists(pv)) {
      return this.report(pv, `reclaim policy Delete, but its claim ${pv.spec?.claimRef?.namespace}/${pv.spec?.claimRef?.name} still exists; the data at ${where} is kept`);
    }
    const state = await this.d.deleteVolume(ref);
    if (!state.done) {
      this.d.log.info('failed volume: cleanup running', { pv: name, volume_id: ref.volumeId, message: state.message });
      return;
    }
    // The data is gone: the PV object goes too (the sidecar never will, for a Failed PV).
    const finalizers = (pv.metadata?.finalizers ?? []).filter((f) => f !== PROVISIONER_PV_FINALIZER);
    await ignoreNotFound(
      this.d.client.core.patchPersistentVolume({ name, body: { metadata: { finalizers, resourceVersion: pv.metadata?.resourceVersion } } }, mergePatch),
    );
    await ignoreNotFound(this.d.client.core.deletePersistentVolume({ name }));
    this.d.log.info('failed volume cleaned up and its PV deleted', { pv: name, volume_id: ref.volumeId });
  }

  private async claimStillExists(pv: V1PersistentVolume): Promise<boolean> {
    const ref = pv.spec?.claimRef;
    if (!ref?.namespace || !ref.name) return false;
    const pvc = await orNone(this.d.client.core.readNamespacedPersistentVolumeClaim({ namespace: ref.namespace, name: ref.name }));
    return !!pvc && (!ref.uid || pvc.metadata?.uid === ref.uid);
  }

  private async report(pv: V1PersistentVolume, what: string): Promise<void> {
    const message = `PersistentVolume ${pv.metadata?.name} is Failed (${pv.status?.message ?? pv.status?.reason ?? 'no reason given'}); ${what}`;
    this.d.log.warn('failed volume', { pv: pv.metadata?.name, message });
    await this.d.events.record({ kind: 'PersistentVolume', name: pv.metadata!.name!, uid: pv.metadata?.uid }, { type: 'Warning', reason: 'VolumeFailed', instance: pv.metadata?.uid ?? 'pv', message });
  }
}
