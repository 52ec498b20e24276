import { invalidArgument } from '../csi/errors.js';

/** StorageClass parameter: XFS copy-on-write extent size hint for new empty volumes (e.g. `8k`). */
export const PARAM_COW_EXTENT_SIZE = 'cowExtentSize';
/** volume_context key carrying the hint (in bytes) to the node plugin. */
export const CONTEXT_COW_EXTENT_SIZE = 'pg-reflinker.csi/cowExtentSize';

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2 };
const MAX_COW_EXTENT = 1024 ** 3;

/**
 * Bytes of a `cowExtentSize` value: a multiple of 4 KiB up to 1 GiB, written as bytes or with
 * k/m (binary). XFS stages copy-on-write in extents of this size; the default (32 blocks,
 * 128 KiB) makes every 8 KiB page write after a clone reserve 128 KiB.
 */
export function parseCowExtentSize(value: string): number {
  const match = /^(\d+)([kKmM]?)$/.exec(value.trim());
  const bytes = match ? Number(match[1]) * UNITS[match[2]!.toLowerCase()]! : NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes % 4096 !== 0 || bytes > MAX_COW_EXTENT) {
    throw invalidArgument(`${PARAM_COW_EXTENT_SIZE} "${value}" must be a multiple of 4 KiB up to 1 GiB, e.g. 8k`);
  }
  return bytes;
}

/** What the parameters add to an empty volume's volume_context (validated before anything is made). */
export function emptyVolumeContext(parameters: Record<string, string>): Record<string, string> {
  const hint = parameters[PARAM_COW_EXTENT_SIZE];
  return hint ? { [CONTEXT_COW_EXTENT_SIZE]: String(parseCowExtentSize(hint)) } : {};
}
