import type { V1OwnerReference } from '@kubernetes/client-node';
import { failedPrecondition } from '../../../csi/errors.js';
import { orNone, type KubeClient } from '../api/client.js';
import { CNPG_CLUSTERS, CNPG_DEFAULT_UID, CNPG_GROUP, CNPG_VERSION } from '../constants.js';
import { isObjectName } from '../api/names.js';

// What the populator needs from a CloudNativePG Cluster (postgresql.cnpg.io/v1): its image, the
// postgres uid/gid, and the names (never the contents) of its TLS secrets.

export interface ClusterInfo {
  name: string;
  namespace: string;
  /** metadata.uid: its instance pods' controller reference must name it. */
  objectUid?: string;
  /** status.image (resolved, also for image catalogs), else spec.imageName. */
  image?: string;
  uid: number;
  gid: number;
  /** Server CA (ca.crt verifies the server). */
  caSecret: string;
  /** streaming_replica's client certificate (tls.crt, tls.key). */
  replicationSecret: string;
  walStorage: boolean;
}

/** An owner reference to a CloudNativePG Cluster (any API version of its group). */
export const isClusterRef = (o: V1OwnerReference) => o.kind === 'Cluster' && o.apiVersion.startsWith(`${CNPG_GROUP}/`);

interface ClusterObject {
  metadata?: { uid?: string };
  spec?: {
    imageName?: unknown;
    postgresUID?: unknown;
    postgresGID?: unknown;
    walStorage?: object;
    certificates?: { serverCASecret?: unknown; replicationTLSSecret?: unknown };
  };
  status?: { image?: unknown; certificates?: { serverCASecret?: unknown; replicationTLSSecret?: unknown } };
}

/**
 * The Cluster's postgres uid or gid: the populator runs as it and gives the clone to it. Root
 * (0) is refused: a Cluster object is no authority to run a copy as root on a node.
 */
function postgresId(namespace: string, name: string, field: 'postgresUID' | 'postgresGID', value: unknown): number {
  if (value === undefined || value === null) return CNPG_DEFAULT_UID;
  const where = `Cluster ${namespace}/${name}: spec.${field}`;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 2 ** 31 - 1) {
    throw failedPrecondition(`${where} is ${JSON.stringify(value)}, not a uid/gid`);
  }
  if (value === 0) {
    throw failedPrecondition(`${where} is 0 (root): pg-reflinker will not run a populator as root for a Cluster; give the Cluster a non-root ${field} (CloudNativePG's default is 26)`);
  }
  return value;
}

/** A secret name the Cluster gives (status first, then spec), else CloudNativePG's default; it goes into the Job as is, so it must be an object name. */
function secretName(namespace: string, name: string, field: 'serverCASecret' | 'replicationTLSSecret', obj: ClusterObject, fallback: string): string {
  for (const [where, value] of [['status', obj.status?.certificates?.[field]], ['spec', obj.spec?.certificates?.[field]]] as const) {
    if (value === undefined || value === null || value === '') continue;
    if (typeof value !== 'string' || !isObjectName(value)) {
      throw failedPrecondition(`Cluster ${namespace}/${name}: ${where}.certificates.${field} is ${JSON.stringify(value)}, not a Secret name`);
    }
    return value;
  }
  return fallback;
}

export function clusterInfo(namespace: string, name: string, obj: ClusterObject): ClusterInfo {
  const spec = obj.spec ?? {};
  const status = obj.status ?? {};
  return {
    name,
    namespace,
    objectUid: obj.metadata?.uid,
    image: [status.image, spec.imageName].find((i): i is string => typeof i === 'string' && i !== ''),
    uid: postgresId(namespace, name, 'postgresUID', spec.postgresUID),
    gid: postgresId(namespace, name, 'postgresGID', spec.postgresGID),
    caSecret: secretName(namespace, name, 'serverCASecret', obj, `${name}-ca`),
    replicationSecret: secretName(namespace, name, 'replicationTLSSecret', obj, `${name}-replication`),
    walStorage: !!spec.walStorage,
  };
}

/** The Cluster object as the API server has it (untyped beyond `T`: every field is input), or undefined. */
export async function readClusterObject<T = ClusterObject>(client: KubeClient, namespace: string, name: string): Promise<T | undefined> {
  return (await orNone(client.custom.getNamespacedCustomObject({ group: CNPG_GROUP, version: CNPG_VERSION, namespace, plural: CNPG_CLUSTERS, name }))) as T | undefined;
}

export async function readCluster(client: KubeClient, namespace: string, name: string): Promise<ClusterInfo | undefined> {
  const obj = await readClusterObject(client, namespace, name);
  return obj ? clusterInfo(namespace, name, obj) : undefined;
}
