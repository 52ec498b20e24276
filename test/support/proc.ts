import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Field 22 of /proc/<pid>/stat: the process's start time in clock ticks since boot. */
export function startTimeOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
}

export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A `sleep` that stands for some other tenant's process; `ownGroup`: leader of its own process group. */
export function spawnBystander(ownGroup: boolean): ChildProcess & { pid: number } {
  const child = spawn('sleep', ['600'], { detached: ownGroup, stdio: 'ignore' });
  if (!child.pid) throw new Error('could not start sleep');
  return child as ChildProcess & { pid: number };
}
