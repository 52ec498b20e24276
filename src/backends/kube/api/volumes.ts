import type { V1PersistentVolume } from '@kubernetes/client-node';
import type { RecordedVolume } from '../../../controller/backend.js';
import { sourceVolumeIdOf } from '../../../volume/context.js';
import { orNone, type KubeClient } from './client.js';
import { DRIVER_NAME, PROVISIONER_IDENTITY_KEY } from '../constants.js';
import { parseQuantity } from './quantity.js';

// PersistentVolumes of this driver: the sidecar names them after the volume (`pvc-<uid>`) and
// records our volume id as spec.csi.volumeHandle and our volume_context as volumeAttributes.

export const isOurs = (pv: V1PersistentVolume | undefined): pv is V1PersistentVolume => pv?.spec?.csi?.driver === DRIVER_NAME;
export const handleOf = (pv: V1PersistentVolume) => pv.spec?.csi?.volumeHandle ?? '';

export async function pvByName(client: KubeClient, name: string): Promise<V1PersistentVolume | undefined> {
  const pv = await orNone(client.core.readPersistentVolume({ name }));
  return isOurs(pv) ? pv : undefined;
}

/** All PVs of this driver (PVs support no field selector on the driver: list and filter). */
export async function listOurPvs(client: KubeClient): Promise<V1PersistentVolume[]> {
  const out: V1PersistentVolume[] = [];
  let next: string | undefined;
  do {
    const page = await client.core.listPersistentVolume({ limit: 500, _continue: next });
    out.push(...page.items.filter(isOurs));
    next = page.metadata?._continue || undefined;
  } while (next);
  return out;
}

/**
 * The PV whose handle is `volumeId`: first the PV named after the volume's directory (the
 * sidecar's naming, one GET), else a search through all of this driver's PVs.
 */
export async function pvByHandle(client: KubeClient, volumeId: string, dir: string): Promise<V1PersistentVolume | undefined> {
  const named = await pvByName(client, dir);
  if (named && handleOf(named) === volumeId) return named;
  return (await listOurPvs(client)).find((pv) => handleOf(pv) === volumeId);
}

export function pvCapacity(pv: V1PersistentVolume): number {
  const storage = pv.spec?.capacity?.storage;
  if (!storage) throw new Error(`persistent volume ${pv.metadata?.name} has no spec.capacity.storage`);
  return parseQuantity(storage);
}

/** The volume_context we returned, as the sidecar stored it (minus its own key). */
export function contextOfPv(pv: V1PersistentVolume): Record<string, string> {
  const { [PROVISIONER_IDENTITY_KEY]: _identity, ...context } = pv.spec?.csi?.volumeAttributes ?? {};
  return context;
}

export function recordedFromPv(name: string, pv: V1PersistentVolume): RecordedVolume {
  const sourceVolumeId = sourceVolumeIdOf(contextOfPv(pv));
  return { name, volumeId: handleOf(pv), capacityBytes: pvCapacity(pv), ...(sourceVolumeId ? { sourceVolumeId } : {}) };
}
