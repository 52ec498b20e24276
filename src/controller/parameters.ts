import { invalidArgument } from '../csi/errors.js';

/** StorageClass parameter: XFS copy-on-write extent size hint for new empty volumes (e.g. `8k`). */
export const PARAM_COW_EXTENT_SIZE = 'cowExtentSize';

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

/** The StorageClass's copy-on-write extent hint in bytes, if it sets one (validated before anything is made). */
export function cowExtentParameter(parameters: Record<string, string>): number | undefined {
  const hint = parameters[PARAM_COW_EXTENT_SIZE];
  return hint ? parseCowExtentSize(hint) : undefined;
}

/** StorageClass parameter: clone a CloudNativePG primary's PVC from a healthy replica of the same Cluster instead. */
export const PARAM_PREFER_STANDBY = 'preferStandby';

/** `preferStandby`: exactly "true" or "false" (absent: false); anything else is refused before anything is made. */
export function preferStandbyParameter(parameters: Record<string, string>): boolean {
  const value = parameters[PARAM_PREFER_STANDBY];
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  throw invalidArgument(`${PARAM_PREFER_STANDBY} ${JSON.stringify(value.slice(0, 100))} must be "true" or "false"`);
}
