import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createLoopFs, type LoopFs, type LoopFsKind } from '../../testbed/xfs.js';
import { csiClient, type CsiClient } from './csi-client.js';
import { startDriverProcess, type DriverProcess } from './driver-process.js';

export interface StandaloneOnLoopFs {
  fs: LoopFs;
  /** The driver's --root: `volumes/` on the loop filesystem. */
  root: string;
  socket: string;
  driver: DriverProcess;
  client: CsiClient;
  /** Closes the client, stops the driver, removes the filesystem. */
  stop(): Promise<void>;
}

/** `pg-reflinker standalone` as a real process on a fresh loop filesystem, with a client on its socket. */
export async function startStandaloneOnLoopFs(opts: { kind?: LoopFsKind; sizeMb: number; node: string; args?: string[] }): Promise<StandaloneOnLoopFs> {
  const fs = await createLoopFs({ kind: opts.kind ?? 'xfs', sizeMb: opts.sizeMb });
  try {
    const root = join(fs.mountPoint, 'volumes');
    await mkdir(root);
    const socket = join(fs.base, 'csi.sock');
    const driver = await startDriverProcess(['standalone', '--endpoint', `unix://${socket}`, '--root', root, '--node-id', opts.node, ...(opts.args ?? [])], socket);
    const client = csiClient(socket);
    return {
      fs,
      root,
      socket,
      driver,
      client,
      async stop() {
        client.close();
        await driver.stop();
        await fs.teardown();
      },
    };
  } catch (err) {
    await fs.teardown();
    throw err;
  }
}
