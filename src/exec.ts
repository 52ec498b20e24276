import { spawn } from 'node:child_process';

export interface RunOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string;
  /** Accept these exit codes without throwing (0 is always accepted). */
  okCodes?: number[];
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export class RunError extends Error {
  constructor(
    readonly command: string,
    readonly result: RunResult,
    reason: string,
  ) {
    super(`${command}: ${reason}${result.stderr.trim() ? `: ${lastLines(result.stderr)}` : ''}`);
  }
}

const lastLines = (text: string, count = 3): string => text.trim().split('\n').slice(-count).join(' | ');

/** Runs a program with an argument array (never through a shell), capturing output. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const label = [cmd, ...args].join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, opts.timeoutMs)
      : undefined;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => {
      if (timer) clearTimeout(timer);
      reject(new RunError(label, { stdout, stderr, code: -1 }, err.message));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const result = { stdout, stderr, code: code ?? -1 };
      if (timedOut) return reject(new RunError(label, result, `timed out after ${opts.timeoutMs} ms`));
      if (signal) return reject(new RunError(label, result, `killed by ${signal}`));
      if (code === 0 || opts.okCodes?.includes(code ?? -1)) return resolve(result);
      reject(new RunError(label, result, `exit code ${code}`));
    });
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}
