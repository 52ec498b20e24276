import type { V1PolicyRule } from '@kubernetes/client-node';

/**
 * Everything the controller's Kubernetes backend does with the API, and nothing more. The
 * chart's controller ClusterRole must equal this list (order aside). No Secret access: the
 * populator Job's pod mounts the CloudNativePG TLS secrets itself.
 */
export const CONTROLLER_RBAC_RULES: readonly V1PolicyRule[] = [
  // Source resolution (PV by handle → PVC), findVolume (PV by name), Failed-PV reconciler
  // (list; remove the sidecar's finalizer and delete the PV once its data is cleaned up).
  { apiGroups: [''], resources: ['persistentvolumes'], verbs: ['get', 'list', 'patch', 'delete'] },
  // Source PVCs, placeholders and the NAMESPACE_PATH search; the clone PVC's uid for Events.
  { apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['get'] },
  // Who uses the source PVC (list per namespace); populator/cleanup pods' termination
  // messages; a populator's pods before DeleteVolume cleans up (by its Job's uid, per namespace).
  { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
  // DeleteVolume refuses clearly when the volume's node object is gone.
  { apiGroups: [''], resources: ['nodes'], verbs: ['get'] },
  // Populating / Populated / PopulateFailed on the clone PVC; VolumeFailed on Failed PVs.
  { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  // Populator Jobs (source namespace) and cleanup Jobs (driver namespace): the durable state.
  // patch marks a cleanup Job counted; watch waits for completion; list is the readiness check.
  // Which populator Job is ours is never decided by label: see the records Role below.
  { apiGroups: ['batch'], resources: ['jobs'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] },
  // The source's CloudNativePG Cluster: image, postgres uid/gid, TLS secret names.
  { apiGroups: ['postgresql.cnpg.io'], resources: ['clusters'], verbs: ['get'] },
];

/**
 * The controller's Role in its own namespace (the chart's `<release>-controller-records`): the
 * clone records (clone/record.ts), one ConfigMap per clone, which only the controller writes.
 */
export const CONTROLLER_NAMESPACE_RBAC_RULES: readonly V1PolicyRule[] = [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'create', 'update', 'delete'] }];
