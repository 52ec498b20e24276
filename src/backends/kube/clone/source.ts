import type { V1PersistentVolume, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import type { SourceVolume } from '../../../controller/backend.js';
import { failedPrecondition, invalidArgument, notFound } from '../../../csi/errors.js';
import { InvalidVolumeId, parseVolumeId, type VolumeRef } from '../../../volume/id.js';
import { kubeCall, orNone, type KubeClient } from '../api/client.js';
import { isNamespaceName, isObjectName, type ObjectRef } from '../api/names.js';
import { handleOf, isOurs, pvByHandle, pvCapacity } from '../api/volumes.js';
import { PARAM_PVC_NAME, PARAM_PVC_NAMESPACE } from '../constants.js';
import { findPlaceholderTarget, placeholderTarget, requireConsent } from './namespace-path.js';

// A clone's source, resolved once per CreateVolume: source volume id → its PV → the PVC bound to
// it (for a placeholder, the real source PVC in the namespace path, with the consent checked).
// Who uses the source, and so how it is copied, is the plan's part (plan.ts).

export interface KubeSourceVolume extends SourceVolume {
  kube: {
    namespace: string;
    pvc: string;
    pvName: string;
    pvcLabels: Record<string, string>;
    /** Set when the request named a placeholder that stands for this source. */
    placeholder?: ObjectRef;
    /** The clone's own PVC (from --extra-create-metadata), when the sidecar passed it. */
    clonePvc?: ObjectRef;
  };
}

/** The clone's PVC, from the sidecar's --extra-create-metadata parameters. */
export function clonePvcOf(parameters: Record<string, string>): ObjectRef | undefined {
  const namespace = parameters[PARAM_PVC_NAMESPACE];
  const name = parameters[PARAM_PVC_NAME];
  if (!namespace || !name) return undefined;
  // They name objects we read and Events we create: never let them reach an API path unchecked.
  if (!isNamespaceName(namespace) || !isObjectName(name)) {
    throw invalidArgument(`parameters ${PARAM_PVC_NAMESPACE}=${JSON.stringify(namespace.slice(0, 100))} and ${PARAM_PVC_NAME}=${JSON.stringify(name.slice(0, 300))} do not name a PVC`);
  }
  return { namespace, name };
}

async function claimOf(client: KubeClient, pv: V1PersistentVolume, what: string): Promise<V1PersistentVolumeClaim> {
  const ref = pv.spec?.claimRef;
  if (!ref?.namespace || !ref.name) throw notFound(`${what} is not bound to any PVC`);
  const pvc = await orNone(client.core.readNamespacedPersistentVolumeClaim({ namespace: ref.namespace, name: ref.name }));
  if (!pvc || (ref.uid && pvc.metadata?.uid !== ref.uid)) throw notFound(`${what} was bound to PVC ${ref.namespace}/${ref.name}, which no longer exists`);
  return pvc;
}

export async function describeSource(client: KubeClient, namespacePath: readonly string[], ref: VolumeRef, parameters: Record<string, string>): Promise<KubeSourceVolume> {
  return kubeCall(`resolving source volume ${ref.volumeId}`, async () => {
    const pv = await pvByHandle(client, ref.volumeId, ref.dir);
    if (!pv) throw notFound(`source volume ${ref.volumeId} does not exist (no pg-reflinker PersistentVolume has this handle)`);
    const claim = await claimOf(client, pv, `source volume ${ref.volumeId} (PV ${pv.metadata?.name})`);
    const clonePvc = clonePvcOf(parameters);
    if (!placeholderTarget(claim)) return sourceOf(ref, pv, claim, clonePvc);

    const placeholder = { namespace: claim.metadata!.namespace!, name: claim.metadata!.name! };
    const real = await findPlaceholderTarget(client, claim, namespacePath);
    requireConsent(real, placeholder, clonePvc);
    const what = `source PVC ${real.metadata!.namespace}/${real.metadata!.name} (named by placeholder ${placeholder.namespace}/${placeholder.name})`;
    const pvName = real.spec?.volumeName;
    if (!pvName || real.status?.phase !== 'Bound') throw failedPrecondition(`${what} is not bound to a volume yet`);
    const realPv = await orNone(client.core.readPersistentVolume({ name: pvName }));
    if (!isOurs(realPv)) throw failedPrecondition(`${what} is not a pg-reflinker volume; only pg-reflinker volumes can be cloned`);
    let realRef: VolumeRef;
    try {
      realRef = parseVolumeId(handleOf(realPv));
    } catch (err) {
      throw failedPrecondition(`${what} has volume handle "${handleOf(realPv)}": ${(err as InvalidVolumeId).message}`);
    }
    const source = sourceOf(realRef, realPv, real, clonePvc);
    source.kube.placeholder = placeholder;
    return source;
  });
}

function sourceOf(ref: VolumeRef, pv: V1PersistentVolume, pvc: V1PersistentVolumeClaim, clonePvc: ObjectRef | undefined): KubeSourceVolume {
  const namespace = pvc.metadata!.namespace!;
  const name = pvc.metadata!.name!;
  return {
    ref,
    capacityBytes: pvCapacity(pv),
    description: `${namespace}/${name}`,
    kube: { namespace, pvc: name, pvName: pv.metadata!.name!, pvcLabels: { ...pvc.metadata?.labels }, ...(clonePvc ? { clonePvc } : {}) },
  };
}
