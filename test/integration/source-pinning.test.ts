import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, rename, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertStillPinned, identityOf, pinSource } from '../../src/backends/local/source.js';
import { Code, CsiError } from '../../src/csi/errors.js';
import type { SourceVolume } from '../../src/controller/backend.js';

// The clone's source is resolved once (lstat), by identity, and checked again right before the
// copy starts: a pgdata swapped in between (for a symlink or another directory) is refused.
describe('pinning a clone source (real directories)', () => {
  let root: string;
  let seq = 0;
  const source = (dir: string): SourceVolume => ({ ref: { node: 'n', dir, volumeId: `n/${dir}` }, capacityBytes: 0, description: dir });
  const refusal = async (promise: Promise<unknown>) => {
    try {
      await promise;
    } catch (err) {
      return err as CsiError;
    }
    throw new Error('expected a refusal');
  };
  async function volumeWithPgdata(): Promise<string> {
    const dir = `vol-${++seq}`;
    await mkdir(join(root, dir, 'pgdata'), { recursive: true });
    return dir;
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'pgr-pin-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('pins pgdata by device and inode, as the populator checks it', async () => {
    const dir = await volumeWithPgdata();
    const pinned = await pinSource(root, source(dir));
    const info = await stat(join(root, dir, 'pgdata'));
    expect(identityOf(pinned.pgdata!)).toBe(`${info.dev}:${info.ino}`);
    await expect(assertStillPinned(pinned.pgdata!)).resolves.toBeUndefined();
  });

  it('refuses a pgdata that is a symlink, before anything starts', async () => {
    const dir = `vol-${++seq}`;
    await mkdir(join(root, dir));
    await mkdir(join(root, 'elsewhere'), { recursive: true });
    await symlink(join(root, 'elsewhere'), join(root, dir, 'pgdata'));
    const err = await refusal(pinSource(root, source(dir)));
    expect(err.code).toBe(Code.FAILED_PRECONDITION);
    expect(err.message).toContain('has a symlink as pgdata');
  });

  it('refuses a source volume directory that is a symlink', async () => {
    await symlink(join(root, 'elsewhere'), join(root, 'linked-volume'));
    const err = await refusal(pinSource(root, source('linked-volume')));
    expect(err.code).toBe(Code.FAILED_PRECONDITION);
    expect(err.message).toContain('is a symlink');
  });

  for (const swap of ['another directory', 'a symlink to the original'] as const) {
    it(`refuses a pgdata swapped for ${swap} after it was pinned`, async () => {
      const dir = await volumeWithPgdata();
      const pinned = await pinSource(root, source(dir));
      const pgdata = join(root, dir, 'pgdata');
      await rename(pgdata, `${pgdata}.moved`);
      if (swap === 'another directory') await mkdir(pgdata);
      else await symlink(`${pgdata}.moved`, pgdata);
      const err = await refusal(assertStillPinned(pinned.pgdata!));
      expect(err).toBeInstanceOf(CsiError);
      expect(err.code).toBe(Code.FAILED_PRECONDITION);
      expect(err.message).toContain(`${pgdata} was replaced`);
    });
  }
});
