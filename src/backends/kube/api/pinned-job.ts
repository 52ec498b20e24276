import type { V1Job, V1PodSpec, V1SecurityContext } from '@kubernetes/client-node';

/** A container that must run as root: only the capabilities named, no escalation, a read-only root filesystem. */
export function rootWith(capabilities: string[]): V1SecurityContext {
  return {
    runAsUser: 0,
    runAsGroup: 0,
    runAsNonRoot: false,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'], add: capabilities },
  };
}

export interface PinnedJobInput {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  node: string;
  serviceAccountName: string;
  ttlSecondsAfterFinished: number;
  activeDeadlineSeconds: number;
  /** The pod's containers, volumes and anything else of its own. */
  pod: Omit<V1PodSpec, 'activeDeadlineSeconds' | 'nodeName' | 'restartPolicy' | 'serviceAccountName' | 'automountServiceAccountToken' | 'enableServiceLinks'>;
}

/**
 * The shape every Job of ours shares: one pod, never retried in place (the controller decides
 * about retries), pinned to the node that holds the data (nodeName: no scheduler, so taints and
 * cordons cannot keep the work off the only node that can do it), no API token, cleaned up by TTL.
 */
export function pinnedJob(input: PinnedJobInput): V1Job {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: input.name, namespace: input.namespace, labels: input.labels, annotations: input.annotations },
    spec: {
      backoffLimit: 0,
      completions: 1,
      parallelism: 1,
      ttlSecondsAfterFinished: input.ttlSecondsAfterFinished,
      activeDeadlineSeconds: input.activeDeadlineSeconds,
      template: {
        metadata: { labels: input.labels },
        spec: {
          nodeName: input.node,
          restartPolicy: 'Never',
          serviceAccountName: input.serviceAccountName,
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          // Also on the pod: one orphaned from its Job (deleted with --cascade=orphan) keeps no
          // Job deadline, and the driver counts it as live until it ends.
          activeDeadlineSeconds: input.activeDeadlineSeconds,
          ...input.pod,
        },
      },
    },
  };
}
