import { run } from '../exec.js';

/**
 * Removes a directory tree that someone else can write to while it goes. Node's recursive rm
 * checks a directory, then opens it by path: a directory swapped for a symlink in between makes
 * root delete the link's target. coreutils rm walks with openat and O_NOFOLLOW and stays on one
 * filesystem, so no swap leads it out of the tree.
 */
export async function removeTree(path: string): Promise<void> {
  await run('rm', ['-rf', '--one-file-system', '--', path], { timeoutMs: 600_000 });
}
