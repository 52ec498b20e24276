import type { V1PersistentVolume, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import type { SourceVolume } from '../../../controller/backend.js';
import { failedPrecondition, invalidArgument, notFound } from '../../../csi/errors.js';
import { preferStandbyParameter } from '../../../controller/parameters.js';
import type { StandbyRedirect } from '../../../volume/context.js';
import { InvalidVolumeId, dirForName, parseVolumeId, type VolumeRef } from '../../../volume/id.js';
import { kubeCall, orNone, type KubeClient } from '../api/client.js';
import { isNamespaceName, isObjectName, type ObjectRef } from '../api/names.js';
import { handleOf, isOurs, pvByHandle, pvCapacity } from '../api/volumes.js';
import { PARAM_PVC_NAME, PARAM_PVC_NAMESPACE } from '../constants.js';
import { findPlaceholderTarget, placeholderTarget, requireConsent } from './namespace-path.js';
import type { CloneRecords } from './record.js';
import { decideStandby } from './standby.js';

// A clone's source, resolved once per CreateVolume: source volume id → its PV → the PVC bound to
// it (for a placeholder, the real source PVC in the namespace path, with the consent checked).
// Who uses the source, and so how it is copied, is the plan's part (plan.ts). Under
// preferStandby a primary's PVC is swapped here for a replica's (standby.ts), before the clone is
// placed: the clone lives where the copied volume lives.

/** The sidecar's name for the clone's PV (--extra-create-metadata): the clone's own volume name. */
const PARAM_PV_NAME = 'csi.storage.k8s.io/pv/name';

export interface KubeSourceVolume extends SourceVolume {
  /** Set when preferStandby took a replica's PVC instead of the primary's. */
  standby?: StandbyRedirect;
  /** Set when preferStandby found no replica for a primary's PVC: the primary and why. */
  standbyDeclined?: { primary: string; why: string };
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

export async function describeSource(
  client: KubeClient,
  namespacePath: readonly string[],
  ref: VolumeRef,
  parameters: Record<string, string>,
  records: CloneRecords,
): Promise<KubeSourceVolume> {
  const preferStandby = preferStandbyParameter(parameters);
  const requested = await describeRequested(client, namespacePath, ref, parameters);
  if (!preferStandby) return requested;
  return kubeCall(`choosing a replica for source volume ${ref.volumeId} (preferStandby)`, () => standbySource(client, records, requested, parameters));
}

/**
 * The volume to copy under preferStandby. A clone whose record exists keeps the source recorded
 * with it: a retried CreateVolume copies what the first call chose, even if the replica stopped
 * qualifying since (its Job may be running), and never starts a second Job elsewhere. The record
 * is found by the clone's volume name, which only the sidecar passes; without it nothing is
 * redirected.
 */
async function standbySource(client: KubeClient, records: CloneRecords, requested: KubeSourceVolume, parameters: Record<string, string>): Promise<KubeSourceVolume> {
  const name = parameters[PARAM_PV_NAME];
  if (!name) return requested;
  const record = await records.get(dirForName(name));
  if (record && record.volumeName === name) {
    if (record.requestedSourceVolumeId !== requested.ref.volumeId || record.sourceVolumeId === requested.ref.volumeId) return requested;
    const recorded = parseVolumeId(record.sourceVolumeId);
    const pv = await pvByHandle(client, recorded.volumeId, recorded.dir);
    if (!pv) throw failedPrecondition(`volume ${name} was started from replica volume ${record.sourceVolumeId} (preferStandby), which no longer exists`);
    const claim = await claimOf(client, pv, `replica volume ${record.sourceVolumeId}`);
    return redirected(requested, sourceOf(recorded, pv, claim, requested.kube.clonePvc), requested.kube.pvc);
  }
  const decision = await decideStandby(client, requested);
  if (decision.kind === 'not-applicable') return requested;
  if (decision.kind === 'declined') return { ...requested, standbyDeclined: { primary: decision.primary, why: decision.why } };
  const { ref, pv, pvc } = decision.volume;
  return redirected(requested, sourceOf(ref, pv, pvc, requested.kube.clonePvc), decision.primary);
}

/** The replica's volume as the source, remembering what was asked for (CloudNativePG names an instance's PG_DATA PVC after it). */
function redirected(requested: KubeSourceVolume, replica: KubeSourceVolume, primary: string): KubeSourceVolume {
  return { ...replica, standby: { replica: replica.kube.pvc, primary, requested: { description: requested.description, volumeId: requested.ref.volumeId } } };
}

async function describeRequested(client: KubeClient, namespacePath: readonly string[], ref: VolumeRef, parameters: Record<string, string>): Promise<KubeSourceVolume> {
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
