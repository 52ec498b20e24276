/**
 * `npm run bench -- --overhead N`: where a clone's time goes, per clone: the checkpoint forced by
 * pg_backup_start, the copy, the WAL step, and everything else (the populator's own remainder
 * and the driver's share around it). N clones made durable by fsync of what they wrote alternate
 * with N made durable the old way (syncfs of the whole filesystem, the control), one run, one load.
 */
import type { Cleanup } from '../testbed/scenario-cleanup.js';
import { cloneViaCsi, dropClone, setupScenario, startLoad, treeSize, verifyClone, type Clone } from '../testbed/scenario.js';

export type Durability = 'fsync' | 'syncfs';

export interface OverheadClone {
  n: number;
  durability: Durability;
  endToEnd: number;
  checkpoint: number;
  copy: number;
  wal: number;
  /** The populator's own clock less checkpoint, copy and WAL. */
  populatorOther: number;
  /** First CreateVolume to ready, less the populator's own clock. */
  driverOther: number;
  other: number;
  calls: number;
}

export interface OverheadRun {
  scale: number;
  pgdataBytes: number;
  pgdataFiles: number;
  clones: OverheadClone[];
  verified: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PARAMETERS: Record<Durability, Record<string, string>> = { fsync: {}, syncfs: { 'standalone.durability': 'syncfs' } };

function phases(n: number, durability: Durability, clone: Clone): OverheadClone {
  const r = clone.report;
  const populatorOther = r.seconds - r.checkpointSeconds - r.copySeconds - r.walSeconds;
  const driverOther = clone.endToEndSeconds - r.seconds;
  return {
    n,
    durability,
    endToEnd: clone.endToEndSeconds,
    checkpoint: r.checkpointSeconds,
    copy: r.copySeconds,
    wal: r.walSeconds,
    populatorOther,
    driverOther,
    other: populatorOther + driverOther,
    calls: clone.calls,
  };
}

export async function runOverhead(opts: { scale: number; perDurability: number; cleanup: Cleanup; say: (line: string) => void }): Promise<OverheadRun> {
  const { scale, cleanup, say } = opts;
  const sc = await setupScenario({ scale, fsSizeMb: Math.max(4096, Math.ceil((scale * 23 + 1100) * 2)), cleanup, say });
  const tree = await treeSize(sc.pgdata);
  const load = await startLoad(sc);
  say(`s=${scale}: PGDATA ${(tree.bytes / 1e9).toFixed(2)} GB in ${tree.files} files; pgbench -c 4 -j 2 running; 5 s warm-up`);
  await sleep(5_000);
  const clones: OverheadClone[] = [];
  let verified = 'not verified';
  try {
    for (let i = 0; i < 2 * opts.perDurability; i++) {
      // Interleaved, so that the load's drift and the source's aging weigh on both alike.
      const durability: Durability = i % 2 === 0 ? 'fsync' : 'syncfs';
      const clone = await cloneViaCsi(sc, `overhead-${i + 1}`, PARAMETERS[durability]);
      const row = phases(i + 1, durability, clone);
      clones.push(row);
      say(`clone ${row.n} (${durability}): ${row.endToEnd.toFixed(3)} s, other ${row.other.toFixed(3)} s`);
      if (i === 0) {
        const v = await verifyClone(sc, clone.volume);
        verified = `clone 1: pgbench invariant and ${v.amcheck} passed`;
      }
      await dropClone(sc, clone);
      await sleep(2_000);
    }
  } finally {
    await load.stop();
  }
  return { scale, pgdataBytes: tree.bytes, pgdataFiles: tree.files, clones, verified };
}

const s3 = (x: number) => x.toFixed(3);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Per clone: the phase split; then the medians by durability path, "other" side by side. */
export function overheadTable(run: OverheadRun): string {
  const lines = [
    '| clone | durability | end to end (s) | checkpoint | copy | WAL | other: populator | other: driver | **other** |',
    '|---|---|---|---|---|---|---|---|---|',
    ...run.clones.map(
      (c) =>
        `| ${c.n} | ${c.durability === 'fsync' ? 'fsync of the clone' : 'syncfs (old, control)'} | ${s3(c.endToEnd)} | ${s3(c.checkpoint)} | ${s3(c.copy)} | ${s3(c.wal)} | ${s3(c.populatorOther)} | ${s3(c.driverOther)} | **${s3(c.other)}** |`,
    ),
    '',
    '| durability | clones | median end to end (s) | median checkpoint + copy + WAL (s) | median other (s) |',
    '|---|---|---|---|---|',
  ];
  for (const d of ['fsync', 'syncfs'] as const) {
    const cs = run.clones.filter((c) => c.durability === d);
    lines.push(`| ${d} | ${cs.length} | ${s3(median(cs.map((c) => c.endToEnd)))} | ${s3(median(cs.map((c) => c.checkpoint + c.copy + c.wal)))} | ${s3(median(cs.map((c) => c.other)))} |`);
  }
  return lines.join('\n');
}
