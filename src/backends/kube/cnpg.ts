import { orNone, type KubeClient } from './client.js';
import { CNPG_CLUSTERS, CNPG_DEFAULT_UID, CNPG_GROUP, CNPG_VERSION } from './constants.js';

// What the populator needs from a CloudNativePG Cluster (postgresql.cnpg.io/v1): its image, the
// postgres uid/gid, and the names (never the contents) of its TLS secrets.

export interface ClusterInfo {
  name: string;
  namespace: string;
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

interface ClusterObject {
  spec?: {
    imageName?: string;
    postgresUID?: number;
    postgresGID?: number;
    walStorage?: object;
    certificates?: { serverCASecret?: string; replicationTLSSecret?: string };
  };
  status?: { image?: string; certificates?: { serverCASecret?: string; replicationTLSSecret?: string } };
}

export function clusterInfo(namespace: string, name: string, obj: ClusterObject): ClusterInfo {
  const spec = obj.spec ?? {};
  const status = obj.status ?? {};
  return {
    name,
    namespace,
    image: status.image || spec.imageName || undefined,
    uid: spec.postgresUID ?? CNPG_DEFAULT_UID,
    gid: spec.postgresGID ?? CNPG_DEFAULT_UID,
    caSecret: status.certificates?.serverCASecret || spec.certificates?.serverCASecret || `${name}-ca`,
    replicationSecret: status.certificates?.replicationTLSSecret || spec.certificates?.replicationTLSSecret || `${name}-replication`,
    walStorage: !!spec.walStorage,
  };
}

export async function readCluster(client: KubeClient, namespace: string, name: string): Promise<ClusterInfo | undefined> {
  const obj = (await orNone(
    client.custom.getNamespacedCustomObject({ group: CNPG_GROUP, version: CNPG_VERSION, namespace, plural: CNPG_CLUSTERS, name }),
  )) as ClusterObject | undefined;
  return obj ? clusterInfo(namespace, name, obj) : undefined;
}
