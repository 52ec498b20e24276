/**
 * `npm run bench`: our clone through CSI side by side with a raw reflink cp, pg_basebackup and a
 * full cp, at two database sizes, on real XFS and PostgreSQL 15 under one continuous pgbench
 * load; then the copy-on-write after-cost and the cowextsize hint. Markdown on stdout, JSON in
 * bench/results/.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { run } from '../src/exec.js';
import { ensurePrerequisites } from '../demo/prerequisites.js';
import { Cleanup, cleanupOnSignals } from '../testbed/scenario-cleanup.js';
import { databaseBytes, setupScenario, startLoad, treeSize } from '../testbed/scenario.js';
import { parseOptions, type BenchOptions } from './options.js';
import { overheadTable, runOverhead } from './overhead.js';
import { afterCostTable, mainTable, targetLines, targets, type ScaleResult } from './report.js';
import { runTrial, type TrialContext, type TrialSpec } from './trial.js';

const started = performance.now();
const say = (line: string) => console.log(`[${((performance.now() - started) / 1000).toFixed(0).padStart(5)} s] ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function plan(opts: BenchOptions): { fresh: TrialSpec[]; loaded: TrialSpec[]; fragmented: TrialSpec[] } {
  return {
    // Idle and fresh: the copy's own space exactly; deleted again before any write, so the source stays unfragmented.
    fresh: [
      { id: 'idle-fresh', method: 'csi-clone', idle: true },
      { id: 'idle-fresh-cp-reflink', method: 'cp-reflink', idle: true },
    ],
    loaded: [
      { id: 'control', method: 'none', note: 'no copy: how much the load drifts on its own' },
      { id: 'first', method: 'csi-clone', verify: true, note: 'first clone under load, unfragmented source' },
      { id: 'cp-reflink', method: 'cp-reflink' },
      { id: 'pg_basebackup', method: 'pg_basebackup' },
      { id: 'cp-full', method: 'cp-full' },
      { id: 'repeat', method: 'csi-clone', note: 'same clone again, on the source as the copies above left it' },
      ...opts.cowSizes.map((size): TrialSpec => ({ id: `cow-${size / 1024}k`, method: 'csi-clone', cowextsize: size })),
    ],
    // After all that: what fragmentation did to an idle clone's time and space.
    fragmented: [
      { id: 'idle-fragmented', method: 'csi-clone', idle: true },
      { id: 'idle-fragmented-cp-reflink', method: 'cp-reflink', idle: true },
    ],
  };
}

interface Failure {
  scale: number;
  step: string;
  error: string;
}

async function benchScale(scale: number, opts: BenchOptions, cleanup: Cleanup, failures: Failure[], onTrial: () => Promise<void>): Promise<ScaleResult | undefined> {
  // ~23 MB of PGDATA per scale unit plus 1 GB of WAL; a full copy and the copy-on-write growth need room beside it.
  const sc = await setupScenario({ scale, fsSizeMb: Math.max(6144, Math.ceil((scale * 23 + 1100) * 3.5)), cleanup, say });
  const tree = await treeSize(sc.pgdata);
  const result: ScaleResult = { scale, pgdataBytes: tree.bytes, pgdataFiles: tree.files, databaseBytes: await databaseBytes(sc), initSeconds: sc.init.seconds, trials: [] };
  say(`s=${scale}: PGDATA ${(tree.bytes / 1e9).toFixed(2)} GB in ${tree.files} files, database ${(result.databaseBytes / 1e9).toFixed(2)} GB`);
  const ctx: TrialContext = { sc, load: undefined, opts, scale, say };
  const { fresh, loaded, fragmented } = plan(opts);
  const attempt = async (spec: TrialSpec) => {
    say(`s=${scale}: ${spec.id} (${spec.method}${spec.cowextsize ? `, cowextsize ${spec.cowextsize}` : ''}${spec.idle ? ', idle source' : ''})`);
    try {
      result.trials.push(await runTrial(ctx, spec));
    } catch (err) {
      failures.push({ scale, step: spec.id, error: (err as Error).message });
      say(`  ${spec.id} FAILED: ${(err as Error).message}`);
    }
    await onTrial();
  };
  for (const spec of fresh) await attempt(spec);
  const load = await startLoad(sc);
  ctx.load = load;
  say(`s=${scale}: pgbench -c 4 -j 2 running; 10 s warm-up`);
  await sleep(10_000);
  for (const spec of loaded) await attempt(spec);
  await load.stop();
  ctx.load = undefined;
  await sc.primary.sql('CHECKPOINT');
  for (const spec of fragmented) await attempt(spec);
  return result;
}

async function machine(): Promise<Record<string, unknown>> {
  const version = async (cmd: string, args: string[]) => (await run(cmd, args).catch(() => ({ stdout: '?' }))).stdout.trim().split('\n')[0];
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    postgres: await version('/usr/lib/postgresql/15/bin/postgres', ['--version']),
    xfsprogs: await version('mkfs.xfs', ['-V']),
    coreutils: await version('cp', ['--version']),
    node: process.version,
    loadavgAtStart: loadavg(),
  };
}

async function resultsFile(opts: BenchOptions, suffix = ''): Promise<string> {
  await mkdir(opts.resultsDir, { recursive: true });
  const now = new Date();
  const date = now.toISOString().slice(0, 10);
  const base = join(opts.resultsDir, `${date}${opts.quick ? '-quick' : ''}${suffix}`);
  return existsSync(`${base}.json`) ? `${base}-${now.toISOString().slice(11, 19).replaceAll(':', '')}.json` : `${base}.json`;
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  await ensurePrerequisites(say);
  if (opts.overhead) return mainOverhead(opts);
  const file = await resultsFile(opts);
  const failures: Failure[] = [];
  const scales: ScaleResult[] = [];
  const doc: Record<string, unknown> = {
    startedAt: new Date().toISOString(),
    command: `node dist/bench/bench.js ${process.argv.slice(2).join(' ')}`.trim(),
    machine: await machine(),
    options: opts,
    scales,
    failures,
  };
  const save = async () => {
    doc.finishedAt = new Date().toISOString();
    doc.loadavgAtEnd = loadavg();
    await writeFile(file, JSON.stringify(doc, null, 2) + '\n');
  };
  let cleanup: Cleanup | undefined;
  const stopListening = cleanupOnSignals(() => cleanup, say);
  for (const scale of opts.scales) {
    cleanup = new Cleanup();
    let partial: ScaleResult | undefined;
    try {
      partial = await benchScale(scale, opts, cleanup, failures, async () => {
        await save();
      });
    } catch (err) {
      failures.push({ scale, step: 'setup', error: (err as Error).message });
      say(`s=${scale} FAILED: ${(err as Error).stack ?? (err as Error).message}`);
    }
    if (partial) scales.push(partial);
    say(`s=${scale}: tearing down`);
    for (const problem of await cleanup.run()) failures.push({ scale, step: 'cleanup', error: problem });
    await save();
  }
  stopListening();
  const ts = targets(scales);
  doc.targets = ts;
  doc.seconds = (performance.now() - started) / 1000;
  await save();

  console.log(`\n## Copies of a live PostgreSQL 15 under pgbench load (-c 4 -j 2), XFS reflink loop filesystem\n`);
  console.log(mainTable(scales, opts.beforeS, opts.afterS));
  console.log(`\n## After-cost: the source's ${opts.afterS} s with the copy present, by XFS cowextsize hint\n`);
  console.log(afterCostTable(scales, opts.afterS));
  console.log(`\n## Targets\n\n${targetLines(ts)}\n`);
  for (const s of scales) console.log(`pgbench -i -s ${s.scale}: ${s.initSeconds.toFixed(0)} s`);
  for (const f of failures) console.log(`FAILURE s=${f.scale} ${f.step}: ${f.error}`);
  console.log(`results: ${file}; ${(doc.seconds as number / 60).toFixed(1)} min`);
  return failures.length ? 1 : 0;
}

/** `--overhead N`: the phase breakdown alone. */
async function mainOverhead(opts: BenchOptions): Promise<number> {
  const file = await resultsFile(opts, '-overhead');
  const cleanup = new Cleanup();
  const stopListening = cleanupOnSignals(() => cleanup, say);
  const doc: Record<string, unknown> = {
    startedAt: new Date().toISOString(),
    command: `node dist/bench/bench.js ${process.argv.slice(2).join(' ')}`.trim(),
    machine: await machine(),
    options: opts,
  };
  let failed = false;
  try {
    const result = await runOverhead({ scale: opts.scales[0]!, perDurability: opts.overhead, cleanup, say });
    doc.overhead = result;
    console.log(`\n## Where a clone's time goes: s=${result.scale}, ${(result.pgdataBytes / 1e9).toFixed(2)} GB PGDATA in ${result.pgdataFiles} files, under pgbench -c 4 -j 2\n`);
    console.log(overheadTable(result));
    console.log(`\n${result.verified}`);
  } catch (err) {
    failed = true;
    doc.failure = (err as Error).message;
    say(`overhead FAILED: ${(err as Error).stack ?? (err as Error).message}`);
  }
  for (const problem of await cleanup.run()) {
    failed = true;
    say(`cleanup: ${problem}`);
  }
  stopListening();
  doc.finishedAt = new Date().toISOString();
  doc.seconds = (performance.now() - started) / 1000;
  await writeFile(file, JSON.stringify(doc, null, 2) + '\n');
  console.log(`results: ${file}; ${((doc.seconds as number) / 60).toFixed(1)} min`);
  return failed ? 1 : 0;
}

process.exit(await main().catch((err: Error) => {
  console.error(`bench FAILED: ${err.message}`);
  return 1;
}));
