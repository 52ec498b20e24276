import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { run } from '../src/exec.js';
import { ownedDir, pgBin, postgresUser } from '../testbed/postgres.js';
import { runAs } from '../testbed/run-as.js';
import { syncFs } from '../testbed/scenario-space.js';
import { cloneViaCsi, dropClone, type Clone, type Scenario } from '../testbed/scenario.js';

export type Method = 'none' | 'csi-clone' | 'cp-reflink' | 'pg_basebackup' | 'cp-full';

export const METHOD_LABEL: Record<Method, string> = {
  none: 'no copy (control: the load alone)',
  'csi-clone': 'pg-reflinker clone (CSI)',
  'cp-reflink': 'cp -a --reflink=always (live, no backup bracket)',
  pg_basebackup: 'pg_basebackup -X stream -c fast',
  'cp-full': 'cp -a --reflink=never',
};

/** One copy of the live source: when it ran and how to remove it again. */
export interface CopyRun {
  /** Epoch ms: start, and the moment the copy was complete and durable. */
  t0: number;
  t1: number;
  /** t0 → t1: ours, first CreateVolume → ready; cp: cp + syncfs; pg_basebackup fsyncs itself. */
  seconds: number;
  /** The copy command alone (cp without the sync). */
  commandSeconds: number;
  clone?: Clone;
  note?: string;
  remove(): Promise<void>;
}

/** cp of a live directory: files that vanish meanwhile (dropped temp files, recycled WAL) are tolerated, as the populator does. */
async function cpLive(args: string[]): Promise<string | undefined> {
  const r = await run('cp', args, { okCodes: [1], timeoutMs: 3_600_000 });
  if (r.code === 0) return undefined;
  const lines = r.stderr.trim().split('\n');
  const bad = lines.filter((l) => !/No such file or directory$/.test(l));
  if (bad.length) throw new Error(`cp ${args.join(' ')}: ${bad.slice(0, 3).join(' | ')}`);
  return `${lines.length} files vanished during the copy`;
}

export async function runMethod(sc: Scenario, method: Method, name: string): Promise<CopyRun> {
  if (method === 'none') {
    const now = Date.now();
    return { t0: now, t1: now, seconds: 0, commandSeconds: 0, remove: async () => undefined };
  }
  if (method === 'csi-clone') {
    const clone = await cloneViaCsi(sc, name);
    return { t0: clone.t0, t1: clone.t1, seconds: clone.endToEndSeconds, commandSeconds: clone.endToEndSeconds, clone, remove: () => dropClone(sc, clone) };
  }
  const copies = await ownedDir(join(sc.fs.mountPoint, 'copies'));
  const dst = join(copies, name);
  const forget = sc.cleanup.add(`remove ${dst}`, () => rm(dst, { recursive: true, force: true }));
  const remove = async () => {
    await rm(dst, { recursive: true, force: true });
    forget();
  };
  const t0 = Date.now();
  const p0 = performance.now();
  let note: string | undefined;
  if (method === 'pg_basebackup') {
    await runAs(postgresUser(), pgBin('pg_basebackup'), ['-D', dst, '-X', 'stream', '-c', 'fast', '-h', sc.primary.socketDir, '-p', String(sc.primary.port), '-U', 'postgres', '-w'], {
      timeoutMs: 3_600_000,
    });
  } else {
    note = await cpLive(['-a', `--reflink=${method === 'cp-reflink' ? 'always' : 'never'}`, sc.pgdata, dst]);
  }
  const commandSeconds = (performance.now() - p0) / 1000;
  if (method !== 'pg_basebackup') await syncFs(dst);
  const seconds = (performance.now() - p0) / 1000;
  return { t0, t1: Date.now(), seconds, commandSeconds, note, remove };
}
