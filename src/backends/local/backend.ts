import { alreadyExists, failedPrecondition, notFound } from '../../csi/errors.js';
import type { CloneSpec, CloneState, DeleteState, RecordedVolume, SourceVolume, VolumeBackend, VolumeSpec } from '../../controller/backend.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { cloneContext, emptyVolumeContext } from '../../volume/context.js';
import type { VolumeRef } from '../../volume/id.js';
import { volumePath } from '../../volume/paths.js';
import { UnsafeRemoval, removeVolumeDir } from '../../volume/remove.js';
import { readPopulatedMarker } from './populated-marker.js';
import { LocalPopulator } from './populate.js';
import { RecordStore, type VolumeRecord } from './records.js';

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

  /** The volume's record; an unreadable one counts as absent (with a warning), so that no call is stuck on it. */
  private async record(dir: string): Promise<VolumeRecord | undefined> {
    const read = await this.records.read(dir);
    if (read.state === 'unreadable') {
      this.opts.log.warn('volume record is unreadable; treating it as absent', { dir, problem: read.problem });
      return undefined;
    }
    return read.state === 'present' ? read.record : undefined;
  }

  async findVolume(name: string, dir: string): Promise<RecordedVolume | undefined> {
    const record = await this.record(dir);
    if (record && record.name !== name) {
      throw failedPrecondition(`volume directory ${dir} already belongs to volume "${record.name}"`);
    }
    return record ?? (await this.populator.pendingRecord(dir));
  }

  async createEmpty(spec: VolumeSpec): Promise<Record<string, string>> {
    const existing = await this.record(spec.ref.dir);
    if (existing) return existing.context;
    if (await readPopulatedMarker(volumePath(this.opts.root, spec.ref), spec.name)) {
      throw alreadyExists(`a volume named ${spec.name} already exists with different parameters: it is a populated clone`);
    }
    const context = emptyVolumeContext();
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
    const record = this.isLocal(ref) ? await this.record(ref.dir) : undefined;
    if (!record || record.volumeId !== ref.volumeId) throw notFound(`source volume ${ref.volumeId} does not exist`);
    return { ref, capacityBytes: record.capacityBytes, description: volumePath(this.opts.root, ref) };
  }

  private async recordClone(spec: CloneSpec, context: Record<string, string>): Promise<void> {
    await this.records.put(spec.ref.dir, {
      name: spec.name,
      volumeId: spec.ref.volumeId,
      capacityBytes: spec.capacityBytes,
      sourceVolumeId: spec.source.ref.volumeId,
      context,
      createdAt: new Date().toISOString(),
    });
    await this.populator.forget(spec.ref.dir);
  }

  async ensureClone(spec: CloneSpec): Promise<CloneState> {
    const record = await this.record(spec.ref.dir);
    if (record) return { phase: 'ready', context: record.context };
    // Populated under this name, but its record is lost: rebuild the record, never populate (or delete) again.
    const marker = await readPopulatedMarker(volumePath(this.opts.root, spec.ref), spec.name);
    if (marker && !(await this.populator.isRunning(spec.ref.dir))) {
      this.opts.log.warn('rebuilt a lost volume record from the populated clone', { volume: spec.name });
      const context = cloneContext(spec, marker.mode, marker);
      await this.recordClone(spec, context);
      return { phase: 'ready', context };
    }
    const outcome = await this.populator.ensure(spec);
    if (outcome.phase === 'running') return outcome;
    await this.recordClone(spec, outcome.context);
    return outcome;
  }

  async deleteVolume(ref: VolumeRef): Promise<DeleteState> {
    if (!this.isLocal(ref)) return { done: true, outcome: 'absent' };
    const record = await this.record(ref.dir);
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
    const record = await this.record(ref.dir);
    return record?.volumeId === ref.volumeId;
  }
}
