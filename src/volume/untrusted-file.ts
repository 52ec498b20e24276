import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

/** A file someone else controls is not what it should be (a link, a FIFO, a device...). */
export class UntrustedFileError extends Error {}

export interface UntrustedReadOptions {
  maxBytes: number;
  /** Read the last maxBytes instead of the first (logs: the reason is at the end). */
  tail?: boolean;
}

/**
 * Reads a file that a tenant or a populator controls, as root must: the last component is never
 * followed when it is a symlink (O_NOFOLLOW), only a regular file is read (a FIFO would block the
 * driver forever: opened O_NONBLOCK, then refused), and at most maxBytes. undefined when absent.
 */
export async function readUntrustedFile(path: string, opts: UntrustedReadOptions): Promise<string | undefined> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw new UntrustedFileError(`${path} is a symlink`);
    throw err;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new UntrustedFileError(`${path} is not a regular file`);
    const length = Math.min(info.size, opts.maxBytes);
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, opts.tail ? info.size - length : 0);
    return buffer.subarray(0, bytesRead).toString('utf8');
  } finally {
    await handle.close();
  }
}
