import type { VolumeRef } from '../volume/id.js';

// The controller decides; a backend does the work on the node that holds the data.
// Two implementations: local processes (standalone) and Kubernetes Jobs (controller role).

/** What CreateVolume decided for a volume. */
export interface VolumeSpec<S extends SourceVolume = SourceVolume> {
  name: string;
  ref: VolumeRef;
  capacityBytes: number;
  parameters: Record<string, string>;
  /** Set for clones. */
  source?: S;
}

/** A clone, with the source its backend resolved (the backend's own type: it is never resolved again). */
export type CloneSpec<S extends SourceVolume = SourceVolume> = VolumeSpec<S> & { source: S };

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

/**
 * Every method throws a CsiError the controller passes on as it is: NOT_FOUND for a source that
 * does not exist, and whatever else the backend finds (FAILED_PRECONDITION, PERMISSION_DENIED,
 * RESOURCE_EXHAUSTED, UNAVAILABLE when its API cannot be reached, ...).
 */
export interface VolumeBackend<S extends SourceVolume = SourceVolume> {
  /** The earlier request under this name, if any: the key of CreateVolume's idempotency. */
  findVolume(name: string, dir: string): Promise<RecordedVolume | undefined>;
  /** Records an empty volume; the node creates its directory on first publish. Returns volume_context. */
  createEmpty(spec: VolumeSpec<S>): Promise<Record<string, string>>;
  /** Finds a clone source for a request with these StorageClass/sidecar parameters, checking that this clone may copy it. */
  describeSource(ref: VolumeRef, parameters: Record<string, string>): Promise<S>;
  /** Starts populating the clone the first time, reports progress after; throws on failure, leaving nothing behind. */
  ensureClone(spec: CloneSpec<S>): Promise<CloneState>;
  /** Removes the volume's data on its node. */
  deleteVolume(ref: VolumeRef): Promise<DeleteState>;
  /** Whether a volume with this id exists. */
  volumeExists(ref: VolumeRef): Promise<boolean>;
}
