import { lstat, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { failedPrecondition } from '../../csi/errors.js';
import type { SourceVolume } from '../../controller/backend.js';
import { PGDATA, volumePath } from '../../volume/paths.js';

/** A directory as it was resolved once: a real directory (never a symlink), named by device and inode. */
export interface PinnedDir {
  path: string;
  dev: bigint;
  ino: bigint;
  uid: number;
  gid: number;
}

/** A clone's source as resolved once, before anything starts. */
export interface PinnedSource {
  volumeId: string;
  volumeDir: PinnedDir;
  /** `<volume>/pgdata`, when the volume holds one. */
  pgdata?: PinnedDir;
}

/** `<st_dev>:<st_ino>`, as the populator checks it (PGR_SOURCE_ID). */
export const identityOf = (dir: PinnedDir): string => `${dir.dev}:${dir.ino}`;

async function lstatOrAbsent(path: string) {
  try {
    return await lstat(path, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

const pinned = (path: string, info: NonNullable<Awaited<ReturnType<typeof lstatOrAbsent>>>): PinnedDir => ({
  path,
  dev: info.dev,
  ino: info.ino,
  uid: Number(info.uid),
  gid: Number(info.gid),
});

const what = (info: NonNullable<Awaited<ReturnType<typeof lstatOrAbsent>>>) => (info.isSymbolicLink() ? 'a symlink' : 'not a directory');

/**
 * Resolves a clone's source once (lstat: symlinks are refused, never followed). A never-published
 * empty volume has no directory yet: it gets an empty one, so that the copy has something to copy.
 */
export async function pinSource(root: string, source: SourceVolume): Promise<PinnedSource> {
  const { volumeId } = source.ref;
  const dir = volumePath(root, source.ref);
  let info = await lstatOrAbsent(dir);
  if (!info) {
    await mkdir(dir, { mode: 0o755 });
    info = await lstatOrAbsent(dir);
  }
  if (!info || !info.isDirectory()) {
    throw failedPrecondition(`source volume ${volumeId}: ${dir} is ${info ? what(info) : 'missing'}; refusing to copy it`);
  }
  const pgdataPath = join(dir, PGDATA);
  const pgdata = await lstatOrAbsent(pgdataPath);
  if (pgdata && !pgdata.isDirectory()) {
    throw failedPrecondition(
      pgdata.isSymbolicLink()
        ? `source volume ${volumeId} has a symlink as ${PGDATA}; refusing to follow it out of the volume`
        : `source volume ${volumeId}: ${pgdataPath} is not a directory; refusing to copy it`,
    );
  }
  return { volumeId, volumeDir: pinned(dir, info), pgdata: pgdata ? pinned(pgdataPath, pgdata) : undefined };
}

/** Refuses when the directory at `dir.path` is no longer the one pinned (replaced, or swapped for a symlink). */
export async function assertStillPinned(dir: PinnedDir): Promise<void> {
  const now = await lstatOrAbsent(dir.path);
  if (!now || !now.isDirectory() || now.dev !== dir.dev || now.ino !== dir.ino) {
    throw failedPrecondition(`${dir.path} was replaced while the clone was being prepared (it was ${identityOf(dir)}); refusing to copy`);
  }
}
