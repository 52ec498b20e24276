import type { V1PersistentVolume, V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import { parseVolumeId, type VolumeRef } from '../../../volume/id.js';
import { orNone, type KubeClient } from '../api/client.js';
import { isPodAlive } from '../api/jobs.js';
import { handleOf, isOurs } from '../api/volumes.js';
import { CNPG_LABEL_CLUSTER, CNPG_LABEL_INSTANCE_ROLE, CNPG_LABEL_PVC_ROLE, CNPG_LABEL_ROLE_LEGACY } from '../constants.js';
import { isClusterRef, readClusterObject } from './cnpg.js';
import type { KubeSourceVolume } from './source.js';

// preferStandby: a clone of a CloudNativePG primary's PG_DATA PVC is taken from a healthy
// streaming replica of the same Cluster, so the primary pays neither the checkpoint of the backup
// bracket nor the copy-on-write of shared extents afterwards. Only what the API server says about
// objects CloudNativePG controls counts: the Cluster's status (currentPrimary,
// instancesStatus.healthy), the replica pod's controller reference (the Cluster's uid), its
// role label, kubelet's Ready condition, and the replica's PVCs (owned by the same Cluster,
// bound to pg-reflinker PVs on the replica pod's node). A label alone decides nothing. When
// several replicas qualify, the lowest instance number wins (pg-2 before pg-3 before pg-10):
// the same choice on every call while nothing changes.

export type StandbyDecision =
  /** Not a primary's PG_DATA (already a replica, unused, not CloudNativePG): nothing to redirect, nothing to say. */
  | { kind: 'not-applicable' }
  | { kind: 'declined'; primary: string; why: string }
  | { kind: 'redirect'; primary: string; replica: string; volume: InstanceVolume };

interface InstanceVolume {
  ref: VolumeRef;
  pv: V1PersistentVolume;
  pvc: V1PersistentVolumeClaim;
}

interface ClusterObject {
  metadata?: { uid?: string };
  spec?: { walStorage?: object };
  status?: { currentPrimary?: unknown; instancesStatus?: { healthy?: unknown } };
}

const label = (o: { metadata?: { labels?: Record<string, string> } }, key: string) => o.metadata?.labels?.[key];
const roleOf = (pod: V1Pod) => label(pod, CNPG_LABEL_INSTANCE_ROLE) ?? label(pod, CNPG_LABEL_ROLE_LEGACY);
const mounts = (pod: V1Pod, claim: string) => (pod.spec?.volumes ?? []).some((v) => v.persistentVolumeClaim?.claimName === claim);
const isReady = (pod: V1Pod) => pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
const controlledBy = (pod: V1Pod, uid: string) => pod.metadata?.ownerReferences?.some((o) => o.controller && isClusterRef(o) && o.uid === uid) ?? false;
const ownedBy = (pvc: V1PersistentVolumeClaim, uid: string) => pvc.metadata?.ownerReferences?.some((o) => isClusterRef(o) && o.uid === uid) ?? false;
/** Instance names in CloudNativePG's order: by the serial after the last dash, then by name. */
const byInstanceNumber = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });

/** Decides where a clone of `source` should copy from under preferStandby (the parameter is on). */
export async function decideStandby(client: KubeClient, source: KubeSourceVolume): Promise<StandbyDecision> {
  const k = source.kube;
  if (k.pvcLabels[CNPG_LABEL_PVC_ROLE] !== 'PG_DATA') return { kind: 'not-applicable' };
  const pods = (await client.core.listNamespacedPod({ namespace: k.namespace })).items.filter(isPodAlive);
  const user = pods.find((p) => mounts(p, k.pvc) && label(p, CNPG_LABEL_CLUSTER));
  if (!user || roleOf(user) !== 'primary') return { kind: 'not-applicable' };
  const primary = user.metadata!.name!;
  const declined = (why: string): StandbyDecision => ({ kind: 'declined', primary, why });

  if (k.placeholder) return declined(`the source was named through placeholder ${k.placeholder.namespace}/${k.placeholder.name}, and consent is given for that PVC only`);
  const clusterName = label(user, CNPG_LABEL_CLUSTER)!;
  const cluster = await readClusterObject<ClusterObject>(client, k.namespace, clusterName);
  const uid = cluster?.metadata?.uid;
  if (!cluster || !uid || !controlledBy(user, uid)) return declined(`pod ${primary} is not an instance of a Cluster ${k.namespace}/${clusterName}`);
  if (cluster.status?.currentPrimary !== primary) return declined(`Cluster ${clusterName} names ${JSON.stringify(cluster.status?.currentPrimary ?? null)} as its current primary, not ${primary}`);
  const healthy = cluster.status?.instancesStatus?.healthy;
  const healthyNames = Array.isArray(healthy) ? healthy.filter((n): n is string => typeof n === 'string') : [];

  const candidates = pods.filter((p) => p.metadata?.name !== primary && label(p, CNPG_LABEL_CLUSTER) === clusterName && controlledBy(p, uid)).sort((a, b) => byInstanceNumber(a.metadata!.name!, b.metadata!.name!));
  const rejected: string[] = [];
  for (const pod of candidates) {
    const name = pod.metadata!.name!;
    const why = await disqualification(client, pod, uid, healthyNames, !!cluster.spec?.walStorage);
    if (typeof why === 'string') {
      rejected.push(`${name}: ${why}`);
      continue;
    }
    return { kind: 'redirect', primary, replica: name, volume: why };
  }
  return declined(rejected.length > 0 ? `no replica of Cluster ${clusterName} qualifies (${rejected.join('; ')})` : `Cluster ${clusterName} has no replica instance`);
}

/** Why a replica pod cannot stand in for the primary, or its PG_DATA PVC and volume when it can. */
async function disqualification(client: KubeClient, pod: V1Pod, clusterUid: string, healthy: string[], walStorage: boolean): Promise<string | InstanceVolume> {
  const name = pod.metadata!.name!;
  const namespace = pod.metadata!.namespace!;
  if (roleOf(pod) !== 'replica') return `role ${JSON.stringify(roleOf(pod) ?? null)}, not replica`;
  if (!healthy.includes(name)) return 'not among the Cluster status instancesStatus.healthy';
  if (pod.status?.phase !== 'Running' || !pod.status.podIP || !isReady(pod)) return 'pod not Running and Ready';
  if (!mounts(pod, name)) return `pod does not mount its PG_DATA PVC ${name}`;
  const data = await instanceVolume(client, namespace, name, clusterUid);
  if (typeof data === 'string') return data;
  if (data.ref.node !== pod.spec?.nodeName) return `PVC ${name} lives on node ${data.ref.node}, the pod runs on ${pod.spec?.nodeName}`;
  if (walStorage) {
    const wal = await instanceVolume(client, namespace, `${name}-wal`, clusterUid);
    if (typeof wal === 'string') return wal;
    if (wal.ref.node !== data.ref.node) return `WAL PVC ${name}-wal lives on node ${wal.ref.node}, not ${data.ref.node}`;
  }
  return data;
}

/** An instance PVC owned by the Cluster and bound to a pg-reflinker PV, with that PV's volume. */
async function instanceVolume(client: KubeClient, namespace: string, pvcName: string, clusterUid: string): Promise<string | InstanceVolume> {
  const pvc = await orNone(client.core.readNamespacedPersistentVolumeClaim({ namespace, name: pvcName }));
  if (!pvc) return `PVC ${pvcName} does not exist`;
  if (!ownedBy(pvc, clusterUid)) return `PVC ${pvcName} is not owned by the Cluster`;
  const pvName = pvc.spec?.volumeName;
  if (pvc.status?.phase !== 'Bound' || !pvName || pvc.metadata?.deletionTimestamp) return `PVC ${pvcName} is not bound`;
  const pv = await orNone(client.core.readPersistentVolume({ name: pvName }));
  if (!isOurs(pv) || pv.spec?.claimRef?.uid !== pvc.metadata?.uid) return `PVC ${pvcName} is not bound to a pg-reflinker volume`;
  try {
    return { ref: parseVolumeId(handleOf(pv)), pv, pvc };
  } catch {
    return `PVC ${pvcName} has an invalid volume handle`;
  }
}
