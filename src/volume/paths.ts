import { lstat, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import type { VolumeRef } from './id.js';

/** Directory under the prefix for the driver's own state; never a volume (volume dirs start alphanumeric). */
export const STATE_DIR = '.pg-reflinker';
/** In a clone's volume: the populator's result, written last; its presence means the clone is complete. */
export const POPULATED_MARKER = '.pgr-populated';
/** Where a clone's data directory lives inside its volume (CNPG mounts the volume and uses `pgdata`). */
export const PGDATA = 'pgdata';

/** The prefix with symlinks resolved, so that every path built from it is a real path. */
export async function resolveRoot(root: string): Promise<string> {
  return realpath(root);
}

/** `<root>/<dir>`; `dir` comes from a parsed VolumeRef, so it cannot climb out of the root. */
export function volumePath(root: string, ref: Pick<VolumeRef, 'dir'>): string {
  return join(root, ref.dir);
}

/** Whether `path` is `dir` or lies below it (both absolute, normalised). */
export const isUnder = (path: string, dir: string) => path === dir || path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);

export type PathKind = 'absent' | 'directory' | 'symlink' | 'other';

export async function pathKind(path: string): Promise<PathKind> {
  try {
    const info = await lstat(path);
    if (info.isSymbolicLink()) return 'symlink';
    return info.isDirectory() ? 'directory' : 'other';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw err;
  }
}
