import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../src/exec.js';
import { failureStatus } from '../../src/populator/failure.js';
import { tlsConninfo } from '../../src/populator/conninfo.js';
import type { PopulatorOptions } from '../../src/populator/env.js';
import { freePort, grantBackup, initPrimary, ownedDir, pgBin, postgresUser, startClone, startStandby, type PgServer } from '../../testbed/postgres.js';
import { runPopulator, startHeldPopulator, type PopulatorRun, type RunPopulatorOptions } from '../../testbed/populator.js';
import { createTls, type TlsFiles } from '../../testbed/tls.js';
import { linksUnder, treeDigest } from '../../testbed/tree.js';
import { createLoopFs, type LoopFs } from '../../testbed/xfs.js';
import { OPENSSL, POSTGRES, ROOT, XFS, describeWithRealParts } from '../support/requirements.js';

// What a source volume or its server says is hostile: each test here is one way a source could
// lead the populator to touch, or make a clone depend on, something that is not the source's own.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** One statement per psql call: CREATE TABLESPACE and VACUUM cannot run inside a transaction block. */
async function sqlEach(server: PgServer, ...statements: string[]): Promise<void> {
  for (const statement of statements) await server.sql(statement);
}

describeWithRealParts('populator safety: a clone never touches its source, and nothing the source says reaches a shell', [ROOT, XFS, POSTGRES, OPENSSL], () => {
  let fs: LoopFs;
  let tls: TlsFiles;
  let primary: PgServer;
  let hooks: string;
  const servers: PgServer[] = [];
  const extraFs: LoopFs[] = [];
  const pg = postgresUser();
  const vol = (name: string) => join(fs.mountPoint, 'vols', name);
  const outside = (name: string) => join(fs.mountPoint, 'outside', name);
  const sockets = (name: string) => join(fs.base, 'run', name);
  const logFile = (name: string) => join(fs.base, 'logs', `${name}.log`);
  // As root, as a Kubernetes plain copy runs (TLS client key readable): nothing shields what it writes.
  const populate = (opts: PopulatorOptions, runOpts: RunPopulatorOptions = {}) => runPopulator(opts, { scriptDir: join(fs.base, 'bin'), ...runOpts });
  const online = (name: string, source = primary): PopulatorOptions => ({
    mode: 'online',
    conninfo: tlsConninfo({ host: '127.0.0.1', port: source.port, sslrootcert: tls.caCert, sslcert: tls.clientCert, sslkey: tls.clientKey }),
    sourceDir: source.dataDir,
    volumeDir: vol(name),
    label: name,
    uid: pg.uid,
    gid: pg.gid,
  });
  const plain = (name: string, sourceDir: string, extra: Partial<PopulatorOptions> = {}): PopulatorOptions => ({
    mode: 'plain',
    sourceDir,
    volumeDir: vol(name),
    label: name,
    uid: pg.uid,
    gid: pg.gid,
    ...extra,
  });
  const describeRun = (r: PopulatorRun) => `code ${r.code}: ${r.stderr.trim()}`;
  const expectRefused = async (r: PopulatorRun, volumeDir: string, reason: RegExp) => {
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.reason).toMatch(reason);
    expect(await readdir(volumeDir)).toEqual([]);
  };
  const pgrSlots = () => primary.sql(String.raw`SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'pgr\_%'`);
  /** A test hook on PATH: `name` runs `body` (bash) and then the real program. */
  async function hook(dirName: string, program: string, body: string[]): Promise<string> {
    // Owned by the populator's user, so that a hook can leave marks beside itself.
    const dir = await ownedDir(join(hooks, dirName));
    await writeFile(join(dir, program), ['#!/bin/bash', ...body, ''].join('\n'), { mode: 0o755 });
    return dir;
  }

  beforeAll(async () => {
    fs = await createLoopFs({ kind: 'xfs', sizeMb: 1024 });
    for (const dir of [join(fs.mountPoint, 'vols'), join(fs.mountPoint, 'outside'), join(fs.base, 'run'), join(fs.base, 'logs'), join(fs.base, 'hooks')]) {
      await mkdir(dir, { mode: 0o755 });
    }
    hooks = join(fs.base, 'hooks');
    tls = await createTls(join(fs.base, 'tls'), { serverKeyOwner: pg });
    primary = await initPrimary({ volumeDir: vol('source'), port: await freePort(), socketDir: sockets('source'), logFile: logFile('source'), tls });
    servers.push(primary);
    await grantBackup(primary);
    await primary.sql('CREATE TABLE base_rows AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1000) g');
  }, 180_000);

  afterAll(async () => {
    for (const server of servers.reverse()) await server.stop().catch((err) => console.error(err));
    for (const f of [...extraFs, fs]) await f?.teardown().catch((err) => console.error(err));
  }, 120_000);

  test('a tablespace outside the source volume: refused before any backup starts, naming it; nothing left behind', async () => {
    await ownedDir(outside('ts_far'), 0o700);
    await sqlEach(primary, `CREATE TABLESPACE ts_far LOCATION '${outside('ts_far')}'`, 'CREATE TABLE far_rows (id int) TABLESPACE ts_far', 'INSERT INTO far_rows SELECT generate_series(1, 100)');
    const before = await treeDigest(outside('ts_far'));
    try {
      await ownedDir(vol('ts-far'));
      const r = await populate(online('ts-far'));
      await expectRefused(r, vol('ts-far'), /refusing to clone: the source has tablespaces a clone cannot copy \(tablespace "ts_far" \(oid \d+\) at .*ts_far: outside the source volume\)/);
      expect(failureStatus(r.reason!)).toBe('FAILED_PRECONDITION');
      // Refused before pg_backup_start: no backup ever ran (pg_stat_archiver is off; the slot count tells).
      expect(await pgrSlots()).toBe('0');
      expect(await primary.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg-reflinker-populator'")).toBe('0');
      expect(await treeDigest(outside('ts_far'))).toEqual(before);
    } finally {
      await sqlEach(primary, 'DROP TABLE far_rows', 'DROP TABLESPACE ts_far');
    }
  }, 60_000);

  test('a tablespace inside the source volume: copied into the clone, linked relatively; writes in the clone change no byte of the source', async () => {
    await ownedDir(join(vol('source'), 'tblspc'), 0o700);
    await ownedDir(join(vol('source'), 'tblspc', 'ts_near'), 0o700);
    // Frozen and checkpointed, autovacuum off: nothing on the source rewrites these files by itself.
    await sqlEach(
      primary,
      `CREATE TABLESPACE ts_near LOCATION '${join(vol('source'), 'tblspc', 'ts_near')}'`,
      'CREATE TABLE near_rows (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = off) TABLESPACE ts_near',
      "INSERT INTO near_rows SELECT g, 'source' FROM generate_series(1, 5000) g",
      'VACUUM (FREEZE) near_rows',
      'CHECKPOINT',
    );
    try {
      await ownedDir(vol('ts-near'));
      const r = await populate(online('ts-near'));
      if (!r.result) throw new Error(`populator failed: ${describeRun(r)}`);
      const oid = await primary.sql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts_near'");
      const link = join(vol('ts-near'), 'pgdata', 'pg_tblspc', oid);
      expect(await readlink(link)).toBe('../../tblspc/ts_near');
      expect(existsSync(join(vol('ts-near'), 'pgdata', 'tablespace_map'))).toBe(false);
      for (const [path, target] of await linksUnder(vol('ts-near'))) expect([path, target]).toEqual([link, '../../tblspc/ts_near']);
      const sourceTablespace = await treeDigest(join(vol('source'), 'tblspc'));

      const clone = await startClone({ volumeDir: vol('ts-near'), port: await freePort(), socketDir: sockets('ts-near'), logFile: logFile('ts-near') });
      servers.push(clone);
      try {
        expect(await clone.sql("SELECT count(*) FROM near_rows WHERE v = 'source'")).toBe('5000');
        await sqlEach(clone, "UPDATE near_rows SET v = 'clone'", 'CHECKPOINT');
        expect(await clone.sql("SELECT count(*) FROM near_rows WHERE v = 'clone'")).toBe('5000');
        expect(await clone.sql("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts_near'")).toBe('../../tblspc/ts_near');
      } finally {
        await clone.stop();
      }
      await primary.sql('CHECKPOINT');
      expect(await treeDigest(join(vol('source'), 'tblspc'))).toEqual(sourceTablespace);
      expect(await primary.sql("SELECT count(*) FROM near_rows WHERE v = 'source'")).toBe('5000');
    } finally {
      await sqlEach(primary, 'DROP TABLE near_rows', 'DROP TABLESPACE ts_near');
    }
  }, 120_000);

  // Replaying CREATE TABLESPACE, the clone's recovery would remove and recreate the directory at the
  // source's path: the backup's WAL must not hold one.
  test('a tablespace created during the copy: refused after pg_backup_stop, nothing published', async () => {
    await ownedDir(outside('ts_late'), 0o700);
    const during = await hook('late-tablespace', 'cp', [
      'if [[ "$*" == *"/.pgr-staging/pgdata/"* && ! -e "$PGR_TEST_MARK" ]]; then',
      '  : >"$PGR_TEST_MARK"',
      `  ${join('/usr/lib/postgresql/15/bin', 'psql')} -X -q -h "$PGR_TEST_SOCKETS" -p "$PGR_TEST_PORT" -U postgres -d postgres -c "CREATE TABLESPACE ts_late LOCATION '$PGR_TEST_LOCATION'" >&2`,
      'fi',
      'exec /bin/cp "$@"',
    ]);
    await ownedDir(vol('ts-late'));
    try {
      const r = await populate(online('ts-late'), {
        pathPrefix: [during],
        env: { PGR_TEST_MARK: join(hooks, 'late-tablespace', 'mark'), PGR_TEST_SOCKETS: primary.socketDir, PGR_TEST_PORT: String(primary.port), PGR_TEST_LOCATION: outside('ts_late') },
      });
      expect(await primary.sql("SELECT count(*) FROM pg_tablespace WHERE spcname = 'ts_late'")).toBe('1');
      await expectRefused(r, vol('ts-late'), /refusing to publish the clone: a tablespace was created or dropped between the source's last checkpoint and the end of the copy \(CREATE \d+ ".*ts_late"\)/);
      expect(await pgrSlots()).toBe('0');
    } finally {
      await primary.sql('DROP TABLESPACE IF EXISTS ts_late');
    }
  }, 60_000);

  test('a symlinked pg_wal/archive_status in the source: the clone gets a real directory; nothing is written through the link', async () => {
    const statusDir = join(primary.dataDir, 'pg_wal', 'archive_status');
    const elsewhere = await ownedDir(outside('archive-status'), 0o700);
    await rename(statusDir, `${statusDir}.real`);
    await symlink(elsewhere, statusDir);
    try {
      await ownedDir(vol('status-link'));
      const r = await populate(online('status-link'));
      if (!r.result) throw new Error(`populator failed: ${describeRun(r)}`);
      expect(await readdir(elsewhere)).toEqual([]);
      const cloned = join(vol('status-link'), 'pgdata', 'pg_wal', 'archive_status');
      expect((await lstat(cloned)).isDirectory()).toBe(true);
      expect((await readdir(cloned)).length).toBeGreaterThan(0);
      expect(await linksUnder(vol('status-link'))).toEqual([]);
    } finally {
      await rm(statusDir);
      await rename(`${statusDir}.real`, statusDir);
    }
  }, 60_000);

  test('the server session keeps TCP keepalives of at most 10 s (a dead peer ends the backup and the slot within a minute)', async () => {
    await ownedDir(vol('keepalive'));
    const proc = await startHeldPopulator(online('keepalive'), await ownedDir(join(hooks, 'hold')), { scriptDir: join(fs.base, 'bin') });
    try {
      // The server's end of the populator's connection: ss shows its keepalive timer as e.g.
      // "keepalive,9.848ms" (9 s 848 ms) or, with the system default of 2 hours, "keepalive,119min".
      let timers: number[] = [];
      let seen = '';
      for (let i = 0; i < 30 && timers.length === 0; i++) {
        seen = (await run('ss', ['-tno', 'state', 'established', `( sport = :${primary.port} )`])).stdout;
        timers = [...seen.matchAll(/timer:\(keepalive,(?:(\d+)min)?(?:(\d+)(?:sec|\.))?(?:(\d+)ms)?/g)].map(
          (m) => Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0) + Number(m[3] ?? 0) / 1000,
        );
        if (timers.length === 0) await sleep(100);
      }
      expect([timers.length > 0, seen]).toEqual([true, seen]);
      expect(Math.max(...timers)).toBeLessThanOrEqual(10);
    } finally {
      await proc.release();
      const r = await proc.done;
      expect(r.code).toBe(0);
      await rm(vol('keepalive'), { recursive: true, force: true });
    }
  }, 60_000);

  test('one population of a volume at a time: a second populator refuses while the first still runs', async () => {
    await ownedDir(vol('twice'));
    const first = await startHeldPopulator(online('twice'), await ownedDir(join(hooks, 'hold-second')), { scriptDir: join(fs.base, 'bin') });
    try {
      const second = await populate(online('twice'));
      expect(second.code).toBe(1);
      expect(second.reason).toMatch(/another population of .*twice is still running; refusing to start a second/);
      expect(existsSync(join(vol('twice'), '.pgr-staging', 'pgdata'))).toBe(true);
    } finally {
      await first.release();
    }
    const r = await first.done;
    expect([r.code, r.stderr]).toEqual([0, '']);
    await rm(vol('twice'), { recursive: true, force: true });
  }, 60_000);

  test("a standby clone holds WAL up to the stop LSN and nothing after it (a standby's last segment goes on past it)", async () => {
    const standby = await startStandby(primary, { volumeDir: vol('standby'), port: await freePort(), socketDir: sockets('standby'), logFile: logFile('standby') });
    servers.push(standby);
    try {
      // Received but not replayed: the standby's stop LSN (its replay point) stays behind what its
      // last segment holds, as it does under load.
      await standby.sql("ALTER SYSTEM SET recovery_min_apply_delay = '1h'");
      await standby.sql('SELECT pg_reload_conf()');
      await primary.sql('CREATE TABLE after_stop AS SELECT generate_series(1, 1000) AS id');
      for (let i = 0; ; i++) {
        const lag = await standby.sql('SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) > 0');
        if (lag === 't') break;
        if (i > 100) throw new Error('the standby never received WAL it did not replay');
        await sleep(100);
      }
      await ownedDir(vol('standby-clone'));
      const r = await populate(online('standby-clone', standby));
      if (!r.result) throw new Error(`populator failed: ${describeRun(r)}`);
      expect(r.result.backupFrom).toBe('standby');
      const { stdout } = await run(pgBin('pg_waldump'), ['--path', join(vol('standby-clone'), 'pgdata', 'pg_wal'), '--timeline', String(r.result.timeline), '--start', r.result.stopLsn!], {
        okCodes: [0, 1],
      });
      expect(stdout.split('\n').filter((l) => l.startsWith('rmgr:'))).toEqual([]);
      const clone = await startClone({ volumeDir: vol('standby-clone'), port: await freePort(), socketDir: sockets('standby-clone'), logFile: logFile('standby-clone') });
      servers.push(clone);
      expect(await clone.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'after_stop'")).toBe('0');
      await clone.stop();
    } finally {
      await standby.stop();
    }
  }, 120_000);

  test('a standby that followed a failover (its WAL since the last restartpoint spans two timelines) clones, tablespace check included', async () => {
    const promoted = await startStandby(primary, { volumeDir: vol('failover-1'), port: await freePort(), socketDir: sockets('failover-1'), logFile: logFile('failover-1') });
    servers.push(promoted);
    const follower = await startStandby(primary, { volumeDir: vol('failover-2'), port: await freePort(), socketDir: sockets('failover-2'), logFile: logFile('failover-2') });
    servers.push(follower);
    try {
      // The new primary's first checkpoint after promotion is spread over its checkpoint_timeout:
      // with many dirty buffers and an hour for it, the follower's last restartpoint stays on the
      // old timeline, so the backup's WAL spans both.
      for (const setting of ["checkpoint_timeout = '1h'", "max_wal_size = '4GB'"]) await promoted.sql(`ALTER SYSTEM SET ${setting}`);
      await promoted.sql('SELECT pg_reload_conf()');
      await primary.sql("CREATE TABLE failover_bulk AS SELECT g, repeat('x', 200) AS v FROM generate_series(1, 100000) g");
      for (let i = 0; (await promoted.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'failover_bulk'")) !== '1'; i++) {
        if (i > 300) throw new Error('the standby never replayed the bulk table');
        await sleep(100);
      }
      await promoted.sql('SELECT pg_promote()');
      await follower.sql(`ALTER SYSTEM SET primary_conninfo = 'host=${promoted.socketDir} port=${promoted.port} user=postgres'`);
      await follower.sql('SELECT pg_reload_conf()');
      await promoted.sql('CREATE TABLE after_failover AS SELECT generate_series(1, 100) AS id');
      for (let i = 0; (await follower.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'after_failover'")) !== '1'; i++) {
        if (i > 300) throw new Error(`the standby never followed the new primary: ${await follower.logTail()}`);
        await sleep(100);
      }
      await ownedDir(vol('failover-clone'));
      const r = await populate(online('failover-clone', follower));
      if (!r.result) throw new Error(`populator failed: ${describeRun(r)}`);
      expect(r.result.backupFrom).toBe('standby');
      expect(existsSync(join(vol('failover-clone'), 'pgdata', 'pg_wal', '00000002.history'))).toBe(true);
      const label = await readFile(join(vol('failover-clone'), 'pgdata', 'backup_label'), 'utf8');
      expect(label).toMatch(/START TIMELINE: 1\n/);
      const clone = await startClone({ volumeDir: vol('failover-clone'), port: await freePort(), socketDir: sockets('failover-clone'), logFile: logFile('failover-clone') });
      servers.push(clone);
      expect(await clone.sql('SELECT count(*) FROM after_failover')).toBe('100');
      await clone.stop();
    } finally {
      await follower.stop();
      await promoted.stop();
    }
  }, 180_000);

  test('hostile server values (wal_segment_size, LSNs, timeline, BACKUP FROM) are refused before any shell or JSON sees them', async () => {
    // No real PostgreSQL returns such values: a psql stand-in plays a hostile server, running the
    // populator's own steps with what such a server could send.
    const mark = join(await ownedDir(join(hooks, 'marks')), 'pwned');
    // A set variable: bash expands its subscript, running the command, before it fails on the value.
    const evil = `PATH[$(touch ${mark})]`;
    const fakePsql = (lines: string[]) => hook(`fake-psql-${lines.length}-${Math.random().toString(36).slice(2, 8)}`, 'psql', lines);
    const walStep = await fakePsql([
      `export PGR_START_LSN=0/1000000 PGR_STOP_LSN=0/2000000 PGR_TIMELINE=1 PGR_WAL_SEGSIZE='${evil}'`,
      'bash "$PGR_STEPS" tablespaces',
      'bash "$PGR_STEPS" copy-tree || exit 3',
      'bash "$PGR_STEPS" wal || exit 3',
      'exit 0',
    ]);
    for (const [name, prefix, reason] of [
      ['evil-segsize', walStep, /malformed wal_segment_size/],
      [
        'evil-lsn',
        await fakePsql([
          'bash "$PGR_STEPS" tablespaces',
          'bash "$PGR_STEPS" copy-tree || exit 3',
          `export PGR_START_LSN='0/1${evil}' PGR_STOP_LSN=0/2000000 PGR_TIMELINE=1 PGR_WAL_SEGSIZE=16777216`,
          'bash "$PGR_STEPS" wal || exit 3',
          'exit 0',
        ]),
        /malformed start LSN/,
      ],
      [
        'evil-label',
        await fakePsql([
          'bash "$PGR_STEPS" tablespaces',
          'bash "$PGR_STEPS" copy-tree || exit 3',
          'echo 1 >copy.ns; echo 1 >wal.ns',
          `printf 'start_lsn=0/1000000\\nstop_lsn=0/2000000\\ntimeline=1\\nt_start=1\\nt_started=2\\nhas_spcmap=f\\nspc_oids=\\ndone=1\\n' >session.env`,
          `printf 'BACKUP FROM: primary","files":1,"x":"\\n' >backup_label`,
          'exit 0',
        ]),
        /malformed backup label/,
      ],
      [
        'evil-timeline',
        await fakePsql([
          'bash "$PGR_STEPS" tablespaces',
          'bash "$PGR_STEPS" copy-tree || exit 3',
          'echo 1 >copy.ns; echo 1 >wal.ns',
          `printf 'start_lsn=0/1000000\\nstop_lsn=0/2000000\\ntimeline=${evil}\\nt_start=1\\nt_started=2\\nhas_spcmap=f\\nspc_oids=\\ndone=1\\n' >session.env`,
          `printf 'BACKUP FROM: primary\\n' >backup_label`,
          'exit 0',
        ]),
        /malformed timeline/,
      ],
    ] as const) {
      await ownedDir(vol(name));
      const r = await populate(online(name), { pathPrefix: [prefix] });
      expect([name, existsSync(mark)]).toEqual([name, false]);
      await expectRefused(r, vol(name), reason);
    }
  }, 120_000);

  test('the source is pinned: a replaced source, a symlinked PGDATA, and a swap during the copy never make a clone of other data', async () => {
    const tenants = await ownedDir(join(fs.mountPoint, 'tenants'));
    const tenantA = await ownedDir(join(tenants, 'tenant-a'));
    await writeFile(join(tenantA, 'data'), 'tenant A\n');
    const tenantB = await ownedDir(outside('tenant-b'));
    await writeFile(join(tenantB, 'data'), 'tenant B secret\n');
    const idOf = async (path: string) => {
      const s = await stat(path);
      return `${s.dev}:${s.ino}`;
    };

    await ownedDir(vol('pinned-other'));
    const replaced = await populate(plain('pinned-other', tenantA, { sourceIdentity: await idOf(tenantB) }));
    await expectRefused(replaced, vol('pinned-other'), /is not the directory the driver resolved/);

    // Owned by the source's user: an ownership check that stats the link itself would pass.
    await symlink(primary.dataDir, join(fs.mountPoint, 'vols', 'linked-pgdata'));
    await run('chown', ['-h', `${pg.uid}:${pg.gid}`, join(fs.mountPoint, 'vols', 'linked-pgdata')]);
    await ownedDir(vol('pinned-link'));
    const viaLink = await populate({ ...online('pinned-link'), sourceDir: join(fs.mountPoint, 'vols', 'linked-pgdata') });
    await expectRefused(viaLink, vol('pinned-link'), /source .*linked-pgdata is a symbolic link/);

    // Mid-copy swap: the source path becomes a link to tenant B just before cp runs.
    const swap = await hook('swap', 'cp', [
      'if [[ "$*" == *"/.pgr-staging/volume/"* && ! -e "$PGR_TEST_SOURCE.moved" ]]; then',
      '  mv "$PGR_TEST_SOURCE" "$PGR_TEST_SOURCE.moved" && ln -s "$PGR_TEST_OTHER" "$PGR_TEST_SOURCE"',
      'fi',
      'exec /bin/cp "$@"',
    ]);
    await ownedDir(vol('pinned-swap'));
    const swapped = await populate(plain('pinned-swap', tenantA, { sourceIdentity: await idOf(tenantA) }), {
      pathPrefix: [swap],
      env: { PGR_TEST_SOURCE: tenantA, PGR_TEST_OTHER: tenantB },
    });
    expect(existsSync(`${tenantA}.moved`)).toBe(true);
    if (swapped.code === 0) expect(await readFile(join(vol('pinned-swap'), 'data'), 'utf8')).toBe('tenant A\n');
    else await expectRefused(swapped, vol('pinned-swap'), /replaced/);
  }, 60_000);

  test('a plain copy refuses a source whose postmaster.pid may name a running server, unless the caller verified it is stopped; the copy never carries it', async () => {
    const stopped = await ownedDir(vol('pid-source'));
    await ownedDir(join(stopped, 'pgdata'), 0o700);
    await writeFile(join(stopped, 'pgdata', 'PG_VERSION'), '15\n');
    await writeFile(join(stopped, 'pgdata', 'postmaster.pid'), `${process.pid}\n${join(stopped, 'pgdata')}\n`);
    await run('chown', ['-R', `${pg.uid}:${pg.gid}`, stopped]);
    await ownedDir(vol('pid-refused'));
    const refused = await populate(plain('pid-refused', stopped));
    await expectRefused(refused, vol('pid-refused'), new RegExp(`postmaster.pid in the source volume names a server \\(pid ${process.pid}\\) that may still be running`));
    expect(failureStatus(refused.reason!)).toBe('FAILED_PRECONDITION');

    await ownedDir(vol('pid-verified'));
    const verified = await populate(plain('pid-verified', stopped, { serverStopped: true }));
    if (!verified.result) throw new Error(`plain copy failed: ${describeRun(verified)}`);
    expect(existsSync(join(vol('pid-verified'), 'pgdata', 'PG_VERSION'))).toBe(true);
    expect(existsSync(join(vol('pid-verified'), 'pgdata', 'postmaster.pid'))).toBe(false);
  }, 60_000);

  test('a plain copy refuses links that lead out of the source volume (walStorage-style pg_wal)', async () => {
    const source = await ownedDir(vol('wal-link-source'));
    await ownedDir(join(source, 'pgdata'), 0o700);
    await writeFile(join(source, 'pgdata', 'PG_VERSION'), '15\n');
    await symlink(await ownedDir(outside('wal-elsewhere'), 0o700), join(source, 'pgdata', 'pg_wal'));
    await ownedDir(vol('wal-link'));
    const r = await populate(plain('wal-link', source));
    await expectRefused(r, vol('wal-link'), /pgdata\/pg_wal is a symbolic link to .*wal-elsewhere, which leads outside the clone/);
  }, 60_000);

  test('a full filesystem is reported as such (RESOURCE_EXHAUSTED), never as a reflink problem; nothing left behind', async () => {
    const small = await createLoopFs({ kind: 'xfs', sizeMb: 320 });
    extraFs.push(small);
    const source = await ownedDir(join(small.mountPoint, 'source'));
    for (let d = 0; d < 20; d++) {
      const dir = join(source, `d${d}`);
      await mkdir(dir);
      for (let f = 0; f < 100; f++) await writeFile(join(dir, `f${f}`), `file ${d}/${f}\n`);
    }
    await run('chown', ['-R', `${pg.uid}:${pg.gid}`, source]);
    const target = await ownedDir(join(small.mountPoint, 'clone'));
    // Fill what is left but a little: enough for the staging directory and the reflink probe, not for 2,000 inodes.
    await run('sync', ['-f', small.mountPoint]);
    const { stdout } = await run('df', ['-B1', '--output=avail', small.mountPoint]);
    const avail = Number(stdout.trim().split('\n').pop());
    await run('fallocate', ['-l', String(avail - 256 * 1024), join(small.mountPoint, 'filler')]);
    const workDir = await ownedDir(join(fs.base, 'work-full'));
    const r = await populate({ mode: 'plain', sourceDir: source, volumeDir: target, label: 'full', uid: pg.uid, gid: pg.gid, workDir });
    expect(r.code).toBe(1);
    expect(r.reason).toMatch(/no space left on the clone's filesystem \(xfs at .*\) while copying .*No space left on device/);
    expect(r.reason).not.toMatch(/reflink copy not possible/);
    expect(failureStatus(r.reason!)).toBe('RESOURCE_EXHAUSTED');
    expect(await readdir(target)).toEqual([]);
  }, 120_000);
});
