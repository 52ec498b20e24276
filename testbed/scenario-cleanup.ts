/**
 * Teardown that always runs: steps are registered as things come up and run in reverse order
 * (clones before the source, servers before unmounts, the filesystem last), once, even when a
 * step fails or the process is interrupted.
 */
export class Cleanup {
  private readonly steps: { name: string; fn: () => Promise<unknown> }[] = [];
  private running: Promise<string[]> | undefined;

  /**
   * Registers a step; the returned function removes it again (when the caller cleaned up itself).
   * Once the cleanup has started (an interrupt), nothing new may start: add() throws.
   */
  add(name: string, fn: () => Promise<unknown>): () => void {
    if (this.running) throw new Error(`interrupted: not starting "${name}" while cleaning up`);
    const step = { name, fn };
    this.steps.push(step);
    return () => {
      const i = this.steps.indexOf(step);
      if (i >= 0) this.steps.splice(i, 1);
    };
  }

  /** Runs every step, last registered first; resolves to the failures (never throws). Idempotent. */
  run(): Promise<string[]> {
    this.running ??= (async () => {
      const failures: string[] = [];
      while (this.steps.length > 0) {
        const step = this.steps.pop()!;
        try {
          await step.fn();
        } catch (err) {
          failures.push(`${step.name}: ${(err as Error).message}`);
        }
      }
      return failures;
    })();
    return this.running;
  }
}

/**
 * On SIGINT/SIGTERM/SIGHUP: runs the current cleanup and exits 128+signal. Children in our process
 * group got the terminal's SIGINT too (PostgreSQL does a fast shutdown); the cleanup waits for them.
 */
export function cleanupOnSignals(current: () => Cleanup | undefined, say: (line: string) => void): () => void {
  let interrupted = false;
  const handler = (signal: NodeJS.Signals) => {
    if (interrupted) return say(`${signal} again: still cleaning up, please wait`);
    interrupted = true;
    say(`${signal}: cleaning up`);
    void (current()?.run() ?? Promise.resolve([])).then((failures) => {
      for (const f of failures) say(`cleanup: ${f}`);
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGHUP' ? 1 : 15));
    });
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, handler);
  return () => signals.forEach((s) => process.off(s, handler));
}
