import { invalidArgument, notFound } from './errors.js';
import { MAX_ID_BYTES, parseVolumeId, type VolumeRef } from '../volume/id.js';
import type { AccessModeName, VolumeCapability } from './types.js';

// A pg-reflinker volume is a directory on one node: mount access only, single-node modes only.
const SUPPORTED_MODES: ReadonlySet<AccessModeName> = new Set([
  'SINGLE_NODE_WRITER',
  'SINGLE_NODE_READER_ONLY',
  'SINGLE_NODE_SINGLE_WRITER',
  'SINGLE_NODE_MULTI_WRITER',
]);

export function requireString(value: string | undefined, what: string): string {
  if (!value) throw invalidArgument(`${what} missing in request`);
  return value;
}

/** A volume id argument: present and within the CSI size limit (longer ids are the CO's error, not "absent"). */
export function requireVolumeId(volumeId: string | undefined, what = 'volume id'): string {
  const id = requireString(volumeId, what);
  if (Buffer.byteLength(id, 'utf8') > MAX_ID_BYTES) throw invalidArgument(`${what} is longer than ${MAX_ID_BYTES} bytes`);
  return id;
}

/** A volume id that names no volume of ours (it does not parse) is one that does not exist: NOT_FOUND. */
export function parseVolumeIdOrNotFound(volumeId: string, what = 'volume'): VolumeRef {
  try {
    return parseVolumeId(volumeId);
  } catch (err) {
    throw notFound(`${what} ${volumeId} does not exist: ${(err as Error).message}`);
  }
}

/** Why one capability cannot be served, or undefined when it can. */
export function capabilityProblem(cap: VolumeCapability): string | undefined {
  if (cap.block || cap.access_type === 'block') {
    return 'block access is not supported: pg-reflinker volumes are directories (use volumeMode: Filesystem)';
  }
  if (!cap.mount && cap.access_type !== 'mount') return 'volume capability has no access type (mount is required)';
  const mode = cap.access_mode?.mode;
  if (!mode || mode === 'UNKNOWN') return 'volume capability has no access mode';
  if (!SUPPORTED_MODES.has(mode)) return `access mode ${mode} is not supported: a pg-reflinker volume lives on one node`;
  return undefined;
}

export function requireCapabilities(caps: VolumeCapability[] | undefined): VolumeCapability[] {
  if (!caps || caps.length === 0) throw invalidArgument('volume capabilities missing in request');
  for (const cap of caps) {
    const problem = capabilityProblem(cap);
    if (problem) throw invalidArgument(problem);
  }
  return caps;
}

export function requireCapability(cap: VolumeCapability | null | undefined): VolumeCapability {
  if (!cap) throw invalidArgument('volume capability missing in request');
  return requireCapabilities([cap])[0]!;
}
