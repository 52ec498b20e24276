/**
 * `npm run demo`: clone a live PostgreSQL through the CSI API on this machine and show what it
 * cost. Sets up its own parts (XFS loop filesystem, standalone driver, PostgreSQL 15 under
 * pgbench load), prints one table, removes everything again. Exit code 0 only when the clone
 * was made, started and verified.
 */
import { performance } from 'node:perf_hooks';
import { Cleanup, cleanupOnSignals } from '../testbed/scenario-cleanup.js';
import { impact, type ImpactWindows } from '../testbed/scenario-load.js';
import { spaceDelta, spaceSnapshot, syncedUsed } from '../testbed/scenario-space.js';
import { cloneViaCsi, databaseBytes, dropClone, setupScenario, startLoad, treeSize, verifyClone, type Clone, type Verification } from '../testbed/scenario.js';
import { ensurePrerequisites } from './prerequisites.js';

const SCALE = Number(process.env.DEMO_SCALE ?? 150);
const BEFORE_S = 10;
const AFTER_S = 15;

const started = performance.now();
const say = (line: string) => console.log(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s] ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;
const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
const s = (x: number) => `${x.toFixed(2)} s`;

interface Outcome {
  scale: number;
  dbBytes: number;
  pgdata: { files: number; bytes: number };
  initSeconds: number;
  clone: Clone;
  space: { own: number; raw: number; after: number };
  load: ImpactWindows;
  verified: Verification;
}

async function demo(cleanup: Cleanup): Promise<Outcome> {
  await ensurePrerequisites(say);
  // PGDATA of a fresh scale-N database is ~23 MB per scale unit (+1 GB WAL); room for copy-on-write growth.
  // The source volume gets what the chart's pg-reflinker-local class gives it.
  const sc = await setupScenario({
    scale: SCALE,
    fsSizeMb: Math.max(4096, Math.ceil((SCALE * 23 + 1100) * 2.5)),
    cleanup,
    say,
    sourceParameters: { cowExtentSize: '8k' },
  });
  const pgdata = await treeSize(sc.pgdata);
  const dbBytes = await databaseBytes(sc);
  say(`source database: ${gb(dbBytes)} (pg_database_size); PGDATA ${gb(pgdata.bytes)} in ${pgdata.files} files`);

  const load = await startLoad(sc);
  say(`pgbench load on the source: TPC-B, 4 clients, 2 threads; measuring ${BEFORE_S} s before the clone`);
  await sleep(BEFORE_S * 1000 + 500);
  const beforeEnd = Date.now();
  const before = await spaceSnapshot(sc.fs.mountPoint, sc.pgdata);

  say('CreateVolume(volume_content_source = the source volume) ...');
  const clone = await cloneViaCsi(sc, 'demo-clone');
  const r = clone.report;
  say(`clone ready: ${s(clone.endToEndSeconds)} from the first call (${clone.calls} call${clone.calls > 1 ? 's' : ''}); populator ${s(r.seconds)}: checkpoint ${s(r.checkpointSeconds)}, reflink copy ${s(r.copySeconds)}, WAL ${s(r.walSeconds)}; ${r.startLsn} → ${r.stopLsn}`);
  const created = await spaceSnapshot(sc.fs.mountPoint, sc.pgdata);
  const space = spaceDelta(before, created);
  say(`extra space at creation: ${mb(space.own)} (df delta ${mb(space.raw)}, less the source's own allocation change); now ${AFTER_S} s of load with the clone present`);
  const windows = await impact(load, { t0: clone.t0, t1: clone.t1, beforeEnd, beforeS: BEFORE_S, afterS: AFTER_S });
  const after = (await syncedUsed(sc.fs.mountPoint)) - before.used;
  say(`source TPS before ${windows.before.tps.toFixed(0)}, during ${windows.during.tps.toFixed(0)}, after ${windows.after.tps.toFixed(0)}; space ${AFTER_S} s later: +${mb(after)}`);
  await load.stop();

  say('publishing the clone, starting PostgreSQL on it (no WAL archive), checking the pgbench invariant and pg_amcheck ...');
  const verified = await verifyClone(sc, clone.volume, { heapallindexed: true });
  say(`clone verified: started in ${s(verified.startSeconds)}, invariant holds (sums ${verified.sums.accounts}, ${verified.sums.historyRows} history rows), ${verified.amcheck} clean in ${s(verified.amcheckSeconds)}`);
  await dropClone(sc, clone);
  return { scale: SCALE, dbBytes, pgdata, initSeconds: sc.init.seconds, clone, space: { ...space, after }, load: windows, verified };
}

function table(o: Outcome): string {
  const r = o.clone.report;
  const rest = r.seconds - r.checkpointSeconds - r.copySeconds - r.walSeconds;
  const driver = o.clone.endToEndSeconds - r.seconds;
  const w = o.load;
  const rows: [string, string][] = [
    ['source database', `${gb(o.dbBytes)} (pgbench scale ${o.scale}); PGDATA ${gb(o.pgdata.bytes)}, ${o.pgdata.files} files; pgbench -i ${o.initSeconds.toFixed(0)} s`],
    ['clone files / bytes', `${r.files} / ${gb(r.bytes)}`],
    ['clone, first CreateVolume → ready', `**${s(o.clone.endToEndSeconds)}**`],
    ['… checkpoint (pg_backup_start)', `${s(r.checkpointSeconds)} (${((r.checkpointSeconds / o.clone.endToEndSeconds) * 100).toFixed(0)} %)`],
    ['… reflink copy / WAL / rest of populator / driver', `${s(r.copySeconds)} / ${s(r.walSeconds)} / ${s(rest)} / ${s(driver)}`],
    ['extra space at creation', `${mb(o.space.own)} (df delta ${mb(o.space.raw)})`],
    [`extra space ${AFTER_S} s later (copy-on-write)`, mb(o.space.after)],
    [`source TPS before ${BEFORE_S} s / clone second / after ${AFTER_S} s`, `${w.before.tps.toFixed(0)} / ${w.during.tps.toFixed(0)} / ${w.after.tps.toFixed(0)}`],
    ['source max latency before / during / after', `${w.before.maxLatencyMs.toFixed(0)} / ${w.during.maxLatencyMs.toFixed(0)} / ${w.after.maxLatencyMs.toFixed(0)} ms`],
    ['clone verified', `yes: recovered without a WAL archive, pgbench invariant holds, ${o.verified.amcheck} clean`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return ['| what | result |', '|---|---|', ...rows.map(([k, v]) => `| ${k.padEnd(width)} | ${v} |`)].join('\n');
}

async function main(): Promise<number> {
  const cleanup = new Cleanup();
  const stopListening = cleanupOnSignals(() => cleanup, say);
  let outcome: Outcome | undefined;
  let failure: Error | undefined;
  try {
    outcome = await demo(cleanup);
  } catch (err) {
    failure = err as Error;
  }
  say('cleaning up (servers, driver, mounts, files)');
  const leftovers = await cleanup.run();
  stopListening();
  for (const l of leftovers) say(`cleanup problem: ${l}`);
  if (failure || !outcome) {
    console.error(`\ndemo FAILED: ${failure?.message ?? 'no result'}`);
    console.log('\n| clone verified | no |');
    return 1;
  }
  console.log(`\n${table(outcome)}\n`);
  say(`done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  return leftovers.length ? 1 : 0;
}

process.exit(await main());
