import type { V1Container, V1Job, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { tlsConninfo } from '../../../populator/conninfo.js';
import { populatorEnv, type PopulatorEnv } from '../../../populator/env.js';
import { FAILURE_PREFIX, WORK_DIR_PREFIX } from '../../../populator/layout.js';
import { renderPopulatorScript } from '../../../populator/script.js';
import {
  ANN_CAPACITY,
  ANN_CLONE_PVC,
  ANN_CLUSTER,
  ANN_MODE,
  ANN_SOURCE,
  ANN_SOURCE_VOLUME_ID,
  ANN_VOLUME_ID,
  ANN_VOLUME_NAME,
  LABEL_MANAGED_BY,
  LABEL_ROLE,
  LABEL_VOLUME,
  MANAGED_BY,
  PG_DATA_MOUNT,
  PG_WAL_MOUNT,
} from '../constants.js';
import { volumeKey } from '../../../volume/id.js';
import type { ObjectRef } from '../api/names.js';
import { kubeletLiteral } from '../api/kubelet-literal.js';
import { pinnedJob, rootWith } from '../api/pinned-job.js';
import type { KubeSettings } from '../settings.js';
import type { ClonePlan } from './plan.js';

// The populator Job as data: no API calls here. It runs on the source's node, in the source
// PVC's namespace (a pod can only mount PVCs of its own namespace).

/** Paths inside the populator pod. */
export const POD_PATHS = {
  volume: '/pg-reflinker/volume',
  tls: '/pg-reflinker/tls',
  work: '/pg-reflinker/work',
  tmp: '/tmp',
} as const;

export const POPULATE_CONTAINER = 'populate';
export const PREPARE_CONTAINER = 'prepare';

export interface OnlineSource {
  mode: 'online';
  /** The source Cluster's PostgreSQL image (same major version as the data). */
  image: string;
  clusterName: string;
  podIP: string;
  caSecret: string;
  replicationSecret: string;
  /** The instance's WAL PVC when the Cluster uses walStorage (pgdata/pg_wal links into it). */
  walPvc?: string;
}

export interface PlainSource {
  mode: 'plain';
  /** An image with bash and GNU coreutils: the driver's own. */
  image: string;
  clusterName?: string;
  /** The source is in use and the StorageClass allowed a crash-consistent copy. */
  crashConsistent?: boolean;
}

export interface PopulateJobInput {
  /** From the clone's record (it alone knows the name's random suffix). */
  jobName: string;
  volume: { name: string; dir: string; volumeId: string; capacityBytes: number };
  source: { volumeId: string; namespace: string; pvc: string; node: string };
  copy: OnlineSource | PlainSource;
  uid: number;
  gid: number;
  /** The clone's PVC, for Events (from --extra-create-metadata), if known. */
  clonePvc?: ObjectRef;
  hostPathPrefix: string;
  /** The driver's own image: the root `prepare` step runs it, never an image a Cluster names. */
  driverImage: string;
  serviceAccountName: string;
  ttlSecondsAfterFinished: number;
  activeDeadlineSeconds: number;
}

/**
 * Runs the populator script and leaves its verdict where the controller reads it: the JSON
 * result line (success) or the `pg-reflinker populate:` line (failure) in the termination
 * message. The script keeps its own log in its work directory and writes only that one line
 * to stderr, so nothing is lost by passing stderr on at the end.
 */
export const POPULATE_WRAPPER = String.raw`set -u
out=${'$'}{TMPDIR:-/tmp}/pgr-populate.out
err=${'$'}{TMPDIR:-/tmp}/pgr-populate.err
term=${'$'}{PGR_TERMINATION_LOG:-/dev/termination-log}
# The container's first process: the kernel delivers it no signal it has no handler for, so the
# kubelet's SIGTERM reaches the populator (which aborts the backup and cleans up) only through this.
# The populator's exit status comes from a subshell that waits for it in the foreground and is
# never signalled: bash may lose the status of a child it reaps while a trap interrupts its wait.
# The populator writes its own pid (then execs), and the trap signals that pid; a signal that comes
# before the pid is known is kept and sent once it is.
pidfile=${'$'}{TMPDIR:-/tmp}/pgr-populate.pid
status=${'$'}{TMPDIR:-/tmp}/pgr-populate.status
rm -f "$pidfile" "$status"
pending=
trap 'p=$(cat "$pidfile" 2>/dev/null); if [ -n "$p" ]; then kill -TERM "$p" 2>/dev/null; else pending=1; fi' TERM INT
( bash -c 'echo "$$" >"$1.tmp" && mv "$1.tmp" "$1" && exec bash -c "$PGR_POPULATOR_SCRIPT"' pgr-populate "$pidfile" >"$out" 2>"$err"; echo "$?" >"$status" ) &
runner=$!
while kill -0 "$runner" 2>/dev/null; do
  if [ -n "$pending" ]; then
    if [ ! -s "$pidfile" ]; then sleep 0.05; continue; fi
    pending=
    kill -TERM "$(cat "$pidfile")" 2>/dev/null
  fi
  wait "$runner"
done
wait "$runner"
rc=$(cat "$status" 2>/dev/null) || rc=
[ -n "$rc" ] || rc=1
cat "$err" >&2
cat "$out"
if [ "$rc" -eq 0 ]; then
  grep '^{' "$out" | tail -n 1 >"$term"
else
  for log in "${'$'}{PGR_WORK_DIR:-/nonexistent}"/${WORK_DIR_PREFIX}*/log; do
    if [ -f "$log" ]; then echo "---- populator log ($log) ----" >&2; tail -n 200 "$log" >&2; fi
  done
  line=$(grep '^${FAILURE_PREFIX}' "$err" | tail -n 1)
  if [ -z "$line" ]; then
    line="${FAILURE_PREFIX}the populator exited with status $rc: $(tail -c 1500 "$err" | tr '\n' ' ')"
  fi
  printf '%s\n' "$line" | cut -c1-3800 >"$term"
fi
exit "$rc"
`;

const PREPARE_SCRIPT = 'set -eu; chown "$PGR_UID:$PGR_GID" "$PGR_VOLUME_DIR"; chmod 0700 "$PGR_VOLUME_DIR"';

/** The libpq connection: verify-full against the -rw service name, while dialling the one pod by IP; TCP keepalives (SESSION_KEEPALIVES). */
export function populatorConninfo(copy: OnlineSource, namespace: string): string {
  return tlsConninfo({
    host: `${copy.clusterName}-rw.${namespace}.svc`,
    hostaddr: copy.podIP,
    port: 5432,
    user: 'streaming_replica',
    sslmode: 'verify-full',
    sslrootcert: `${POD_PATHS.tls}/ca.crt`,
    sslcert: `${POD_PATHS.tls}/tls.crt`,
    sslkey: `${POD_PATHS.tls}/tls.key`,
  });
}

export function populateJobLabels(dir: string): Record<string, string> {
  return { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_ROLE]: 'populate', [LABEL_VOLUME]: volumeKey(dir) };
}

/** The populator's environment inside the pod: the source as mounted, the destination hostPath, TLS for online. */
function podEnv(input: PopulateJobInput): PopulatorEnv {
  const { copy } = input;
  const online = copy.mode === 'online';
  return populatorEnv({
    mode: copy.mode,
    conninfo: online ? populatorConninfo(copy, input.source.namespace) : undefined,
    sourceDir: online ? `${PG_DATA_MOUNT}/pgdata` : PG_DATA_MOUNT,
    volumeDir: POD_PATHS.volume,
    label: input.volume.name,
    uid: input.uid,
    gid: input.gid,
    workDir: POD_PATHS.work,
    crashConsistent: copy.mode === 'plain' && copy.crashConsistent === true,
  });
}

/** The source PVC read-only, the destination as hostPath, scratch space; online also TLS and the WAL PVC. */
function podVolumes(input: PopulateJobInput): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const { volume, source, copy } = input;
  const volumes: V1Volume[] = [
    { name: 'source', persistentVolumeClaim: { claimName: source.pvc, readOnly: true } },
    { name: 'destination', hostPath: { path: `${input.hostPathPrefix.replace(/\/+$/, '')}/${volume.dir}`, type: 'DirectoryOrCreate' } },
    { name: 'work', emptyDir: {} },
    { name: 'tmp', emptyDir: {} },
  ];
  const mounts: V1VolumeMount[] = [
    { name: 'source', mountPath: PG_DATA_MOUNT, readOnly: true },
    { name: 'destination', mountPath: POD_PATHS.volume },
    { name: 'work', mountPath: POD_PATHS.work },
    { name: 'tmp', mountPath: POD_PATHS.tmp },
  ];
  if (copy.mode === 'online') {
    // libpq refuses a key readable by others: 0600 (with fsGroup the kubelet makes it 0640 root:gid, which libpq also accepts).
    volumes.push({
      name: 'tls',
      projected: {
        defaultMode: 0o600,
        sources: [
          { secret: { name: copy.caSecret, items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          { secret: { name: copy.replicationSecret, items: [{ key: 'tls.crt', path: 'tls.crt' }, { key: 'tls.key', path: 'tls.key' }] } },
        ],
      },
    });
    mounts.push({ name: 'tls', mountPath: POD_PATHS.tls, readOnly: true });
    if (copy.walPvc) {
      volumes.push({ name: 'wal', persistentVolumeClaim: { claimName: copy.walPvc, readOnly: true } });
      mounts.push({ name: 'wal', mountPath: PG_WAL_MOUNT, readOnly: true });
    }
  }
  return { volumes, mounts };
}

/** The root init step, in the driver's image: the destination goes to the clone's owner. */
function prepareContainer(input: PopulateJobInput): V1Container {
  return {
    name: PREPARE_CONTAINER,
    image: input.driverImage,
    command: ['sh', '-c', kubeletLiteral(PREPARE_SCRIPT)],
    env: [
      { name: 'PGR_UID', value: String(input.uid) },
      { name: 'PGR_GID', value: String(input.gid) },
      { name: 'PGR_VOLUME_DIR', value: POD_PATHS.volume },
    ],
    volumeMounts: [{ name: 'destination', mountPath: POD_PATHS.volume }],
    securityContext: rootWith(['CHOWN', 'FOWNER']),
    resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } },
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

function populateContainer(input: PopulateJobInput, mounts: V1VolumeMount[]): V1Container {
  const online = input.copy.mode === 'online';
  return {
    name: POPULATE_CONTAINER,
    image: input.copy.image,
    command: ['bash', '-c', kubeletLiteral(POPULATE_WRAPPER)],
    env: [
      ...Object.entries(podEnv(input)).map(([name, value]) => ({ name, value: kubeletLiteral(value) })),
      { name: 'HOME', value: POD_PATHS.tmp },
      // The populator reads cp's messages (vanished files, ENOSPC): they must be untranslated.
      { name: 'LC_ALL', value: 'C' },
      { name: 'PGR_POPULATOR_SCRIPT', value: kubeletLiteral(renderPopulatorScript()) },
    ],
    volumeMounts: mounts,
    // online: the postgres uid (the script refuses to write files for another uid unless root);
    // plain: root, so that `cp -a` can read everything and keep every file's owner.
    securityContext: online
      ? {
          runAsUser: input.uid,
          runAsGroup: input.gid,
          // The kubelet refuses uid 0 here, whatever reached this manifest (cnpg.ts refuses it first).
          runAsNonRoot: true,
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        }
      : rootWith(['CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID']),
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '1Gi' } },
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

/** What the Job says about itself, for people and for DeleteVolume (which checks the volume id). */
function jobAnnotations(input: PopulateJobInput): Record<string, string> {
  const { volume, source, copy } = input;
  return {
    [ANN_VOLUME_NAME]: volume.name,
    [ANN_VOLUME_ID]: volume.volumeId,
    [ANN_CAPACITY]: String(volume.capacityBytes),
    [ANN_SOURCE_VOLUME_ID]: source.volumeId,
    [ANN_SOURCE]: `${source.namespace}/${source.pvc}`,
    [ANN_MODE]: copy.mode,
    ...(copy.clusterName ? { [ANN_CLUSTER]: copy.clusterName } : {}),
    ...(input.clonePvc ? { [ANN_CLONE_PVC]: `${input.clonePvc.namespace}/${input.clonePvc.name}` } : {}),
  };
}

export function populateJob(input: PopulateJobInput): V1Job {
  const { volumes, mounts } = podVolumes(input);
  return pinnedJob({
    name: input.jobName,
    namespace: input.source.namespace,
    labels: populateJobLabels(input.volume.dir),
    annotations: jobAnnotations(input),
    node: input.source.node,
    serviceAccountName: input.serviceAccountName,
    ttlSecondsAfterFinished: input.ttlSecondsAfterFinished,
    activeDeadlineSeconds: input.activeDeadlineSeconds,
    pod: {
      terminationGracePeriodSeconds: 30,
      securityContext: {
        seccompProfile: { type: 'RuntimeDefault' },
        ...(input.copy.mode === 'online' ? { fsGroup: input.gid, fsGroupChangePolicy: 'OnRootMismatch' } : {}),
      },
      initContainers: [prepareContainer(input)],
      containers: [populateContainer(input, mounts)],
      volumes,
    },
  });
}

/** The populator Job of a plan, under the name its record gives, with the driver's settings. */
export function populateJobFor(plan: ClonePlan, jobName: string, s: KubeSettings): V1Job {
  const { clone, copy } = plan;
  const source = clone.source;
  return populateJob({
    jobName,
    volume: { name: clone.name, dir: clone.ref.dir, volumeId: clone.ref.volumeId, capacityBytes: clone.capacityBytes },
    source: { volumeId: source.ref.volumeId, namespace: source.kube.namespace, pvc: source.kube.pvc, node: plan.node },
    copy:
      copy.mode === 'online'
        ? {
            mode: 'online',
            image: copy.cluster.image,
            clusterName: copy.cluster.name,
            podIP: copy.pod.ip,
            caSecret: copy.cluster.caSecret,
            replicationSecret: copy.cluster.replicationSecret,
            // CloudNativePG names an instance's WAL PVC after its data PVC; the pod's labels are not asked.
            walPvc: copy.cluster.walStorage ? `${source.kube.pvc}-wal` : undefined,
          }
        : { mode: 'plain', image: s.driverImage, clusterName: copy.clusterName, crashConsistent: copy.why === 'crash-consistent' },
    uid: copy.mode === 'online' ? copy.cluster.uid : copy.uid,
    gid: copy.mode === 'online' ? copy.cluster.gid : copy.gid,
    clonePvc: source.kube.clonePvc,
    hostPathPrefix: s.hostPathPrefix,
    driverImage: s.driverImage,
    serviceAccountName: s.jobServiceAccount,
    ttlSecondsAfterFinished: s.populateTtlSeconds,
    activeDeadlineSeconds: s.populateDeadlineSeconds,
  });
}
