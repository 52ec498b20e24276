import { spawn } from 'node:child_process';
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pgBin, postgresUser, ownedDir, type PgServer } from './postgres.js';

/** TPS and latency of the source's pgbench transactions in one time window. */
export interface WindowStats {
  /** Transactions that completed inside the window, per second of window. */
  tps: number;
  transactions: number;
  /** Longest transaction that overlapped the window (started before its end, ended after its start). */
  maxLatencyMs: number;
  seconds: number;
}

/** One pgbench log file (one per pgbench thread): completion times and latencies, in file order. */
class TxLog {
  offset = 0;
  rest = '';
  n = 0;
  ends = new Float64Array(1 << 16); // epoch ms
  lats = new Float32Array(1 << 16); // ms

  push(endMs: number, latMs: number): void {
    if (this.n === this.ends.length) {
      const ends = new Float64Array(this.n * 2);
      const lats = new Float32Array(this.n * 2);
      ends.set(this.ends);
      lats.set(this.lats);
      this.ends = ends;
      this.lats = lats;
    }
    this.ends[this.n] = endMs;
    this.lats[this.n++] = latMs;
  }

  /** First index whose completion time is >= t (a thread logs in completion order). */
  firstAtOrAfter(t: number): number {
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.ends[mid]! < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  get lastEnd(): number {
    return this.n ? this.ends[this.n - 1]! : 0;
  }
}

// No transaction of ours runs longer than this; bounds the overlap scan.
const LONGEST_TX_MS = 120_000;

/**
 * A TPC-B load (`pgbench -c 4 -j 2`) that runs until stop(), logging every transaction
 * (`-l --log-prefix`) to a directory OUTSIDE the measured filesystem. The logs are read as they
 * grow, so any window's TPS and max latency can be computed exactly afterwards.
 */
export class PgbenchLoad {
  private readonly logs = new Map<string, TxLog>();
  private exit: string | undefined;
  private stderr = '';
  private reading: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout;
  private stopping = false;
  private readonly exited: Promise<void>;

  private constructor(
    private readonly logDir: string,
    private readonly child: ReturnType<typeof spawn>,
  ) {
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr = (this.stderr + d).slice(-4000)));
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exit = signal ? `signal ${signal}` : `exit code ${code}`;
        resolve();
      }),
    );
    this.timer = setInterval(() => void this.read(), 500);
  }

  static async start(server: PgServer, opts: { logDir: string; clients?: number; jobs?: number }): Promise<PgbenchLoad> {
    const pg = postgresUser();
    await ownedDir(opts.logDir);
    const args = ['-n', '-c', String(opts.clients ?? 4), '-j', String(opts.jobs ?? 2), '-T', '86400', '-l', '--log-prefix', join(opts.logDir, 'tx'),
      '-h', server.socketDir, '-p', String(server.port), 'postgres'];
    const child = spawn(pgBin('pgbench'), args, { uid: pg.uid, gid: pg.gid, cwd: '/', env: { PATH: '/usr/bin:/bin', LANG: 'C' }, stdio: ['ignore', 'ignore', 'pipe'] });
    return new PgbenchLoad(opts.logDir, child);
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  private assertAlive(): void {
    if (!this.alive && !this.stopping) throw new Error(`pgbench died (${this.exit}): ${this.stderr.trim()}`);
  }

  read(): Promise<void> {
    this.reading = this.reading.then(() => this.readOnce()).catch(() => undefined);
    return this.reading;
  }

  private async readOnce(): Promise<void> {
    for (const name of await readdir(this.logDir)) {
      if (!name.startsWith('tx.')) continue;
      let log = this.logs.get(name);
      if (!log) this.logs.set(name, (log = new TxLog()));
      const fh = await open(join(this.logDir, name), 'r');
      try {
        const { size } = await fh.stat();
        if (size <= log.offset) continue;
        const buf = Buffer.alloc(size - log.offset);
        const { bytesRead } = await fh.read(buf, 0, buf.length, log.offset);
        log.offset += bytesRead;
        const lines = (log.rest + buf.subarray(0, bytesRead).toString('latin1')).split('\n');
        log.rest = lines.pop() ?? '';
        for (const line of lines) {
          // client_id transaction_no latency_us script_no epoch_s epoch_us (failed transactions have no number)
          const f = line.split(' ');
          const lat = Number(f[2]);
          if (f.length < 6 || !Number.isFinite(lat)) continue;
          log.push(Number(f[4]) * 1000 + Number(f[5]) / 1000, lat / 1000);
        }
      } finally {
        await fh.close();
      }
    }
  }

  /**
   * Waits until every thread's log reaches `t` (pgbench writes its log through a stdio buffer,
   * so the newest lines arrive late); gives up after `maxWaitMs`.
   */
  async caughtUp(t: number, maxWaitMs = 15_000): Promise<void> {
    const deadline = Date.now() + maxWaitMs;
    for (;;) {
      this.assertAlive();
      await this.read();
      const logs = [...this.logs.values()];
      if (logs.length > 0 && logs.every((l) => l.lastEnd >= t)) return;
      if (Date.now() > deadline) return;
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Window statistics over [startMs, endMs) (epoch ms); call caughtUp(endMs) first. */
  window(startMs: number, endMs: number): WindowStats {
    let transactions = 0;
    let maxLatencyMs = 0;
    for (const log of this.logs.values()) {
      for (let i = log.firstAtOrAfter(startMs); i < log.n; i++) {
        const end = log.ends[i]!;
        if (end >= endMs + LONGEST_TX_MS) break;
        if (end < endMs) transactions++;
        if (end - log.lats[i]! < endMs) maxLatencyMs = Math.max(maxLatencyMs, log.lats[i]!);
      }
    }
    const seconds = (endMs - startMs) / 1000;
    return { tps: transactions / seconds, transactions, maxLatencyMs, seconds };
  }

  /** TPS of each whole second from startMs on (for the per-second picture around an event). */
  perSecond(startMs: number, seconds: number): number[] {
    return Array.from({ length: seconds }, (_, i) => Math.round(this.window(startMs + i * 1000, startMs + (i + 1) * 1000).tps));
  }

  /** SIGSTOP / SIGCONT: holds the load for a moment outside any measured window (to settle the filesystem). */
  pause(): void {
    this.assertAlive();
    this.child.kill('SIGSTOP');
  }

  resume(): void {
    this.child.kill('SIGCONT');
  }

  /** Stops pgbench; throws when it had died on its own (the load was not there). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    if (this.stopping) return this.exited;
    this.assertAlive();
    this.stopping = true;
    this.child.kill('SIGTERM');
    await this.exited;
  }
}

/** The before / during / after windows of one operation that ran from t0 to t1 (epoch ms). */
export interface ImpactWindows {
  before: WindowStats;
  /** The operation's own second(s): [t0, max(t1, t0 + 1 s)). */
  during: WindowStats;
  after: WindowStats;
  /** TPS per second from 3 s before t0 to the end of the after window. */
  perSecond: number[];
}

export interface ImpactOptions {
  t0: number;
  t1: number;
  /** The before window ends here (default t0): end it before anything the measurement itself does, like a sync. */
  beforeEnd?: number;
  beforeS: number;
  afterS: number;
}

/** Waits for the end of the after window, then computes the three windows. */
export async function impact(load: PgbenchLoad, o: ImpactOptions): Promise<ImpactWindows> {
  const duringEnd = Math.max(o.t1, o.t0 + 1000);
  const afterEnd = duringEnd + o.afterS * 1000;
  const wait = afterEnd - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  await load.caughtUp(afterEnd);
  const beforeEnd = o.beforeEnd ?? o.t0;
  return {
    before: load.window(beforeEnd - o.beforeS * 1000, beforeEnd),
    during: load.window(o.t0, duringEnd),
    after: load.window(duringEnd, afterEnd),
    perSecond: load.perSecond(o.t0 - 3000, Math.ceil((afterEnd - o.t0) / 1000) + 3),
  };
}
