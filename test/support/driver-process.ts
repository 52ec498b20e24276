import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));

export interface DriverProcess {
  child: ChildProcess;
  socketPath: string;
  logs(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `pg-reflinker <args>` as a real process and waits for its socket. */
export async function startDriverProcess(args: string[], socketPath: string, env: NodeJS.ProcessEnv = {}): Promise<DriverProcess> {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 15_000;
  while (!(existsSync(socketPath) && output.includes('"serving"'))) {
    if (child.exitCode !== null) throw new Error(`driver exited with ${child.exitCode}: ${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`driver did not start serving ${socketPath}: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    socketPath,
    logs: () => output,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}
