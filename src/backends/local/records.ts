import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
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

export class RecordStore {
  private readonly dir: string;

  constructor(root: string) {
    this.dir = join(root, STATE_DIR, 'volumes');
  }

  private file(dir: string): string {
    return join(this.dir, `${dir}.json`);
  }

  async get(dir: string): Promise<VolumeRecord | undefined> {
    try {
      return JSON.parse(await readFile(this.file(dir), 'utf8')) as VolumeRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Written to a temporary file and renamed, so a crash never leaves half a record. */
  async put(dir: string, record: VolumeRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.file(dir)}.tmp`;
    await writeFile(tmp, JSON.stringify(record, null, 2), { mode: 0o600 });
    await rename(tmp, this.file(dir));
  }

  async remove(dir: string): Promise<void> {
    await rm(this.file(dir), { force: true });
  }
}
