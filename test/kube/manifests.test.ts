import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from '@jest/globals';
import { cleanupJob } from '../../src/backends/kube/deletion/cleanup-job.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { POPULATE_WRAPPER, populateJob, type PopulateJobInput } from '../../src/backends/kube/clone/populate-job.js';
import { renderPopulatorScript } from '../../src/populator/script.js';
import { expand } from '../cluster/kubelet/container-env.js';
import { failureStatus } from '../../src/populator/failure.js';
import { parsePopulatorFailure } from '../../src/populator/result.js';

// The Job manifests as data, and the populator wrapper run for real with bash.

const base: PopulateJobInput = {
  jobName: 'pgr-populate-pvc-0b7e1d2c-3f4a-4b5c-8d9e-0f1a2b3c4d5e-k3x9q2m7',
  volume: { name: 'pvc-0b7e1d2c-3f4a-4b5c-8d9e-0f1a2b3c4d5e', dir: 'pvc-0b7e1d2c-3f4a-4b5c-8d9e-0f1a2b3c4d5e', volumeId: 'node-a/pvc-0b7e1d2c-3f4a-4b5c-8d9e-0f1a2b3c4d5e', capacityBytes: 10737418240 },
  source: { volumeId: 'node-a/pvc-src', namespace: 'db', pvc: 'pg-1', node: 'node-a' },
  copy: { mode: 'online', image: 'ghcr.io/cloudnative-pg/postgresql:16.4', clusterName: 'pg', podIP: '10.0.1.12', caSecret: 'pg-ca', replicationSecret: 'pg-replication' },
  uid: 26,
  gid: 26,
  clonePvc: { namespace: 'db', name: 'clone' },
  hostPathPrefix: '/var/lib/pg-reflinker/',
  driverImage: 'registry.example/pg-reflinker:1',
  serviceAccountName: 'pg-reflinker-jobs',
  ttlSecondsAfterFinished: 3600,
  activeDeadlineSeconds: 21600,
};

/** A container's environment as kubelet gives it to the process ($(VAR) expanded, `$$` → `$`). */
const envOf = (c: { env?: Array<{ name: string; value?: string }> }) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value === undefined ? undefined : expand(e.value, {})]));

describe('populator Job manifest', () => {
  test('online: pinned, read-only source, hostPath destination, TLS secrets 0600, root init, postgres uid main', () => {
    const job = populateJob(base);
    expect(job.metadata?.name).toBe(base.jobName);
    expect(job.metadata!.name!.length).toBeLessThanOrEqual(63);
    expect(job.metadata?.namespace).toBe('db');
    expect(job.metadata?.labels).toEqual({ 'app.kubernetes.io/managed-by': 'pg-reflinker.csi', 'pg-reflinker.csi/role': 'populate', 'pg-reflinker.csi/volume': base.volume.dir });
    expect(job.metadata?.annotations).toMatchObject({
      'pg-reflinker.csi/volume-name': base.volume.name,
      'pg-reflinker.csi/volume-id': base.volume.volumeId,
      'pg-reflinker.csi/source-volume-id': 'node-a/pvc-src',
      'pg-reflinker.csi/source-pvc': 'db/pg-1',
      'pg-reflinker.csi/capacity-bytes': '10737418240',
      'pg-reflinker.csi/mode': 'online',
      'pg-reflinker.csi/cluster': 'pg',
      'pg-reflinker.csi/clone-pvc': 'db/clone',
    });
    const spec = job.spec!;
    expect(spec).toMatchObject({ backoffLimit: 0, ttlSecondsAfterFinished: 3600, activeDeadlineSeconds: 21600 });
    const pod = spec.template.spec!;
    expect(pod.nodeName).toBe('node-a');
    expect(pod.restartPolicy).toBe('Never');
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.securityContext).toMatchObject({ fsGroup: 26 });
    const volumes = Object.fromEntries(pod.volumes!.map((v) => [v.name, v]));
    expect(volumes.source?.persistentVolumeClaim).toEqual({ claimName: 'pg-1', readOnly: true });
    expect(volumes.destination?.hostPath).toEqual({ path: `/var/lib/pg-reflinker/${base.volume.dir}`, type: 'DirectoryOrCreate' });
    expect(volumes.tls?.projected?.defaultMode).toBe(0o600);
    expect(volumes.tls?.projected?.sources).toEqual([
      { secret: { name: 'pg-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
      { secret: { name: 'pg-replication', items: [{ key: 'tls.crt', path: 'tls.crt' }, { key: 'tls.key', path: 'tls.key' }] } },
    ]);
    const [init] = pod.initContainers!;
    expect(init!.securityContext).toMatchObject({ runAsUser: 0, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'], add: ['CHOWN', 'FOWNER'] } });
    // Root with CHOWN on a hostPath runs the driver's own image, never the source's.
    expect(init!.image).toBe(base.driverImage);
    expect(init!.image).not.toBe(base.copy.image);
    expect(envOf(init!)).toMatchObject({ PGR_UID: '26', PGR_GID: '26' });
    const [main] = pod.containers;
    expect(main!.image).toBe('ghcr.io/cloudnative-pg/postgresql:16.4');
    expect(main!.command!.map((arg) => expand(arg, {}))).toEqual(['bash', '-c', POPULATE_WRAPPER]);
    expect(main!.securityContext).toMatchObject({ runAsUser: 26, runAsGroup: 26, runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(main!.terminationMessagePolicy).toBe('FallbackToLogsOnError');
    expect(main!.resources?.requests).toBeDefined();
    const mounts = Object.fromEntries(main!.volumeMounts!.map((m) => [m.name, m]));
    expect(mounts.source).toEqual({ name: 'source', mountPath: '/var/lib/postgresql/data', readOnly: true });
    expect(mounts.tls?.readOnly).toBe(true);
    const env = envOf(main!);
    expect(env).toMatchObject({ PGR_MODE: 'online', PGR_SOURCE_PGDATA: '/var/lib/postgresql/data/pgdata', PGR_VOLUME_DIR: '/pg-reflinker/volume', PGR_LABEL: base.volume.name, PGR_UID: '26' });
    expect(env.PGR_CONNINFO).toBe(
      "host='pg-rw.db.svc' hostaddr='10.0.1.12' port='5432' dbname='postgres' user='streaming_replica' sslmode='verify-full' sslrootcert='/pg-reflinker/tls/ca.crt' sslcert='/pg-reflinker/tls/tls.crt' sslkey='/pg-reflinker/tls/tls.key' " +
        "keepalives='1' keepalives_idle='10' keepalives_interval='5' keepalives_count='3' tcp_user_timeout='30000'",
    );
    expect(env.PGR_POPULATOR_SCRIPT).toContain('pg-reflinker populator');
  });

  test("kubelet's $(VAR) expansion hands the containers the exact scripts (every $ doubled in the manifest)", () => {
    // A real kubelet turns `$$` into `$` in command, args and env values: the populator's `$$`
    // (its pid in the slot name) and SQL `DO $$ ... $$` blocks would reach bash mangled.
    const script = renderPopulatorScript();
    expect(script).toContain('$$');
    for (const copy of [base.copy, { mode: 'plain' as const, image: 'x' }]) {
      const pod = populateJob({ ...base, copy }).spec!.template.spec!;
      const [prepare] = pod.initContainers!;
      const [main] = pod.containers;
      expect(envOf(main!).PGR_POPULATOR_SCRIPT).toBe(script);
      expect(main!.command!.map((arg) => expand(arg, {}))).toEqual(['bash', '-c', POPULATE_WRAPPER]);
      expect(expand(prepare!.command![2]!, {})).toMatch(/^set -eu; chown "\$PGR_UID:\$PGR_GID"/);
    }
  });

  test('online with walStorage mounts the instance WAL PVC read-only', () => {
    const job = populateJob({ ...base, copy: { ...base.copy, walPvc: 'pg-1-wal' } as PopulateJobInput['copy'] });
    const pod = job.spec!.template.spec!;
    expect(pod.volumes!.find((v) => v.name === 'wal')?.persistentVolumeClaim).toEqual({ claimName: 'pg-1-wal', readOnly: true });
    expect(pod.containers[0]!.volumeMounts!.find((m) => m.name === 'wal')).toEqual({ name: 'wal', mountPath: '/var/lib/postgresql/wal', readOnly: true });
  });

  test('plain: driver image, root with file capabilities, no secrets, whole volume copied', () => {
    const job = populateJob({ ...base, copy: { mode: 'plain', image: 'registry.example/pg-reflinker:1' } });
    const pod = job.spec!.template.spec!;
    expect(pod.volumes!.map((v) => v.name)).not.toContain('tls');
    expect(pod.securityContext?.fsGroup).toBeUndefined();
    const main = pod.containers[0]!;
    expect(main.image).toBe('registry.example/pg-reflinker:1');
    expect(main.securityContext).toMatchObject({ runAsUser: 0, capabilities: { drop: ['ALL'], add: expect.arrayContaining(['DAC_READ_SEARCH', 'CHOWN']) } });
    expect(envOf(main)).toMatchObject({ PGR_MODE: 'plain', PGR_SOURCE_DIR: '/var/lib/postgresql/data' });
    expect(envOf(main).PGR_CONNINFO).toBeUndefined();
    expect(job.metadata?.annotations?.['pg-reflinker.csi/mode']).toBe('plain');
  });

  test('labels stay valid for any directory', () => {
    const job = populateJob({ ...base, volume: { ...base.volume, dir: 'Some_Dir.' } });
    expect(job.metadata?.labels?.['pg-reflinker.csi/volume']).toMatch(/^h-[0-9a-f]{32}$/);
  });
});

describe('cleanup Job manifest', () => {
  test('driver image, pg-reflinker cleanup, prefix at the same path, root, pinned, in the driver namespace', () => {
    const job = cleanupJob({
      volumeId: 'node-b/pvc-x',
      node: 'node-b',
      dir: 'pvc-x',
      namespace: 'pg-reflinker',
      image: 'registry.example/pg-reflinker:1',
      hostPathPrefix: '/var/lib/pg-reflinker',
      serviceAccountName: 'jobs',
      ttlSecondsAfterFinished: 3600,
      activeDeadlineSeconds: 600,
    });
    expect(job.metadata).toMatchObject({ name: 'pgr-cleanup-pvc-x', namespace: 'pg-reflinker', annotations: { 'pg-reflinker.csi/volume-id': 'node-b/pvc-x' } });
    expect(job.spec).toMatchObject({ backoffLimit: 0, ttlSecondsAfterFinished: 3600, activeDeadlineSeconds: 600 });
    const pod = job.spec!.template.spec!;
    expect(pod.nodeName).toBe('node-b');
    // The host's mount table shows kubelet's bind mounts of the volume: the cleanup refuses while one exists.
    expect(pod.hostPID).toBe(true);
    expect(pod.volumes).toEqual([{ name: 'prefix', hostPath: { path: '/var/lib/pg-reflinker', type: 'Directory' } }]);
    const c = pod.containers[0]!;
    expect(c.command).toBeUndefined();
    expect(c.args).toEqual(['cleanup', '--root', '/var/lib/pg-reflinker', '--volume-id', 'node-b/pvc-x']);
    expect(c.volumeMounts).toEqual([{ name: 'prefix', mountPath: '/var/lib/pg-reflinker' }]);
    expect(c.securityContext).toMatchObject({ runAsUser: 0, allowPrivilegeEscalation: false });
  });
});

describe('deadlines and kubelet expansion in every Job', () => {
  const cleanup = (hostPathPrefix: string) =>
    cleanupJob({ volumeId: 'node-b/pvc-x', node: 'node-b', dir: 'pvc-x', namespace: 'pg-reflinker', image: 'i', hostPathPrefix, serviceAccountName: 'jobs', ttlSecondsAfterFinished: 3600, activeDeadlineSeconds: 600 });

  test('the pod has the deadline too: a pod orphaned from its Job (delete --cascade=orphan) still ends', () => {
    expect(populateJob(base).spec!.template.spec!.activeDeadlineSeconds).toBe(21600);
    expect(cleanup('/var/lib/pg-reflinker').spec!.template.spec!.activeDeadlineSeconds).toBe(600);
  });

  test("the cleanup's args reach the program unchanged by kubelet's $(VAR) and $$ expansion", () => {
    const prefix = '/srv/a$$b/$(HOME)/c$';
    const c = cleanup(prefix).spec!.template.spec!.containers[0]!;
    expect(c.args!.map((arg) => expand(arg, { HOME: '/root' }))).toEqual(['cleanup', '--root', prefix, '--volume-id', 'node-b/pvc-x']);
    // Mount paths and hostPath are not expanded by kubelet: they stay as written.
    expect(c.volumeMounts).toEqual([{ name: 'prefix', mountPath: prefix }]);
  });
});

describe('populator wrapper (bash)', () => {
  const run = (script: string, extraEnv: Record<string, string> = {}) => {
    const dir = mkdtempSync(join(tmpdir(), 'pgr-wrap-'));
    const term = join(dir, 'termination-log');
    const r = spawnSync('bash', ['-c', POPULATE_WRAPPER], {
      env: { PATH: process.env.PATH, TMPDIR: dir, PGR_TERMINATION_LOG: term, PGR_POPULATOR_SCRIPT: script, ...extraEnv },
      encoding: 'utf8',
    });
    const message = (() => {
      try {
        return readFileSync(term, 'utf8');
      } catch {
        return undefined;
      }
    })();
    rmSync(dir, { recursive: true, force: true });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, message };
  };

  test("as the container's first process, SIGTERM reaches the populator: it reports the interruption", () => {
    // PID 1 of a new PID namespace, as in a container: signals without a handler are not delivered to it.
    const dir = mkdtempSync(join(tmpdir(), 'pgr-wrap-'));
    const term = join(dir, 'termination-log');
    // The signal is sent once the populator has set its trap (the ready file), so the test does not
    // depend on how fast bash starts on a loaded machine.
    const script = "trap 'echo \"pg-reflinker populate: interrupted by SIGTERM\" >&2; exit 1' TERM; : >\"$TMPDIR/ready\"; sleep 30 & wait";
    const started = Date.now();
    const killer = 'until [ -e "$TMPDIR/ready" ]; do sleep 0.05; done; kill -TERM 1';
    const r = spawnSync('unshare', ['--pid', '--fork', '--kill-child', 'bash', '-c', `(${killer}) & exec bash -c "$PGR_WRAPPER"`], {
      env: { PATH: process.env.PATH, TMPDIR: dir, PGR_TERMINATION_LOG: term, PGR_POPULATOR_SCRIPT: script, PGR_WRAPPER: POPULATE_WRAPPER },
      encoding: 'utf8',
      timeout: 20_000,
    });
    const message = readFileSync(term, 'utf8');
    rmSync(dir, { recursive: true, force: true });
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(r.status).toBe(1);
    expect(message).toBe('pg-reflinker populate: interrupted by SIGTERM\n');
  });

  test("a populator that ends with status 0 as the kubelet's SIGTERM arrives: the wrapper reports 0 and its result, not 143", () => {
    // The signal interrupts the wrapper's wait; when bash reaps the child meanwhile, a later
    // `wait` does not always give its status back (bash 5.2). Which comes first is a race, so
    // the case is run 20 times: a wrapper that loses the status fails some of them (~40% each here).
    const dir = mkdtempSync(join(tmpdir(), 'pgr-wrap-'));
    const term = join(dir, 'termination-log');
    const script = "trap 'exit 0' TERM; echo '{\"mode\":\"plain\"}'; kill -TERM 1; exit 0";
    const outcomes = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const r = spawnSync('unshare', ['--pid', '--fork', '--kill-child', 'bash', '-c', 'exec bash -c "$PGR_WRAPPER"'], {
        env: { PATH: process.env.PATH, TMPDIR: dir, PGR_TERMINATION_LOG: term, PGR_POPULATOR_SCRIPT: script, PGR_WRAPPER: POPULATE_WRAPPER },
        encoding: 'utf8',
        timeout: 20_000,
      });
      outcomes.add(`${r.status} ${readFileSync(term, 'utf8').trim()}`);
    }
    rmSync(dir, { recursive: true, force: true });
    expect([...outcomes]).toEqual(['0 {"mode":"plain"}']);
  });

  test('success: the JSON line becomes the termination message', () => {
    const r = run('echo progress >&2; echo \'{"mode":"plain","x":1}\'');
    expect(r.status).toBe(0);
    expect(r.message).toBe('{"mode":"plain","x":1}\n');
    expect(r.stderr).toContain('progress');
    expect(r.stdout).toContain('{"mode":"plain"');
  });

  test('failure: the populate line becomes the termination message, the exit status is kept', () => {
    const r = run("echo noise >&2; echo 'pg-reflinker populate: permission denied: GRANT EXECUTE ...' >&2; exit 1");
    expect(r.status).toBe(1);
    expect(r.message).toBe('pg-reflinker populate: permission denied: GRANT EXECUTE ...\n');
  });

  test('failure without a populate line: the last stderr, prefixed', () => {
    const r = run('echo "bash: psql: command not found" >&2; exit 127');
    expect(r.status).toBe(127);
    expect(r.message).toMatch(/^pg-reflinker populate: the populator exited with status 127: bash: psql: command not found/);
  });

  test('the real populator script, as the Job runs it: its verdict reaches the termination message', () => {
    // The manifest's environment, with the pod paths moved into a temp dir. /tmp here is not a
    // reflink filesystem (ext4), so the script must refuse before copying anything (or succeed
    // where reflinks work): either way the controller gets one parsable line.
    const job = populateJob({ ...base, copy: { mode: 'plain', image: 'x' } });
    const env = envOf(job.spec!.template.spec!.containers[0]!) as Record<string, string>;
    const root = mkdtempSync(join(tmpdir(), 'pgr-real-'));
    mkdirSync(join(root, 'source/pgdata'), { recursive: true });
    writeFileSync(join(root, 'source/pgdata/PG_VERSION'), '16\n');
    mkdirSync(join(root, 'volume'));
    mkdirSync(join(root, 'work'));
    const r = run(env.PGR_POPULATOR_SCRIPT!, {
      ...env,
      PGR_SOURCE_DIR: join(root, 'source'),
      PGR_VOLUME_DIR: join(root, 'volume'),
      PGR_WORK_DIR: join(root, 'work'),
      PGR_UID: String(process.getuid!()),
      PGR_GID: String(process.getgid!()),
    });
    rmSync(root, { recursive: true, force: true });
    if (r.status === 0) {
      expect(JSON.parse(r.message!)).toMatchObject({ mode: 'plain', label: base.volume.name });
    } else {
      expect(r.message).toMatch(/^pg-reflinker populate: reflink copy not possible/);
      expect(failureStatus(parsePopulatorFailure(r.message!))).toBe('FAILED_PRECONDITION');
    }
  });
});
