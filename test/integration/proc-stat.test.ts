import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readProcStat, signalGroup, stillRunning } from '../../src/backends/local/proc.js';

// A process names itself (comm is its file name, up to 15 bytes): one called `x) Z 1 1 1 (y`
// must not pass for a zombie whose parent and group are pid 1.
describe('reading /proc/<pid>/stat of a process with a hostile name (real processes)', () => {
  let dir: string;
  let child: ChildProcess & { pid: number };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgr-proc-'));
    const program = join(dir, 'x) Z 1 1 1 (y');
    await copyFile('/bin/sleep', program);
    await chmod(program, 0o755);
    child = spawn(program, ['600'], { detached: true, stdio: 'ignore' }) as ChildProcess & { pid: number };
    await new Promise((r) => setTimeout(r, 100));
  });

  afterAll(async () => {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('reads its real state, parent and group, and a start time that names it', async () => {
    const stat = await readProcStat(child.pid);
    expect(stat).toMatchObject({ pid: child.pid, state: 'S', ppid: process.pid, pgid: child.pid });
    expect(stat!.startTime).toBeGreaterThan(0);
    expect(await stillRunning({ pid: child.pid, startTime: stat!.startTime })).toBe(true);
    expect(await stillRunning({ pid: child.pid, startTime: stat!.startTime + 1 })).toBe(false);
  });

  it('signals its group only under the start time it was recorded with', async () => {
    const stat = (await readProcStat(child.pid))!;
    expect(await signalGroup({ pid: child.pid, startTime: stat.startTime + 1 }, 'SIGKILL')).toBe(false);
    expect(await stillRunning({ pid: child.pid, startTime: stat.startTime })).toBe(true);
    expect(await signalGroup({ pid: child.pid, startTime: stat.startTime }, 'SIGCONT')).toBe(true);
  });
});
