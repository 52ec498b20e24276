import { status } from '@grpc/grpc-js';
import { ApiException, BatchV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, Watch, setHeaderOptions } from '@kubernetes/client-node';
import { CsiError } from '../../../csi/errors.js';

/** The typed APIs the backend uses, built once from one KubeConfig. */
export interface KubeClient {
  config: KubeConfig;
  core: CoreV1Api;
  batch: BatchV1Api;
  custom: CustomObjectsApi;
  watch: Watch;
}

export function kubeClient(config: KubeConfig): KubeClient {
  return {
    config,
    core: config.makeApiClient(CoreV1Api),
    batch: config.makeApiClient(BatchV1Api),
    custom: config.makeApiClient(CustomObjectsApi),
    watch: new Watch(config),
  };
}

/** In a pod: the service account; elsewhere: $KUBECONFIG or ~/.kube/config. */
export function defaultKubeConfig(): KubeConfig {
  const config = new KubeConfig();
  config.loadFromDefault();
  return config;
}

/** Options for patch calls: RFC 7386 merge patch (the client's default would be JSON patch). */
export const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export const apiCode = (err: unknown): number | undefined => (err instanceof ApiException ? err.code : undefined);
export const isNotFound = (err: unknown) => apiCode(err) === 404;
export const isConflict = (err: unknown) => apiCode(err) === 409;

/** The message of the API server's Status object, else the error's own. */
export function apiMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body: unknown = err.body;
    if (typeof body === 'string') {
      try {
        const parsed = JSON.parse(body) as { message?: string };
        if (parsed.message) return parsed.message;
      } catch {
        /* not JSON */
      }
      if (body) return `HTTP ${err.code}: ${body.slice(0, 300)}`;
    }
    return `HTTP ${err.code}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** undefined for 404, the object otherwise. */
export async function orNone<T>(promise: Promise<T>): Promise<T | undefined> {
  try {
    return await promise;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Swallows 404 (already gone) and nothing else. */
export async function ignoreNotFound(promise: Promise<unknown>): Promise<void> {
  await orNone(promise);
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ECONNABORTED']);
const NETWORK_MESSAGE = /\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EAI_AGAIN)\b|socket hang up|fetch failed/;

/** A failure to reach the API server (the request may never have arrived), looking through `cause` chains. */
export function isNetworkError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const { code, type } = e as { code?: unknown; type?: unknown };
    if (typeof code === 'string' && (NETWORK_CODES.has(code) || code.startsWith('UND_ERR_'))) return true;
    // node-fetch's FetchError for a failed request ("request to ... failed, reason: ...").
    if (e.name === 'FetchError' && type === 'system') return true;
    if (NETWORK_MESSAGE.test(e.message)) return true;
  }
  return false;
}

/**
 * A failed API call as a CSI status the sidecar handles well: an unreachable or overloaded
 * API server is UNAVAILABLE (retried in the background), a missing permission is INTERNAL
 * with a message that names the RBAC problem. Anything else that is not an API answer is a
 * bug of ours or input we failed to check: INTERNAL, so it is not retried forever in silence.
 * CsiErrors pass through.
 */
export function toCsiError(err: unknown, doing: string): Error {
  if (err instanceof CsiError) return err;
  const code = apiCode(err);
  const message = `${doing}: ${apiMessage(err)}`;
  if (code === undefined) {
    if (isNetworkError(err)) return new CsiError(status.UNAVAILABLE, `Kubernetes API unreachable: ${message}`);
    return new CsiError(status.INTERNAL, message);
  }
  if (code === 429 || code >= 500) return new CsiError(status.UNAVAILABLE, `Kubernetes API: ${message}`);
  if (code === 403) return new CsiError(status.INTERNAL, `the controller's service account may not do this (check its ClusterRole): ${message}`);
  return new CsiError(status.INTERNAL, message);
}

/** Runs an API interaction and maps its errors with toCsiError. */
export async function kubeCall<T>(doing: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toCsiError(err, doing);
  }
}
