import type { TrialResult } from './trial.js';

export interface ScaleResult {
  scale: number;
  pgdataBytes: number;
  pgdataFiles: number;
  databaseBytes: number;
  initSeconds: number;
  trials: TrialResult[];
}

const f2 = (x: number) => x.toFixed(2);
const mb = (b: number) => (Math.abs(b) >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : `${(b / 1e6).toFixed(1)} MB`);
const tps = (x: number) => x.toFixed(0);
const ms = (x: number) => x.toFixed(0);
const kib = (b: number | null) => (!b ? 'default (128 KiB)' : `${b / 1024} KiB`);
const pct = (a: number, b: number) => `${a >= b ? '+' : '−'}${Math.abs((a / b - 1) * 100).toFixed(0)} %`;

function rowLabel(t: TrialResult): string {
  if (t.method === 'none') return t.label;
  const state = t.id.startsWith('idle-fresh') ? ', idle fresh source' : t.id.startsWith('idle-fragmented') ? ', idle fragmented source' : '';
  if (t.method !== 'csi-clone') return `${t.label}${state}`;
  if (t.id === 'first') return '**our clone (CSI)**, first under load';
  if (t.cowextsize) return `our clone (CSI), cowextsize ${t.cowextsize / 1024} KiB`;
  return `our clone (CSI)${state || ', repeat under load'}`;
}

const windows = (t: TrialResult, pick: (w: NonNullable<TrialResult['load']>) => string) => (t.load ? pick(t.load) : 'no load');

/** The side-by-side table: every copy of each scale, idle and under the same load. */
export function mainTable(scales: ScaleResult[], beforeS: number, afterS: number): string {
  const head = [
    `| size | method | time (s) | of which checkpoint (s) | extra space at creation | source TPS before / during / ${afterS} s after | max latency before / during / after (ms) | source extents before | verified |`,
    '|---|---|---|---|---|---|---|---|---|',
  ];
  const rows: string[] = [];
  for (const s of scales) {
    const size = `s=${s.scale}, ${(s.pgdataBytes / 1e9).toFixed(1)} GB`;
    for (const t of s.trials.filter((t) => !t.cowextsize)) {
      const time = t.method === 'none' ? '–' : t.id === 'first' ? `**${f2(t.seconds)}**` : f2(t.seconds);
      const space = t.method === 'none' ? '–' : `${mb(t.space.creationOwn)} (df ${mb(t.space.creationRaw)})`;
      rows.push(
        `| ${size} | ${rowLabel(t)} | ${time} | ${t.populator ? f2(t.populator.checkpointSeconds) : '–'} | ${space} | ${windows(t, (w) => `${tps(w.before.tps)} / ${tps(w.during.tps)} / ${tps(w.after.tps)}`)} | ${windows(t, (w) => `${ms(w.before.maxLatencyMs)} / ${ms(w.during.maxLatencyMs)} / ${ms(w.after.maxLatencyMs)}`)} | ${t.sourceExtents.total} | ${t.verification ? 'yes (invariant, pg_amcheck)' : '–'} |`,
      );
    }
  }
  const notes = [
    '',
    '- time: ours = first CreateVolume call → ready volume (driver + populator: checkpoint, reflink copy, WAL re-copy, syncfs); cp = cp + syncfs; pg_basebackup = its whole run (it fsyncs).',
    '- extra space at creation = df used after − before (both synced), less what the live source allocated or freed meanwhile (WAL recycling at checkpoints, preallocation); the raw df delta in parentheses. Idle rows: load stopped, df waited until stable.',
    `- TPS and max latency from pgbench's per-transaction log: before = the ${beforeS} s before the start (ending before the measurement's own sync); during = the copy's own second(s), at least 1 s; after = the ${afterS} s after it, with the copy still present.`,
    "- source extents = data-fork extents of the source's files before the copy: every write to a block shared with a reflink copy splits an extent, and a fragmented source clones slower.",
  ];
  return [...head, ...rows, ...notes].join('\n');
}

/** The after-cost: what the source pays while a copy shares (or does not share) its blocks, by cowextsize hint. */
export function afterCostTable(scales: ScaleResult[], afterS: number): string {
  const head = [
    `| size | copy | cowextsize on source | copy time (s) | TPS before → ${afterS} s after | TPS change | max latency after (ms) | space growth in ${afterS} s | source extents before → after |`,
    '|---|---|---|---|---|---|---|---|---|',
  ];
  const rows: string[] = [];
  for (const s of scales) {
    for (const t of s.trials.filter((t) => t.load)) {
      const w = t.load!;
      const shares = t.method === 'csi-clone' || t.method === 'cp-reflink';
      const copy = t.method === 'pg_basebackup' || t.method === 'cp-full' ? `${t.label} (shares nothing)` : rowLabel(t).replace(/\*\*/g, '');
      rows.push(
        `| s=${s.scale} | ${copy} | ${shares ? kib(t.cowextsize) : '–'} | ${t.method === 'none' ? '–' : f2(t.seconds)} | ${tps(w.before.tps)} → ${tps(w.after.tps)} | ${pct(w.after.tps, w.before.tps)} | ${ms(w.after.maxLatencyMs)} | ${t.space.growthAfter === null ? '–' : mb(t.space.growthAfter)} | ${t.sourceExtents.total} → ${t.sourceExtents.after ?? '?'} |`,
      );
    }
  }
  const notes = [
    '',
    `- space growth = df used at the end of the ${afterS} s minus right after the copy: copy-on-write of the source's writes to shared blocks (XFS stages a cowextsize-sized extent per write), plus the source's own growth (see the control row).`,
    '- before each copy the load is paused for a moment, the filesystem synced and XFS made to return unused staging extents (xfs_spaceman prealloc), so no copy inherits the previous one\'s reservations.',
  ];
  return [...head, ...rows, ...notes].join('\n');
}

export interface Target {
  name: string;
  pass: boolean | null;
  detail: string;
}

const first = (s: ScaleResult) => s.trials.find((t) => t.id === 'first');

/** The four targets, each PASS / FAIL / n/a with the numbers behind it. */
export function targets(scales: ScaleResult[]): Target[] {
  const near = (gb: number) => scales.reduce<ScaleResult | undefined>((best, s) => (!best || Math.abs(s.pgdataBytes / 1e9 - gb) < Math.abs(best.pgdataBytes / 1e9 - gb) ? s : best), undefined);
  const small = near(3.5);
  const big = near(10.5);
  const out: Target[] = [];
  const sf = small && first(small);
  out.push(
    sf && small && Math.abs(small.pgdataBytes / 1e9 - 3.5) < 1.5
      ? { name: 'clone of the ~3.5 GB database end to end ≤ 2 s', pass: sf.seconds <= 2, detail: `${f2(sf.seconds)} s (s=${small.scale}, checkpoint ${f2(sf.populator!.checkpointSeconds)} s)` }
      : { name: 'clone of the ~3.5 GB database end to end ≤ 2 s', pass: null, detail: 'no ~3.5 GB run' },
  );
  const bf = big && first(big);
  out.push(
    sf && bf && big !== small
      ? { name: '10 GB clone time ≤ 1.3 × the 3.5 GB time', pass: bf.seconds <= 1.3 * sf.seconds, detail: `${f2(bf.seconds)} s / ${f2(sf.seconds)} s = ${(bf.seconds / sf.seconds).toFixed(2)}×` }
      : { name: '10 GB clone time ≤ 1.3 × the 3.5 GB time', pass: null, detail: 'needs two sizes' },
  );
  const ratios = scales.map((s) => {
    const ours = first(s);
    const bb = s.trials.find((t) => t.method === 'pg_basebackup' && !t.idle);
    return ours && bb ? { scale: s.scale, ratio: bb.seconds / ours.seconds, ours: ours.seconds, bb: bb.seconds } : undefined;
  });
  out.push({
    name: '≥ 10× faster than pg_basebackup under load',
    pass: ratios.every((r) => r && r.ratio >= 10),
    detail: ratios.map((r) => (r ? `s=${r.scale}: ${f2(r.bb)} s / ${f2(r.ours)} s = ${r.ratio.toFixed(1)}×` : 'missing')).join('; '),
  });
  const spaces = scales.flatMap((s) => s.trials.filter((t) => t.id === 'first' || t.id === 'idle-fresh').map((t) => ({ s, t })));
  out.push({
    name: '≤ 1 MB extra space at creation',
    pass: spaces.length > 0 && spaces.every(({ t }) => t.space.creationOwn <= 1e6),
    detail: spaces.map(({ s, t }) => `s=${s.scale} ${t.idle ? 'idle, fresh source' : 'first under load'}: ${mb(t.space.creationOwn)} (df ${mb(t.space.creationRaw)})`).join('; '),
  });
  return out;
}

export const targetLines = (ts: Target[]) => ts.map((t) => `- ${t.pass === null ? 'n/a ' : t.pass ? 'PASS' : 'FAIL'} ${t.name}: ${t.detail}`).join('\n');
