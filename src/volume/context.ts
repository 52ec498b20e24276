// volume_context: what CreateVolume answers with a volume. The sidecar keeps it in the PV's
// volumeAttributes and kubelet hands it to the node plugin with every publish; a retried
// CreateVolume reads it back from there. Every key, and every builder and reader of one, is here.

const KEY = 'pg-reflinker.csi/';

const CONTEXT_KIND = `${KEY}kind`;
/** An empty volume's XFS copy-on-write extent size hint in bytes (StorageClass `cowExtentSize`). */
const CONTEXT_COW_EXTENT_SIZE = `${KEY}cowExtentSize`;
const CONTEXT_SOURCE_VOLUME_ID = `${KEY}sourceVolumeId`;

type Context = Record<string, string>;

export const emptyVolumeContext = (): Context => ({ [CONTEXT_KIND]: 'empty' });

export const cowExtentContext = (bytes: number | undefined): Context => (bytes === undefined ? {} : { [CONTEXT_COW_EXTENT_SIZE]: String(bytes) });

/** What a clone's copy reports (the populator's result line, less its label and mode). */
export interface CopyReport {
  /** online: pg_backup_start's LSN; plain: null. */
  startLsn: string | null;
  stopLsn: string | null;
  timeline: number | null;
  backupFrom: 'primary' | 'standby' | null;
  /** Regular files and logical bytes in the result. */
  files: number;
  bytes: number;
  /** Whole run; pg_backup_start (checkpoint); tree copy; WAL re-copy after pg_backup_stop. */
  seconds: number;
  checkpointSeconds: number;
  copySeconds: number;
  walSeconds: number;
}

/** A clone that preferStandby redirected: the replica instance cloned, the primary asked for, and the source as requested. */
export interface StandbyRedirect {
  replica: string;
  primary: string;
  requested: { description: string; volumeId: string };
}

/** Where a clone came from: its source (as described to users, and its id) and its node. */
export interface CloneOrigin {
  ref: { node: string };
  source: { description: string; ref: { volumeId: string }; standby?: StandbyRedirect };
}

/** The volume_context of a populated clone: where it came from and what the copy was (same on every call). */
export function cloneContext(clone: CloneOrigin, mode: 'online' | 'plain', report: CopyReport): Context {
  const context: Context = {
    [CONTEXT_KIND]: 'clone',
    [`${KEY}source`]: clone.source.description,
    [CONTEXT_SOURCE_VOLUME_ID]: clone.source.ref.volumeId,
    [`${KEY}node`]: clone.ref.node,
    [`${KEY}mode`]: mode,
    [`${KEY}seconds`]: report.seconds.toFixed(3),
    [`${KEY}files`]: String(report.files),
    [`${KEY}bytes`]: String(report.bytes),
  };
  const standby = clone.source.standby;
  if (standby) {
    context[`${KEY}clonedInstance`] = standby.replica;
    context[`${KEY}standbyFor`] = standby.primary;
    context[`${KEY}requestedSource`] = standby.requested.description;
  }
  if (mode === 'online') {
    context[`${KEY}startLsn`] = report.startLsn ?? '';
    context[`${KEY}stopLsn`] = report.stopLsn ?? '';
    context[`${KEY}timeline`] = String(report.timeline ?? '');
    context[`${KEY}backupFrom`] = report.backupFrom ?? '';
    context[`${KEY}checkpointSeconds`] = report.checkpointSeconds.toFixed(3);
    context[`${KEY}copySeconds`] = report.copySeconds.toFixed(3);
    context[`${KEY}walSeconds`] = report.walSeconds.toFixed(3);
  }
  return context;
}

export const isEmptyVolume = (context: Context) => context[CONTEXT_KIND] === 'empty';
export const isClone = (context: Context) => context[CONTEXT_KIND] === 'clone';
export const cowExtentOf = (context: Context): number | undefined => (context[CONTEXT_COW_EXTENT_SIZE] ? Number(context[CONTEXT_COW_EXTENT_SIZE]) : undefined);
export const sourceVolumeIdOf = (context: Context): string | undefined => context[CONTEXT_SOURCE_VOLUME_ID] || undefined;
