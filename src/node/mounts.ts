import { run } from '../exec.js';

const MOUNT_TIMEOUT_MS = 30_000;

/**
 * Bind-mounts `source` at `target`, always nosuid and nodev (a plain copy keeps a source's setuid
 * files and device nodes; no pod gains from them through a volume), read-only when asked. The
 * flags need a second remount: the kernel ignores them on the first bind.
 */
export async function bindMount(source: string, target: string, readOnly: boolean): Promise<void> {
  await run('mount', ['--bind', '--', source, target], { timeoutMs: MOUNT_TIMEOUT_MS });
  try {
    await run('mount', ['-o', `remount,bind,nosuid,nodev${readOnly ? ',ro' : ''}`, '--', target], { timeoutMs: MOUNT_TIMEOUT_MS });
  } catch (err) {
    await unmount(target).catch(() => undefined);
    throw err;
  }
}

export async function unmount(target: string): Promise<void> {
  await run('umount', ['--', target], { timeoutMs: MOUNT_TIMEOUT_MS });
}
