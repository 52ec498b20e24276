// Names the Kubernetes backend writes into the cluster or reads from it, in one place.

export { DRIVER_NAME } from '../../csi/identity.js';

const P = 'pg-reflinker.csi/';

/** Annotations and labels this driver puts on its Jobs (and reads back: the Job is the state). */
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'pg-reflinker.csi';
export const LABEL_ROLE = `${P}role`;
export const LABEL_VOLUME = `${P}volume`;
export const ANN_VOLUME_NAME = `${P}volume-name`;
export const ANN_VOLUME_ID = `${P}volume-id`;
export const ANN_SOURCE_VOLUME_ID = `${P}source-volume-id`;
export const ANN_SOURCE = `${P}source-pvc`;
export const ANN_CAPACITY = `${P}capacity-bytes`;
export const ANN_MODE = `${P}mode`;
export const ANN_CLUSTER = `${P}cluster`;
export const ANN_CLONE_PVC = `${P}clone-pvc`;
export const ANN_AFTER_FAILURE = `${P}after-failure`;
/** On a succeeded cleanup Job: its deletion was counted in the metrics. */
export const ANN_COUNTED = `${P}counted`;

/** Set by users. On a placeholder PVC: the name of the real source PVC. */
export const ANN_PLACEHOLDER_SOURCE = `${P}source`;
/** Set by the source's owner on the source PVC: namespaces allowed to clone it (comma list, or `*`). */
export const ANN_ALLOW_CLONE_TO = `${P}allow-clone-to`;

/** StorageClass parameter: copy a volume used by a non-CloudNativePG pod (crash-consistent). */
export const PARAM_ALLOW_CRASH_CONSISTENT = 'allowCrashConsistent';
/** Added by csi-provisioner with --extra-create-metadata. */
export const PARAM_PVC_NAME = 'csi.storage.k8s.io/pvc/name';
export const PARAM_PVC_NAMESPACE = 'csi.storage.k8s.io/pvc/namespace';
/** Added by csi-provisioner to every PV's volumeAttributes; not ours. */
export const PROVISIONER_IDENTITY_KEY = 'storage.kubernetes.io/csiProvisionerIdentity';
/** csi-provisioner's finalizer on the PVs it provisions. */
export const PROVISIONER_PV_FINALIZER = 'external-provisioner.volume.kubernetes.io/finalizer';

/** CloudNativePG. */
export const CNPG_GROUP = 'postgresql.cnpg.io';
export const CNPG_VERSION = 'v1';
export const CNPG_CLUSTERS = 'clusters';
export const CNPG_LABEL_CLUSTER = 'cnpg.io/cluster';
export const CNPG_LABEL_INSTANCE_ROLE = 'cnpg.io/instanceRole';
export const CNPG_LABEL_ROLE_LEGACY = 'role';
export const CNPG_LABEL_JOB_ROLE = 'cnpg.io/jobRole';
export const CNPG_LABEL_PVC_ROLE = 'cnpg.io/pvcRole';
export const CNPG_DEFAULT_UID = 26;

/** Where CloudNativePG mounts the data volume; PGDATA is its `pgdata` subdirectory. */
export const PG_DATA_MOUNT = '/var/lib/postgresql/data';
export const PG_WAL_MOUNT = '/var/lib/postgresql/wal';

/** Labels the Job controller puts on a Job's pods (Kubernetes ≥ 1.27). */
export const JOB_CONTROLLER_UID_LABEL = 'batch.kubernetes.io/controller-uid';
