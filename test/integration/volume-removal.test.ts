import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseVolumeId } from '../../src/volume/id.js';
import { POPULATED_MARKER } from '../../src/volume/paths.js';
import { removeVolumeDir } from '../../src/volume/remove.js';
import { createLoopFs, type LoopFs } from '../../testbed/xfs.js';
import { ROOT, XFS, describeWithRealParts } from '../support/requirements.js';

// A removal that stops halfway must not leave the marker that says "this clone is complete":
// a retried population reports a marked volume as done, and the local backend adopts it.
describeWithRealParts('volume removal (real XFS)', [ROOT, XFS], () => {
  let fs: LoopFs;
  const root = () => join(fs.mountPoint, 'volumes');

  beforeAll(async () => {
    fs = await createLoopFs({ kind: 'xfs', sizeMb: 320 });
    await mkdir(root());
  }, 60_000);

  afterAll(async () => {
    await fs?.teardown();
  });

  it('removes the populated marker first: a removal stopped before it removed anything leaves no marker over the data', async () => {
    const ref = parseVolumeId('node-a/pvc-halfway');
    const dir = join(root(), ref.dir);
    await mkdir(join(dir, 'pgdata', 'base'), { recursive: true });
    await writeFile(join(dir, 'pgdata', 'base', 'a'), 'data');
    await writeFile(join(dir, POPULATED_MARKER), '{"label":"pvc-halfway"}\n');
    // Test hook: an rm that is "killed" at once (a crash, the cleanup's deadline), removing nothing.
    const hooks = join(fs.base, 'hooks');
    await mkdir(hooks);
    await writeFile(join(hooks, 'rm'), '#!/bin/sh\nexit 137\n', { mode: 0o755 });
    const path = process.env.PATH;
    process.env.PATH = `${hooks}:${path}`;
    try {
      await expect(removeVolumeDir(root(), ref)).rejects.toThrow(/rm/);
    } finally {
      process.env.PATH = path;
    }
    expect(existsSync(join(dir, 'pgdata', 'base', 'a'))).toBe(true);
    expect(existsSync(join(dir, POPULATED_MARKER))).toBe(false);
    expect(await removeVolumeDir(root(), ref)).toBe('deleted');
    expect(existsSync(dir)).toBe(false);
  });
});
