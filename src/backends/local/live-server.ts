import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface LiveServer {
  pid: number;
  port: number;
  socketDir: string;
}

/**
 * The PostgreSQL server running on a data directory, read from its postmaster.pid
 * (line 1 pid, line 4 port, line 5 socket directory), when that process is alive.
 */
export async function findLiveServer(pgdata: string): Promise<LiveServer | undefined> {
  let text: string;
  try {
    text = await readFile(join(pgdata, 'postmaster.pid'), 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  const socketDir = (lines[4] ?? '').trim();
  if (!Number.isInteger(pid) || pid <= 0 || !port) return undefined;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return undefined;
  }
  return { pid, port, socketDir: socketDir || '/tmp' };
}
