import type { V1Job } from '@kubernetes/client-node';
import { ANN_AFTER_FAILURE, ANN_VOLUME_ID, LABEL_MANAGED_BY, LABEL_ROLE, LABEL_VOLUME, MANAGED_BY } from '../constants.js';
import { volumeKey } from '../../../volume/id.js';
import { cleanupJobName } from '../api/names.js';
import { kubeletLiteral } from '../api/kubelet-literal.js';
import { pinnedJob, rootWith } from '../api/pinned-job.js';
import type { KubeSettings } from '../settings.js';
import type { VolumeRef } from '../../../volume/id.js';

// The node-side cleanup Job as data: `pg-reflinker cleanup` (src/cleanup.ts) in the driver's
// own image (its ENTRYPOINT is the program, so the Job passes only args), on the volume's node, in the driver's namespace. It sees the prefix at the same
// path as on the host, so the command's own checks (id syntax, no symlink out of the prefix)
// apply to the real layout.

export const CLEANUP_CONTAINER = 'cleanup';

export interface CleanupJobInput {
  volumeId: string;
  node: string;
  dir: string;
  namespace: string;
  image: string;
  hostPathPrefix: string;
  serviceAccountName: string;
  ttlSecondsAfterFinished: number;
  activeDeadlineSeconds: number;
  /** Set when the cleanup follows a failed population: the failure, for messages on later calls. */
  afterFailure?: string;
}

export function cleanupJobLabels(dir: string): Record<string, string> {
  return { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_ROLE]: 'cleanup', [LABEL_VOLUME]: volumeKey(dir) };
}

export function cleanupJob(input: CleanupJobInput): V1Job {
  const prefix = input.hostPathPrefix.replace(/\/+$/, '') || '/';
  const labels = cleanupJobLabels(input.dir);
  return pinnedJob({
    name: cleanupJobName(input.dir),
    namespace: input.namespace,
    labels,
    annotations: {
      [ANN_VOLUME_ID]: input.volumeId,
      ...(input.afterFailure ? { [ANN_AFTER_FAILURE]: input.afterFailure.slice(0, 2000) } : {}),
    },
    node: input.node,
    serviceAccountName: input.serviceAccountName,
    ttlSecondsAfterFinished: input.ttlSecondsAfterFinished,
    activeDeadlineSeconds: input.activeDeadlineSeconds,
    pod: {
      // The cleanup reads the host's mount table (/proc/1/mountinfo) to refuse a volume that
      // kubelet still has mounted into a pod.
      hostPID: true,
      securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: CLEANUP_CONTAINER,
          image: input.image,
          // The image's ENTRYPOINT is the pg-reflinker program (node dist/src/main.js).
          args: ['cleanup', '--root', prefix, '--volume-id', input.volumeId].map(kubeletLiteral),
          volumeMounts: [{ name: 'prefix', mountPath: prefix }],
          // Root, to remove files of any owner (PGDATA is 0700 uid 26); no other privilege.
          securityContext: rootWith(['DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER']),
          resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { memory: '256Mi' } },
          terminationMessagePolicy: 'FallbackToLogsOnError',
        },
      ],
      volumes: [{ name: 'prefix', hostPath: { path: prefix, type: 'Directory' } }],
    },
  });
}

/** The cleanup Job for a volume, with the driver's settings (DeleteVolume, and after a failed population). */
export function cleanupJobFor(ref: VolumeRef, s: KubeSettings, afterFailure?: string): V1Job {
  return cleanupJob({
    volumeId: ref.volumeId,
    node: ref.node,
    dir: ref.dir,
    namespace: s.driverNamespace,
    image: s.driverImage,
    hostPathPrefix: s.hostPathPrefix,
    serviceAccountName: s.jobServiceAccount,
    ttlSecondsAfterFinished: s.cleanupTtlSeconds,
    activeDeadlineSeconds: s.cleanupDeadlineSeconds,
    afterFailure,
  });
}
