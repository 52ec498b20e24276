import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/exec.js';
import { readMounts } from '../../src/volume/mountinfo.js';

export interface VolumeRootFixture {
  /** Scratch directory holding everything (image file, mount point, sockets, targets). */
  base: string;
  /** The reflink filesystem's mount point. */
  mountPoint: string;
  /** The driver's root (HOSTPATH_PREFIX), a directory on that filesystem. */
  root: string;
  teardown(): Promise<void>;
}

/** A fresh XFS (reflink=1) filesystem on a loop-mounted sparse file, with a volume root on it. */
export async function makeXfsVolumeRoot(sizeMb = 512): Promise<VolumeRootFixture> {
  const base = await mkdtemp(join(tmpdir(), 'pgr-test-'));
  const image = join(base, 'fs.img');
  const mountPoint = join(base, 'mnt');
  await mkdir(mountPoint);
  await run('truncate', ['-s', `${sizeMb}M`, image]);
  await run('mkfs.xfs', ['-q', '-m', 'reflink=1', image]);
  await run('mount', ['-o', 'loop', image, mountPoint]);
  const root = join(mountPoint, 'volumes');
  await mkdir(root);
  return {
    base,
    mountPoint,
    root,
    async teardown() {
      // Deepest first: bind mounts a test left behind, then the filesystem itself.
      const under = (await readMounts()).map((m) => m.mountPoint).filter((p) => p.startsWith(`${base}/`));
      for (const target of under.sort((a, b) => b.length - a.length)) {
        await run('umount', [target]).catch(() => run('umount', ['-l', target]));
      }
      await rm(base, { recursive: true, force: true });
    },
  };
}
