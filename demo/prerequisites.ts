import { accessSync, constants } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { run } from '../src/exec.js';

const PG_SERVER = '/usr/lib/postgresql/15/bin/postgres';

const executable = (path: string) => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};
const onPath = (program: string) => ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((d) => executable(`${d}/${program}`));

/** Root, and the Debian packages the demo needs (installed when missing). Throws with what to do. */
export async function ensurePrerequisites(say: (line: string) => void): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new Error('the demo needs root (loop devices, mounts, PostgreSQL as the postgres user): run it as root, e.g. sudo npm run demo');
  }
  const missing: string[] = [];
  if (!executable(PG_SERVER)) missing.push('postgresql-15');
  if (!onPath('mkfs.xfs') || !onPath('xfs_io') || !onPath('xfs_spaceman')) missing.push('xfsprogs');
  if (!onPath('openssl')) missing.push('openssl');
  if (!onPath('fstrim')) missing.push('util-linux');
  if (missing.length === 0) return;
  if (!onPath('apt-get')) throw new Error(`missing ${missing.join(', ')} and no apt-get to install them: install them yourself`);
  if (missing.includes('postgresql-15')) {
    // Only the binaries: no "main" cluster running on port 5432 behind the demo's back.
    await mkdir('/etc/postgresql-common/createcluster.d', { recursive: true });
    await writeFile('/etc/postgresql-common/createcluster.d/pg-reflinker-demo.conf', 'create_main_cluster = false\n');
  }
  say(`installing ${missing.join(', ')} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await run('apt-get', ['update'], { env, timeoutMs: 600_000 });
  await run('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { env, timeoutMs: 1_200_000 });
  if (!executable(PG_SERVER)) throw new Error(`apt-get installed ${missing.join(', ')} but ${PG_SERVER} is still missing`);
}
