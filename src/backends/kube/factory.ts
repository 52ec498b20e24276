import type { KubeConfig } from '@kubernetes/client-node';
import type { Config } from '../../config.js';
import type { HandlerContext } from '../../csi/handler.js';
import type { VolumeBackend } from '../../controller/backend.js';
import type { Readiness } from '../../health.js';
import { KubeBackend } from './backend.js';
import { apiMessage, defaultKubeConfig, kubeClient, type KubeClient } from './api/client.js';
import { FailedPvReconciler } from './deletion/failed-pvs.js';
import { kubeSettings, type KubeTuning } from './settings.js';
import type { KubeSourceVolume } from './clone/source.js';

/** How the controller role gets its Kubernetes backend (main.ts loads this module for that role only). */
export type KubeBackendFactory = (
  config: Config,
  ctx: HandlerContext,
) => Promise<{ backend: VolumeBackend<KubeSourceVolume>; readiness: Readiness; stop?: () => void }>;

export interface KubeFactoryOptions extends KubeTuning {
  /** Default: in-cluster service account, else $KUBECONFIG / ~/.kube/config. */
  kubeConfig?: KubeConfig;
  /** Called with the reconciler, so its owner can stop it (tests). */
  onReconciler?: (reconciler: FailedPvReconciler) => void;
}

const READINESS_TIMEOUT_MS = 3000;
const READINESS_CACHE_MS = 5000;

/**
 * Ready when the API server answers a cheap request the ClusterRole allows (list one Job in the
 * driver's namespace). Cached briefly and bounded in time: Probe must answer fast.
 */
export function apiReadiness(client: KubeClient, namespace: string): Readiness {
  let last: { at: number; problem: string | undefined } | undefined;
  return async () => {
    if (last && Date.now() - last.at < READINESS_CACHE_MS) return last.problem;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`the Kubernetes API did not answer within ${READINESS_TIMEOUT_MS} ms`), READINESS_TIMEOUT_MS);
    });
    const probe = client.batch.listNamespacedJob({ namespace, limit: 1 }).then(
      () => undefined,
      (err: unknown) => `the Kubernetes API is not usable: ${apiMessage(err)}`,
    );
    const problem = await Promise.race([probe, timeout]).finally(() => clearTimeout(timer));
    last = { at: Date.now(), problem };
    return problem;
  };
}

export function createKubeBackendFactory(options: KubeFactoryOptions = {}): KubeBackendFactory {
  return async (config, ctx) => {
    const { kubeConfig, onReconciler, ...tuning } = options;
    const client = kubeClient(kubeConfig ?? defaultKubeConfig());
    const settings = kubeSettings(config, tuning);
    const backend = new KubeBackend({ client, settings, log: ctx.log, metrics: ctx.metrics });
    const reconciler = new FailedPvReconciler({
      client,
      events: backend.events,
      log: ctx.log,
      metrics: ctx.metrics,
      hostPathPrefix: settings.hostPathPrefix,
      deleteVolume: (ref) => backend.deleteVolume(ref),
    });
    reconciler.start(settings.failedPvIntervalMs);
    onReconciler?.(reconciler);
    ctx.log.info('kubernetes backend', {
      server: client.config.getCurrentCluster()?.server,
      driver_namespace: settings.driverNamespace,
      namespace_path: settings.namespacePath.join(','),
    });
    return { backend, readiness: apiReadiness(client, settings.driverNamespace), stop: () => reconciler.stop() };
  };
}

/** What the controller role loads (src/main.ts). */
export const kubeBackendFactory: KubeBackendFactory = createKubeBackendFactory();
