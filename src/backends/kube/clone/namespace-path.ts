import { status } from '@grpc/grpc-js';
import type { V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { CsiError, notFound } from '../../../csi/errors.js';
import { orNone, type KubeClient } from '../api/client.js';
import { ANN_ALLOW_CLONE_TO, ANN_PLACEHOLDER_SOURCE } from '../constants.js';
import { isObjectName, type ObjectRef } from '../api/names.js';

// Cross-namespace clones. CloudNativePG (and the sidecar, without an alpha feature gate) can
// only name a data source in the clone's own namespace, so a *placeholder* stands in: an empty
// pg-reflinker PVC in the clone's namespace, annotated `pg-reflinker.csi/source: <pvc name>`.
// The clone's dataSource names the placeholder; we follow its annotation to the real source,
// looking first in the placeholder's (= the clone's) namespace, then in each NAMESPACE_PATH
// namespace in order, skipping other placeholders. The first PVC found is the source.
//
// Consent takes both sides: the admin lists the namespaces that may serve as sources
// (NAMESPACE_PATH; no other namespace is ever searched), and the source's owner lists the
// namespaces that may clone it, on the source PVC: `pg-reflinker.csi/allow-clone-to: ns1,ns2`
// (or `*`). Without the owner's consent the clone is refused with PERMISSION_DENIED.

export const placeholderTarget = (pvc: V1PersistentVolumeClaim): string | undefined => pvc.metadata?.annotations?.[ANN_PLACEHOLDER_SOURCE]?.trim() || undefined;

/** The namespaces a source PVC's owner allows to clone it. */
export function allowedCloneNamespaces(pvc: V1PersistentVolumeClaim): string[] {
  return (pvc.metadata?.annotations?.[ANN_ALLOW_CLONE_TO] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

export function consents(source: V1PersistentVolumeClaim, cloneNamespace: string): boolean {
  if (source.metadata?.namespace === cloneNamespace) return true;
  const allowed = allowedCloneNamespaces(source);
  return allowed.includes('*') || allowed.includes(cloneNamespace);
}

/** The clone's namespace first, then NAMESPACE_PATH in order, each once. */
export const searchOrder = (cloneNamespace: string, namespacePath: readonly string[]) => [...new Set([cloneNamespace, ...namespacePath])];

/** Follows a placeholder to the real source PVC: the first one found in search order; NOT_FOUND when there is none. */
export async function findPlaceholderTarget(client: KubeClient, placeholder: V1PersistentVolumeClaim, namespacePath: readonly string[]): Promise<V1PersistentVolumeClaim> {
  const cloneNamespace = placeholder.metadata!.namespace!;
  const what = `placeholder PVC ${cloneNamespace}/${placeholder.metadata!.name}`;
  const target = placeholderTarget(placeholder)!;
  if (!isObjectName(target)) throw notFound(`${what} names source "${target}", which is not a valid PVC name`);
  const namespaces = searchOrder(cloneNamespace, namespacePath);
  for (const namespace of namespaces) {
    const pvc = await orNone(client.core.readNamespacedPersistentVolumeClaim({ namespace, name: target }));
    if (pvc && !placeholderTarget(pvc)) return pvc;
  }
  throw notFound(`${what} names source PVC "${target}", which is in none of the namespaces searched: ${namespaces.join(', ')} (the clone's namespace, then NAMESPACE_PATH)`);
}

/**
 * The one consent check of a clone made through a placeholder (PERMISSION_DENIED otherwise): the
 * source's owner allows the placeholder's namespace, and the clone is in that namespace (a
 * placeholder speaks for its own namespace only).
 */
export function requireConsent(source: V1PersistentVolumeClaim, placeholder: ObjectRef, clonePvc: ObjectRef | undefined): void {
  const what = `placeholder PVC ${placeholder.namespace}/${placeholder.name}`;
  if (!consents(source, placeholder.namespace)) {
    throw new CsiError(
      status.PERMISSION_DENIED,
      `${what} names source PVC ${source.metadata?.namespace}/${source.metadata?.name}, whose owner has not allowed clones into namespace ${placeholder.namespace}: ` +
        `the source PVC needs the annotation ${ANN_ALLOW_CLONE_TO} listing "${placeholder.namespace}" (or "*")`,
    );
  }
  if (clonePvc && clonePvc.namespace !== placeholder.namespace) {
    throw new CsiError(status.PERMISSION_DENIED, `placeholder ${placeholder.namespace}/${placeholder.name} can only stand in for clones in namespace ${placeholder.namespace}, not ${clonePvc.namespace}`);
  }
}
