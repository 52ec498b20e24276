import { loadavg } from 'node:os';
import type { BenchOptions } from './options.js';
import { METHOD_LABEL, runMethod, type Method } from './methods.js';
import { impact, type ImpactWindows, type PgbenchLoad } from '../testbed/scenario-load.js';
import { extentCount, freeXfsReservations, setCowExtSize, spaceDelta, spaceSnapshot, stableUsed, syncedUsed, trim } from '../testbed/scenario-space.js';
import { verifyClone, type CloneReport, type Scenario, type Verification } from '../testbed/scenario.js';

export interface TrialSpec {
  id: string;
  method: Method;
  /** Set this XFS cowextsize hint (bytes, 0 = default) on the source tree before the copy. */
  cowextsize?: number;
  /** With the load stopped and the filesystem settled: the copy's own space, exactly. */
  idle?: boolean;
  /** Start the clone and check it (invariant, pg_amcheck). */
  verify?: boolean;
  note?: string;
}

export interface TrialResult {
  scale: number;
  id: string;
  method: Method;
  label: string;
  cowextsize: number | null;
  idle: boolean;
  /** 1-minute load average when the trial started (other work shares the machine's cores). */
  loadavg: number;
  /** Ours: first CreateVolume → ready. cp: command + syncfs. pg_basebackup: its own run (it fsyncs). */
  seconds: number;
  commandSeconds: number;
  /** Ours only: what the populator reported (its own clock) and the driver's share around it. */
  populator?: CloneReport;
  driverSeconds?: number;
  calls?: number;
  /** Data-fork extents of the source's files just before the copy (a fragmented source clones slower). */
  sourceExtents: { total: number; max: number; after: number | null };
  /** Bytes XFS gave back when the filesystem was settled before this trial (staging extents, preallocation). */
  freedBySettle: number;
  space: {
    /** df used after the copy (synced) minus before. */
    creationRaw: number;
    /** The same less what the source itself allocated or freed meanwhile. */
    creationOwn: number;
    /** df growth from creation to the end of the after window (copy-on-write of the source's writes, plus its own growth). */
    growthAfter: number | null;
  };
  load: ImpactWindows | null;
  verification?: Verification;
  note?: string;
}

export interface TrialContext {
  sc: Scenario;
  load: PgbenchLoad | undefined;
  opts: BenchOptions;
  scale: number;
  say: (line: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Between copies: the load is held for a moment (SIGSTOP) so that a sync leaves the source's files
 * clean and XFS gives back the copy-on-write staging extents of earlier copies (it skips files
 * with dirty pages); then the load runs `settleS` to recover before the before window starts.
 */
async function settle(ctx: TrialContext): Promise<number> {
  const mnt = ctx.sc.fs.mountPoint;
  ctx.load?.pause();
  try {
    const used = await syncedUsed(mnt);
    await freeXfsReservations(mnt);
    return used - (await syncedUsed(mnt));
  } finally {
    ctx.load?.resume();
  }
}

export async function runTrial(ctx: TrialContext, spec: TrialSpec): Promise<TrialResult> {
  const { sc, load, opts, say } = ctx;
  const mnt = sc.fs.mountPoint;
  const machineLoad = loadavg()[0]!;
  if (spec.cowextsize !== undefined) {
    const n = await setCowExtSize(sc.pgdata, spec.cowextsize);
    say(`  cowextsize ${spec.cowextsize || 'default'} set on ${n.dirs} directories and ${n.files} files of the source`);
  }
  const freedBySettle = await settle(ctx);
  const extentsBefore = await extentCount(sc.pgdata);
  if (load) await sleep((opts.settleS + opts.beforeS) * 1000);
  else await stableUsed(mnt, { maxWaitMs: 30_000 });
  const beforeEnd = Date.now();
  const before = await spaceSnapshot(mnt, sc.pgdata);

  const copy = await runMethod(sc, spec.method, `${spec.id}-${ctx.scale}`);
  if (!load) await stableUsed(mnt, { maxWaitMs: 30_000 });
  const created = await spaceSnapshot(mnt, sc.pgdata);
  const space = spaceDelta(before, created);
  const r = copy.clone?.report;
  say(`  ${spec.id}: ${copy.seconds.toFixed(2)} s${r ? ` (checkpoint ${r.checkpointSeconds.toFixed(2)} s, copy ${r.copySeconds.toFixed(2)} s, WAL ${r.walSeconds.toFixed(2)} s)` : ''}; extra space ${(space.own / 1e6).toFixed(1)} MB (df ${(space.raw / 1e6).toFixed(1)} MB); source extents ${extentsBefore.total}`);

  let windows: ImpactWindows | null = null;
  let growthAfter: number | null = null;
  let extentsAfter: number | null = null;
  if (load) {
    const afterEnd = Math.max(copy.t1, copy.t0 + 1000) + opts.afterS * 1000;
    await sleep(Math.max(0, afterEnd - Date.now()));
    growthAfter = (await syncedUsed(mnt)) - created.used;
    extentsAfter = (await extentCount(sc.pgdata)).total;
    windows = await impact(load, { t0: copy.t0, t1: copy.t1, beforeEnd, beforeS: opts.beforeS, afterS: opts.afterS });
    say(`     TPS ${windows.before.tps.toFixed(0)} → ${windows.during.tps.toFixed(0)} → ${windows.after.tps.toFixed(0)}, max latency during ${windows.during.maxLatencyMs.toFixed(0)} ms; +${(growthAfter / 1e6).toFixed(0)} MB and ${extentsAfter} source extents after ${opts.afterS} s`);
  }
  let verification: Verification | undefined;
  if (spec.verify && copy.clone) {
    verification = await verifyClone(sc, copy.clone.volume);
    say(`     clone verified: started in ${verification.startSeconds.toFixed(2)} s, pgbench invariant holds, ${verification.amcheck} clean (${verification.amcheckSeconds.toFixed(1)} s)`);
  }
  await copy.remove();
  if (spec.method === 'cp-full' || spec.method === 'pg_basebackup') await trim(mnt);
  return {
    scale: ctx.scale,
    id: spec.id,
    method: spec.method,
    label: METHOD_LABEL[spec.method],
    cowextsize: spec.cowextsize ?? null,
    idle: !!spec.idle,
    loadavg: machineLoad,
    seconds: copy.seconds,
    commandSeconds: copy.commandSeconds,
    populator: r,
    driverSeconds: r ? copy.seconds - r.seconds : undefined,
    calls: copy.clone?.calls,
    sourceExtents: { total: extentsBefore.total, max: extentsBefore.max, after: extentsAfter },
    freedBySettle,
    space: { creationRaw: space.raw, creationOwn: space.own, growthAfter },
    load: windows,
    verification,
    note: [spec.note, copy.note].filter(Boolean).join('; ') || undefined,
  };
}
