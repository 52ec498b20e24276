import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { failedPrecondition } from '../../csi/errors.js';
import type { PopulatorUser } from './populator-user.js';

/**
 * Refuses, before anything starts, a root the populator's user cannot reach: it runs the script
 * and writes its output under `<root>/.pg-reflinker/jobs`, so every directory from `/` to the root
 * must be searchable by that uid (else the child dies before it can say why).
 */
export async function assertReachable(root: string, user: PopulatorUser): Promise<void> {
  for (let dir = root; ; dir = dirname(dir)) {
    const s = await stat(dir);
    const searchable =
      (s.uid === user.uid && (s.mode & 0o100) !== 0) || (s.uid !== user.uid && s.gid === user.gid && (s.mode & 0o010) !== 0) || (s.uid !== user.uid && s.gid !== user.gid && (s.mode & 0o001) !== 0);
    if (!searchable) {
      throw failedPrecondition(
        `the populator runs as uid ${user.uid}, which cannot reach ${dir} (mode ${(s.mode & 0o777).toString(8).padStart(4, '0')}, owner ${s.uid}:${s.gid}); ` +
          `make the volume root and every directory above it searchable by others (chmod o+x)`,
      );
    }
    if (dir === dirname(dir)) return;
  }
}
