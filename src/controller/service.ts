import { aborted, alreadyExists, invalidArgument, notFound, outOfRange } from '../csi/errors.js';
import type { RpcTable } from '../csi/handler.js';
import { TOPOLOGY_KEY } from '../csi/identity.js';
import type {
  CreateVolumeRequest,
  DeleteVolumeRequest,
  ValidateVolumeCapabilitiesRequest,
  Volume,
  VolumeContentSource,
} from '../csi/types.js';
import { capabilityProblem, requireCapabilities, requireString, requireVolumeId } from '../csi/validate.js';
import { cowExtentContext } from '../volume/context.js';
import { InvalidVolumeId, dirForName, formatVolumeId, parseVolumeId, type VolumeRef } from '../volume/id.js';
import { type RecordedVolume, type SourceVolume, type VolumeBackend, type VolumeSpec } from './backend.js';
import { cowExtentParameter } from './parameters.js';
import { LABEL_PATTERN } from '../populator/layout.js';
import { placeClone, placeEmptyVolume, topologyFor } from './placement.js';

export interface ControllerOptions {
  backend: VolumeBackend;
  /** Standalone: the only node volumes can be placed on. */
  onlyNode?: string;
}

const CAPABILITIES = ['CREATE_DELETE_VOLUME', 'CLONE_VOLUME'];

interface CapacityRange {
  required: number;
  limit: number;
}

function capacityRange(req: CreateVolumeRequest): CapacityRange {
  const required = req.capacity_range?.required_bytes ?? 0;
  const limit = req.capacity_range?.limit_bytes ?? 0;
  if (required < 0 || limit < 0) throw invalidArgument('capacity_range bytes must not be negative');
  if (limit > 0 && required > limit) throw outOfRange(`required_bytes ${required} exceeds limit_bytes ${limit}`);
  return { required, limit };
}

const fits = (capacity: number, range: CapacityRange) => capacity >= range.required && (range.limit === 0 || capacity <= range.limit);

function sourceVolumeId(source: VolumeContentSource | null | undefined): string | undefined {
  if (!source || (!source.volume && !source.snapshot)) return undefined;
  if (source.snapshot) throw invalidArgument('snapshots are not supported as a volume content source; clone a volume instead');
  return requireVolumeId(source.volume?.volume_id, 'volume_content_source.volume.volume_id');
}

/** A clone's name becomes its backup label (and part of its replication slot's name): only what the populator accepts. */
function requireCloneName(name: string): void {
  if (!LABEL_PATTERN.test(name)) {
    throw invalidArgument(`volume name ${JSON.stringify(name.slice(0, 256))} cannot be used as a backup label: the name of a clone must match ${LABEL_PATTERN}`);
  }
}

/** Same name, different request: the CSI spec's ALREADY_EXISTS. */
function checkSameRequest(existing: RecordedVolume, spec: VolumeSpec, range: CapacityRange): void {
  const differences: string[] = [];
  if (existing.volumeId !== spec.ref.volumeId) differences.push(`it is volume ${existing.volumeId}`);
  if ((existing.sourceVolumeId ?? '') !== (spec.source?.ref.volumeId ?? '')) {
    differences.push(existing.sourceVolumeId ? `it was cloned from ${existing.sourceVolumeId}` : 'it was created empty');
  }
  if (!fits(existing.capacityBytes, range)) differences.push(`its capacity is ${existing.capacityBytes} bytes`);
  if (differences.length > 0) {
    throw alreadyExists(`a volume named ${spec.name} already exists with different parameters: ${differences.join('; ')}`);
  }
}

/** A retried empty volume stays where it was placed, as long as that node is still allowed. */
function existingNodeIfAllowed(existing: RecordedVolume | undefined, req: CreateVolumeRequest): string | undefined {
  if (!existing) return undefined;
  const { node } = parseVolumeId(existing.volumeId);
  const requisite = req.accessibility_requirements?.requisite ?? [];
  const allowed = requisite.length === 0 || requisite.some((t) => t.segments?.[TOPOLOGY_KEY] === node);
  return allowed ? node : undefined;
}

export function controllerService(opts: ControllerOptions): RpcTable {
  const { backend } = opts;

  async function findSource(volumeId: string): Promise<SourceVolume> {
    let ref: VolumeRef;
    try {
      ref = parseVolumeId(volumeId);
    } catch (err) {
      throw notFound(`source volume ${volumeId} does not exist: ${(err as Error).message}`);
    }
    return backend.describeSource(ref);
  }

  function volumeOf(spec: VolumeSpec, context: Record<string, string>): Volume {
    return {
      volume_id: spec.ref.volumeId,
      capacity_bytes: spec.capacityBytes,
      volume_context: context,
      content_source: spec.source ? { volume: { volume_id: spec.source.ref.volumeId } } : null,
      accessible_topology: [topologyFor(spec.ref.node)],
    };
  }

  return {
    async CreateVolume(req: CreateVolumeRequest) {
      const name = requireString(req.name, 'volume name');
      if (req.volume_content_source?.volume) requireCloneName(name);
      requireCapabilities(req.volume_capabilities);
      const range = capacityRange(req);
      const extraContext = cowExtentContext(cowExtentParameter(req.parameters ?? {}));
      const sourceId = sourceVolumeId(req.volume_content_source);
      const source = sourceId ? await findSource(sourceId) : undefined;
      const dir = dirForName(name);
      const existing = await backend.findVolume(name, dir);
      const node = source
        ? placeClone(req.accessibility_requirements, source.ref.node)
        : existingNodeIfAllowed(existing, req) ?? placeEmptyVolume(req.accessibility_requirements, opts.onlyNode);
      if (source && range.limit > 0 && source.capacityBytes > range.limit) {
        throw outOfRange(`a clone of ${source.description} needs at least ${source.capacityBytes} bytes, above limit_bytes ${range.limit}`);
      }
      let volumeId: string;
      try {
        volumeId = formatVolumeId(node, dir);
      } catch (err) {
        throw invalidArgument((err as InvalidVolumeId).message);
      }
      const spec: VolumeSpec = {
        name,
        ref: { node, dir, volumeId },
        capacityBytes: Math.max(range.required, source?.capacityBytes ?? 0),
        parameters: req.parameters ?? {},
        source,
      };
      if (existing) {
        checkSameRequest(existing, spec, range);
        spec.capacityBytes = existing.capacityBytes;
      }
      if (!spec.source) {
        const context = await backend.createEmpty(spec);
        return { volume: volumeOf(spec, { ...context, ...extraContext }) };
      }
      const state = await backend.ensureClone({ ...spec, source: spec.source });
      if (state.phase === 'running') throw aborted(`volume ${name} is being populated: ${state.message}`);
      return { volume: volumeOf(spec, state.context) };
    },

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
      let ref: VolumeRef;
      try {
        ref = parseVolumeId(volumeId);
      } catch (err) {
        throw notFound(`volume ${volumeId} does not exist: ${(err as Error).message}`);
      }
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

