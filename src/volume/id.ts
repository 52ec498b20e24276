import { createHash } from 'node:crypto';

// A volume id names the node that holds the data and the volume's directory under the
// prefix there: `<node>/<dir>`. DeleteVolume receives nothing but the id, so it must be
// enough on its own; it is parsed strictly so that no id can resolve outside the prefix.

export const MAX_ID_BYTES = 128; // CSI size limit for ids
export const MAX_NODE_LENGTH = 80;
const MAX_DIRECT_DIR = 47; // 80 + 1 + 47 = 128; `pvc-<uuid>` is 40
export const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DIR_RE = new RegExp(`^[A-Za-z0-9][A-Za-z0-9._-]{0,${MAX_DIRECT_DIR - 1}}$`);

export interface VolumeRef {
  node: string;
  dir: string;
  volumeId: string;
}

export class InvalidVolumeId extends Error {}

/** Why a node name cannot appear in volume ids, or undefined when it can. */
export function nodeNameProblem(node: string): string | undefined {
  if (!node) return 'node name is empty';
  if (node.length > MAX_NODE_LENGTH) return `node name "${node}" is longer than ${MAX_NODE_LENGTH} characters`;
  if (!DNS_SUBDOMAIN_RE.test(node)) return `node name "${node}" is not a lowercase DNS subdomain`;
  return undefined;
}

export const sha256Hex = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

/** The one rule for a name that cannot be used as it is: `h-` and the first hex digits of its SHA-256. */
export const hashedName = (name: string, hexDigits = 32) => `h-${sha256Hex(name).slice(0, hexDigits)}`;

/**
 * The directory of a volume, its identity on a node: its name when that is a short, plain file
 * name (always the case for the sidecar's `pvc-<UID>`), otherwise the name hashed, so any CSI
 * name maps to a safe directory and the id stays within 128 bytes.
 */
export function dirForName(name: string): string {
  return DIR_RE.test(name) ? name : hashedName(name);
}

/**
 * The same identity where Kubernetes wants a lowercase DNS label (object names, label values):
 * the directory when it already is one (always true for `pvc-<uid>` and for hashed names), else
 * the directory hashed by the same rule.
 */
export function volumeKey(dir: string): string {
  return dir.length <= MAX_DIRECT_DIR && DNS_LABEL_RE.test(dir) ? dir : hashedName(dir);
}

export function formatVolumeId(node: string, dir: string): string {
  const problem = nodeNameProblem(node);
  if (problem) throw new InvalidVolumeId(problem);
  if (!DIR_RE.test(dir)) throw new InvalidVolumeId(`"${dir}" is not a valid volume directory name`);
  return `${node}/${dir}`;
}

export function parseVolumeId(volumeId: string): VolumeRef {
  if (!volumeId) throw new InvalidVolumeId('volume id is empty');
  if (Buffer.byteLength(volumeId, 'utf8') > MAX_ID_BYTES) throw new InvalidVolumeId(`volume id is longer than ${MAX_ID_BYTES} bytes`);
  const parts = volumeId.split('/');
  if (parts.length !== 2) throw new InvalidVolumeId(`volume id "${volumeId}" is not of the form <node>/<volume>`);
  const [node, dir] = parts as [string, string];
  const problem = nodeNameProblem(node);
  if (problem) throw new InvalidVolumeId(`volume id "${volumeId}": ${problem}`);
  if (!DIR_RE.test(dir)) throw new InvalidVolumeId(`volume id "${volumeId}": "${dir}" is not a valid volume directory name`);
  return { node, dir, volumeId };
}
