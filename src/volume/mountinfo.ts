import { readFile } from 'node:fs/promises';
import { isUnder } from './paths.js';

export interface MountEntry {
  majorMinor: string;
  /** The mounted directory, relative to the root of its filesystem. */
  root: string;
  mountPoint: string;
  options: string[];
}

// /proc/self/mountinfo escapes space, tab, newline and backslash as octal.
const unescape = (field: string) => field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));

export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields.length < 6) continue;
    entries.push({
      majorMinor: fields[2]!,
      root: unescape(fields[3]!),
      mountPoint: unescape(fields[4]!),
      options: fields[5]!.split(','),
    });
  }
  return entries;
}

/** This process's mount table, or another process's (`/proc/1/mountinfo`: the host's, seen from a hostPID pod). */
export async function readMounts(file = '/proc/self/mountinfo'): Promise<MountEntry[]> {
  return parseMountInfo(await readFile(file, 'utf8'));
}

/** The filesystem-relative location of an absolute real path: which device, and where on it. */
export function locate(path: string, mounts: MountEntry[]): { majorMinor: string; root: string } | undefined {
  let best: MountEntry | undefined;
  for (const m of mounts) {
    if (isUnder(path, m.mountPoint) && (!best || m.mountPoint.length >= best.mountPoint.length)) best = m;
  }
  if (!best) return undefined;
  const rest = best.mountPoint === '/' ? path : path.slice(best.mountPoint.length);
  const root = `${best.root.replace(/\/$/, '')}${rest}` || '/';
  return { majorMinor: best.majorMinor, root };
}

/**
 * Mounts that would make removing `path` unsafe: the directory (or something inside it) shown
 * somewhere else, e.g. bind mounts into pods, and any filesystem mounted inside it.
 */
export function mountsShowing(path: string, mounts: MountEntry[]): MountEntry[] {
  const where = locate(path, mounts);
  const shown = where ? mounts.filter((m) => m.majorMinor === where.majorMinor && isUnder(m.root, where.root) && m.mountPoint !== path) : [];
  const inside = mounts.filter((m) => isUnder(m.mountPoint, path) && !shown.includes(m));
  return [...shown, ...inside];
}

/** The mount whose mount point is exactly `target` (the last one wins, as the kernel shows it). */
export function mountAt(target: string, mounts: MountEntry[]): MountEntry | undefined {
  return mounts.filter((m) => m.mountPoint === target).pop();
}

/** Whether the mount at `target` is a bind mount of exactly the directory `source`. */
export function isBindOf(target: string, source: string, mounts: MountEntry[]): boolean {
  const entry = mountAt(target, mounts);
  const where = locate(source, mounts);
  return !!entry && !!where && entry.majorMinor === where.majorMinor && entry.root === where.root;
}
