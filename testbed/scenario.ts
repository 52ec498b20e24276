/**
 * The demo's and the benchmark's shared setup: a reflink XFS loop filesystem, the standalone
 * driver on it, a source PostgreSQL 15 in a CSI-published volume filled by `pgbench -i`, a
 * logged pgbench load, clones through the CSI API, their verification, and a teardown that
 * always runs (see Cleanup).
 */
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { RunError } from '../src/exec.js';
import { grpc, type CsiClient } from '../test/support/csi-client.js';
import type { DriverProcess } from '../test/support/driver-process.js';
import { startStandaloneOnLoopFs } from '../test/support/standalone.js';
import { checkPgbenchInvariant, freePort, grantBackup, initPrimary, pgBin, postgresUser, startClone, type PgbenchSums, type PgServer } from './postgres.js';
import { runAs } from './run-as.js';
import type { Cleanup } from './scenario-cleanup.js';
import { PgbenchLoad } from './scenario-load.js';
import { createTls } from './tls.js';
import type { LoopFs } from './xfs.js';

export const NODE = 'scenario-node';
const KEY = 'pg-reflinker.csi/';
const mountCap = { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };

export interface CsiVolume {
  volume_id: string;
  volume_context: Record<string, string>;
}

export interface Published {
  volume: CsiVolume;
  target: string;
}

export interface ScenarioOptions {
  scale: number;
  fsSizeMb: number;
  cleanup: Cleanup;
  say: (line: string) => void;
  /** StorageClass parameters of the source volume (e.g. the chart's `cowExtentSize: 8k`); none by default. */
  sourceParameters?: Record<string, string>;
}

export interface Scenario {
  fs: LoopFs;
  /** The driver's --root (HOSTPATH_PREFIX) on the reflink filesystem. */
  root: string;
  driver: DriverProcess;
  client: CsiClient;
  source: Published;
  /** The source's PGDATA on the reflink filesystem (the volume directory's pgdata). */
  pgdata: string;
  primary: PgServer;
  init: { seconds: number; report: string };
  cleanup: Cleanup;
  say: (line: string) => void;
  seq: number;
}

/** Filesystem, driver, source volume, PostgreSQL with TLS and the backup GRANT, pgbench -i, CHECKPOINT. */
export async function setupScenario(opts: ScenarioOptions): Promise<Scenario> {
  const { cleanup, say } = opts;
  say(`XFS (reflink=1) loop filesystem, ${Math.round(opts.fsSizeMb / 1024)} GiB sparse image`);
  const { fs, root, socket, driver, client, stop } = await startStandaloneOnLoopFs({ sizeMb: opts.fsSizeMb, node: NODE });
  cleanup.add('stop the driver, unmount and remove the loop filesystem', stop);
  say(`driver: pg-reflinker standalone on ${socket} (pid ${driver.child.pid})`);

  const s: Scenario = { fs, root, driver, client, source: undefined!, pgdata: '', primary: undefined!, init: { seconds: 0, report: '' }, cleanup, say, seq: 0 };
  s.source = await publish(s, await createVolume(s, { name: 'source', volume_capabilities: [mountCap], parameters: opts.sourceParameters ?? {} }));
  s.pgdata = join(root, 'source', 'pgdata');
  const tls = await createTls(join(fs.base, 'tls'), { serverKeyOwner: postgresUser() });
  s.primary = await initPrimary({ volumeDir: s.source.target, port: await freePort(), socketDir: join(fs.base, 'sock-source'), logFile: join(fs.base, 'source.log'), tls });
  cleanup.add('stop the source PostgreSQL', () => s.primary.stop());
  await grantBackup(s.primary);
  say(`source: PostgreSQL 15 in CSI volume ${s.source.volume.volume_id}, published at ${s.source.target}`);

  say(`pgbench -i -s ${opts.scale} ...`);
  const t0 = performance.now();
  const r = await runAs(postgresUser(), pgBin('pgbench'), ['-i', '-q', '-I', 'dtgvp', '-s', String(opts.scale), '-h', s.primary.socketDir, '-p', String(s.primary.port), 'postgres'], {
    timeoutMs: 3_600_000,
  });
  await s.primary.sql('CHECKPOINT');
  s.init = { seconds: (performance.now() - t0) / 1000, report: /done in .*/.exec(r.stderr)?.[0] ?? '' };
  say(`pgbench -i -s ${opts.scale}: ${s.init.seconds.toFixed(1)} s incl. CHECKPOINT (${s.init.report})`);
  return s;
}

/** The logged TPC-B load on the source (-c 4 -j 2), logs outside the measured filesystem. */
export async function startLoad(s: Scenario): Promise<PgbenchLoad> {
  const load = await PgbenchLoad.start(s.primary, { logDir: join(s.fs.base, 'pgbench-log') });
  s.cleanup.add('stop pgbench', () => load.stop().catch(() => undefined));
  return load;
}

/** CreateVolume, retried while the driver answers ABORTED (population running), as the sidecar does. */
export async function createVolume(s: Scenario, request: object): Promise<CsiVolume & { calls: number }> {
  for (let calls = 1; ; calls++) {
    try {
      return { ...(await s.client.controller('CreateVolume', request)).volume, calls };
    } catch (err) {
      if ((err as grpc.ServiceError).code !== grpc.status.ABORTED || calls > 3000) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export async function publish(s: Scenario, volume: CsiVolume): Promise<Published> {
  const target = join(s.fs.base, 'pods', `pod-${++s.seq}`, 'mount');
  await mkdir(join(target, '..'), { recursive: true });
  await s.client.node('NodePublishVolume', { volume_id: volume.volume_id, target_path: target, volume_capability: mountCap, volume_context: volume.volume_context });
  return { volume, target };
}

export async function unpublish(s: Scenario, p: Published): Promise<void> {
  await s.client.node('NodeUnpublishVolume', { volume_id: p.volume.volume_id, target_path: p.target });
}

export async function deleteVolume(s: Scenario, volume: CsiVolume): Promise<void> {
  await s.client.controller('DeleteVolume', { volume_id: volume.volume_id });
}

/** What the clone's volume_context says about the population (seconds are the populator's own). */
export interface CloneReport {
  seconds: number;
  checkpointSeconds: number;
  copySeconds: number;
  walSeconds: number;
  files: number;
  bytes: number;
  startLsn: string;
  stopLsn: string;
  backupFrom: string;
  mode: string;
}

export interface Clone {
  volume: CsiVolume;
  /** First CreateVolume call → the call that returned the ready volume. */
  endToEndSeconds: number;
  /** Epoch ms of the first call and of the ready answer (for the load windows). */
  t0: number;
  t1: number;
  calls: number;
  report: CloneReport;
  /** Drops the clone's teardown step (after dropClone). */
  untrack: () => void;
}

function cloneReport(context: Record<string, string>): CloneReport {
  const num = (k: string) => Number(context[KEY + k] ?? NaN);
  const str = (k: string) => context[KEY + k] ?? '';
  return {
    seconds: num('seconds'),
    checkpointSeconds: num('checkpointSeconds'),
    copySeconds: num('copySeconds'),
    walSeconds: num('walSeconds'),
    files: num('files'),
    bytes: num('bytes'),
    startLsn: str('startLsn'),
    stopLsn: str('stopLsn'),
    backupFrom: str('backupFrom'),
    mode: str('mode'),
  };
}

/** A clone of the source through CSI (CreateVolume with volume_content_source), timed end to end. */
export async function cloneViaCsi(s: Scenario, name = `clone-${++s.seq}`, parameters: Record<string, string> = {}): Promise<Clone> {
  const request = {
    name,
    volume_capabilities: [mountCap],
    capacity_range: { required_bytes: 1024 ** 3 },
    parameters: { 'standalone.user': 'streaming_replica', ...parameters },
    volume_content_source: { volume: { volume_id: s.source.volume.volume_id } },
  };
  // Registered before the call: an interrupted population is cancelled by DeleteVolume.
  const forget = s.cleanup.add(`delete clone ${name}`, () => deleteVolume(s, { volume_id: `${NODE}/${name}`, volume_context: {} }));
  const t0 = Date.now();
  const p0 = performance.now();
  const { calls, ...volume } = await createVolume(s, request).catch((err: Error) => {
    forget();
    throw err;
  });
  const endToEndSeconds = (performance.now() - p0) / 1000;
  const t1 = Date.now();
  return { volume, endToEndSeconds, t0, t1, calls, report: cloneReport(volume.volume_context), untrack: forget };
}

export interface Verification {
  sums: PgbenchSums;
  startSeconds: number;
  amcheckSeconds: number;
  amcheck: string;
}

/**
 * Publishes the clone, starts PostgreSQL on it (unix socket only, no restore_command: it must
 * recover from its own pg_wal), checks the pgbench invariant and runs pg_amcheck, stops it and
 * unpublishes. Throws on any failure.
 */
export async function verifyClone(s: Scenario, volume: CsiVolume, opts: { heapallindexed?: boolean } = {}): Promise<Verification> {
  const published = await publish(s, volume);
  const forgetUnpublish = s.cleanup.add(`unpublish ${volume.volume_id}`, () => unpublish(s, published));
  const n = ++s.seq;
  let t = performance.now();
  const server = await startClone({ volumeDir: published.target, port: await freePort(), socketDir: join(s.fs.base, `sock-clone-${n}`), logFile: join(s.fs.base, `clone-${n}.log`) });
  const forgetStop = s.cleanup.add(`stop clone server ${n}`, () => server.stop());
  try {
    const startSeconds = (performance.now() - t) / 1000;
    const sums = await checkPgbenchInvariant(server);
    const amcheck = ['--all', '--install-missing', ...(opts.heapallindexed ? ['--heapallindexed'] : [])];
    t = performance.now();
    await pgAmcheck(server, amcheck);
    return { sums, startSeconds, amcheckSeconds: (performance.now() - t) / 1000, amcheck: `pg_amcheck ${amcheck.join(' ')}` };
  } finally {
    await server.stop();
    forgetStop();
    await unpublish(s, published);
    forgetUnpublish();
  }
}

async function pgAmcheck(server: PgServer, args: string[]): Promise<void> {
  try {
    await runAs(postgresUser(), pgBin('pg_amcheck'), [...args, '-h', server.socketDir, '-p', String(server.port), '-U', 'postgres'], { timeoutMs: 1_800_000 });
  } catch (err) {
    if (err instanceof RunError) throw new Error(`pg_amcheck found problems: ${(err.result.stdout + err.result.stderr).trim().slice(0, 2000)}`);
    throw err;
  }
}

/** Deletes a clone through CSI and forgets its cleanup step. */
export async function dropClone(s: Scenario, clone: Clone): Promise<void> {
  await deleteVolume(s, clone.volume);
  clone.untrack();
}

/** Regular files and their logical bytes under a directory (a live PGDATA may lose files meanwhile). */
export async function treeSize(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  const dirs = [dir];
  for (let i = 0; i < dirs.length; i++) {
    for (const e of await readdir(dirs[i]!, { withFileTypes: true }).catch(() => [])) {
      const path = join(dirs[i]!, e.name);
      if (e.isDirectory()) dirs.push(path);
      else if (e.isFile()) {
        const st = await stat(path).catch(() => undefined);
        if (st) {
          files++;
          bytes += st.size;
        }
      }
    }
  }
  return { files, bytes };
}

/** The database's own size as PostgreSQL reports it (bytes). */
export async function databaseBytes(s: Scenario): Promise<number> {
  return Number(await s.primary.sql("SELECT pg_database_size('postgres')"));
}
