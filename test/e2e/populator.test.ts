import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tlsConninfo } from '../../src/populator/conninfo.js';
import type { PopulatorOptions } from '../../src/populator/env.js';
import {
  amcheck,
  checkPgbenchInvariant,
  freePort,
  grantBackup,
  initPrimary,
  ownedDir,
  pgbenchInit,
  postgresUser,
  revokeBackup,
  startClone,
  startPgbench,
  startStandby,
  type PgbenchLoad,
  type PgServer,
} from '../../testbed/postgres.js';
import { runPopulator, startPopulator, type PopulatorRun, type RunPopulatorOptions } from '../../testbed/populator.js';
import { createLoopFs, type LoopFs } from '../../testbed/xfs.js';
import { createTls, type TlsFiles } from '../../testbed/tls.js';
import { AMCHECK, OPENSSL, POSTGRES, ROOT, XFS, describeWithRealParts } from '../support/requirements.js';

const SCALE = 20;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeWithRealParts('populator on a real XFS filesystem with PostgreSQL 15 under pgbench load', [ROOT, XFS, POSTGRES, OPENSSL, AMCHECK], () => {
  let fs: LoopFs;
  let tls: TlsFiles;
  let primary: PgServer;
  let load: PgbenchLoad | undefined;
  let hooks: string;
  const servers: PgServer[] = [];
  const extraFs: LoopFs[] = [];
  const pg = postgresUser();
  const vol = (name: string) => join(fs.mountPoint, 'vols', name);
  const sockets = (name: string) => join(fs.base, 'run', name);
  const logFile = (name: string) => join(fs.base, 'logs', `${name}.log`);

  const tlsTo = (server: PgServer) =>
    tlsConninfo({ host: '127.0.0.1', port: server.port, sslrootcert: tls.caCert, sslcert: tls.clientCert, sslkey: tls.clientKey });
  const online = (source: PgServer, name: string, conninfo = tlsTo(source)): PopulatorOptions => ({
    mode: 'online',
    conninfo,
    sourceDir: source.dataDir,
    volumeDir: vol(name),
    label: name,
    uid: pg.uid,
    gid: pg.gid,
  });
  const pgrSlots = () => primary.sql(String.raw`SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'pgr\_%'`);
  const expectFailed = (run: PopulatorRun) => {
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/^pg-reflinker populate: /);
  };
  /** A failed population leaves the volume as it found it: empty. */
  const expectEmpty = async (volumeDir: string) => expect(await readdir(volumeDir)).toEqual([]);
  const describeRun = (run: PopulatorRun) => `code ${run.code}: ${run.stderr.trim()}`;
  const scriptDir = () => join(fs.base, 'bin');
  const populate = (opts: PopulatorOptions, run: RunPopulatorOptions = {}) => runPopulator(opts, { scriptDir: scriptDir(), ...run });

  /** Clone `source` (online), start the clone, check it, stop it, remove it. */
  async function cloneAndCheck(source: PgServer, name: string, opts: { conninfo?: string; run?: RunPopulatorOptions; amcheck?: boolean } = {}) {
    await ownedDir(vol(name));
    const rowsBefore = Number(await source.sql('SELECT count(*) FROM pgbench_history'));
    const run = await populate(online(source, name, opts.conninfo), opts.run);
    if (!run.result) throw new Error(`populator failed: ${describeRun(run)}`);
    expect(run.stderr).toBe('');
    const label = await readFile(join(vol(name), 'pgdata', 'backup_label'), 'utf8');
    expect(label).toContain(`LABEL: ${name}\n`);
    expect(label).toContain(`START WAL LOCATION: ${run.result.startLsn} `);
    expect(label.endsWith('\n') && !label.endsWith('\n\n')).toBe(true);
    expect((await stat(join(vol(name), 'pgdata'))).mode & 0o777).toBe(0o700);
    expect(existsSync(join(vol(name), '.pgr-staging'))).toBe(false);
    const clone = await startClone({ volumeDir: vol(name), port: await freePort(), socketDir: sockets(name), logFile: logFile(name) });
    servers.push(clone);
    try {
      expect(await clone.log()).toMatch(/consistent recovery state reached/);
      const sums = await checkPgbenchInvariant(clone);
      expect(sums.historyRows).toBeGreaterThanOrEqual(rowsBefore);
      if (opts.amcheck ?? true) await amcheck(clone);
      return { run, result: run.result, sums };
    } finally {
      await clone.stop();
      await rm(vol(name), { recursive: true, force: true });
    }
  }

  beforeAll(async () => {
    fs = await createLoopFs({ kind: 'xfs', sizeMb: 8192 });
    for (const dir of ['vols', 'run', 'logs', 'hooks']) await mkdir(join(dir === 'vols' ? fs.mountPoint : fs.base, dir), { mode: 0o755 });
    hooks = join(fs.base, 'hooks');
    tls = await createTls(join(fs.base, 'tls'), { serverKeyOwner: pg });
    primary = await initPrimary({ volumeDir: vol('source'), port: await freePort(), socketDir: sockets('source'), logFile: logFile('source'), tls });
    servers.push(primary);
    await grantBackup(primary);
    await pgbenchInit(primary, SCALE);
    load = startPgbench(primary);
    await sleep(1000);
  }, 180_000);

  afterAll(async () => {
    await load?.stop().catch((err) => console.error(err));
    for (const server of servers.reverse()) await server.stop().catch((err) => console.error(err));
    for (const f of [...extraFs, fs]) await f?.teardown().catch((err) => console.error(err));
  }, 120_000);

  test('without the GRANT: fails with the exact GRANT to run, leaves nothing behind', async () => {
    await revokeBackup(primary);
    try {
      await ownedDir(vol('nogrant'));
      const run = await populate(online(primary, 'nogrant'));
      expectFailed(run);
      expect(run.reason).toContain(
        'GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean), pg_backup_stop(boolean) TO streaming_replica;',
      );
      await expectEmpty(vol('nogrant'));
      expect(await pgrSlots()).toBe('0');
    } finally {
      await grantBackup(primary);
    }
  }, 60_000);

  test('clones the primary over TLS (client cert, verify-ca) under load; the clone starts consistent and passes amcheck', async () => {
    const { result } = await cloneAndCheck(primary, 'clone-primary');
    console.log(`primary clone: ${JSON.stringify(result)}`);
    expect(result).toMatchObject({ mode: 'online', label: 'clone-primary', backupFrom: 'primary', timeline: 1 });
    expect(result.files).toBeGreaterThan(500);
    expect(await pgrSlots()).toBe('0');
  }, 120_000);

  test('10 consecutive clones under load all start consistent (root over TLS, and postgres over the socket)', async () => {
    const seconds: string[] = [];
    let count = 0;
    for (let i = 1; i <= 10; i++) {
      // Odd runs as the local backend does it: as the data's owner, over the unix socket.
      const asOwner = i % 2 === 1;
      const { result, sums } = await cloneAndCheck(primary, `clone-${i}`, {
        conninfo: asOwner ? primary.socketConninfo('streaming_replica') : undefined,
        run: asOwner ? { user: pg } : {},
        amcheck: i === 10,
      });
      count++;
      seconds.push(`${result.seconds}s (ckpt ${result.checkpointSeconds}, copy ${result.copySeconds}, wal ${result.walSeconds}; ${sums.historyRows} tx)`);
    }
    console.log(`${count} consecutive clones under load, all consistent:\n  ${seconds.join('\n  ')}`);
    expect(count).toBe(10);
  }, 300_000);

  test('clones a streaming standby (BACKUP FROM: standby, pg_control copied last)', async () => {
    const standby = await startStandby(primary, { volumeDir: vol('standby'), port: await freePort(), socketDir: sockets('standby'), logFile: logFile('standby') });
    servers.push(standby);
    try {
      const { result } = await cloneAndCheck(standby, 'clone-standby');
      console.log(`standby clone: ${JSON.stringify(result)}`);
      expect(result.backupFrom).toBe('standby');
      expect(await standby.sql(String.raw`SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'pgr\_%'`)).toBe('0');
    } finally {
      await standby.stop();
    }
  }, 180_000);

  test('psql killed during the copy: fails, the server drops the slot and aborts the backup, nothing left behind', async () => {
    // Test hook: a cp that holds the tree copy until released, so the kill lands mid-copy.
    const holdDir = join(hooks, 'hold');
    await mkdir(holdDir, { recursive: true, mode: 0o755 });
    await writeFile(join(holdDir, 'cp'), [
      '#!/bin/bash',
      'if [[ "$*" == *"/.pgr-staging/pgdata/"* ]]; then',
      '  : >"$PGR_TEST_HOLD.started"',
      '  while [ ! -e "$PGR_TEST_HOLD.release" ]; do sleep 0.1; done',
      'fi',
      'exec /bin/cp "$@"',
      '',
    ].join('\n'), { mode: 0o755 });
    const hold = join(hooks, 'kill-test');
    await ownedDir(vol('killed'));
    const proc = await startPopulator(online(primary, 'killed'), { scriptDir: scriptDir(), pathPrefix: [holdDir], env: { PGR_TEST_HOLD: hold } });
    let finished: PopulatorRun | undefined;
    void proc.done.then((run) => (finished = run));
    try {
      for (let i = 0; !existsSync(`${hold}.started`); i++) {
        if (finished) throw new Error(`populator ended before the copy: ${describeRun(finished)}`);
        if (i > 600) throw new Error('the copy never started');
        await sleep(100);
      }
      expect(await primary.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg-reflinker-populator'")).toBe('1');
      expect(await pgrSlots()).toBe('1');
      const psql = await childNamed(proc.pid, 'psql');
      process.kill(psql, 'SIGKILL');
      const run = await proc.done;
      expectFailed(run);
      expect(run.reason).toMatch(/psql was killed by signal 9/);
      await expectEmpty(vol('killed'));
      for (let i = 0; (await pgrSlots()) !== '0'; i++) {
        if (i > 100) throw new Error('the temporary slot outlived the session');
        await sleep(100);
      }
      expect(await primary.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg-reflinker-populator'")).toBe('0');
      expect(await processesWith(join(holdDir, 'cp'))).toEqual([]);
    } finally {
      await writeFile(`${hold}.release`, '');
    }
  }, 120_000);

  test('no reflink: fails before any backup, naming the filesystem; nothing left behind', async () => {
    // Destination on another filesystem (ext4): FICLONE cannot cross it.
    const ext4 = await createLoopFs({ kind: 'ext4', sizeMb: 64 });
    extraFs.push(ext4);
    const dest = await ownedDir(join(ext4.mountPoint, 'clone'));
    const cross = await populate({ ...online(primary, 'cross'), volumeDir: dest });
    expectFailed(cross);
    expect(cross.reason).toMatch(/reflink copy not possible from .* \(filesystem xfs\) to .* \(filesystem ext2\/ext3\)/);
    await expectEmpty(dest);
    expect(await pgrSlots()).toBe('0');

    // Source and destination on one XFS made with reflink=0.
    const noReflink = await createLoopFs({ kind: 'xfs-noreflink', sizeMb: 512 });
    extraFs.push(noReflink);
    const source = await ownedDir(join(noReflink.mountPoint, 'source'));
    await ownedDir(join(source, 'pgdata'), 0o700);
    await writeFile(join(source, 'pgdata', 'PG_VERSION'), '15\n');
    const target = await ownedDir(join(noReflink.mountPoint, 'clone'));
    const plain = await populate({ mode: 'plain', sourceDir: source, volumeDir: target, label: 'noreflink', uid: pg.uid, gid: pg.gid });
    expectFailed(plain);
    expect(plain.reason).toMatch(/reflink copy not possible .*\(filesystem xfs\).*Operation not supported/);
    await expectEmpty(target);
  }, 120_000);

  test('plain mode: a stopped cluster is copied whole and starts; re-running reports the same result; never overwrites', async () => {
    // The source: a clone of the primary, started once and shut down cleanly.
    await ownedDir(vol('stopped'));
    const first = await populate(online(primary, 'stopped'));
    expect(first.result).toBeDefined();
    const stopped = await startClone({ volumeDir: vol('stopped'), port: await freePort(), socketDir: sockets('stopped'), logFile: logFile('stopped') });
    servers.push(stopped);
    await stopped.stop();

    await ownedDir(vol('plain'));
    const run = await populate({ mode: 'plain', sourceDir: vol('stopped'), volumeDir: vol('plain'), label: 'plain', uid: pg.uid, gid: pg.gid });
    if (!run.result) throw new Error(`plain copy failed: ${describeRun(run)}`);
    console.log(`plain copy: ${JSON.stringify(run.result)}`);
    expect(run.result).toMatchObject({ mode: 'plain', startLsn: null, stopLsn: null, timeline: null, backupFrom: null });
    expect((await readdir(vol('plain'))).sort()).toEqual(['.pgr-populated', 'pgdata']);

    const again = await populate({ mode: 'plain', sourceDir: vol('stopped'), volumeDir: vol('plain'), label: 'plain', uid: pg.uid, gid: pg.gid });
    expect(again.code).toBe(0);
    expect(again.result).toEqual(run.result);
    const otherLabel = await populate({ mode: 'plain', sourceDir: vol('stopped'), volumeDir: vol('plain'), label: 'other', uid: pg.uid, gid: pg.gid });
    expectFailed(otherLabel);

    const copy = await startClone({ volumeDir: vol('plain'), port: await freePort(), socketDir: sockets('plain'), logFile: logFile('plain') });
    servers.push(copy);
    try {
      await checkPgbenchInvariant(copy);
      await amcheck(copy);
    } finally {
      await copy.stop();
    }

    // An online clone onto a volume that already has pgdata (and no marker) is refused.
    await rm(join(vol('plain'), '.pgr-populated'));
    const overwrite = await populate(online(primary, 'plain'));
    expectFailed(overwrite);
    expect(overwrite.reason).toMatch(/pgdata already exists/);
    expect(existsSync(join(vol('plain'), '.pgr-staging'))).toBe(false);
  }, 180_000);

  test('vanished source files are tolerated; other copy errors and missing WAL fail, leaving nothing', async () => {
    // Test hook: a real cp, then the messages cp prints for vanished source files (or for EACCES) after
    // a tree copy; or, after the WAL re-copy, the copied segments disappear.
    const faultDir = join(hooks, 'fault');
    await mkdir(faultDir, { recursive: true, mode: 0o755 });
    await writeFile(join(faultDir, 'cp'), [
      '#!/bin/bash',
      '/bin/cp "$@" || exit $?',
      'if [[ "$*" == *"/. "*"/.pgr-staging/"* ]]; then',
      '  case $PGR_TEST_CP_FAULT in',
      `    vanish) echo "cp: cannot stat '/x/base/1/16390': No such file or directory" >&2`,
      `            echo "cp: cannot open '/x/pg_wal/000000010000000000000009' for reading: No such file or directory" >&2; exit 1 ;;`,
      `    eacces) echo "cp: cannot open '/x/base/1/16391' for reading: Permission denied" >&2; exit 1 ;;`,
      '  esac',
      'elif [[ $PGR_TEST_CP_FAULT == dropwal && "${@: -1}" == */pg_wal/ ]]; then',
      '  rm -f "${@: -1}"0*',
      'fi',
      '',
    ].join('\n'), { mode: 0o755 });
    const hook = (fault: string): RunPopulatorOptions => ({ pathPrefix: [faultDir], env: { PGR_TEST_CP_FAULT: fault } });

    const source = await ownedDir(vol('small'));
    await writeFile(join(source, 'data'), 'some bytes\n');
    const plain = (name: string): PopulatorOptions => ({ mode: 'plain', sourceDir: source, volumeDir: vol(name), label: name, uid: pg.uid, gid: pg.gid });
    // A plain copy tolerates vanishing files only when the StorageClass allowed a crash-consistent
    // copy of a volume in use; of a volume nobody uses, a vanished file means a deleted source.
    await ownedDir(vol('plain-strict'));
    const strict = await populate(plain('plain-strict'), hook('vanish'));
    expectFailed(strict);
    expect(strict.reason).toMatch(/copy of .* failed \(cp exit 1\): cp: cannot stat .* No such file or directory/);
    await expectEmpty(vol('plain-strict'));
    await ownedDir(vol('plain-vanish'));
    const vanished = await populate({ ...plain('plain-vanish'), crashConsistent: true }, hook('vanish'));
    expect(vanished.result?.files).toBe(1);
    expect(await readFile(join(vol('plain-vanish'), 'data'), 'utf8')).toBe('some bytes\n');
    await ownedDir(vol('plain-eacces'));
    const denied = await populate(plain('plain-eacces'), hook('eacces'));
    expectFailed(denied);
    expect(denied.reason).toMatch(/copy of .* failed \(cp exit 1\): cp: cannot open .* Permission denied/);
    await expectEmpty(vol('plain-eacces'));

    // Online, the same checks run inside the psql session; a failure there ends the session (slot dropped).
    const { result } = await cloneAndCheck(primary, 'online-vanish', { run: hook('vanish'), amcheck: false });
    expect(result.mode).toBe('online');
    for (const [fault, reason] of [
      ['eacces', /copy of .* failed \(cp exit 1\): cp: cannot open .* Permission denied/],
      ['dropwal', /WAL segment [0-9A-F]{24} \(needed from [0-9A-F]+\/[0-9A-F]+ to [0-9A-F]+\/[0-9A-F]+\) is missing/],
    ] as const) {
      await ownedDir(vol(`online-${fault}`));
      const run = await populate(online(primary, `online-${fault}`), hook(fault));
      expectFailed(run);
      expect(run.reason).toMatch(reason);
      await expectEmpty(vol(`online-${fault}`));
      expect(await pgrSlots()).toBe('0');
    }
  }, 120_000);
});

/** The pid of a direct child of `parent` whose command name is `name`. */
async function childNamed(parent: number, name: string): Promise<number> {
  for (let i = 0; i < 100; i++) {
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const statLine = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
      const match = /^\d+ \((.*)\) \S+ (\d+)/.exec(statLine);
      if (match && match[1] === name && Number(match[2]) === parent) return Number(entry);
    }
    await sleep(50);
  }
  throw new Error(`no ${name} child of ${parent}`);
}

/** Pids of processes whose command line mentions `text`. */
async function processesWith(text: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(text)) found.push(Number(entry));
  }
  return found;
}
