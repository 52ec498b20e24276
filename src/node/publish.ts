import { chmod, chown, mkdir, realpath, rmdir } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize } from 'node:path';
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from '../csi/errors.js';
import { requireString } from '../csi/validate.js';
import { cowExtentOf, isClone, isEmptyVolume } from '../volume/context.js';
import type { VolumeRef } from '../volume/id.js';
import { isBindOf, mountAt, readMounts } from '../volume/mountinfo.js';
import { POPULATED_MARKER, isUnder, pathKind, volumePath } from '../volume/paths.js';
import { bindMount, unmount } from './mounts.js';
import { setCowExtentSize } from './xfs.js';

// NodePublishVolume / NodeUnpublishVolume as steps: where the target really is, which directory
// may be served, and the bind mount itself.

/**
 * The target with its parent's symlinks resolved (mount points are listed that way), or
 * undefined when the parent does not exist. A target inside or above the volume root is
 * refused: it would show one volume's data inside another.
 */
export async function resolveTarget(root: string, path: string, what: string): Promise<string | undefined> {
  requireString(path, what);
  if (!isAbsolute(path)) throw invalidArgument(`${what} ${path} is not an absolute path`);
  const normal = normalize(path).replace(/\/$/, '');
  if (normal === '' || normal === '/') throw invalidArgument(`${what} ${path} is the filesystem root`);
  const parent = await realpath(dirname(normal)).catch(() => undefined);
  if (parent === undefined) return undefined;
  const resolved = join(parent, basename(normal));
  if (isUnder(resolved, root) || isUnder(root, resolved)) throw invalidArgument(`${what} ${path} overlaps the volume root ${root}`);
  return resolved;
}

/** The pod's fsGroup, which kubelet hands over instead of chowning the volume recursively. */
export function mountGroupOf(group: string | undefined): number | undefined {
  if (!group) return undefined;
  if (!/^\d{1,10}$/.test(group) || Number(group) > 0xffffffff) throw invalidArgument(`volume_mount_group "${group}" is not a numeric group id`);
  return Number(group);
}

/** Top directory only (never recursive, a volume may hold terabytes): group-owned, group-writable, setgid. */
async function shareWithGroup(dir: string, gid: number): Promise<void> {
  await chown(dir, -1, gid);
  await chmod(dir, 0o2775);
}

/** An empty volume's directory, with the StorageClass's copy-on-write extent hint (inherited by new files). */
async function createEmptyVolume(dir: string, context: Record<string, string>): Promise<void> {
  await mkdir(dir, { mode: 0o755 });
  const hint = cowExtentOf(context);
  if (hint === undefined) return;
  try {
    await setCowExtentSize(dir, hint);
  } catch (err) {
    await rmdir(dir).catch(() => undefined);
    throw failedPrecondition(`could not set the copy-on-write extent size hint on ${dir}: ${(err as Error).message}`);
  }
}

/** The directory to publish; empty volumes are created here on first use, clones must be populated. */
async function publishableDir(root: string, ref: VolumeRef, context: Record<string, string>): Promise<string> {
  const dir = volumePath(root, ref);
  const kind = await pathKind(dir);
  if (kind === 'symlink' || kind === 'other') throw failedPrecondition(`refusing to publish ${dir}: it is a ${kind}`);
  if (isEmptyVolume(context)) {
    if (kind === 'absent') await createEmptyVolume(dir, context);
    return dir;
  }
  if (kind === 'absent') throw notFound(`volume ${ref.volumeId} has no data on this node (${dir} does not exist)`);
  if (isClone(context) && (await pathKind(join(dir, POPULATED_MARKER))) === 'absent') {
    throw failedPrecondition(`volume ${ref.volumeId} is a clone that is not populated yet; it is never served empty`);
  }
  return dir;
}

export interface Publication {
  root: string;
  ref: VolumeRef;
  /** Resolved by resolveTarget. */
  target: string;
  readOnly: boolean;
  context: Record<string, string>;
  mountGroup?: number;
}

/** Bind-mounts the volume at the target; the same publication again is a no-op, a different one ALREADY_EXISTS. */
export async function publishVolume(p: Publication): Promise<void> {
  const { target, readOnly } = p;
  const source = await publishableDir(p.root, p.ref, p.context);
  if (p.mountGroup !== undefined && isEmptyVolume(p.context)) await shareWithGroup(source, p.mountGroup);
  const mounts = await readMounts();
  const existing = mountAt(target, mounts);
  if (existing) {
    if (!isBindOf(target, source, mounts)) throw alreadyExists(`target path ${target} already has something else mounted`);
    if (existing.options.includes('ro') !== readOnly) {
      throw alreadyExists(`volume ${p.ref.volumeId} is already published at ${target} ${readOnly ? 'read-write' : 'read-only'}`);
    }
    return;
  }
  const kind = await pathKind(target);
  if (kind !== 'absent' && kind !== 'directory') throw failedPrecondition(`target path ${target} exists and is not a directory`);
  if (kind === 'absent') await mkdir(target);
  try {
    await bindMount(source, target, readOnly);
  } catch (err) {
    if (kind === 'absent') await rmdir(target).catch(() => undefined);
    throw err;
  }
}

/** Unmounts the volume (only if that is what is mounted there) and removes the target directory. */
export async function unpublishVolume(root: string, ref: VolumeRef, target: string): Promise<void> {
  const mounts = await readMounts();
  if (mountAt(target, mounts)) {
    if (!isBindOf(target, volumePath(root, ref), mounts)) {
      throw failedPrecondition(`target path ${target} holds a mount that is not volume ${ref.volumeId}; leaving it alone`);
    }
    await unmount(target);
  }
  const kind = await pathKind(target);
  if (kind === 'directory') await rmdir(target);
}
