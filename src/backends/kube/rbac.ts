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
  // messages (list by label, also across namespaces when deleting).
  { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
  // DeleteVolume refuses clearly when the volume's node object is gone.
  { apiGroups: [''], resources: ['nodes'], verbs: ['get'] },
  // Populating / Populated / PopulateFailed on the clone PVC; VolumeFailed on Failed PVs.
  { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  // Populator Jobs (source namespace) and cleanup Jobs (driver namespace): the durable state.
  // patch records the populator's result on its Job; watch waits for completion; list finds a
  // volume's Jobs by label (and is the readiness check).
  { apiGroups: ['batch'], resources: ['jobs'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] },
  // The source's CloudNativePG Cluster: image, postgres uid/gid, TLS secret names.
  { apiGroups: ['postgresql.cnpg.io'], resources: ['clusters'], verbs: ['get'] },
];
