import { randomBytes } from 'node:crypto';
import type { V1ConfigMap, V1Job, V1Pod } from '@kubernetes/client-node';
import { failedPrecondition } from '../../../csi/errors.js';
import { isConflict, isNotFound, orNone, type KubeClient } from '../api/client.js';
import { ANN_VOLUME_ID, LABEL_MANAGED_BY, LABEL_ROLE, LABEL_VOLUME, MANAGED_BY } from '../constants.js';
import { volumeKey } from '../../../volume/id.js';
import { populateJobName, recordName } from '../api/names.js';
import { JOB_NAME_LABEL, isPodAlive } from '../api/jobs.js';
import { JOB_CONTROLLER_UID_LABEL } from '../constants.js';

// Which populator Job is the driver's own. Labels, names and annotations in a user's namespace
// can be forged by anyone who may create Jobs or pods there, so they decide nothing. The
// record is one ConfigMap per clone in the driver's namespace, which only the controller (and
// the cluster admin) can write: the volume it is for, and the namespace, name and uid of its
// populator Job. The Job's name ends in a random suffix that only the record knows, so nobody
// can make that Job before we do.
//
// Order of writes: record (name, no uid) → Job → uid into the record. A controller that stops
// after the first write makes the Job under the recorded name on the next call; one that stops
// after the second adopts the Job found under that name (nobody else could know it).

export interface CloneRecord {
  /** The ConfigMap's own name and version (optimistic concurrency on every update). */
  name: string;
  objectUid: string;
  resourceVersion: string;
  volumeName: string;
  volumeId: string;
  capacityBytes: number;
  sourceVolumeId: string;
  /** The source CreateVolume named, when preferStandby copies another volume (a replica's) instead. */
  requestedSourceVolumeId?: string;
  jobNamespace: string;
  jobName: string;
  jobUid?: string;
  mode?: 'online' | 'plain';
  /** The populator's result JSON, once it succeeded (recorded here, not on the Job a namespace user can edit). */
  result?: string;
}

export type NewCloneRecord = Pick<CloneRecord, 'volumeName' | 'volumeId' | 'capacityBytes' | 'sourceVolumeId' | 'requestedSourceVolumeId' | 'jobNamespace' | 'mode'>;

const ROLE = 'clone-record';

/** A suffix nobody can guess: 8 characters of [a-z0-9] (~41 bits). */
const jobSuffix = () => [...randomBytes(8)].map((b) => (b % 36).toString(36)).join('');

const KEYS = {
  volumeName: 'volume-name',
  volumeId: 'volume-id',
  capacityBytes: 'capacity-bytes',
  sourceVolumeId: 'source-volume-id',
  requestedSourceVolumeId: 'requested-source-volume-id',
  jobNamespace: 'job-namespace',
  jobName: 'job-name',
  jobUid: 'job-uid',
  mode: 'mode',
  result: 'result',
} as const;

function fromConfigMap(cm: V1ConfigMap): CloneRecord {
  const d = cm.data ?? {};
  const mode = d[KEYS.mode];
  return {
    name: cm.metadata!.name!,
    objectUid: cm.metadata!.uid!,
    resourceVersion: cm.metadata!.resourceVersion!,
    volumeName: d[KEYS.volumeName] ?? '',
    volumeId: d[KEYS.volumeId] ?? '',
    capacityBytes: Number(d[KEYS.capacityBytes] ?? 0),
    sourceVolumeId: d[KEYS.sourceVolumeId] ?? '',
    ...(d[KEYS.requestedSourceVolumeId] ? { requestedSourceVolumeId: d[KEYS.requestedSourceVolumeId] } : {}),
    jobNamespace: d[KEYS.jobNamespace] ?? '',
    jobName: d[KEYS.jobName] ?? '',
    ...(d[KEYS.jobUid] ? { jobUid: d[KEYS.jobUid] } : {}),
    ...(mode === 'online' || mode === 'plain' ? { mode } : {}),
    ...(d[KEYS.result] ? { result: d[KEYS.result] } : {}),
  };
}

function toData(r: Omit<CloneRecord, 'name' | 'objectUid' | 'resourceVersion'>): Record<string, string> {
  const data: Record<string, string> = {};
  for (const [field, key] of Object.entries(KEYS) as Array<[keyof typeof KEYS, string]>) {
    const value = r[field];
    if (value !== undefined && value !== '') data[key] = String(value);
  }
  return data;
}

const controllerOf = (pod: V1Pod) => pod.metadata?.ownerReferences?.find((o) => o.controller && o.kind === 'Job' && o.apiVersion === 'batch/v1');

export class CloneRecords {
  constructor(
    private readonly client: KubeClient,
    /** The driver's namespace. */
    private readonly namespace: string,
  ) {}

  async get(dir: string): Promise<CloneRecord | undefined> {
    const cm = await orNone(this.client.core.readNamespacedConfigMap({ namespace: this.namespace, name: recordName(dir) }));
    return cm ? fromConfigMap(cm) : undefined;
  }

  /** A new record under a fresh Job name; a concurrent call's record when it was first. */
  async create(dir: string, fields: NewCloneRecord): Promise<CloneRecord> {
    const body: V1ConfigMap = {
      metadata: { name: recordName(dir), namespace: this.namespace, labels: { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_ROLE]: ROLE, [LABEL_VOLUME]: volumeKey(dir) } },
      data: toData({ ...fields, jobName: populateJobName(dir, jobSuffix()) }),
    };
    try {
      return fromConfigMap(await this.client.core.createNamespacedConfigMap({ namespace: this.namespace, body }));
    } catch (err) {
      if (!isConflict(err)) throw err;
      const existing = await this.get(dir);
      if (!existing) throw err;
      return existing;
    }
  }

  /** The same record for a new attempt (its Job is gone): a fresh Job name, no uid, no result. */
  async renew(dir: string, record: CloneRecord, jobNamespace: string, mode: CloneRecord['mode']): Promise<CloneRecord> {
    const { name: _n, objectUid: _o, resourceVersion: _rv, jobUid: _u, result: _r, ...kept } = record;
    return this.replace(dir, record, { ...kept, jobNamespace, mode, jobName: populateJobName(dir, jobSuffix()) });
  }

  async setJobUid(dir: string, record: CloneRecord, uid: string): Promise<CloneRecord> {
    let current = record;
    for (let attempt = 0; attempt < 3; attempt++) {
      // Done, or renewed by a concurrent call (its Job name is then the one to use).
      if (current.jobUid === uid || current.jobName !== record.jobName) return current;
      if (current.jobUid) {
        throw failedPrecondition(`the record of volume ${record.volumeId} names Job ${record.jobNamespace}/${record.jobName} with uid ${current.jobUid}, not ${uid}`);
      }
      const { name: _n, objectUid: _o, resourceVersion: _rv, ...fields } = current;
      current = await this.replace(dir, current, { ...fields, jobUid: uid });
    }
    return current;
  }

  async setResult(dir: string, record: CloneRecord, result: string): Promise<CloneRecord> {
    const { name: _n, objectUid: _o, resourceVersion: _rv, ...fields } = record;
    return this.replace(dir, record, { ...fields, result });
  }

  async delete(record: CloneRecord): Promise<void> {
    try {
      await this.client.core.deleteNamespacedConfigMap({ namespace: this.namespace, name: record.name, body: { preconditions: { uid: record.objectUid } } });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }

  /**
   * The record's Job, if it exists and is the one the driver created: the recorded uid, or,
   * before the uid was recorded, the secret name (and our volume id on it). A different Job
   * under the recorded name is refused: never adopted, never deleted.
   */
  async job(dir: string, record: CloneRecord, get: (namespace: string, name: string) => Promise<V1Job | undefined>): Promise<{ job?: V1Job; record: CloneRecord }> {
    const job = await get(record.jobNamespace, record.jobName);
    if (!job) return { record };
    const what = `Job ${record.jobNamespace}/${record.jobName}`;
    if (record.jobUid) {
      if (job.metadata?.uid !== record.jobUid) {
        throw failedPrecondition(
          `${what} was not created by pg-reflinker (uid ${job.metadata?.uid}, recorded ${record.jobUid}); it is neither used nor deleted: remove it to let the clone of ${record.volumeId} proceed`,
        );
      }
      return { job, record };
    }
    if (job.metadata?.annotations?.[ANN_VOLUME_ID] !== record.volumeId) {
      throw failedPrecondition(`${what} was not created by pg-reflinker for volume ${record.volumeId}; it is neither used nor deleted: remove it to let the clone proceed`);
    }
    return { job, record: await this.setJobUid(dir, record, job.metadata!.uid!) };
  }

  /** Is this pod run by a populator Job the driver created (per the records)? */
  async ownPodFilter(): Promise<(pod: V1Pod) => boolean> {
    const list = await this.client.core.listNamespacedConfigMap({ namespace: this.namespace, labelSelector: `${LABEL_ROLE}=${ROLE}` });
    const uids = new Set<string>();
    const names = new Set<string>();
    for (const r of list.items.map(fromConfigMap)) {
      if (r.jobUid) uids.add(`${r.jobNamespace}/${r.jobUid}`);
      else names.add(`${r.jobNamespace}/${r.jobName}`);
    }
    return (pod) => {
      const owner = controllerOf(pod);
      const ns = pod.metadata?.namespace;
      return !!owner && (uids.has(`${ns}/${owner.uid}`) || names.has(`${ns}/${owner.name}`));
    };
  }

  /**
   * Live pods in `namespace` that mount `claim` and look like a recorded populator orphaned from
   * its Job (no controller; the Job's uid label, or its name label before the uid was recorded).
   * They may still be copying, so a clone of the same source waits for them. The labels can be
   * forged, which only delays: such a pod is never excluded from the source's users.
   */
  async orphanedPopulators(namespace: string, claim: string): Promise<V1Pod[]> {
    const records = (await this.client.core.listNamespacedConfigMap({ namespace: this.namespace, labelSelector: `${LABEL_ROLE}=${ROLE}` })).items.map(fromConfigMap);
    const uids = new Set(records.filter((r) => r.jobNamespace === namespace && r.jobUid).map((r) => r.jobUid!));
    const names = new Set(records.filter((r) => r.jobNamespace === namespace && !r.jobUid).map((r) => r.jobName));
    if (uids.size === 0 && names.size === 0) return [];
    const pods = (await this.client.core.listNamespacedPod({ namespace })).items;
    return pods.filter((pod) => {
      const labels = pod.metadata?.labels ?? {};
      const recorded = uids.has(labels[JOB_CONTROLLER_UID_LABEL] ?? '') || names.has(labels[JOB_NAME_LABEL] ?? '');
      const mounts = (pod.spec?.volumes ?? []).some((v) => v.persistentVolumeClaim?.claimName === claim);
      return recorded && mounts && !pod.metadata?.ownerReferences?.some((o) => o.controller) && isPodAlive(pod);
    });
  }

  private async replace(dir: string, current: CloneRecord, fields: Omit<CloneRecord, 'name' | 'objectUid' | 'resourceVersion'>): Promise<CloneRecord> {
    try {
      const cm = await this.client.core.replaceNamespacedConfigMap({
        namespace: this.namespace,
        name: current.name,
        body: {
          metadata: { name: current.name, namespace: this.namespace, resourceVersion: current.resourceVersion, labels: { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_ROLE]: ROLE, [LABEL_VOLUME]: volumeKey(dir) } },
          data: toData(fields),
        },
      });
      return fromConfigMap(cm);
    } catch (err) {
      // A concurrent call changed it first: its version wins.
      if (!isConflict(err)) throw err;
      const latest = await this.get(dir);
      if (!latest) throw err;
      return latest;
    }
  }
}
