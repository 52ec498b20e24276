import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDir } from './durable-file.js';
import type { VolumeRef } from './id.js';
import { mountsShowing, readMounts } from './mountinfo.js';
import { POPULATED_MARKER, pathKind, volumePath } from './paths.js';
import { removeTree } from './remove-tree.js';

export class UnsafeRemoval extends Error {}

/**
 * Removes a volume's directory under the (real) root: 'absent' when already gone. Refuses a
 * symlink or non-directory in the volume's place and a volume still mounted anywhere, as seen in
 * `mountTable` (the host's table for a node-side Job: `/proc/1/mountinfo` with hostPID).
 */
export async function removeVolumeDir(root: string, ref: VolumeRef, mountTable = '/proc/self/mountinfo'): Promise<'deleted' | 'absent'> {
  const path = volumePath(root, ref);
  const kind = await pathKind(path);
  if (kind === 'absent') return 'absent';
  if (kind !== 'directory') throw new UnsafeRemoval(`refusing to delete ${path}: it is a ${kind}, not a volume directory`);
  const inUse = mountsShowing(path, await readMounts(mountTable));
  if (inUse.length > 0) {
    throw new UnsafeRemoval(`volume ${ref.volumeId} is still mounted at ${inUse.map((m) => m.mountPoint).join(', ')}`);
  }
  await removeVolumeTree(path);
  return 'deleted';
}

/**
 * Removes a volume's tree, its populated marker first and durably: a removal stopped halfway (a
 * crash, a timeout, a file it cannot remove) never leaves a marker over partial data, which a
 * retried population would take for a finished clone. The tree is its tenant's, who may swap a
 * directory for a symlink while it goes (removeTree never follows one).
 */
export async function removeVolumeTree(path: string): Promise<void> {
  try {
    await unlink(join(path, POPULATED_MARKER));
  } catch (err) {
    // Absent, or a directory of that name (no marker: markers are regular files).
    if (!['ENOENT', 'EISDIR', 'EPERM'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
  }
  await syncDir(path);
  await removeTree(path);
}
