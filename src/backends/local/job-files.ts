import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RecordedVolume } from '../../controller/backend.js';
import { STATE_DIR, pathKind } from '../../volume/paths.js';
import { writeFileDurable } from '../../volume/durable-file.js';
import { removeTree } from '../../volume/remove-tree.js';
import { readUntrustedFile } from '../../volume/untrusted-file.js';
import type { ProcessIdentity } from './proc.js';
import type { PopulatorUser } from './populator-user.js';

export interface JobSpec extends RecordedVolume {
  mode: 'online' | 'plain';
  startedAt: number;
  /** `<dev>:<ino>` of the directory the populator copies. */
  sourceIdentity?: string;
  uid?: number;
}

/** What the populator writes; read as untrusted (it runs as a tenant's uid). */
export type JobOutput = 'stdout' | 'stderr' | 'rc';

const OUTPUT_LIMIT = 64 * 1024;

/**
 * One population's files, in `<root>/.pg-reflinker/jobs/<dir>/`. The driver's records there (spec,
 * the process's pid and start time, the script) are root's: the populator, running as another
 * uid, cannot replace them, so it can never make the root driver signal a process of its choice.
 * The populator writes only in `out/` (stdout, stderr, rc, its work directory), which it owns.
 */
export class JobFiles {
  readonly dir: string;
  readonly outDir: string;

  constructor(root: string, volumeDir: string) {
    this.dir = join(root, STATE_DIR, 'jobs', volumeDir);
    this.outDir = join(this.dir, 'out');
  }

  get script(): string {
    return join(this.dir, 'populate.sh');
  }

  async exists(): Promise<boolean> {
    return (await pathKind(this.dir)) !== 'absent';
  }

  /** The job directory (root's, searchable so the populator reaches out/) and out/ for `user`. */
  async create(user: PopulatorUser): Promise<void> {
    const jobs = join(this.dir, '..');
    await mkdir(jobs, { recursive: true, mode: 0o711 });
    for (const dir of [join(jobs, '..'), jobs]) await chmod(dir, 0o711);
    await mkdir(this.dir, { mode: 0o711 });
    await mkdir(this.outDir, { mode: 0o700 });
    await chown(this.outDir, user.uid, user.gid);
  }

  async writeSpec(spec: JobSpec): Promise<void> {
    await writeFileDurable(join(this.dir, 'spec.json'), JSON.stringify(spec));
  }

  /** The spec, or undefined when absent or unreadable (a crash before it was complete). */
  async readSpec(): Promise<JobSpec | undefined> {
    const text = await readUntrustedFile(join(this.dir, 'spec.json'), { maxBytes: OUTPUT_LIMIT }).catch(() => undefined);
    try {
      const spec = text ? (JSON.parse(text) as JobSpec) : undefined;
      return spec && typeof spec.name === 'string' && typeof spec.volumeId === 'string' ? spec : undefined;
    } catch {
      return undefined;
    }
  }

  async writeScript(text: string): Promise<void> {
    await writeFile(this.script, text, { mode: 0o644 });
  }

  async writeProcess(process: ProcessIdentity): Promise<void> {
    await writeFileDurable(join(this.dir, 'process.json'), JSON.stringify(process));
  }

  async readProcess(): Promise<ProcessIdentity | undefined> {
    const text = await readUntrustedFile(join(this.dir, 'process.json'), { maxBytes: 256 }).catch(() => undefined);
    try {
      const value = text ? (JSON.parse(text) as ProcessIdentity) : undefined;
      return value && Number.isInteger(value.pid) && value.pid > 0 && Number.isInteger(value.startTime) ? value : undefined;
    } catch {
      return undefined;
    }
  }

  /** An output of the populator: never through a link, never more than 64 KiB (the end of it). Throws UntrustedFileError. */
  async readOutput(name: JobOutput): Promise<string> {
    return (await readUntrustedFile(join(this.outDir, name), { maxBytes: OUTPUT_LIMIT, tail: true })) ?? '';
  }

  /** Removes everything; out/ is the populator's, so removal must not follow links it may swap in. */
  async remove(): Promise<void> {
    await removeTree(this.dir);
  }
}
