import { spawn } from 'node:child_process';
import { chmod, chown, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { failedPrecondition, internal } from '../../csi/errors.js';
import type { CloneState, RecordedVolume, SourceVolume, VolumeSpec } from '../../controller/backend.js';
import { cloneContext, failureError } from '../../controller/populator/outcome.js';
import { libpqConninfo } from '../../controller/populator/conninfo.js';
import { parsePopulatorFailure, parsePopulatorResult } from '../../controller/populator/result.js';
import { populatorEnv, renderPopulatorScript } from '../../controller/populator/script.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { PGDATA, STATE_DIR, pathKind, volumePath } from '../../volume/paths.js';
import { findLiveServer } from './live-server.js';

export interface LocalPopulatorOptions {
  root: string;
  log: Logger;
  metrics: Metrics;
  waitMs: number;
}

type JobStatus =
  | { kind: 'none' }
  | { kind: 'running'; pid: number; startedAt: number }
  | { kind: 'exited'; code: number }
  | { kind: 'vanished' };

interface JobSpec extends RecordedVolume {
  mode: 'online' | 'plain';
  startedAt: number;
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};
const readText = (path: string) => readFile(path, 'utf8').catch(() => '');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** PATH for the script: the psql of the source's major version first, when that is installed where Debian puts it. */
async function pathFor(pgdata: string | undefined): Promise<string> {
  const base = process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin';
  const major = pgdata ? (await readText(join(pgdata, 'PG_VERSION'))).trim() : '';
  const bin = `/usr/lib/postgresql/${major}/bin`;
  return /^\d+$/.test(major) && (await pathKind(bin)) === 'directory' ? `${bin}:${base}` : base;
}

/**
 * Runs the populator script as a detached child process per clone. Its state lives on disk in
 * `<root>/.pg-reflinker/jobs/<dir>/` (spec, pid, stdout, stderr, exit code), so a restarted
 * driver picks up where the last one stopped: one population per volume, ever.
 */
export class LocalPopulator {
  /** Exits of the children this process started; a restarted driver falls back to polling the files. */
  private readonly exits = new Map<string, Promise<void>>();

  constructor(private readonly opts: LocalPopulatorOptions) {}

  private jobDir(dir: string): string {
    return join(this.opts.root, STATE_DIR, 'jobs', dir);
  }

  async pendingRecord(dir: string): Promise<RecordedVolume | undefined> {
    const text = await readText(join(this.jobDir(dir), 'spec.json'));
    return text ? (JSON.parse(text) as JobSpec) : undefined;
  }

  private async status(dir: string): Promise<JobStatus> {
    const jd = this.jobDir(dir);
    const rc = await readText(join(jd, 'rc'));
    if (rc.trim()) return { kind: 'exited', code: Number(rc.trim()) };
    const pid = Number(await readText(join(jd, 'pid')));
    if (!pid) return (await pathKind(jd)) === 'absent' ? { kind: 'none' } : { kind: 'vanished' };
    if (!isAlive(pid)) {
      // It may have written rc between the two reads.
      const late = await readText(join(jd, 'rc'));
      return late.trim() ? { kind: 'exited', code: Number(late.trim()) } : { kind: 'vanished' };
    }
    const spec = (await this.pendingRecord(dir)) as JobSpec | undefined;
    return { kind: 'running', pid, startedAt: spec?.startedAt ?? Date.now() };
  }

  /** Calls for one volume run one at a time in this process, so two can never both start it. */
  private readonly queues = new Map<string, Promise<unknown>>();

  async ensure(spec: VolumeSpec & { source: SourceVolume }): Promise<CloneState> {
    const dir = spec.ref.dir;
    const previous = this.queues.get(dir) ?? Promise.resolve();
    const mine = previous.catch(() => undefined).then(() => this.ensureSerialized(spec));
    this.queues.set(dir, mine);
    try {
      return await mine;
    } finally {
      if (this.queues.get(dir) === mine) this.queues.delete(dir);
    }
  }

  private async ensureSerialized(spec: VolumeSpec & { source: SourceVolume }): Promise<CloneState> {
    const dir = spec.ref.dir;
    let status = await this.status(dir);
    if (status.kind === 'vanished') {
      this.opts.log.warn('population was interrupted; starting it again', { volume: spec.name });
      await this.cleanUp(dir);
      status = { kind: 'none' };
    }
    if (status.kind === 'none') await this.start(spec);
    const deadline = Date.now() + this.opts.waitMs;
    for (;;) {
      status = await this.status(dir);
      if (status.kind !== 'running' || Date.now() >= deadline) break;
      await Promise.race([this.exits.get(dir) ?? sleep(50), sleep(50)]);
    }
    if (status.kind === 'running') {
      return { phase: 'running', message: `copy running for ${Math.round((Date.now() - status.startedAt) / 1000)} s` };
    }
    const job = (await this.pendingRecord(dir)) as JobSpec;
    const jd = this.jobDir(dir);
    if (status.kind === 'exited' && status.code === 0) {
      const result = parsePopulatorResult(await readText(join(jd, 'stdout')));
      this.opts.metrics.clonesTotal.inc({ result: 'succeeded', mode: job.mode });
      this.opts.metrics.cloneSeconds.observe((Date.now() - job.startedAt) / 1000);
      this.opts.metrics.clonedBytes.inc(result.bytes);
      return { phase: 'ready', context: cloneContext(spec, job.mode, result) };
    }
    const stderr = await readText(join(jd, 'stderr'));
    const reason =
      status.kind === 'exited' || stderr.trim()
        ? parsePopulatorFailure(stderr)
        : 'the population process ended without leaving an exit status';
    this.opts.metrics.clonesTotal.inc({ result: 'failed', mode: job?.mode ?? 'unknown' });
    await this.cleanUp(dir);
    throw failureError(reason);
  }

  private async start(spec: VolumeSpec & { source: SourceVolume }): Promise<void> {
    const { root } = this.opts;
    const sourceDir = volumePath(root, spec.source.ref);
    if ((await pathKind(sourceDir)) !== 'directory') await mkdir(sourceDir, { mode: 0o755 });
    // A pgdata symlink could lead the copy to a database outside the root.
    if ((await pathKind(join(sourceDir, PGDATA))) === 'symlink') {
      throw failedPrecondition(`source volume ${spec.source.ref.volumeId} has a symlink as ${PGDATA}; refusing to follow it out of the volume`);
    }
    const server = await findLiveServer(join(sourceDir, PGDATA));
    const mode = server ? 'online' : 'plain';
    const owner = server ? await stat(join(sourceDir, PGDATA)) : { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    const jd = this.jobDir(spec.ref.dir);
    const volumeDir = volumePath(root, spec.ref);
    // Nothing of this volume is served yet (no record): leftovers of an earlier attempt go.
    await rm(volumeDir, { recursive: true, force: true });
    await mkdir(volumeDir, { mode: 0o700 });
    // The script runs as the source's owner: it must reach its job directory, and nothing else of ours.
    await mkdir(join(root, STATE_DIR, 'jobs'), { recursive: true, mode: 0o711 });
    await chmod(join(root, STATE_DIR), 0o711);
    await chmod(join(root, STATE_DIR, 'jobs'), 0o711);
    await mkdir(jd, { mode: 0o700 });
    await chown(volumeDir, owner.uid, owner.gid);
    await chown(jd, owner.uid, owner.gid);
    const job: JobSpec = {
      name: spec.name,
      volumeId: spec.ref.volumeId,
      capacityBytes: spec.capacityBytes,
      sourceVolumeId: spec.source.ref.volumeId,
      mode,
      startedAt: Date.now(),
    };
    await writeFile(join(jd, 'spec.json'), JSON.stringify(job));
    await writeFile(join(jd, 'populate.sh'), renderPopulatorScript(), { mode: 0o755 });
    const env = populatorEnv({
      mode,
      conninfo: server
        ? libpqConninfo({ host: server.socketDir, port: server.port, dbname: 'postgres', user: spec.parameters['standalone.user'] || 'postgres' })
        : '',
      sourceDir: server ? join(sourceDir, PGDATA) : sourceDir,
      volumeDir,
      label: spec.name,
      uid: owner.uid,
      gid: owner.gid,
      workDir: jd,
    });
    // The wrapper records the exit code atomically; the pid file lets a restarted driver find the process.
    const wrapper = 'bash "$0" >"$1/stdout" 2>"$1/stderr"; echo $? >"$1/rc.tmp" && mv "$1/rc.tmp" "$1/rc"';
    const child = spawn('bash', ['-c', wrapper, join(jd, 'populate.sh'), jd], {
      detached: true,
      stdio: 'ignore',
      cwd: '/',
      uid: owner.uid,
      gid: owner.gid,
      env: { PATH: await pathFor(server ? join(sourceDir, PGDATA) : undefined), LANG: 'C', ...env },
    });
    child.unref();
    this.exits.set(spec.ref.dir, new Promise((resolve) => child.once('exit', () => resolve())));
    await writeFile(join(jd, 'pid'), String(child.pid));
    this.opts.log.info('population started', { volume: spec.name, source: spec.source.ref.volumeId, mode, pid: child.pid });
  }

  /** Stops a running population of this volume, if any, and removes what it left. */
  async cancel(dir: string): Promise<void> {
    const status = await this.status(dir);
    if (status.kind === 'running') {
      try {
        process.kill(-status.pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
      for (let i = 0; i < 100 && isAlive(status.pid); i++) await sleep(50);
      if (isAlive(status.pid)) process.kill(-status.pid, 'SIGKILL');
    }
    if (status.kind !== 'none') await this.cleanUp(dir);
  }

  /** After a failure: the job state and the unpublished volume directory go, so the next call starts clean. */
  private async cleanUp(dir: string): Promise<void> {
    this.exits.delete(dir);
    await rm(volumePath(this.opts.root, { dir }), { recursive: true, force: true });
    await rm(this.jobDir(dir), { recursive: true, force: true });
  }

  /** After success has been recorded elsewhere. */
  async forget(dir: string): Promise<void> {
    this.exits.delete(dir);
    await rm(this.jobDir(dir), { recursive: true, force: true });
  }
}
