import { DNS_LABEL_RE, DNS_SUBDOMAIN_RE, hashedName, sha256Hex, volumeKey } from '../../../volume/id.js';

// Deterministic object names derived from a volume's directory, so every retry and every
// controller instance finds the same Job: one Job per volume, however often we are asked.

/** A namespaced object by name. */
export interface ObjectRef {
  namespace: string;
  name: string;
}


const POPULATE_PREFIX = 'pgr-populate-';
const MAX_JOB_NAME = 63;

/**
 * `pgr-populate-<key>-<suffix>`, ≤ 63 characters (Job names become label values). The suffix
 * is random and kept in the clone's record (clone/record.ts): nobody can make the Job first.
 */
export function populateJobName(dir: string, suffix: string): string {
  const key = volumeKey(dir);
  const fits = POPULATE_PREFIX.length + key.length + 1 + suffix.length <= MAX_JOB_NAME;
  return `${POPULATE_PREFIX}${fits ? key : hashedName(dir, 24)}-${suffix}`;
}

/** ≤ 59 characters. */
export const cleanupJobName = (dir: string) => `pgr-cleanup-${volumeKey(dir)}`;
/** The clone's record (a ConfigMap in the driver's namespace). */
export const recordName = (dir: string) => `pgr-clone-${volumeKey(dir)}`;

/** Event names are unique per (object, what happened, Job instance): creating one twice is a harmless 409. */
export function eventName(objectName: string, reason: string, instance: string): string {
  const suffix = `${reason.toLowerCase()}-${instance.toLowerCase().replace(/[^a-z0-9]/g, '').slice(0, 12)}`;
  const name = `${objectName}.pgr-${suffix}`;
  return name.length <= 253 ? name : `pgr-${sha256Hex(name).slice(0, 40)}`;
}

/** The PVC UID in the sidecar's default volume name `pvc-<uid>`. */
export function uidFromVolumeName(name: string): string | undefined {
  const match = /^pvc-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/.exec(name);
  return match?.[1];
}

export const isObjectName = (name: string) => name.length <= 253 && DNS_SUBDOMAIN_RE.test(name);

export const isNamespaceName = (name: string) => name.length <= 63 && DNS_LABEL_RE.test(name);
