import { readdir, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../src/exec.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `df` used bytes of the filesystem holding `path` (blocks - free blocks). */
export async function usedBytes(path: string): Promise<number> {
  const s = await statfs(path);
  return (s.blocks - s.bfree) * s.bsize;
}

/** syncfs(2) of that one filesystem (not a global sync: other work on this machine has its own). */
export async function syncFs(path: string): Promise<void> {
  await run('sync', ['-f', path], { timeoutMs: 600_000 });
}

/** Sync, then used bytes. */
export async function syncedUsed(path: string): Promise<number> {
  await syncFs(path);
  return usedBytes(path);
}

/**
 * Sync and read used bytes until two readings `intervalMs` apart agree within `toleranceBytes`
 * (delayed allocation and XFS's background work settle), or `maxWaitMs` passed: the last reading.
 */
export async function stableUsed(path: string, opts: { intervalMs?: number; maxWaitMs?: number; toleranceBytes?: number } = {}): Promise<number> {
  const deadline = Date.now() + (opts.maxWaitMs ?? 15_000);
  let last = await syncedUsed(path);
  for (;;) {
    await sleep(opts.intervalMs ?? 1000);
    const now = await syncedUsed(path);
    if (Math.abs(now - last) <= (opts.toleranceBytes ?? 0) || Date.now() > deadline) return now;
    last = now;
  }
}

/**
 * Frees what XFS holds in reserve on this filesystem: post-EOF speculative preallocation and
 * unused copy-on-write staging extents (left by writes to shared blocks; XFS frees them itself
 * only after fs.xfs.speculative_prealloc_lifetime, 5 minutes). Makes runs comparable.
 */
export async function freeXfsReservations(mountPoint: string): Promise<void> {
  await run('xfs_spaceman', ['-c', 'prealloc -s', mountPoint], { timeoutMs: 300_000 });
}

/** Returns the freed blocks of a loop-backed filesystem to the image file's host (keeps the sparse image small). */
export async function trim(mountPoint: string): Promise<void> {
  await run('fstrim', [mountPoint], { timeoutMs: 600_000 }).catch(() => undefined);
}

async function filesUnder(dir: string): Promise<{ files: string[]; dirs: string[] }> {
  const files: string[] = [];
  const dirs: string[] = [dir];
  for (let i = 0; i < dirs.length; i++) {
    for (const e of await readdir(dirs[i]!, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) dirs.push(join(dirs[i]!, e.name));
      else if (e.isFile()) files.push(join(dirs[i]!, e.name));
    }
  }
  return { files, dirs };
}

/**
 * Runs `xfs_io [flags] -c <cmd>...` on many paths at once (xfs_io applies each command to every
 * file it opened). A live PGDATA renames and drops files meanwhile: a batch that fails is redone
 * path by path, skipping paths that are gone.
 */
async function xfsIoEach(flags: string[], cmds: string[], paths: string[]): Promise<string> {
  const args = (batch: string[]) => [...flags, ...cmds.flatMap((c) => ['-c', c]), ...batch];
  let out = '';
  for (let i = 0; i < paths.length; i += 200) {
    const batch = paths.slice(i, i + 200);
    const r = await run('xfs_io', args(batch), { timeoutMs: 300_000, okCodes: [1] });
    if (r.code === 0) {
      out += r.stdout;
      continue;
    }
    for (const path of batch) {
      const one = await run('xfs_io', args([path]), { timeoutMs: 60_000, okCodes: [1] });
      if (one.code !== 0 && !/No such file/.test(one.stderr + one.stdout)) throw new Error(`xfs_io ${cmds.join('; ')} ${path}: ${one.stderr.trim()}`);
      out += one.stdout;
    }
  }
  return out;
}

/** Data-fork extents of every regular file under dir (fsxattr.nextents), and the largest per file. */
export async function extentCount(dir: string): Promise<{ total: number; max: number; files: number }> {
  const { files } = await filesUnder(dir);
  const out = await xfsIoEach(['-r'], ['stat'], files);
  const counts = [...out.matchAll(/fsxattr\.nextents = (\d+)/g)].map((m) => Number(m[1]));
  return { total: counts.reduce((a, b) => a + b, 0), max: Math.max(0, ...counts), files: counts.length };
}

/**
 * Sets the XFS copy-on-write extent size hint (bytes; 0 = the default, 32 blocks = 128 KiB) on
 * every directory (inherited by files created later) and every existing file under dir.
 */
export async function setCowExtSize(dir: string, bytes: number): Promise<{ files: number; dirs: number }> {
  const { files, dirs } = await filesUnder(dir);
  await xfsIoEach([], [`cowextsize ${bytes}`], [...dirs, ...files]);
  return { files: files.length, dirs: dirs.length };
}

/** The hint as XFS reports it for one path (bytes; 0 = default). */
export async function cowExtSizeOf(path: string): Promise<number> {
  const r = await run('xfs_io', ['-r', '-c', 'cowextsize', path]);
  return Number(/\[(\d+)\]/.exec(r.stdout)?.[1] ?? NaN);
}

/** Allocated bytes (st_blocks) of every regular file under dir: data, post-EOF preallocation, delalloc. */
export async function allocatedBytes(dir: string): Promise<number> {
  const { files } = await filesUnder(dir);
  let total = 0;
  for (const f of files) total += ((await stat(f).catch(() => undefined))?.blocks ?? 0) * 512;
  return total;
}

/** The filesystem's used bytes and, taken around it, the source's own allocated bytes. */
export interface SpaceSnapshot {
  used: number;
  source: number;
}

/**
 * Sync, then used bytes bracketed by two walks of the source: retried while the source's
 * allocation moved by more than 1 MiB during the reading (a new WAL segment, a preallocation).
 */
export async function spaceSnapshot(mountPoint: string, sourceDir: string): Promise<SpaceSnapshot> {
  await syncFs(mountPoint);
  for (let attempt = 0; ; attempt++) {
    const a = await allocatedBytes(sourceDir);
    const used = await usedBytes(mountPoint);
    const b = await allocatedBytes(sourceDir);
    if (Math.abs(b - a) <= 1 << 20 || attempt >= 5) return { used, source: (a + b) / 2 };
  }
}

/**
 * What a copy added to the filesystem between two snapshots: `raw` is the df delta; `own` takes
 * away what the live source itself allocated or freed meanwhile (checkpoints recycle and remove
 * 16 MB WAL segments, XFS grows and trims preallocation), leaving the copy's own cost.
 */
export function spaceDelta(before: SpaceSnapshot, after: SpaceSnapshot): { raw: number; own: number } {
  const raw = after.used - before.used;
  return { raw, own: raw - (after.source - before.source) };
}
