import type { CloneState, DeleteState, RecordedVolume, SourceVolume, VolumeBackend, VolumeSpec } from '../../controller/backend.js';
import { CONTEXT_KIND } from '../../controller/backend.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import type { VolumeRef } from '../../volume/id.js';
import { Cloner } from './clone.js';
import { kubeCall, type KubeClient } from './client.js';
import { ANN_CAPACITY, ANN_SOURCE_VOLUME_ID, ANN_VOLUME_ID, ANN_VOLUME_NAME } from './constants.js';
import { Deleter } from './deletion.js';
import { EventRecorder } from './events.js';
import { Jobs } from './jobs.js';
import type { KubeSettings } from './settings.js';
import { describeSource, type KubeSourceVolume } from './source.js';
import { pvByHandle, pvByName, recordedFromPv } from './volumes.js';

export interface KubeBackendOptions {
  client: KubeClient;
  settings: KubeSettings;
  log: Logger;
  metrics: Metrics;
}

/**
 * The controller role's backend: state in the cluster (PVs made by the sidecar, our Jobs and
 * their annotations), node work in Jobs pinned to the volume's node.
 */
export class KubeBackend implements VolumeBackend {
  readonly events: EventRecorder;
  readonly jobs: Jobs;
  private readonly cloner: Cloner;
  private readonly deleter: Deleter;

  constructor(private readonly opts: KubeBackendOptions) {
    this.jobs = new Jobs(opts.client, opts.log);
    this.events = new EventRecorder(opts.client, opts.log);
    const deps = { ...opts, jobs: this.jobs, events: this.events };
    this.cloner = new Cloner(deps);
    this.deleter = new Deleter(deps);
  }

  /** The PV the sidecar made under this name, else the populator Job started for it. */
  async findVolume(name: string, dir: string): Promise<RecordedVolume | undefined> {
    return kubeCall(`looking up volume ${name}`, async () => {
      const pv = await pvByName(this.opts.client, name);
      if (pv) return recordedFromPv(name, pv);
      for (const j of await this.jobs.forVolume('populate', dir)) {
        const a = j.metadata?.annotations ?? {};
        if (a[ANN_VOLUME_NAME] !== name || !a[ANN_VOLUME_ID]) continue;
        return {
          name,
          volumeId: a[ANN_VOLUME_ID],
          capacityBytes: Number(a[ANN_CAPACITY] ?? 0),
          ...(a[ANN_SOURCE_VOLUME_ID] ? { sourceVolumeId: a[ANN_SOURCE_VOLUME_ID] } : {}),
        };
      }
      return undefined;
    });
  }

  async createEmpty(spec: VolumeSpec): Promise<Record<string, string>> {
    // No node work: the node plugin creates the directory on first publish. Only an old
    // deletion record under this name must go (see Deleter).
    await kubeCall(`creating volume ${spec.name}`, () => this.deleter.forgetDeletion(spec.ref));
    return { [CONTEXT_KIND]: 'empty' };
  }

  describeSource(ref: VolumeRef): Promise<KubeSourceVolume> {
    return describeSource(this.opts.client, this.opts.settings.namespacePath, ref);
  }

  ensureClone(spec: VolumeSpec & { source: SourceVolume }): Promise<CloneState> {
    return this.cloner.ensure(spec);
  }

  deleteVolume(ref: VolumeRef): Promise<DeleteState> {
    return this.deleter.delete(ref);
  }

  async volumeExists(ref: VolumeRef): Promise<boolean> {
    return kubeCall(`looking up volume ${ref.volumeId}`, async () => {
      if (await pvByHandle(this.opts.client, ref.volumeId, ref.dir)) return true;
      return (await this.deleter.populateJobs(ref)).length > 0;
    });
  }
}
