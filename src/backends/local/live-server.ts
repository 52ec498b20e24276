import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import { basename, isAbsolute, join } from 'node:path';
import { failedPrecondition } from '../../csi/errors.js';
import { readUntrustedFile } from '../../volume/untrusted-file.js';
import { readProcStat } from './proc.js';
import type { PinnedDir } from './source.js';

export interface LiveServer {
  pid: number;
  port: number;
  socketDir: string;
}

const numericEntries = async (dir: string) => (await readdir(dir)).filter((e) => /^\d+$/.test(e)).map(Number);
const vanished = (err: unknown) => ['ENOENT', 'ESRCH'].includes((err as NodeJS.ErrnoException).code ?? '');

/** Pids of the processes whose working directory is `dir` (same device and inode; paths prove nothing). */
async function processesWorkingIn(dir: PinnedDir): Promise<{ pids: number[]; uninspectable: number }> {
  const pids: number[] = [];
  let uninspectable = 0;
  for (const pid of await numericEntries('/proc')) {
    try {
      const cwd = await stat(`/proc/${pid}/cwd`, { bigint: true });
      if (cwd.dev === dir.dev && cwd.ino === dir.ino) pids.push(pid);
    } catch (err) {
      if (!vanished(err)) uninspectable++;
    }
  }
  return { pids, uninspectable };
}

async function effectiveUid(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^Uid:\s+\d+\s+(\d+)/m.exec(status)?.[1] ?? -1);
}

/** Whether `pid` holds a listening unix socket bound at `path` (its network namespace's table, its own descriptors). */
async function listensOn(pid: number, path: string): Promise<boolean> {
  const inodes = new Set<string>();
  for (const fd of await numericEntries(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const match = /^socket:\[(\d+)\]$/.exec(target);
    if (match) inodes.add(match[1]!);
  }
  const ACCEPTING = 0x10000; // __SO_ACCEPTCON: a listening socket
  for (const line of (await readFile(`/proc/${pid}/net/unix`, 'utf8')).split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8) continue;
    if (fields.slice(7).join(' ') === path && inodes.has(fields[6]!) && (parseInt(fields[3]!, 16) & ACCEPTING) !== 0) return true;
  }
  return false;
}

/**
 * The PostgreSQL server running on a data directory, found from the kernel, never from what the
 * directory says: the postmaster is the process working in pgdata whose parent is not (backends
 * share its working directory), it runs the postgres binary as the owner of pgdata, and it
 * listens on the socket its postmaster.pid names. undefined when no process works in pgdata
 * (a postmaster.pid there is stale). Any mismatch is refused with FAILED_PRECONDITION.
 */
export async function findLiveServer(pgdata: PinnedDir): Promise<LiveServer | undefined> {
  const where = pgdata.path;
  const { pids, uninspectable } = await processesWorkingIn(pgdata);
  if (pids.length === 0) {
    // Root may inspect every process it could share a data directory with (those it cannot, e.g. a
    // container's init from a parent user namespace, are none of ours); anyone else cannot verify.
    if (uninspectable > 0 && process.getuid?.() !== 0) {
      throw failedPrecondition(`cannot verify that no PostgreSQL server runs on ${where}: ${uninspectable} processes could not be inspected (the driver must run as root)`);
    }
    return undefined;
  }
  // Backends and autovacuum workers come and go: one that exited since the scan is no one.
  const parents = new Map<number, number>();
  for (const pid of pids) {
    const stat = await readProcStat(pid);
    if (stat) parents.set(pid, stat.ppid);
  }
  const present = pids.filter((pid) => parents.has(pid));
  // Other programs may work there too (a populator of ours reads a source through its working
  // directory): the server is the postgres process whose parent is not itself a postgres process
  // working there (backends are the postmaster's children; a shell that started it is not).
  const postgres: number[] = [];
  for (const pid of present) {
    const exe = await readlink(`/proc/${pid}/exe`).catch(() => '');
    if (basename(exe) === 'postgres') postgres.push(pid);
  }
  const servers = postgres.filter((pid) => !postgres.includes(parents.get(pid)!));
  if (servers.length === 0) return undefined;
  if (servers.length > 1) {
    throw failedPrecondition(`postgres processes ${servers.join(', ')} work in ${where} independently; expected one PostgreSQL server there`);
  }
  const pid = servers[0]!;
  const uid = await effectiveUid(pid);
  if (uid !== pgdata.uid) {
    throw failedPrecondition(`the server on ${where} (pid ${pid}) runs as uid ${uid}, but ${where} is owned by uid ${pgdata.uid}`);
  }
  const text = await readUntrustedFile(join(where, 'postmaster.pid'), { maxBytes: 4096 }).catch((err: Error) => {
    throw failedPrecondition(`the server on ${where} is pid ${pid}, but its postmaster.pid cannot be read: ${err.message}`);
  });
  if (text === undefined) throw failedPrecondition(`the server on ${where} is pid ${pid}, but ${where} has no postmaster.pid`);
  const lines = text.split('\n');
  const named = lines[0]!.trim();
  if (named !== String(pid)) {
    throw failedPrecondition(`postmaster.pid names pid ${JSON.stringify(named).slice(1, -1)}, but the server running on ${where} is pid ${pid}`);
  }
  const port = Number(lines[3]);
  const socketDir = (lines[4] ?? '').trim();
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw failedPrecondition(`postmaster.pid in ${where} names no valid port`);
  if (!isAbsolute(socketDir)) {
    throw failedPrecondition(`postmaster.pid in ${where} names no absolute unix socket directory; the server must listen on a unix socket`);
  }
  const socket = `${socketDir}/.s.PGSQL.${port}`;
  if (!(await listensOn(pid, socket))) {
    throw failedPrecondition(`postmaster.pid in ${where} names socket ${socket}, but the server running there (pid ${pid}) does not listen on it`);
  }
  return { pid, port, socketDir };
}
