import type { V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { failedPrecondition } from '../../../csi/errors.js';
import { orNone, type KubeClient } from '../api/client.js';
import { isClusterRef, readClusterObject } from './cnpg.js';
import { CNPG_LABEL_CLUSTER } from '../constants.js';
import { sourceClusterOf, type ClonePlan } from './plan.js';

// Where a clone goes. CloudNativePG builds every new replica of a Cluster bootstrapped with
// `bootstrap.recovery.volumeSnapshots` as a fresh clone of the PVC named there (the SOURCE, not
// the Cluster's own data) while that stanza stays in the spec: the replica would start from a
// diverged history. A clone into a Cluster that already has a primary must therefore come from
// one of that Cluster's own instances.

interface ClusterStatus {
  status?: { currentPrimary?: unknown; readyInstances?: unknown };
}

/** The CloudNativePG Clusters (same namespace) a PVC belongs to: its `cnpg.io/cluster` label and its owner reference. */
export function clustersOfPvc(pvc: V1PersistentVolumeClaim): string[] {
  const names = new Set<string>();
  const label = pvc.metadata?.labels?.[CNPG_LABEL_CLUSTER];
  if (label) names.add(label);
  for (const o of pvc.metadata?.ownerReferences ?? []) {
    if (isClusterRef(o) && o.name) names.add(o.name);
  }
  return [...names];
}

/** The Cluster's primary, when it has one: `status.currentPrimary`, else "ready instances" when `status.readyInstances` > 0. */
function primaryOf(cluster: ClusterStatus): string | undefined {
  const s = cluster.status ?? {};
  if (typeof s.currentPrimary === 'string' && s.currentPrimary !== '') return s.currentPrimary;
  if (typeof s.readyInstances === 'number' && s.readyInstances > 0) return `${s.readyInstances} ready instance(s)`;
  return undefined;
}

/**
 * Refuses (FAILED_PRECONDITION) a clone whose PVC belongs to a CloudNativePG Cluster that
 * already has a primary, unless the source is an instance of that same Cluster. The source's
 * Cluster is its PVC's `cnpg.io/cluster`, or the plan's (the instance pod's label).
 */
export async function checkCloneTarget(client: KubeClient, plan: ClonePlan): Promise<void> {
  const source = plan.clone.source;
  const clonePvc = source.kube.clonePvc;
  const sourceCluster = sourceClusterOf(plan.copy);
  if (!clonePvc) return;
  const pvc = await orNone(client.core.readNamespacedPersistentVolumeClaim(clonePvc));
  if (!pvc) return;
  for (const name of clustersOfPvc(pvc)) {
    const sameNamespace = source.kube.namespace === clonePvc.namespace;
    if (sameNamespace && (source.kube.pvcLabels[CNPG_LABEL_CLUSTER] === name || sourceCluster === name)) continue;
    const cluster = await readClusterObject<ClusterStatus>(client, clonePvc.namespace, name);
    const primary = cluster ? primaryOf(cluster) : undefined;
    if (!primary) continue;
    const where = `Cluster ${clonePvc.namespace}/${name}`;
    throw failedPrecondition(
      `PVC ${clonePvc.namespace}/${clonePvc.name} belongs to CloudNativePG ${where}, which already has a primary (${primary}), ` +
        `but its source ${source.description} is not an instance of ${where}: CloudNativePG builds new replicas as clones of the volume named in ` +
        `bootstrap.recovery.volumeSnapshots, so this replica would start from the source's data with a diverged history. ` +
        `After the bootstrap, remove bootstrap.recovery.volumeSnapshots from the spec of ${where} before adding replicas; ` +
        `CloudNativePG then builds them from the Cluster's own instances.`,
    );
  }
}
