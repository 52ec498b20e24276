import { run } from '../exec.js';

const MOUNT_TIMEOUT_MS = 30_000;

/** Bind-mounts `source` at `target`; read-only needs a second remount (the kernel ignores ro on the first bind). */
export async function bindMount(source: string, target: string, readOnly: boolean): Promise<void> {
  await run('mount', ['--bind', '--', source, target], { timeoutMs: MOUNT_TIMEOUT_MS });
  if (readOnly) {
    try {
      await run('mount', ['-o', 'remount,bind,ro', '--', target], { timeoutMs: MOUNT_TIMEOUT_MS });
    } catch (err) {
      await unmount(target).catch(() => undefined);
      throw err;
    }
  }
}

export async function unmount(target: string): Promise<void> {
  await run('umount', ['--', target], { timeoutMs: MOUNT_TIMEOUT_MS });
}
