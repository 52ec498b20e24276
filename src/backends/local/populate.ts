import { spawn } from 'node:child_process';
import { chown, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { failedPrecondition, internal } from '../../csi/errors.js';
import type { CloneSpec, CloneState, RecordedVolume, VolumeSpec } from '../../controller/backend.js';
import { failureError } from '../../populator/failure.js';
import { libpqConninfo } from '../../populator/conninfo.js';
import { parsePopulatorFailure, parsePopulatorResult } from '../../populator/result.js';
import { populatorEnv } from '../../populator/env.js';
import { STAGING_DIR } from '../../populator/layout.js';
import { renderPopulatorScript } from '../../populator/script.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { cloneContext } from '../../volume/context.js';
import { pathKind, volumePath } from '../../volume/paths.js';
import { removeVolumeTree } from '../../volume/remove.js';
import { UntrustedFileError, readUntrustedFile } from '../../volume/untrusted-file.js';
import { JobFiles, type JobOutput } from './job-files.js';
import { findLiveServer, type LiveServer } from './live-server.js';
import { populatorUser, type PopulatorUser } from './populator-user.js';
import { assertReachable } from './reachable.js';
import { groupExists, killGroup, readProcStatSync, signalGroup, stillRunning } from './proc.js';
import { assertStillPinned, identityOf, pinSource, type PinnedDir } from './source.js';

export interface LocalPopulatorOptions {
  root: string;
  log: Logger;
  metrics: Metrics;
  waitMs: number;
}

type JobStatus =
  | { kind: 'none' }
  | { kind: 'running'; pid: number; startTime: number; startedAt: number }
  | { kind: 'exited'; code: number }
  | { kind: 'vanished' };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** PATH for the script: the psql of the source's major version first, when that is installed where Debian puts it. */
async function pathFor(pgdata: string | undefined): Promise<string> {
  const base = process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin';
  // PG_VERSION is the tenant's: read as untrusted (a FIFO or a link there must not block or mislead root).
  const major = pgdata ? ((await readUntrustedFile(join(pgdata, 'PG_VERSION'), { maxBytes: 16 }).catch(() => '')) ?? '').trim() : '';
  const bin = `/usr/lib/postgresql/${major}/bin`;
  return /^\d+$/.test(major) && (await pathKind(bin)) === 'directory' ? `${bin}:${base}` : base;
}

/** An untrusted output's text, or the reason it could not be read (never its target's content). */
async function outputOrProblem(job: JobFiles, name: JobOutput): Promise<{ text: string } | { problem: string }> {
  try {
    return { text: await job.readOutput(name) };
  } catch (err) {
    if (err instanceof UntrustedFileError) return { problem: `the population's ${name} is unusable: ${err.message}` };
    throw err;
  }
}

/**
 * Runs the populator script as a detached child process per clone, never as root. Its state lives
 * on disk (see JobFiles), so a restarted driver picks up where the last one stopped: one
 * population per volume, ever. A recorded process counts only while its pid AND start time match.
 */
export class LocalPopulator {
  /** Exits of the children this process started; a restarted driver falls back to polling the files. */
  private readonly exits = new Map<string, Promise<void>>();
  /** Calls for one volume run one at a time in this process, so two can never both start it. */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(private readonly opts: LocalPopulatorOptions) {}

  private job(dir: string): JobFiles {
    return new JobFiles(this.opts.root, dir);
  }

  async pendingRecord(dir: string): Promise<RecordedVolume | undefined> {
    return this.job(dir).readSpec();
  }

  private async status(dir: string): Promise<JobStatus> {
    const job = this.job(dir);
    if (!(await job.exists())) return { kind: 'none' };
    const spec = await job.readSpec();
    const recorded = await job.readProcess();
    if (!spec || !recorded) return { kind: 'vanished' };
    if (await stillRunning(recorded)) return { kind: 'running', ...recorded, startedAt: spec.startedAt };
    // Gone (or its pid now names another process): its exit status, if it left one.
    const rc = await outputOrProblem(job, 'rc');
    if ('text' in rc && /^\d+$/.test(rc.text.trim())) return { kind: 'exited', code: Number(rc.text.trim()) };
    return { kind: 'vanished' };
  }

  private serialized<T>(dir: string, work: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(dir) ?? Promise.resolve();
    const mine = previous.catch(() => undefined).then(work);
    this.queues.set(dir, mine);
    return mine.finally(() => {
      if (this.queues.get(dir) === mine) this.queues.delete(dir);
    });
  }

  async isRunning(dir: string): Promise<boolean> {
    return (await this.status(dir)).kind === 'running';
  }

  ensure(spec: CloneSpec): Promise<CloneState> {
    return this.serialized(spec.ref.dir, () => this.ensureSerialized(spec));
  }

  private async ensureSerialized(spec: CloneSpec): Promise<CloneState> {
    const dir = spec.ref.dir;
    let status = await this.status(dir);
    if (status.kind === 'vanished') {
      this.opts.log.warn('population was interrupted (its process is gone); starting it again', { volume: spec.name });
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
    const job = this.job(dir);
    const jobSpec = await job.readSpec();
    const mode = jobSpec?.mode ?? 'unknown';
    if (status.kind === 'exited' && status.code === 0) {
      const stdout = await outputOrProblem(job, 'stdout');
      let problem: string;
      if ('text' in stdout) {
        try {
          const result = parsePopulatorResult(stdout.text);
          if (result.label !== spec.name) throw new Error(`populator result is labelled ${JSON.stringify(result.label)}, not ${spec.name}`);
          this.opts.metrics.clonesTotal.inc({ result: 'succeeded', mode: result.mode });
          if (jobSpec) this.opts.metrics.cloneSeconds.observe((Date.now() - jobSpec.startedAt) / 1000);
          this.opts.metrics.clonedBytes.inc(result.bytes);
          return { phase: 'ready', context: cloneContext(spec, result.mode, result) };
        } catch (err) {
          problem = (err as Error).message;
        }
      } else {
        problem = stdout.problem;
      }
      this.opts.metrics.clonesTotal.inc({ result: 'failed', mode });
      await this.cleanUp(dir);
      throw internal(problem);
    }
    const stderr = await outputOrProblem(job, 'stderr');
    const reason =
      'problem' in stderr
        ? stderr.problem
        : status.kind === 'exited' || stderr.text.trim()
          ? parsePopulatorFailure(stderr.text)
          : 'the population process ended without leaving an exit status';
    this.opts.metrics.clonesTotal.inc({ result: 'failed', mode });
    await this.cleanUp(dir);
    throw failureError(reason);
  }

  /** The clone's directory, empty: created, or an empty leftover. Data found there is never deleted nor overwritten. */
  private async emptyVolumeDir(spec: VolumeSpec): Promise<string> {
    const volumeDir = volumePath(this.opts.root, spec.ref);
    const kind = await pathKind(volumeDir);
    if (kind === 'absent') {
      await mkdir(volumeDir, { mode: 0o700 });
      return volumeDir;
    }
    if (kind !== 'directory') throw failedPrecondition(`volume ${spec.ref.volumeId}: ${volumeDir} is a ${kind}; refusing to populate it`);
    const entries = (await readdir(volumeDir)).filter((e) => e !== STAGING_DIR);
    if (entries.length > 0) {
      throw failedPrecondition(`volume ${spec.ref.volumeId}: ${volumeDir} already holds data (${entries.slice(0, 3).join(', ')}) that no record accounts for; refusing to delete or overwrite it`);
    }
    return volumeDir;
  }

  private async start(spec: CloneSpec): Promise<void> {
    const source = await pinSource(this.opts.root, spec.source);
    const server = source.pgdata ? await findLiveServer(source.pgdata) : undefined;
    const mode = server ? 'online' : 'plain';
    const user = populatorUser(source);
    await assertReachable(this.opts.root, user);
    const copied: PinnedDir = server ? source.pgdata! : source.volumeDir;
    const volumeDir = await this.emptyVolumeDir(spec);
    try {
      await this.launch(spec, { mode, server, user, copied, volumeDir });
    } catch (err) {
      // Refused or failed before it ran: nothing of this attempt stays.
      await this.cleanUp(spec.ref.dir);
      throw err;
    }
  }

  private async launch(
    spec: CloneSpec,
    { mode, server, user, copied, volumeDir }: { mode: 'online' | 'plain'; server?: LiveServer; user: PopulatorUser; copied: PinnedDir; volumeDir: string },
  ): Promise<void> {
    await chown(volumeDir, user.uid, user.gid);
    const job = this.job(spec.ref.dir);
    await job.create(user);
    await job.writeSpec({
      name: spec.name,
      volumeId: spec.ref.volumeId,
      capacityBytes: spec.capacityBytes,
      sourceVolumeId: spec.source.ref.volumeId,
      mode,
      startedAt: Date.now(),
      sourceIdentity: identityOf(copied),
      uid: user.uid,
    });
    await job.writeScript(renderPopulatorScript());
    const env = populatorEnv({
      mode,
      conninfo: server
        ? libpqConninfo({ host: server.socketDir, port: server.port, dbname: 'postgres', user: spec.parameters['standalone.user'] || 'postgres' })
        : '',
      sourceDir: copied.path,
      volumeDir,
      label: spec.name,
      uid: user.uid,
      gid: user.gid,
      workDir: job.outDir,
      sourceIdentity: identityOf(copied),
      serverStopped: !server,
      // The bench's control for the old whole-filesystem sync; any other value keeps fsync.
      durability: spec.parameters['standalone.durability'] === 'syncfs' ? 'syncfs' : 'fsync',
    });
    const path = await pathFor(server ? copied.path : undefined);
    // Last check before anything runs: the source is still the directory resolved above.
    await assertStillPinned(copied);
    // The wrapper records the exit code atomically, in the populator's own out/ directory.
    const wrapper = 'bash "$0" >"$1/stdout" 2>"$1/stderr"; echo $? >"$1/rc.tmp" && mv "$1/rc.tmp" "$1/rc"';
    const child = spawn('bash', ['-c', wrapper, job.script, job.outDir], {
      detached: true,
      stdio: 'ignore',
      cwd: '/',
      uid: user.uid,
      gid: user.gid,
      env: { PATH: path, LANG: 'C', ...env },
    });
    if (!child.pid) throw internal(`could not start the populator for ${spec.name}`);
    const started = { pid: child.pid, startTime: readProcStatSync(child.pid).startTime };
    child.unref();
    this.exits.set(spec.ref.dir, new Promise((resolve) => child.once('exit', () => resolve())));
    try {
      await job.writeProcess(started);
    } catch (err) {
      // Unrecorded, it could never be found again: stop it before its files go.
      await signalGroup(started, 'SIGKILL');
      throw err;
    }
    this.opts.log.info('population started', { volume: spec.name, source: spec.source.ref.volumeId, mode, pid: child.pid, uid: user.uid });
  }

  /** Stops a running population of this volume, if any, and removes what it left. */
  cancel(dir: string): Promise<void> {
    return this.serialized(dir, async () => {
      const recorded = await this.job(dir).readProcess();
      if (recorded && (await signalGroup(recorded, 'SIGTERM'))) {
        // The leader (the wrapper) goes at once; the script and its children take a moment to clean
        // up. Wait for the whole group, polling: its id is not reused while any member lives.
        const drained = async () => {
          for (let i = 0; i < 100 && groupExists(recorded.pid); i++) await sleep(50);
          return !groupExists(recorded.pid);
        };
        if (!(await drained())) {
          killGroup(recorded.pid);
          await drained();
        }
      }
      if ((await this.status(dir)).kind !== 'none') await this.cleanUp(dir);
    });
  }

  /** After a failure: the job state and the unpublished volume directory go, so the next call starts clean. */
  private async cleanUp(dir: string): Promise<void> {
    this.exits.delete(dir);
    // The volume first: a crash in between leaves job files without a volume (found vanished and
    // cleaned again), never volume data that no record accounts for (refused until someone acts).
    const volumeDir = volumePath(this.opts.root, { dir });
    if ((await pathKind(volumeDir)) === 'directory') {
      // The clone's directory belongs to the populator's uid: no link it swaps in may be followed.
      await removeVolumeTree(volumeDir);
    }
    await this.job(dir).remove();
  }

  /** After success has been recorded elsewhere. */
  async forget(dir: string): Promise<void> {
    this.exits.delete(dir);
    await this.job(dir).remove();
  }
}
