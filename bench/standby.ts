// preferStandby's payoff, measured: a PostgreSQL 15 primary under pgbench load on an XFS loop
// filesystem with a streaming replica beside it; the populator clones the replica, then the
// primary, and for each clone the primary's TPS and worst transaction latency are taken in the
// window before it, during it and after it (copy-on-write of shared blocks lands after).
//
//   npm run build && node dist/bench/standby.js [--scale 50] [--rounds 2]
//
// Writes bench/results/standby-<date>.json and .md, prints the table.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tlsConninfo } from '../src/populator/conninfo.js';
import { PgServer, freePort, grantBackup, initPrimary, ownedDir, pgbenchInit, postgresUser, startStandby } from '../testbed/postgres.js';
import { runPopulator } from '../testbed/populator.js';
import { PgbenchLoad, impact, type WindowStats } from '../testbed/scenario-load.js';
import { createTls } from '../testbed/tls.js';
import { createLoopFs } from '../testbed/xfs.js';

interface Row {
  source: 'replica' | 'primary';
  round: number;
  seconds: number;
  checkpointSeconds: number;
  copySeconds: number;
  backupFrom: string | null;
  before: WindowStats;
  during: WindowStats;
  after: WindowStats;
}

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};

const fmt = (w: WindowStats) => `${w.tps.toFixed(0)} / ${w.maxLatencyMs.toFixed(0)}`;

function table(rows: Row[]): string {
  const head = '| clone of | round | end to end s | checkpoint s | copy s | primary TPS / worst ms before (5 s) | during | after (10 s) |\n|---|---|---|---|---|---|---|---|';
  return [head, ...rows.map((r) => `| ${r.source} (${r.backupFrom}) | ${r.round} | ${r.seconds.toFixed(2)} | ${r.checkpointSeconds.toFixed(2)} | ${r.copySeconds.toFixed(2)} | ${fmt(r.before)} | ${fmt(r.during)} | ${fmt(r.after)} |`)].join('\n');
}

async function main(): Promise<void> {
  const scale = arg('scale', 50);
  const rounds = arg('rounds', 2);
  const pg = postgresUser();
  const fs = await createLoopFs({ kind: 'xfs', sizeMb: 6144 });
  const servers: PgServer[] = [];
  let load: PgbenchLoad | undefined;
  try {
    for (const dir of ['vols', 'run', 'logs']) await mkdir(join(dir === 'vols' ? fs.mountPoint : fs.base, dir), { mode: 0o755 });
    const vol = (name: string) => join(fs.mountPoint, 'vols', name);
    const sock = (name: string) => join(fs.base, 'run', name);
    const log = (name: string) => join(fs.base, 'logs', `${name}.log`);
    const tls = await createTls(join(fs.base, 'tls'), { serverKeyOwner: pg });
    const primary = await initPrimary({ volumeDir: vol('primary'), port: await freePort(), socketDir: sock('primary'), logFile: log('primary'), tls });
    servers.push(primary);
    await grantBackup(primary);
    await pgbenchInit(primary, scale);
    const replica = await startStandby(primary, { volumeDir: vol('replica'), port: await freePort(), socketDir: sock('replica'), logFile: log('replica') });
    servers.push(replica);
    load = await PgbenchLoad.start(primary, { logDir: join(fs.base, 'txlog'), clients: 4, jobs: 2 });
    await new Promise((r) => setTimeout(r, 10_000));

    const rows: Row[] = [];
    // The replica first: cloning the primary leaves it with shared extents that slow its later writes.
    for (const [source, server] of [['replica', replica], ['primary', primary]] as const) {
      for (let round = 1; round <= rounds; round++) {
        const name = `clone-${source}-${round}`;
        await ownedDir(vol(name));
        const t0 = Date.now();
        const run = await runPopulator({
          mode: 'online',
          conninfo: tlsConninfo({ host: '127.0.0.1', port: server.port, sslrootcert: tls.caCert, sslcert: tls.clientCert, sslkey: tls.clientKey }),
          sourceDir: server.dataDir,
          volumeDir: vol(name),
          label: name,
          uid: pg.uid,
          gid: pg.gid,
        }, { scriptDir: join(fs.base, 'bin') });
        const t1 = Date.now();
        if (!run.result) throw new Error(`populator failed on the ${source}: ${run.stderr.trim()}`);
        const w = await impact(load, { t0, t1, beforeS: 5, afterS: 10 });
        const r = run.result;
        rows.push({ source, round, seconds: r.seconds, checkpointSeconds: r.checkpointSeconds, copySeconds: r.copySeconds, backupFrom: r.backupFrom, before: w.before, during: w.during, after: w.after });
        console.log(table(rows.slice(-1)).split('\n')[2]);
        await rm(vol(name), { recursive: true, force: true });
      }
    }
    const md = `# preferStandby: the primary while its replica or itself is cloned\n\npgbench scale ${scale}, 4 clients, PostgreSQL 15, XFS loop file; windows on the primary's own transactions.\n\n${table(rows)}\n`;
    console.log(`\n${md}`);
    const day = new Date().toISOString().slice(0, 10);
    await writeFile(join('bench', 'results', `standby-${day}.md`), md);
    await writeFile(join('bench', 'results', `standby-${day}.json`), JSON.stringify({ scale, rounds, rows }, null, 2));
  } finally {
    await load?.stop().catch((err: Error) => console.error(err.message));
    for (const s of servers.reverse()) await s.stop().catch((err: Error) => console.error(err.message));
    await fs.teardown();
  }
}

main().catch((err: Error) => {
  console.error(err.stack ?? err.message);
  process.exitCode = 1;
});
