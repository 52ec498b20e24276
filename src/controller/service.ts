import { aborted, invalidArgument, notFound } from '../csi/errors.js';
import type { RpcTable } from '../csi/handler.js';
import type { CreateVolumeRequest, DeleteVolumeRequest, ValidateVolumeCapabilitiesRequest } from '../csi/types.js';
import { capabilityProblem, parseVolumeIdOrNotFound, requireVolumeId } from '../csi/validate.js';
import { InvalidVolumeId, parseVolumeId, type VolumeRef } from '../volume/id.js';
import type { SourceVolume, VolumeBackend } from './backend.js';
import { createVolume } from './create-volume.js';

export interface ControllerOptions<S extends SourceVolume> {
  backend: VolumeBackend<S>;
  /** Standalone: the only node volumes can be placed on. */
  onlyNode?: string;
}

const CAPABILITIES = ['CREATE_DELETE_VOLUME', 'CLONE_VOLUME'];

export function controllerService<S extends SourceVolume>(opts: ControllerOptions<S>): RpcTable {
  const { backend } = opts;
  return {
    CreateVolume: (req: CreateVolumeRequest) => createVolume(backend, req, opts.onlyNode),

    async DeleteVolume(req: DeleteVolumeRequest) {
      const volumeId = requireVolumeId(req.volume_id);
      let ref: VolumeRef;
      try {
        ref = parseVolumeId(volumeId);
      } catch (err) {
        // No volume of ours can have this id, so there is nothing to delete (CSI: OK when absent).
        if (err instanceof InvalidVolumeId) return {};
        throw err;
      }
      const state = await backend.deleteVolume(ref);
      if (!state.done) throw aborted(`volume ${volumeId} is being deleted: ${state.message}`);
      return {};
    },

    async ValidateVolumeCapabilities(req: ValidateVolumeCapabilitiesRequest) {
      const volumeId = requireVolumeId(req.volume_id);
      if (!req.volume_capabilities || req.volume_capabilities.length === 0) {
        throw invalidArgument('volume capabilities missing in request');
      }
      const ref = parseVolumeIdOrNotFound(volumeId);
      if (!(await backend.volumeExists(ref))) throw notFound(`volume ${volumeId} does not exist`);
      const problems = req.volume_capabilities.map(capabilityProblem).filter((p): p is string => !!p);
      if (problems.length > 0) return { message: problems.join('; ') };
      return {
        confirmed: {
          volume_context: req.volume_context,
          volume_capabilities: req.volume_capabilities,
          parameters: req.parameters,
          mutable_parameters: req.mutable_parameters,
        },
      };
    },

    async ControllerGetCapabilities() {
      return { capabilities: CAPABILITIES.map((type) => ({ rpc: { type } })) };
    },
  };
}
