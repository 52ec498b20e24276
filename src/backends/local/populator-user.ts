import { failedPrecondition } from '../../csi/errors.js';
import type { PinnedSource } from './source.js';

/** The overflow user and group: the populator's identity when nothing better is known. */
export const NOBODY = 65534;

export interface PopulatorUser {
  uid: number;
  gid: number;
}

/**
 * Who runs the populator: never root. The owner of the source's pgdata (a root-owned pgdata is
 * refused: PostgreSQL never runs as root, so it is not a data directory to trust), else the owner
 * of the source volume directory when not root, else nobody. Group 0 becomes nobody's group.
 */
export function populatorUser(source: PinnedSource): PopulatorUser {
  const group = (gid: number) => (gid === 0 ? NOBODY : gid);
  if (source.pgdata) {
    if (source.pgdata.uid === 0) {
      throw failedPrecondition(`source volume ${source.volumeId}: pgdata ${source.pgdata.path} is owned by root; PostgreSQL never runs as root, and no copy runs as root`);
    }
    return { uid: source.pgdata.uid, gid: group(source.pgdata.gid) };
  }
  if (source.volumeDir.uid !== 0) return { uid: source.volumeDir.uid, gid: group(source.volumeDir.gid) };
  return { uid: NOBODY, gid: NOBODY };
}
