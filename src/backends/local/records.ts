import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeFileDurable, writeFileDurable } from '../../volume/durable-file.js';
import { STATE_DIR } from '../../volume/paths.js';

/** What the local backend remembers of a volume, in `<root>/.pg-reflinker/volumes/<dir>.json`. */
export interface VolumeRecord {
  name: string;
  volumeId: string;
  capacityBytes: number;
  sourceVolumeId?: string;
  context: Record<string, string>;
  createdAt: string;
}

/** A record as found on disk: present, absent, or there but unreadable (torn by a crash of an older driver, damaged). */
export type RecordRead = { state: 'present'; record: VolumeRecord } | { state: 'absent' } | { state: 'unreadable'; problem: string };

function problemOf(record: unknown): string | undefined {
  if (typeof record !== 'object' || record === null) return 'not a JSON object';
  const r = record as Record<string, unknown>;
  if (typeof r.name !== 'string' || typeof r.volumeId !== 'string') return 'no name or volume id';
  if (typeof r.capacityBytes !== 'number') return 'no capacity';
  if (typeof r.context !== 'object' || r.context === null) return 'no volume context';
  return undefined;
}

export class RecordStore {
  private readonly dir: string;

  constructor(root: string) {
    this.dir = join(root, STATE_DIR, 'volumes');
  }

  private file(dir: string): string {
    return join(this.dir, `${dir}.json`);
  }

  async read(dir: string): Promise<RecordRead> {
    let text: string;
    try {
      text = await readFile(this.file(dir), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'absent' };
      throw err;
    }
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch (err) {
      return { state: 'unreadable', problem: `${this.file(dir)}: ${text.length === 0 ? 'empty' : (err as Error).message}` };
    }
    const problem = problemOf(record);
    return problem ? { state: 'unreadable', problem: `${this.file(dir)}: ${problem}` } : { state: 'present', record: record as VolumeRecord };
  }

  /** Durable: a crash leaves the old record or the new one, never an empty file. */
  async put(dir: string, record: VolumeRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeFileDurable(this.file(dir), JSON.stringify(record, null, 2));
  }

  async remove(dir: string): Promise<void> {
    await removeFileDurable(this.file(dir));
  }
}
