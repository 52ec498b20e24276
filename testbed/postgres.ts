import { spawn, type ChildProcess } from 'node:child_process';
import { appendFile, chown, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { run, RunError } from '../src/exec.js';
import { osUser, runAs, type OsUser } from './run-as.js';
import type { TlsFiles } from './tls.js';

export const PG_BIN = process.env.PGR_PG_BIN ?? '/usr/lib/postgresql/15/bin';
export const pgBin = (name: string) => join(PG_BIN, name);
/** The account every server of the testbed runs as. */
export const postgresUser = (): OsUser => osUser('postgres');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const childEnv = () => ({ PATH: `${PG_BIN}:/usr/bin:/bin`, LANG: 'C' });

/** A directory the postgres user owns (volume dirs, socket dirs). */
export async function ownedDir(path: string, mode = 0o755): Promise<string> {
  const pg = postgresUser();
  await mkdir(path, { recursive: true, mode });
  await chown(path, pg.uid, pg.gid);
  return path;
}

export interface StartOptions {
  dataDir: string;
  port: number;
  /** Owned by postgres; holds the unix socket. */
  socketDir: string;
  logFile: string;
  /** `''` = unix socket only. */
  listen?: string;
  /** Extra `-c name=value` settings. */
  settings?: Record<string, string>;
  timeoutMs?: number;
}

/** A running PostgreSQL server (a child process of this one, running as `postgres`). */
export class PgServer {
  private exited: Promise<void>;
  private exitInfo: string | undefined;

  private constructor(
    readonly dataDir: string,
    readonly port: number,
    readonly socketDir: string,
    readonly logFile: string,
    private readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exitInfo = signal ? `signal ${signal}` : `exit code ${code}`;
        resolve();
      }),
    );
  }

  static async start(opts: StartOptions): Promise<PgServer> {
    const pg = postgresUser();
    const log = await open(opts.logFile, 'a', 0o644);
    const settings = { port: String(opts.port), unix_socket_directories: opts.socketDir, listen_addresses: opts.listen ?? '', ...opts.settings };
    const args = ['-D', opts.dataDir, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
    const child = spawn(pgBin('postgres'), args, { uid: pg.uid, gid: pg.gid, cwd: '/', env: childEnv(), stdio: ['ignore', log.fd, log.fd] });
    await log.close();
    const server = new PgServer(opts.dataDir, opts.port, opts.socketDir, opts.logFile, child);
    await server.waitReady(opts.timeoutMs ?? 120_000);
    return server;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) throw new Error(`postgres on ${this.dataDir} exited (${this.exitInfo}): ${await this.logTail()}`);
      const probe = await run(pgBin('pg_isready'), ['-q', '-h', this.socketDir, '-p', String(this.port), '-U', 'postgres', '-d', 'postgres'], {
        okCodes: [1, 2, 3],
        timeoutMs: 10_000,
      });
      if (probe.code === 0) return;
      if (Date.now() > deadline) throw new Error(`postgres on ${this.dataDir} not ready after ${timeoutMs} ms: ${await this.logTail()}`);
      await sleep(100);
    }
  }

  async log(): Promise<string> {
    return readFile(this.logFile, 'utf8').catch(() => '');
  }

  async logTail(lines = 8): Promise<string> {
    return (await this.log()).trim().split('\n').slice(-lines).join(' | ');
  }

  /** Runs SQL as superuser over the unix socket; returns unaligned, tuples-only output. */
  async sql(query: string, db = 'postgres'): Promise<string> {
    const result = await run(pgBin('psql'), ['-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-h', this.socketDir, '-p', String(this.port),
      '-U', 'postgres', '-d', db, '-c', query], { timeoutMs: 120_000, env: childEnv() });
    return result.stdout.trim();
  }

  /** libpq connection string over the unix socket (trust auth in the testbed). */
  socketConninfo(user = 'postgres', db = 'postgres'): string {
    return `host=${this.socketDir} port=${this.port} user=${user} dbname=${db}`;
  }

  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (!this.running) return;
    await runAs(postgresUser(), pgBin('pg_ctl'), ['stop', '-D', this.dataDir, '-m', mode, '-w', '-t', '60'], { okCodes: [1] });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise((resolve) => (timer = setTimeout(resolve, 10_000)))]);
    clearTimeout(timer);
    if (this.running) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}

export interface PrimaryOptions {
  /** The volume directory; the cluster lives in `<volumeDir>/pgdata`, as in a pg-reflinker volume. */
  volumeDir: string;
  port: number;
  socketDir: string;
  logFile: string;
  tls: TlsFiles;
}

/** initdb + TLS + `streaming_replica` (REPLICATION LOGIN, cert auth on 127.0.0.1) + amcheck; started. */
export async function initPrimary(opts: PrimaryOptions): Promise<PgServer> {
  const pg = postgresUser();
  await ownedDir(opts.volumeDir);
  await ownedDir(opts.socketDir);
  const pgdata = join(opts.volumeDir, 'pgdata');
  await runAs(pg, pgBin('initdb'), ['-D', pgdata, '-U', 'postgres', '-A', 'trust', '--locale=C', '-E', 'UTF8', '-k']);
  await appendFile(pgdata + '/postgresql.conf', [
    '',
    '# pg-reflinker testbed',
    'ssl = on',
    `ssl_cert_file = '${opts.tls.serverCert}'`,
    `ssl_key_file = '${opts.tls.serverKey}'`,
    `ssl_ca_file = '${opts.tls.caCert}'`,
    'wal_level = replica',
    'max_wal_senders = 10',
    'max_replication_slots = 10',
    'hot_standby = on',
    'max_connections = 50',
    'log_checkpoints = on',
    '',
  ].join('\n'));
  await writeFile(pgdata + '/pg_hba.conf', [
    'local   all          all                             trust',
    'local   replication  all                             trust',
    'hostssl postgres     streaming_replica  127.0.0.1/32 cert',
    'hostssl replication  streaming_replica  127.0.0.1/32 cert',
    '',
  ].join('\n'));
  const server = await PgServer.start({ dataDir: pgdata, port: opts.port, socketDir: opts.socketDir, logFile: opts.logFile, listen: '127.0.0.1' });
  await server.sql('CREATE ROLE streaming_replica REPLICATION LOGIN; CREATE EXTENSION amcheck;');
  return server;
}

const BACKUP_FUNCTIONS = 'pg_backup_start(text, boolean), pg_backup_stop(boolean)';

/** What a superuser runs once on a CNPG primary so that `streaming_replica` may take backups. */
export async function grantBackup(server: PgServer, role = 'streaming_replica'): Promise<void> {
  await server.sql(`GRANT EXECUTE ON FUNCTION ${BACKUP_FUNCTIONS} TO ${role}`);
}

export async function revokeBackup(server: PgServer, role = 'streaming_replica'): Promise<void> {
  await server.sql(`REVOKE EXECUTE ON FUNCTION ${BACKUP_FUNCTIONS} FROM ${role}`);
}

/** A streaming standby of `primary` (pg_basebackup -R), in `<volumeDir>/pgdata`, listening on 127.0.0.1. */
export async function startStandby(primary: PgServer, opts: { volumeDir: string; port: number; socketDir: string; logFile: string }): Promise<PgServer> {
  await ownedDir(opts.volumeDir);
  await ownedDir(opts.socketDir);
  const pgdata = join(opts.volumeDir, 'pgdata');
  await runAs(postgresUser(), pgBin('pg_basebackup'), ['-D', pgdata, '-h', primary.socketDir, '-p', String(primary.port), '-U', 'postgres',
    '-X', 'stream', '-c', 'fast', '-R'], { timeoutMs: 300_000 });
  const standby = await PgServer.start({ dataDir: pgdata, port: opts.port, socketDir: opts.socketDir, logFile: opts.logFile, listen: '127.0.0.1' });
  for (let i = 0; (await standby.sql("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")) !== '1'; i++) {
    if (i > 300) throw new Error(`standby does not stream: ${await standby.logTail()}`);
    await sleep(100);
  }
  return standby;
}

/**
 * Starts a clone's data directory (`<volumeDir>/pgdata`) on a unix socket only, with no
 * restore_command, and checks that it finished backup recovery as a primary.
 */
export async function startClone(opts: { volumeDir: string; port: number; socketDir: string; logFile: string }): Promise<PgServer> {
  await ownedDir(opts.socketDir);
  const server = await PgServer.start({ dataDir: join(opts.volumeDir, 'pgdata'), port: opts.port, socketDir: opts.socketDir, logFile: opts.logFile });
  const recovering = await server.sql('SELECT pg_is_in_recovery()');
  if (recovering !== 'f') throw new Error(`clone is still in recovery: ${await server.logTail()}`);
  return server;
}

export async function pgbenchInit(server: PgServer, scale: number): Promise<void> {
  await runAs(postgresUser(), pgBin('pgbench'), ['-i', '-q', '-s', String(scale), '-h', server.socketDir, '-p', String(server.port), 'postgres'], {
    timeoutMs: 600_000,
  });
}

export interface PgbenchLoad {
  /** Stops the load; throws if pgbench had died on its own (the load was not there). */
  stop(): Promise<void>;
}

/** TPC-B load until stop(). */
export function startPgbench(server: PgServer, opts: { clients?: number; jobs?: number } = {}): PgbenchLoad {
  const pg = postgresUser();
  const args = ['-n', '-c', String(opts.clients ?? 4), '-j', String(opts.jobs ?? 2), '-T', '86400', '-h', server.socketDir, '-p', String(server.port), 'postgres'];
  const child = spawn(pgBin('pgbench'), args, { uid: pg.uid, gid: pg.gid, cwd: '/', env: childEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let exit: string | undefined;
  let stopping = false;
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exit = signal ? `signal ${signal}` : `exit code ${code}`;
      resolve();
    }),
  );
  return {
    async stop() {
      if (exit !== undefined && !stopping) throw new Error(`pgbench died during the test (${exit}): ${stderr.trim()}`);
      stopping = true;
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface PgbenchSums {
  accounts: string;
  tellers: string;
  branches: string;
  history: string;
  historyRows: number;
}

/** pgbench's TPC-B invariant: every transaction adds the same delta to one row of each table and to history. */
export async function checkPgbenchInvariant(server: PgServer): Promise<PgbenchSums> {
  const out = await server.sql(`SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(tbalance) FROM pgbench_tellers),
    (SELECT sum(bbalance) FROM pgbench_branches), (SELECT coalesce(sum(delta), 0) FROM pgbench_history), (SELECT count(*) FROM pgbench_history)`);
  const [accounts = '', tellers = '', branches = '', history = '', rows = ''] = out.split('|');
  const sums = { accounts, tellers, branches, history, historyRows: Number(rows) };
  if (!(accounts === tellers && tellers === branches && branches === history)) {
    throw new Error(`pgbench invariant broken: ${JSON.stringify(sums)}`);
  }
  return sums;
}

/** pg_amcheck over every database (heap and btree checks); throws with its report on corruption. */
export async function amcheck(server: PgServer): Promise<void> {
  try {
    await runAs(postgresUser(), pgBin('pg_amcheck'), ['--all', '--install-missing', '-h', server.socketDir, '-p', String(server.port), '-U', 'postgres'], {
      timeoutMs: 600_000,
    });
  } catch (err) {
    if (err instanceof RunError) throw new Error(`pg_amcheck found problems: ${(err.result.stdout + err.result.stderr).trim().slice(0, 2000)}`);
    throw err;
  }
}

/** A free TCP port on 127.0.0.1 (also names the unix socket). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
