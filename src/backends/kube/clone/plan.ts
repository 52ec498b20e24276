import type { V1Pod } from '@kubernetes/client-node';
import type { CloneSpec } from '../../../controller/backend.js';
import { failedPrecondition } from '../../../csi/errors.js';
import type { KubeClient } from '../api/client.js';
import { isPodAlive } from '../api/jobs.js';
import { isClusterRef, readCluster, type ClusterInfo } from './cnpg.js';
import {
  CNPG_DEFAULT_UID,
  CNPG_LABEL_CLUSTER,
  CNPG_LABEL_INSTANCE_ROLE,
  CNPG_LABEL_JOB_ROLE,
  CNPG_LABEL_PVC_ROLE,
  CNPG_LABEL_ROLE_LEGACY,
  PARAM_ALLOW_CRASH_CONSISTENT,
} from '../constants.js';
import type { KubeSourceVolume } from './source.js';

// A clone's plan, made once before its populator Job: the clone and its resolved source (with the
// consent already checked, source.ts), the node, and how the source is copied, which depends on
// who uses the source PVC:
//   a running CloudNativePG instance → online (backup bracket over TLS as streaming_replica)
//   nobody                          → plain reflink copy (nothing is writing)
//   anything else                   → refused, unless the StorageClass allows crash-consistent copies
// Everything after this (clone target check, record, Job manifest, Events) only reads the plan.

export interface SourcePod {
  name: string;
  ip: string;
  node: string;
  role: string;
}

export type CopyPlan =
  | { mode: 'online'; cluster: ClusterInfo & { image: string }; pod: SourcePod }
  | { mode: 'plain'; why: 'unused' | 'crash-consistent'; uid: number; gid: number; clusterName?: string };

export interface ClonePlan {
  clone: CloneSpec<KubeSourceVolume>;
  /** The source's node, where the clone is placed and its Job runs. */
  node: string;
  copy: CopyPlan;
}

/** A plan, or something transient to wait for (an instance restarting, a CNPG job running): ask again later. */
export type PlanOutcome = { plan: ClonePlan } | { wait: string };

/** The CloudNativePG Cluster the copy comes from, when known. */
export const sourceClusterOf = (copy: CopyPlan): string | undefined => (copy.mode === 'online' ? copy.cluster.name : copy.clusterName);

const mounts = (pod: V1Pod, claim: string) => (pod.spec?.volumes ?? []).some((v) => v.persistentVolumeClaim?.claimName === claim);
const isReady = (pod: V1Pod) => pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
const label = (pod: V1Pod, key: string) => pod.metadata?.labels?.[key];
const clusterController = (pod: V1Pod) => pod.metadata?.ownerReferences?.find((o) => o.controller && isClusterRef(o));

/**
 * A CloudNativePG pod: an instance is controlled by the Cluster its label names (labels alone
 * anyone can set); a CNPG job pod (initdb, join, ...) only makes us wait, so its label suffices.
 */
const isCnpgPod = (pod: V1Pod) => {
  const cluster = label(pod, CNPG_LABEL_CLUSTER);
  return !!cluster && (!!label(pod, CNPG_LABEL_JOB_ROLE) || clusterController(pod)?.name === cluster);
};

/**
 * Pods that have the source PVC mounted or are about to, except the driver's own populators
 * (`isOwnPod`: run by a Job the driver's records name, checked by the pod's controller
 * reference; a label anyone can set decides nothing).
 */
async function sourceUsers(client: KubeClient, source: KubeSourceVolume, isOwnPod: (pod: V1Pod) => boolean): Promise<V1Pod[]> {
  const pods = await client.core.listNamespacedPod({ namespace: source.kube.namespace });
  return pods.items.filter((p) => isPodAlive(p) && mounts(p, source.kube.pvc) && !isOwnPod(p));
}

export async function planClone(client: KubeClient, clone: CloneSpec<KubeSourceVolume>, isOwnPod: (pod: V1Pod) => boolean): Promise<PlanOutcome> {
  const copy = await planCopy(client, clone.source, clone.parameters, isOwnPod);
  return 'wait' in copy ? copy : { plan: { clone, node: clone.ref.node, copy } };
}

async function planCopy(client: KubeClient, source: KubeSourceVolume, parameters: Record<string, string>, isOwnPod: (pod: V1Pod) => boolean): Promise<CopyPlan | { wait: string }> {
  const what = `source PVC ${source.description}`;
  const users = await sourceUsers(client, source, isOwnPod);
  const names = (pods: V1Pod[]) => pods.map((p) => p.metadata?.name).join(', ');

  if (users.length === 0) return plain(client, source, 'unused');
  const foreign = users.filter((p) => !isCnpgPod(p));
  if (foreign.length > 0) {
    if (parameters[PARAM_ALLOW_CRASH_CONSISTENT] === 'true') return plain(client, source, 'crash-consistent');
    throw failedPrecondition(
      `${what} is in use by pod(s) ${names(foreign)}, which are not CloudNativePG instances: a copy could only be crash-consistent. ` +
        `Stop them first, or clone with a StorageClass that sets ${PARAM_ALLOW_CRASH_CONSISTENT}: "true"`,
    );
  }
  const jobs = users.filter((p) => label(p, CNPG_LABEL_JOB_ROLE));
  if (jobs.length > 0) {
    return { wait: `CloudNativePG job pod(s) ${names(jobs)} (${label(jobs[0]!, CNPG_LABEL_JOB_ROLE)}) use ${what}; waiting for them to finish` };
  }
  const pvcRole = source.kube.pvcLabels[CNPG_LABEL_PVC_ROLE];
  if (pvcRole && pvcRole !== 'PG_DATA') {
    throw failedPrecondition(`${what} is a CloudNativePG ${pvcRole} volume; only PG_DATA volumes of a running instance can be cloned online`);
  }
  const ready = users.filter((p) => p.status?.phase === 'Running' && p.status.podIP && !p.metadata?.deletionTimestamp && isReady(p));
  const pod = ready[0];
  if (!pod) {
    const p = users[0]!;
    return { wait: `instance pod ${p.metadata?.name} that uses ${what} is ${p.metadata?.deletionTimestamp ? 'terminating' : `${p.status?.phase ?? 'Pending'} and not Ready`}; waiting for it` };
  }
  if (pod.spec?.nodeName !== source.ref.node) {
    throw failedPrecondition(`${what} lives on node ${source.ref.node}, but its instance pod ${pod.metadata?.name} runs on node ${pod.spec?.nodeName}`);
  }
  const clusterName = label(pod, CNPG_LABEL_CLUSTER)!;
  const cluster = await readCluster(client, source.kube.namespace, clusterName);
  if (!cluster) {
    throw failedPrecondition(`pod ${pod.metadata?.name} belongs to CloudNativePG cluster ${clusterName}, but no Cluster ${source.kube.namespace}/${clusterName} (postgresql.cnpg.io/v1) exists`);
  }
  if (!cluster.objectUid || clusterController(pod)?.uid !== cluster.objectUid) {
    throw failedPrecondition(`${what}: its pod ${pod.metadata?.name} is not controlled by Cluster ${source.kube.namespace}/${clusterName} (uid ${cluster.objectUid}), so it is not that Cluster's instance`);
  }
  if (!cluster.image) throw failedPrecondition(`Cluster ${source.kube.namespace}/${clusterName} names no PostgreSQL image (status.image, spec.imageName)`);
  return {
    mode: 'online',
    cluster: { ...cluster, image: cluster.image },
    pod: {
      name: pod.metadata!.name!,
      ip: pod.status!.podIP!,
      node: pod.spec!.nodeName!,
      role: label(pod, CNPG_LABEL_INSTANCE_ROLE) ?? label(pod, CNPG_LABEL_ROLE_LEGACY) ?? 'unknown',
    },
  };
}

/** A plain copy keeps every file's owner; the volume's top directory goes to the Cluster's postgres uid when the PVC names one. */
async function plain(client: KubeClient, source: KubeSourceVolume, why: 'unused' | 'crash-consistent'): Promise<CopyPlan> {
  const clusterName = source.kube.pvcLabels[CNPG_LABEL_CLUSTER];
  const cluster = clusterName ? await readCluster(client, source.kube.namespace, clusterName) : undefined;
  return { mode: 'plain', why, uid: cluster?.uid ?? CNPG_DEFAULT_UID, gid: cluster?.gid ?? CNPG_DEFAULT_UID, clusterName: cluster?.name };
}
