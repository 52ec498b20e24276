import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/** What /proc/<pid>/stat says of a process. */
export interface ProcStat {
  pid: number;
  /** R, S, D, Z (zombie: exited, not reaped yet), ... */
  state: string;
  ppid: number;
  pgid: number;
  /** Field 22: start time in clock ticks after boot; with the pid, it names one process for the life of the machine. */
  startTime: number;
}

/** A process as recorded: pid and start time. */
export interface ProcessIdentity {
  pid: number;
  startTime: number;
}

export function parseProcStat(pid: number, text: string): ProcStat {
  // comm (field 2) is in parentheses and may itself hold spaces and parentheses: split after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { pid, state: fields[0]!, ppid: Number(fields[1]), pgid: Number(fields[2]), startTime: Number(fields[19]) };
}

const gone = (err: unknown) => ['ENOENT', 'ESRCH'].includes((err as NodeJS.ErrnoException).code ?? '');

export async function readProcStat(pid: number): Promise<ProcStat | undefined> {
  try {
    return parseProcStat(pid, await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch (err) {
    if (gone(err)) return undefined;
    throw err;
  }
}

/** Synchronous, for right after spawn: before the event loop turns, our child cannot have been reaped. */
export function readProcStatSync(pid: number): ProcStat {
  return parseProcStat(pid, readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/** Whether the recorded process still runs: same pid, same start time, not a zombie. */
export async function stillRunning(recorded: ProcessIdentity): Promise<boolean> {
  const now = await readProcStat(recorded.pid);
  return !!now && now.startTime === recorded.startTime && now.state !== 'Z';
}

/** Sends a signal to the process group the recorded process leads; false when that process is gone (ESRCH is not an error). */
export async function signalGroup(recorded: ProcessIdentity, signal: NodeJS.Signals): Promise<boolean> {
  const now = await readProcStat(recorded.pid);
  if (!now || now.startTime !== recorded.startTime || now.pgid !== recorded.pid) return false;
  try {
    process.kill(-recorded.pid, signal);
    return true;
  } catch (err) {
    if (gone(err)) return false;
    throw err;
  }
}

/** Whether any process is still in process group `pgid` (the group's id is not reused while it has members). */
export function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** SIGKILL to a group observed to exist without a break; ESRCH (it just emptied) is not an error. */
export function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch (err) {
    if (!gone(err)) throw err;
  }
}
