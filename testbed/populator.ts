import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePopulatorFailure, parsePopulatorResult, type PopulatorResult } from '../src/populator/result.js';
import { populatorEnv, type PopulatorOptions } from '../src/populator/env.js';
import { renderPopulatorScript } from '../src/populator/script.js';
import { PG_BIN } from './postgres.js';
import type { OsUser } from './run-as.js';

export interface PopulatorRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time seen by the caller. */
  ms: number;
  result?: PopulatorResult;
  reason?: string;
}

export interface PopulatorProcess {
  pid: number;
  done: Promise<PopulatorRun>;
}

export interface RunPopulatorOptions {
  /** Run as this user (as the local backend does: the source's owner); default: this process's user. */
  user?: OsUser;
  /** Directories put before PostgreSQL's bin directory on PATH (test hooks). */
  pathPrefix?: string[];
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Where the script file is written (readable by every user); default: a new directory in the system temp dir. */
  scriptDir?: string;
}

/** Writes the rendered script to a file every user can read. */
async function writeScript(dir?: string): Promise<string> {
  dir ??= await mkdtemp(join(tmpdir(), 'pgr-populator-'));
  await mkdir(dir, { recursive: true, mode: 0o755 });
  await chmod(dir, 0o755);
  const file = join(dir, 'populate.sh');
  await writeFile(file, renderPopulatorScript(), { mode: 0o644 });
  return file;
}

/** Starts `bash populate.sh` as a child process with the populator's environment (and nothing else of ours). */
export async function startPopulator(opts: PopulatorOptions, run: RunPopulatorOptions = {}): Promise<PopulatorProcess> {
  const file = await writeScript(run.scriptDir);
  const started = Date.now();
  const child = spawn('bash', [file], {
    cwd: '/',
    uid: run.user?.uid,
    gid: run.user?.gid,
    env: {
      PATH: [...(run.pathPrefix ?? []), PG_BIN, '/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin'].join(':'),
      LANG: 'C',
      ...populatorEnv(opts),
      ...run.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), run.timeoutMs ?? 300_000);
  const done = new Promise<PopulatorRun>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const outcome: PopulatorRun = { code, signal, stdout, stderr, ms: Date.now() - started };
      try {
        if (code === 0) outcome.result = parsePopulatorResult(stdout);
        else outcome.reason = parsePopulatorFailure(stderr);
      } catch (err) {
        outcome.reason = (err as Error).message;
      }
      resolve(outcome);
    });
  });
  return { pid: child.pid ?? -1, done };
}

export async function runPopulator(opts: PopulatorOptions, run: RunPopulatorOptions = {}): Promise<PopulatorRun> {
  return (await startPopulator(opts, run)).done;
}

export interface HeldPopulator extends PopulatorProcess {
  /** Lets the held tree copy go on. */
  release(): Promise<void>;
}

/**
 * Starts the populator with a test hook on PATH: a cp that holds the tree copy (inside the backup
 * bracket) until released, so a test can act while the population runs. Resolves once the copy is
 * held. `hookDir` must be writable by the populator's user (the hook leaves a mark there).
 */
export async function startHeldPopulator(opts: PopulatorOptions, hookDir: string, run: RunPopulatorOptions = {}): Promise<HeldPopulator> {
  await writeFile(
    join(hookDir, 'cp'),
    ['#!/bin/bash', 'if [[ "$*" == *"/.pgr-staging/pgdata/"* ]]; then', '  : >"$PGR_TEST_HOLD.started"', '  while [ ! -e "$PGR_TEST_HOLD.release" ]; do sleep 0.1; done', 'fi', 'exec /bin/cp "$@"', ''].join('\n'),
    { mode: 0o755 },
  );
  const hold = join(hookDir, 'hold');
  const proc = await startPopulator(opts, { ...run, pathPrefix: [hookDir, ...(run.pathPrefix ?? [])], env: { ...run.env, PGR_TEST_HOLD: hold } });
  let ended = false;
  void proc.done.then(() => (ended = true));
  for (let i = 0; !existsSync(`${hold}.started`); i++) {
    if (ended) throw new Error(`the populator ended before its copy: ${JSON.stringify(await proc.done)}`);
    if (i > 600) throw new Error('the copy never started');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { ...proc, release: () => writeFile(`${hold}.release`, '') };
}
