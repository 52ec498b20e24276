import type { V1Container, V1Job, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { tlsConninfo } from '../../controller/populator/conninfo.js';
import { populatorEnv, renderPopulatorScript } from '../../controller/populator/script.js';
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
} from './constants.js';
import { volumeKey } from './names.js';
import { pinnedJob } from './pinned-job.js';

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
  clonePvc?: { namespace: string; name: string };
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
bash -c "$PGR_POPULATOR_SCRIPT" >"$out" 2>"$err" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
wait "$child"
rc=$?
while kill -0 "$child" 2>/dev/null; do
  wait "$child"
  rc=$?
done
cat "$err" >&2
cat "$out"
if [ "$rc" -eq 0 ]; then
  grep '^{' "$out" | tail -n 1 >"$term"
else
  for log in "${'$'}{PGR_WORK_DIR:-/nonexistent}"/pgr-populate.*/log; do
    if [ -f "$log" ]; then echo "---- populator log ($log) ----" >&2; tail -n 200 "$log" >&2; fi
  done
  line=$(grep '^pg-reflinker populate: ' "$err" | tail -n 1)
  if [ -z "$line" ]; then
    line="pg-reflinker populate: the populator exited with status $rc: $(tail -c 1500 "$err" | tr '\n' ' ')"
  fi
  printf '%s\n' "$line" | cut -c1-3800 >"$term"
fi
exit "$rc"
`;

/**
 * `text` as kubelet passes it on: kubelet expands `$(VAR)` in a container's command, args and
 * env values and turns `$$` into `$`, so a script carried there must have every `$` doubled to
 * reach the shell unchanged (the populator's `$$` and SQL `DO $$ ... $$` would break otherwise).
 */
export const kubeletLiteral = (text: string): string => text.replace(/\$/g, '$$$$');

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

export function populateJob(input: PopulateJobInput): V1Job {
  const { volume, source, copy } = input;
  const online = copy.mode === 'online';
  const labels = populateJobLabels(volume.dir);
  const env = populatorEnv({
    mode: copy.mode,
    conninfo: online ? populatorConninfo(copy, source.namespace) : undefined,
    sourceDir: online ? `${PG_DATA_MOUNT}/pgdata` : PG_DATA_MOUNT,
    volumeDir: POD_PATHS.volume,
    label: volume.name,
    uid: input.uid,
    gid: input.gid,
    workDir: POD_PATHS.work,
    crashConsistent: copy.mode === 'plain' && copy.crashConsistent === true,
  });

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
  if (online) {
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

  const prepare: V1Container = {
    name: PREPARE_CONTAINER,
    image: input.driverImage,
    command: ['sh', '-c', kubeletLiteral(PREPARE_SCRIPT)],
    env: [
      { name: 'PGR_UID', value: String(input.uid) },
      { name: 'PGR_GID', value: String(input.gid) },
      { name: 'PGR_VOLUME_DIR', value: POD_PATHS.volume },
    ],
    volumeMounts: [{ name: 'destination', mountPath: POD_PATHS.volume }],
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'], add: ['CHOWN', 'FOWNER'] },
    },
    resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } },
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };

  const populate: V1Container = {
    name: POPULATE_CONTAINER,
    image: copy.image,
    command: ['bash', '-c', kubeletLiteral(POPULATE_WRAPPER)],
    env: [
      ...Object.entries(env).map(([name, value]) => ({ name, value: kubeletLiteral(value) })),
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
      : {
          runAsUser: 0,
          runAsGroup: 0,
          runAsNonRoot: false,
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'], add: ['CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID'] },
        },
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '1Gi' } },
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };

  return pinnedJob({
    name: input.jobName,
    namespace: source.namespace,
    labels,
    annotations: {
      [ANN_VOLUME_NAME]: volume.name,
      [ANN_VOLUME_ID]: volume.volumeId,
      [ANN_CAPACITY]: String(volume.capacityBytes),
      [ANN_SOURCE_VOLUME_ID]: source.volumeId,
      [ANN_SOURCE]: `${source.namespace}/${source.pvc}`,
      [ANN_MODE]: copy.mode,
      ...(copy.clusterName ? { [ANN_CLUSTER]: copy.clusterName } : {}),
      ...(input.clonePvc ? { [ANN_CLONE_PVC]: `${input.clonePvc.namespace}/${input.clonePvc.name}` } : {}),
    },
    node: source.node,
    serviceAccountName: input.serviceAccountName,
    ttlSecondsAfterFinished: input.ttlSecondsAfterFinished,
    activeDeadlineSeconds: input.activeDeadlineSeconds,
    pod: {
      terminationGracePeriodSeconds: 30,
      securityContext: {
        seccompProfile: { type: 'RuntimeDefault' },
        ...(online ? { fsGroup: input.gid, fsGroupChangePolicy: 'OnRootMismatch' } : {}),
      },
      initContainers: [prepare],
      containers: [populate],
      volumes,
    },
  });
}
