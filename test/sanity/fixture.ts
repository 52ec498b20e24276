import { afterAll, beforeAll } from '@jest/globals';
import { join } from 'node:path';
import { csiClient, type CsiClient } from '../support/csi-client.js';
import { startDriverProcess, type DriverProcess } from '../support/driver-process.js';
import { mkdir } from 'node:fs/promises';
import { createLoopFs, type LoopFs } from '../../testbed/xfs.js';

export const NODE = 'sanity-node-1';
export const GiB = 1024 ** 3;
export const mountCap = (mode = 'SINGLE_NODE_WRITER') => ({ mount: {}, access_mode: { mode } });

export interface SanityContext {
  fs: LoopFs & { root: string };
  driver: DriverProcess;
  client: CsiClient;
}

/** One standalone driver process on a real XFS root for a whole test file. */
export function useStandaloneDriver(): () => SanityContext {
  let ctx: SanityContext | undefined;
  beforeAll(async () => {
    const loop = await createLoopFs({ kind: 'xfs', sizeMb: 512 });
    const fs = { ...loop, root: join(loop.mountPoint, 'volumes') };
    await mkdir(fs.root);
    const socket = join(fs.base, 'csi.sock');
    const driver = await startDriverProcess(
      ['standalone', '--endpoint', `unix://${socket}`, '--root', fs.root, '--node-id', NODE, '--log-level', 'debug'],
      socket,
    );
    ctx = { fs, driver, client: csiClient(socket) };
  });
  afterAll(async () => {
    ctx?.client.close();
    await ctx?.driver.stop();
    await ctx?.fs.teardown();
  });
  return () => {
    if (!ctx) throw new Error('driver fixture not started');
    return ctx;
  };
}
