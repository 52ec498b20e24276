import { statfs } from 'node:fs/promises';
import { failedPrecondition, notFound } from '../csi/errors.js';
import type { RpcTable } from '../csi/handler.js';
import { TOPOLOGY_KEY } from '../csi/identity.js';
import type { NodeGetVolumeStatsRequest, NodePublishVolumeRequest, NodeUnpublishVolumeRequest } from '../csi/types.js';
import { parseVolumeIdOrNotFound, requireCapability, requireString, requireVolumeId } from '../csi/validate.js';
import type { VolumeRef } from '../volume/id.js';
import { isBindOf, readMounts } from '../volume/mountinfo.js';
import { pathKind, volumePath } from '../volume/paths.js';
import { mountGroupOf, publishVolume, resolveTarget, unpublishVolume } from './publish.js';

export interface NodeOptions {
  nodeId: string;
  /** The volume prefix with symlinks resolved. */
  root: string;
}

export function nodeService(opts: NodeOptions): RpcTable {
  const { root, nodeId } = opts;

  /** The volume's ref, when the id is well formed and names this node; NOT_FOUND otherwise. */
  function localVolume(volumeId: string): VolumeRef {
    const ref = parseVolumeIdOrNotFound(volumeId);
    if (ref.node !== nodeId) throw notFound(`volume ${volumeId} lives on node ${ref.node}, not on this node (${nodeId})`);
    return ref;
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
      const capability = requireCapability(req.volume_capability);
      const readOnly = req.readonly || capability.access_mode?.mode === 'SINGLE_NODE_READER_ONLY';
      const target = await resolveTarget(root, req.target_path, 'target path');
      const ref = localVolume(volumeId);
      if (!target) throw failedPrecondition(`the parent directory of target path ${req.target_path} does not exist`);
      const mountGroup = mountGroupOf(capability.mount?.volume_mount_group);
      await publishVolume({ root, ref, target, readOnly, context: req.volume_context ?? {}, mountGroup });
      return {};
    },

    async NodeUnpublishVolume(req: NodeUnpublishVolumeRequest) {
      const volumeId = requireVolumeId(req.volume_id);
      const target = await resolveTarget(root, req.target_path, 'target path');
      const ref = localVolume(volumeId);
      if (target) await unpublishVolume(root, ref, target);
      return {};
    },

    async NodeGetVolumeStats(req: NodeGetVolumeStatsRequest) {
      const volumeId = requireVolumeId(req.volume_id);
      const path = requireString(req.volume_path, 'volume path');
      const ref = localVolume(volumeId);
      const dir = volumePath(root, ref);
      if ((await pathKind(dir)) !== 'directory') throw notFound(`volume ${volumeId} does not exist on this node`);
      const published = await resolveTarget(root, path, 'volume path').catch(() => undefined);
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
