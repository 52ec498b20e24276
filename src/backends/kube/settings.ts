import type { Config } from '../../config.js';

/** Everything the Kubernetes backend is configured with, defaults applied. */
export interface KubeSettings {
  /** HOSTPATH_PREFIX on every node. */
  hostPathPrefix: string;
  namespacePath: readonly string[];
  /** Where cleanup Jobs run. */
  driverNamespace: string;
  /** Image of cleanup Jobs and plain-copy populator Jobs (bash + GNU coreutils + pg-reflinker). */
  driverImage: string;
  jobServiceAccount: string;
  /** How long CreateVolume waits on a running populator Job before answering ABORTED. */
  cloneWaitMs: number;
  /** How long DeleteVolume waits on a running cleanup Job before answering ABORTED. */
  deleteWaitMs: number;
  populateTtlSeconds: number;
  populateDeadlineSeconds: number;
  cleanupTtlSeconds: number;
  cleanupDeadlineSeconds: number;
  /** Period of the Failed-PV reconciler; 0 = off. */
  failedPvIntervalMs: number;
}

export type KubeTuning = Partial<Omit<KubeSettings, 'hostPathPrefix' | 'namespacePath' | 'driverNamespace' | 'driverImage' | 'jobServiceAccount'>>;

export const DEFAULT_TUNING: Required<KubeTuning> = {
  cloneWaitMs: 5000,
  deleteWaitMs: 5000,
  populateTtlSeconds: 3600,
  populateDeadlineSeconds: 6 * 3600,
  cleanupTtlSeconds: 3600,
  cleanupDeadlineSeconds: 3600,
  failedPvIntervalMs: 5 * 60_000,
};

export function kubeSettings(config: Config, tuning: KubeTuning = {}): KubeSettings {
  return {
    ...DEFAULT_TUNING,
    ...Object.fromEntries(Object.entries(tuning).filter(([, v]) => v !== undefined)),
    hostPathPrefix: config.root,
    namespacePath: config.namespacePath,
    driverNamespace: config.driverNamespace,
    driverImage: config.driverImage,
    jobServiceAccount: config.jobServiceAccount || 'default',
  };
}
