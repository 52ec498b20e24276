import type { VolumeRef } from '../volume/id.js';

// The controller decides; a backend does the work on the node that holds the data.
// Two implementations: local processes (standalone) and Kubernetes Jobs (controller role).

/** What CreateVolume decided for a volume. */
export interface VolumeSpec {
  name: string;
  ref: VolumeRef;
  capacityBytes: number;
  parameters: Record<string, string>;
  /** Set for clones. */
  source?: SourceVolume;
}

/** A volume some earlier CreateVolume call asked for under the same name. */
export interface RecordedVolume {
  name: string;
  volumeId: string;
  capacityBytes: number;
  sourceVolumeId?: string;
}

/** A clone source, as the backend found it. */
export interface SourceVolume {
  ref: VolumeRef;
  capacityBytes: number;
  /** Human-readable description for messages and volume_context (e.g. `ns/pvc`, or a path in standalone). */
  description: string;
}

export type CloneState =
  | { phase: 'ready'; context: Record<string, string> }
  | { phase: 'running'; message: string };

export type DeleteState = { done: true; outcome: 'deleted' | 'absent' } | { done: false; message: string };

export interface VolumeBackend {
  /** The earlier request under this name, if any: the key of CreateVolume's idempotency. */
  findVolume(name: string, dir: string): Promise<RecordedVolume | undefined>;
  /** Records an empty volume; the node creates its directory on first publish. Returns volume_context. */
  createEmpty(spec: VolumeSpec): Promise<Record<string, string>>;
  /** Finds a clone source; throws a NOT_FOUND CsiError when there is none. */
  describeSource(ref: VolumeRef): Promise<SourceVolume>;
  /** Starts populating the clone the first time, reports progress after; throws on failure, leaving nothing behind. */
  ensureClone(spec: VolumeSpec & { source: SourceVolume }): Promise<CloneState>;
  /** Removes the volume's data on its node. */
  deleteVolume(ref: VolumeRef): Promise<DeleteState>;
  /** Whether a volume with this id exists. */
  volumeExists(ref: VolumeRef): Promise<boolean>;
}
