import { createHash } from 'node:crypto';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/** Every file under `dir` (links not followed) by relative path: a regular file's sha256, a link's target. For "not one byte changed". */
export async function treeDigest(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    for (const entry of await readdir(join(dir, rel), { withFileTypes: true })) {
      const path = join(rel, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) out[path] = createHash('sha256').update(await readFile(join(dir, path))).digest('hex');
      else if (entry.isSymbolicLink()) out[path] = `-> ${await readlink(join(dir, path))}`;
    }
  };
  await walk('.');
  return out;
}

/** The symbolic links under `dir`, with their targets. */
export async function linksUnder(dir: string): Promise<Array<[string, string]>> {
  const found: Array<[string, string]> = [];
  const walk = async (path: string): Promise<void> => {
    for (const entry of await readdir(path, { withFileTypes: true })) {
      const child = join(path, entry.name);
      if (entry.isSymbolicLink()) found.push([child, await readlink(child)]);
      else if (entry.isDirectory()) await walk(child);
    }
  };
  await walk(dir);
  return found;
}
