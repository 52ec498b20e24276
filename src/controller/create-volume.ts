import { aborted, alreadyExists, invalidArgument, outOfRange } from '../csi/errors.js';
import { TOPOLOGY_KEY } from '../csi/identity.js';
import type { CreateVolumeRequest, Volume, VolumeContentSource } from '../csi/types.js';
import { parseVolumeIdOrNotFound, requireCapabilities, requireString, requireVolumeId } from '../csi/validate.js';
import { LABEL_PATTERN } from '../populator/layout.js';
import { cowExtentContext } from '../volume/context.js';
import { InvalidVolumeId, dirForName, formatVolumeId, parseVolumeId } from '../volume/id.js';
import type { RecordedVolume, SourceVolume, VolumeBackend, VolumeSpec } from './backend.js';
import { cowExtentParameter } from './parameters.js';
import { placeClone, placeEmptyVolume, topologyFor } from './placement.js';

// CreateVolume, step by step: check the request, resolve the clone source (once, by the
// backend), place the volume, hold it against an earlier request under the same name, then
// record an empty volume or ensure the clone's population.

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

/** The node: a clone's is its source's; an empty volume keeps an earlier placement, else follows the topology. */
function placeVolume(req: CreateVolumeRequest, source: SourceVolume | undefined, existing: RecordedVolume | undefined, range: CapacityRange, onlyNode?: string): string {
  if (!source) return existingNodeIfAllowed(existing, req) ?? placeEmptyVolume(req.accessibility_requirements, onlyNode);
  const node = placeClone(req.accessibility_requirements, source.ref.node);
  if (range.limit > 0 && source.capacityBytes > range.limit) {
    throw outOfRange(`a clone of ${source.description} needs at least ${source.capacityBytes} bytes, above limit_bytes ${range.limit}`);
  }
  return node;
}

function volumeIdOf(node: string, dir: string): string {
  try {
    return formatVolumeId(node, dir);
  } catch (err) {
    throw invalidArgument((err as InvalidVolumeId).message);
  }
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

export async function createVolume<S extends SourceVolume>(backend: VolumeBackend<S>, req: CreateVolumeRequest, onlyNode?: string): Promise<{ volume: Volume }> {
  const name = requireString(req.name, 'volume name');
  if (req.volume_content_source?.volume) requireCloneName(name);
  requireCapabilities(req.volume_capabilities);
  const range = capacityRange(req);
  const parameters = req.parameters ?? {};
  const extraContext = cowExtentContext(cowExtentParameter(parameters));
  const sourceId = sourceVolumeId(req.volume_content_source);
  const source = sourceId ? await backend.describeSource(parseVolumeIdOrNotFound(sourceId, 'source volume'), parameters) : undefined;
  const dir = dirForName(name);
  const existing = await backend.findVolume(name, dir);
  const node = placeVolume(req, source, existing, range, onlyNode);
  const spec: VolumeSpec<S> = {
    name,
    ref: { node, dir, volumeId: volumeIdOf(node, dir) },
    capacityBytes: Math.max(range.required, source?.capacityBytes ?? 0),
    parameters,
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
}
