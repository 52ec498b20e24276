import type { Config } from './config.js';
import type { Logger } from './log.js';
import { InvalidVolumeId, parseVolumeId } from './volume/id.js';
import { resolveRoot } from './volume/paths.js';
import { UnsafeRemoval, removeVolumeDir } from './volume/remove.js';

const HOST_MOUNT_TABLE = '/proc/1/mountinfo';

/**
 * The node-side cleanup command (`pg-reflinker cleanup --root DIR --volume-id ID`), run in a Job on
 * the volume's node. Exit 0 when the directory is gone (or was never there), 3 on a refused removal.
 */
export async function runCleanup(config: Config, log: Logger): Promise<number> {
  try {
    const ref = parseVolumeId(config.volumeId);
    const root = await resolveRoot(config.root);
    // Run in a hostPID pod (the cleanup Job) or on the host, PID 1's table is the host's: it shows
    // kubelet's bind mounts of the volume into pods, which this container's own table does not.
    const outcome = await removeVolumeDir(root, ref, HOST_MOUNT_TABLE);
    log.info('cleanup', { volume_id: ref.volumeId, outcome });
    process.stdout.write(`${JSON.stringify({ volumeId: ref.volumeId, outcome })}\n`);
    return 0;
  } catch (err) {
    if (err instanceof InvalidVolumeId || err instanceof UnsafeRemoval) {
      process.stderr.write(`pg-reflinker cleanup: ${err.message}\n`);
      return 3;
    }
    throw err;
  }
}
