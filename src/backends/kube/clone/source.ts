import type { V1PersistentVolume, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import type { SourceVolume } from '../../../controller/backend.js';
import { failedPrecondition, notFound } from '../../../csi/errors.js';
import { InvalidVolumeId, parseVolumeId, type VolumeRef } from '../../../volume/id.js';
import { kubeCall, orNone, type KubeClient } from '../api/client.js';
import { placeholderTarget, resolvePlaceholder } from './namespace-path.js';
import { handleOf, isOurs, pvByHandle, pvCapacity } from '../api/volumes.js';

// Clone source resolution, first half: source volume id → its PV → the PVC bound to it (and,
// for a placeholder, the real source PVC in the namespace path). What uses the source, and
// therefore how to copy it, is decided when the Job is made (copy-plan.ts).

export interface KubeSourceVolume extends SourceVolume {
  kube: {
    namespace: string;
    pvc: string;
    pvName: string;
    pvcLabels: Record<string, string>;
    /** Set when the request named a placeholder that stands for this source. */
    placeholder?: { namespace: string; name: string };
  };
}

export const isKubeSource = (source: SourceVolume): source is KubeSourceVolume => 'kube' in source;

async function claimOf(client: KubeClient, pv: V1PersistentVolume, what: string): Promise<V1PersistentVolumeClaim> {
  const ref = pv.spec?.claimRef;
  if (!ref?.namespace || !ref.name) throw notFound(`${what} is not bound to any PVC`);
  const pvc = await orNone(client.core.readNamespacedPersistentVolumeClaim({ namespace: ref.namespace, name: ref.name }));
  if (!pvc || (ref.uid && pvc.metadata?.uid !== ref.uid)) throw notFound(`${what} was bound to PVC ${ref.namespace}/${ref.name}, which no longer exists`);
  return pvc;
}

export async function describeSource(client: KubeClient, namespacePath: readonly string[], ref: VolumeRef): Promise<KubeSourceVolume> {
  return kubeCall(`resolving source volume ${ref.volumeId}`, async () => {
    const pv = await pvByHandle(client, ref.volumeId, ref.dir);
    if (!pv) throw notFound(`source volume ${ref.volumeId} does not exist (no pg-reflinker PersistentVolume has this handle)`);
    let claim = await claimOf(client, pv, `source volume ${ref.volumeId} (PV ${pv.metadata?.name})`);
    if (!placeholderTarget(claim)) return sourceOf(ref, pv, claim);

    const placeholder = { namespace: claim.metadata!.namespace!, name: claim.metadata!.name! };
    claim = await resolvePlaceholder(client, claim, namespacePath);
    const what = `source PVC ${claim.metadata!.namespace}/${claim.metadata!.name} (named by placeholder ${placeholder.namespace}/${placeholder.name})`;
    const pvName = claim.spec?.volumeName;
    if (!pvName || claim.status?.phase !== 'Bound') throw failedPrecondition(`${what} is not bound to a volume yet`);
    const realPv = await orNone(client.core.readPersistentVolume({ name: pvName }));
    if (!isOurs(realPv)) throw failedPrecondition(`${what} is not a pg-reflinker volume; only pg-reflinker volumes can be cloned`);
    let realRef: VolumeRef;
    try {
      realRef = parseVolumeId(handleOf(realPv));
    } catch (err) {
      throw failedPrecondition(`${what} has volume handle "${handleOf(realPv)}": ${(err as InvalidVolumeId).message}`);
    }
    const source = sourceOf(realRef, realPv, claim);
    source.kube.placeholder = placeholder;
    return source;
  });
}

function sourceOf(ref: VolumeRef, pv: V1PersistentVolume, pvc: V1PersistentVolumeClaim): KubeSourceVolume {
  const namespace = pvc.metadata!.namespace!;
  const name = pvc.metadata!.name!;
  return {
    ref,
    capacityBytes: pvCapacity(pv),
    description: `${namespace}/${name}`,
    kube: { namespace, pvc: name, pvName: pv.metadata!.name!, pvcLabels: { ...pvc.metadata?.labels } },
  };
}
