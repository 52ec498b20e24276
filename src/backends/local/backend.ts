import { failedPrecondition, notFound } from '../../csi/errors.js';
import type { CloneState, DeleteState, RecordedVolume, SourceVolume, VolumeBackend, VolumeSpec } from '../../controller/backend.js';
import { CONTEXT_KIND } from '../../controller/backend.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import type { VolumeRef } from '../../volume/id.js';
import { volumePath } from '../../volume/paths.js';
import { UnsafeRemoval, removeVolumeDir } from '../../volume/remove.js';
import { LocalPopulator } from './populate.js';
import { RecordStore } from './records.js';

export interface LocalBackendOptions {
  /** Real path of the volume root. */
  root: string;
  node: string;
  log: Logger;
  metrics: Metrics;
  /** How long CreateVolume waits for a running clone before answering ABORTED. */
  cloneWaitMs?: number;
}

/** Everything on this machine: records in the root's state directory, clones as child processes. */
export class LocalBackend implements VolumeBackend {
  private readonly records: RecordStore;
  private readonly populator: LocalPopulator;

  constructor(private readonly opts: LocalBackendOptions) {
    this.records = new RecordStore(opts.root);
    this.populator = new LocalPopulator({ root: opts.root, log: opts.log, metrics: opts.metrics, waitMs: opts.cloneWaitMs ?? 5000 });
  }

  private isLocal(ref: VolumeRef): boolean {
    return ref.node === this.opts.node;
  }

  async findVolume(name: string, dir: string): Promise<RecordedVolume | undefined> {
    const record = await this.records.get(dir);
    if (record && record.name !== name) {
      throw failedPrecondition(`volume directory ${dir} already belongs to volume "${record.name}"`);
    }
    return record ?? (await this.populator.pendingRecord(dir));
  }

  async createEmpty(spec: VolumeSpec): Promise<Record<string, string>> {
    const existing = await this.records.get(spec.ref.dir);
    if (existing) return existing.context;
    const context = { [CONTEXT_KIND]: 'empty' };
    await this.records.put(spec.ref.dir, {
      name: spec.name,
      volumeId: spec.ref.volumeId,
      capacityBytes: spec.capacityBytes,
      context,
      createdAt: new Date().toISOString(),
    });
    return context;
  }

  async describeSource(ref: VolumeRef): Promise<SourceVolume> {
    const record = this.isLocal(ref) ? await this.records.get(ref.dir) : undefined;
    if (!record || record.volumeId !== ref.volumeId) throw notFound(`source volume ${ref.volumeId} does not exist`);
    return { ref, capacityBytes: record.capacityBytes, description: volumePath(this.opts.root, ref) };
  }

  async ensureClone(spec: VolumeSpec & { source: SourceVolume }): Promise<CloneState> {
    const record = await this.records.get(spec.ref.dir);
    if (record) return { phase: 'ready', context: record.context };
    const outcome = await this.populator.ensure(spec);
    if (outcome.phase === 'running') return outcome;
    await this.records.put(spec.ref.dir, {
      name: spec.name,
      volumeId: spec.ref.volumeId,
      capacityBytes: spec.capacityBytes,
      sourceVolumeId: spec.source.ref.volumeId,
      context: outcome.context,
      createdAt: new Date().toISOString(),
    });
    await this.populator.forget(spec.ref.dir);
    return outcome;
  }

  async deleteVolume(ref: VolumeRef): Promise<DeleteState> {
    if (!this.isLocal(ref)) return { done: true, outcome: 'absent' };
    const record = await this.records.get(ref.dir);
    if (record && record.volumeId !== ref.volumeId) return { done: true, outcome: 'absent' };
    await this.populator.cancel(ref.dir);
    let outcome: 'deleted' | 'absent';
    try {
      outcome = await removeVolumeDir(this.opts.root, ref);
    } catch (err) {
      this.opts.metrics.cleanupsTotal.inc({ result: 'failed' });
      if (err instanceof UnsafeRemoval) throw failedPrecondition(err.message);
      throw err;
    }
    await this.records.remove(ref.dir);
    this.opts.metrics.cleanupsTotal.inc({ result: outcome });
    return { done: true, outcome: record ? 'deleted' : outcome };
  }

  async volumeExists(ref: VolumeRef): Promise<boolean> {
    if (!this.isLocal(ref)) return false;
    const record = await this.records.get(ref.dir);
    return record?.volumeId === ref.volumeId;
  }
}
