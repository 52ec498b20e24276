import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../src/exec.js';
import { readMounts } from '../src/volume/mountinfo.js';

/** `xfs`: reflink=1 (clones share extents); `xfs-noreflink` and `ext4`: FICLONE fails with EOPNOTSUPP. */
export type LoopFsKind = 'xfs' | 'xfs-noreflink' | 'ext4';

export interface LoopFs {
  kind: LoopFsKind;
  /** Scratch directory holding the image and the mount point (mode 0755, so other users can reach the mount). */
  base: string;
  image: string;
  mountPoint: string;
  /** Unmounts everything mounted under base (lazily if busy) and removes it all. */
  teardown(): Promise<void>;
}

const MKFS: Record<LoopFsKind, [string, string[]]> = {
  xfs: ['mkfs.xfs', ['-q', '-f', '-m', 'reflink=1']],
  'xfs-noreflink': ['mkfs.xfs', ['-q', '-f', '-m', 'reflink=0']],
  ext4: ['mkfs.ext4', ['-q', '-F']],
};

/** A fresh filesystem on a sparse image file, loop-mounted (needs root). */
export async function createLoopFs(opts: { kind?: LoopFsKind; sizeMb?: number; parent?: string } = {}): Promise<LoopFs> {
  const kind = opts.kind ?? 'xfs';
  const base = await mkdtemp(join(opts.parent ?? tmpdir(), `pgr-${kind}-`));
  await chmod(base, 0o755);
  const image = join(base, 'fs.img');
  const mountPoint = join(base, 'mnt');
  try {
    await mkdir(mountPoint);
    await run('truncate', ['-s', `${opts.sizeMb ?? 2048}M`, image]);
    const [mkfs, args] = MKFS[kind];
    await run(mkfs, [...args, image], { timeoutMs: 60_000 });
    await run('mount', ['-o', 'loop', image, mountPoint], { timeoutMs: 30_000 });
  } catch (err) {
    await rm(base, { recursive: true, force: true });
    throw err;
  }
  let done = false;
  return {
    kind,
    base,
    image,
    mountPoint,
    async teardown() {
      if (done) return;
      done = true;
      // Deepest first: bind mounts a test left under base keep the filesystem alive otherwise.
      const under = (await readMounts()).map((m) => m.mountPoint).filter((p) => p.startsWith(`${base}/`));
      for (const target of under.sort((a, b) => b.length - a.length)) {
        await run('umount', [target], { timeoutMs: 60_000 }).catch(() => run('umount', ['-l', target]));
      }
      await rm(base, { recursive: true, force: true });
    },
  };
}
