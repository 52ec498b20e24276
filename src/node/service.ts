import { chmod, chown, mkdir, realpath, rmdir, statfs } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize } from 'node:path';
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from '../csi/errors.js';
import type { RpcTable } from '../csi/handler.js';
import { TOPOLOGY_KEY } from '../csi/identity.js';
import type { NodeGetVolumeStatsRequest, NodePublishVolumeRequest, NodeUnpublishVolumeRequest } from '../csi/types.js';
import { requireCapability, requireString, requireVolumeId } from '../csi/validate.js';
import { cowExtentOf, isClone, isEmptyVolume } from '../volume/context.js';
import { parseVolumeId, type VolumeRef } from '../volume/id.js';
import { isBindOf, mountAt, readMounts } from '../volume/mountinfo.js';
import { POPULATED_MARKER, pathKind, volumePath } from '../volume/paths.js';
import { bindMount, unmount } from './mounts.js';
import { setCowExtentSize } from './xfs.js';

export interface NodeOptions {
  nodeId: string;
  /** The volume prefix with symlinks resolved. */
  root: string;
}

const isUnder = (path: string, dir: string) => path === dir || path.startsWith(`${dir}/`);

/** The pod's fsGroup, which kubelet hands over instead of chowning the volume recursively. */
function mountGroupOf(group: string | undefined): number | undefined {
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

export function nodeService(opts: NodeOptions): RpcTable {
  const { root, nodeId } = opts;

  /** The volume's ref, when the id is well formed and names this node; NOT_FOUND otherwise. */
  function localVolume(volumeId: string): VolumeRef {
    let ref: VolumeRef;
    try {
      ref = parseVolumeId(volumeId);
    } catch (err) {
      throw notFound(`volume ${volumeId} does not exist: ${(err as Error).message}`);
    }
    if (ref.node !== nodeId) throw notFound(`volume ${volumeId} lives on node ${ref.node}, not on this node (${nodeId})`);
    return ref;
  }

  /**
   * The target with its parent's symlinks resolved (mount points are listed that way), or
   * undefined when the parent does not exist. A target inside or above the volume root is
   * refused: it would show one volume's data inside another.
   */
  async function resolveTarget(path: string, what: string): Promise<string | undefined> {
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

  /** The directory to publish; empty volumes are created here on first use, clones must be populated. */
  async function publishableDir(ref: VolumeRef, context: Record<string, string>): Promise<string> {
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

  return {
    async NodeGetInfo() {
      return { node_id: nodeId, max_volumes_per_node: 0, accessible_topology: { segments: { [TOPOLOGY_KEY]: nodeId } } };
    },

    async NodeGetCapabilities() {
      return { capabilities: ['GET_VOLUME_STATS', 'VOLUME_MOUNT_GROUP'].map((type) => ({ rpc: { type } })) };
    },

    async NodePublishVolume(req: NodePublishVolumeRequest) {
      const volumeId = requireVolumeId(req.volume_id);
      const givenTarget = req.target_path;
      const capability = requireCapability(req.volume_capability);
      const readOnly = req.readonly || capability.access_mode?.mode === 'SINGLE_NODE_READER_ONLY';
      const target = await resolveTarget(givenTarget, 'target path');
      const ref = localVolume(volumeId);
      if (!target) throw failedPrecondition(`the parent directory of target path ${givenTarget} does not exist`);
      const mountGroup = mountGroupOf(capability.mount?.volume_mount_group);
      const source = await publishableDir(ref, req.volume_context ?? {});
      if (mountGroup !== undefined && isEmptyVolume(req.volume_context ?? {})) await shareWithGroup(source, mountGroup);
      const mounts = await readMounts();
      const existing = mountAt(target, mounts);
      if (existing) {
        if (!isBindOf(target, source, mounts)) throw alreadyExists(`target path ${target} already has something else mounted`);
        if (existing.options.includes('ro') !== readOnly) {
          throw alreadyExists(`volume ${volumeId} is already published at ${target} ${readOnly ? 'read-write' : 'read-only'}`);
        }
        return {};
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
      return {};
    },

    async NodeUnpublishVolume(req: NodeUnpublishVolumeRequest) {
      const volumeId = requireVolumeId(req.volume_id);
      const target = await resolveTarget(req.target_path, 'target path');
      const ref = localVolume(volumeId);
      if (!target) return {};
      const mounts = await readMounts();
      if (mountAt(target, mounts)) {
        if (!isBindOf(target, volumePath(root, ref), mounts)) {
          throw failedPrecondition(`target path ${target} holds a mount that is not volume ${volumeId}; leaving it alone`);
        }
        await unmount(target);
      }
      const kind = await pathKind(target);
      if (kind === 'directory') await rmdir(target);
      return {};
    },

    async NodeGetVolumeStats(req: NodeGetVolumeStatsRequest) {
      const volumeId = requireVolumeId(req.volume_id);
      const path = requireString(req.volume_path, 'volume path');
      const ref = localVolume(volumeId);
      const dir = volumePath(root, ref);
      if ((await pathKind(dir)) !== 'directory') throw notFound(`volume ${volumeId} does not exist on this node`);
      const published = await resolveTarget(path, 'volume path').catch(() => undefined);
      if (!published || !isBindOf(published, dir, await readMounts())) {
        throw notFound(`volume ${volumeId} is not published at ${path}`);
      }
      const fs = await statfs(path, { bigint: false });
      // The volume shares its filesystem with the others on this node: report that filesystem.
      return {
        usage: [
          { unit: 'BYTES', total: fs.blocks * fs.bsize, available: fs.bavail * fs.bsize, used: (fs.blocks - fs.bfree) * fs.bsize },
          { unit: 'INODES', total: fs.files, available: fs.ffree, used: fs.files - fs.ffree },
        ],
      };
    },
  };
}
