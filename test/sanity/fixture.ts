import { afterAll, beforeAll } from '@jest/globals';
import type { LoopFs } from '../../testbed/xfs.js';
import type { CsiClient } from '../support/csi-client.js';
import type { DriverProcess } from '../support/driver-process.js';
import { startStandaloneOnLoopFs, type StandaloneOnLoopFs } from '../support/standalone.js';

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
  let started: StandaloneOnLoopFs | undefined;
  beforeAll(async () => {
    started = await startStandaloneOnLoopFs({ sizeMb: 512, node: NODE, args: ['--log-level', 'debug'] });
  });
  afterAll(async () => {
    await started?.stop();
  });
  return () => {
    if (!started) throw new Error('driver fixture not started');
    return { fs: { ...started.fs, root: started.root }, driver: started.driver, client: started.client };
  };
}
