// Long-running helper processes of the e2e suites (csi-provisioner, our controller and node
// plugin): spawned with an argument array, their output kept (tail on failure), stopped by pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';

export interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  output(): string;
  tail(lines?: number): string;
  /** Sends `signal` (SIGTERM by default) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function startProc(name: string, program: string, args: string[], opts: { env?: NodeJS.ProcessEnv; logFile: string }): Proc {
  const child = spawn(program, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const file = createWriteStream(opts.logFile, { flags: 'a' });
  let output = '';
  const keep = (d: Buffer) => {
    file.write(d);
    output = (output + d.toString()).slice(-400_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => {
    file.end();
    resolve();
  }));
  if (!child.pid) throw new Error(`${name} did not start`);
  return {
    name,
    child,
    pid: child.pid,
    output: () => output,
    tail: (lines = 40) => output.trim().split('\n').slice(-lines).join('\n'),
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 15_000)))]);
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** Waits until `socketPath` exists and the process printed `ready` (our driver logs `"serving"`). */
export async function waitForSocket(proc: Proc, socketPath: string, ready = '"serving"', timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(existsSync(socketPath) && proc.output().includes(ready))) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`${proc.name} exited (${proc.child.exitCode ?? proc.child.signalCode}):\n${proc.tail()}`);
    if (Date.now() > deadline) throw new Error(`${proc.name} is not serving ${socketPath} after ${timeoutMs} ms:\n${proc.tail()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
