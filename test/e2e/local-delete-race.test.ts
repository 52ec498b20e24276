import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, lchown, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { postgresUser } from '../../testbed/postgres.js';
import type { CsiClient } from '../support/csi-client.js';
import { ROOT, XFS, describeWithRealParts, type Requirement } from '../support/requirements.js';
import { startStandaloneOnLoopFs, type StandaloneOnLoopFs } from '../support/standalone.js';

const NODE = 'race-node';
const PYTHON: Requirement = { name: 'python3 (renameat2 swapper)', missing: () => !existsSync('/usr/bin/python3') };
const ROUNDS = 20;
const PAIRS = 50;
const VICTIMS = 100;

// The tenant swaps, as fast as it can, each directory of its volume with a symlink to a directory
// outside the volume root (RENAME_EXCHANGE), while DeleteVolume removes the volume as root. A
// removal that checks a directory and then opens it by path follows the swapped-in link and
// deletes outside the root; one that walks with openat/O_NOFOLLOW never does. Racy by nature:
// ROUNDS rounds of PAIRS pairs make a path-based removal lose (measured: 6 of 20 rounds).
const SWAPPER = String.raw`
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
os.chdir(sys.argv[1])
pairs = [(b"d%d" % j, b"l%d" % j) for j in range(int(sys.argv[2]))]
while True:
    for d, l in pairs:
        libc.renameat2(-100, d, -100, l, 2)  # AT_FDCWD, RENAME_EXCHANGE
`;

describeWithRealParts('DeleteVolume against a tenant swapping directories for symlinks (standalone, real XFS)', [ROOT, XFS, PYTHON], () => {
  let standalone: StandaloneOnLoopFs | undefined;
  let client: CsiClient;

  beforeAll(async () => {
    standalone = await startStandaloneOnLoopFs({ sizeMb: 512, node: NODE });
    ({ client } = standalone);
  }, 120_000);

  afterAll(async () => {
    await standalone?.stop();
  });

  it('never deletes anything outside the volume', async () => {
    const pg = postgresUser();
    const victim = join(standalone!.fs.base, 'victim');
    await mkdir(victim);
    for (let i = 0; i < VICTIMS; i++) await writeFile(join(victim, `v${i}`), 'keep');
    for (let round = 0; round < ROUNDS; round++) {
      const name = `race-${round}`;
      await client.controller('CreateVolume', { name, volume_capabilities: [{ mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }] });
      const vol = join(standalone!.root, name);
      await mkdir(vol);
      await chown(vol, pg.uid, pg.gid);
      for (let j = 0; j < PAIRS; j++) {
        for (let i = 0; i < 20; i++) {
          await mkdir(join(vol, `d${j}`, `s${i}`), { recursive: true });
          await writeFile(join(vol, `d${j}`, `s${i}`, 'f'), 'x');
        }
        await chown(join(vol, `d${j}`), pg.uid, pg.gid);
        await symlink(victim, join(vol, `l${j}`));
        await lchown(join(vol, `l${j}`), pg.uid, pg.gid);
      }
      const swapper = spawn('python3', ['-c', SWAPPER, vol, String(PAIRS)], { uid: pg.uid, gid: pg.gid, stdio: 'ignore' });
      try {
        await new Promise((r) => setTimeout(r, 100));
        await client.controller('DeleteVolume', { volume_id: `${NODE}/${name}` }).catch(() => undefined);
      } finally {
        swapper.kill('SIGKILL');
      }
      expect((await readdir(victim)).length).toBe(VICTIMS);
    }
  }, 300_000);
});
