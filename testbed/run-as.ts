import { readFileSync } from 'node:fs';
import { run, type RunOptions, type RunResult } from '../src/exec.js';

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

/** An account from /etc/passwd (e.g. `postgres`, created by the postgresql-15 package). */
export function osUser(name: string): OsUser {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name) return { name, uid: Number(uid), gid: Number(gid) };
  }
  throw new Error(`no user ${name} in /etc/passwd`);
}

/** A short command as another user (runuser keeps the argument array; cwd `/` so any user can enter it). */
export function runAs(user: OsUser, cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return run('runuser', ['-u', user.name, '--', cmd, ...args], { timeoutMs: 120_000, cwd: '/', ...opts });
}
