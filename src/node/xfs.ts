import { statfs } from 'node:fs/promises';
import { run } from '../exec.js';

const XFS_SUPER_MAGIC = 0x58465342;

/**
 * Sets XFS's copy-on-write extent size hint on a directory; files and directories created in it
 * inherit it. Other filesystems (btrfs) have no such hint: nothing to do there.
 */
export async function setCowExtentSize(dir: string, bytes: number): Promise<'set' | 'not-xfs'> {
  if ((await statfs(dir)).type !== XFS_SUPER_MAGIC) return 'not-xfs';
  await run('xfs_io', ['-c', `cowextsize ${bytes}`, dir], { timeoutMs: 30_000 });
  return 'set';
}

/** The hint in bytes (0 = the filesystem default). */
export async function cowExtentSize(dir: string): Promise<number> {
  const { stdout } = await run('xfs_io', ['-c', 'cowextsize', dir], { timeoutMs: 30_000 });
  const match = /^\[(\d+)\]/.exec(stdout.trim());
  if (!match) throw new Error(`unexpected xfs_io output: ${stdout.trim()}`);
  return Number(match[1]);
}
