import type { CloneSpec, CloneState, DeleteState, RecordedVolume, VolumeBackend, VolumeSpec } from '../../controller/backend.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { emptyVolumeContext } from '../../volume/context.js';
import type { VolumeRef } from '../../volume/id.js';
import { Cloner } from './clone/cloner.js';
import { kubeCall, type KubeClient } from './api/client.js';
import { CloneRecords } from './clone/record.js';
import { Deleter } from './deletion/deleter.js';
import { EventRecorder } from './api/events.js';
import { Jobs } from './api/jobs.js';
import type { KubeSettings } from './settings.js';
import { describeSource, type KubeSourceVolume } from './clone/source.js';
import { pvByHandle, pvByName, recordedFromPv } from './api/volumes.js';

export interface KubeBackendOptions {
  client: KubeClient;
  settings: KubeSettings;
  log: Logger;
  metrics: Metrics;
}

/**
 * The controller role's backend: state in the cluster (PVs made by the sidecar, our records in
 * the driver's namespace, our Jobs), node work in Jobs pinned to the volume's node.
 */
export class KubeBackend implements VolumeBackend<KubeSourceVolume> {
  readonly events: EventRecorder;
  readonly jobs: Jobs;
  private readonly cloner: Cloner;
  private readonly deleter: Deleter;

  private readonly records: CloneRecords;

  constructor(private readonly opts: KubeBackendOptions) {
    this.jobs = new Jobs(opts.client, opts.log);
    this.events = new EventRecorder(opts.client, opts.log);
    this.records = new CloneRecords(opts.client, opts.settings.driverNamespace);
    const deps = { ...opts, jobs: this.jobs, events: this.events, records: this.records };
    this.cloner = new Cloner(deps);
    this.deleter = new Deleter(deps);
  }

  /** The PV the sidecar made under this name, else the record of a clone started under it (never a Job: Jobs live in users' namespaces). */
  async findVolume(name: string, dir: string): Promise<RecordedVolume | undefined> {
    return kubeCall(`looking up volume ${name}`, async () => {
      const pv = await pvByName(this.opts.client, name);
      if (pv) return recordedFromPv(name, pv);
      const record = await this.records.get(dir);
      if (!record || record.volumeName !== name) return undefined;
      return { name, volumeId: record.volumeId, capacityBytes: record.capacityBytes, ...(record.sourceVolumeId ? { sourceVolumeId: record.sourceVolumeId } : {}) };
    });
  }

  async createEmpty(spec: VolumeSpec): Promise<Record<string, string>> {
    // No node work: the node plugin creates the directory on first publish. Only an old
    // deletion record under this name must go (see deletion/deleter.ts).
    await kubeCall(`creating volume ${spec.name}`, () => this.deleter.forgetDeletion(spec.ref));
    return emptyVolumeContext();
  }

  describeSource(ref: VolumeRef, parameters: Record<string, string>): Promise<KubeSourceVolume> {
    return describeSource(this.opts.client, this.opts.settings.namespacePath, ref, parameters, this.records);
  }

  ensureClone(spec: CloneSpec<KubeSourceVolume>): Promise<CloneState> {
    return this.cloner.ensure(spec);
  }

  deleteVolume(ref: VolumeRef): Promise<DeleteState> {
    return this.deleter.delete(ref);
  }

  async volumeExists(ref: VolumeRef): Promise<boolean> {
    return kubeCall(`looking up volume ${ref.volumeId}`, async () => {
      if (await pvByHandle(this.opts.client, ref.volumeId, ref.dir)) return true;
      return (await this.records.get(ref.dir))?.volumeId === ref.volumeId;
    });
  }
}
