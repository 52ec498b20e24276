import { connect } from 'node:net';
import { lstat, unlink } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../log.js';

export class SocketInUseError extends Error {}

/** True when some process accepts connections on the unix socket at `path`. */
function isServed(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Removes a stale socket left by a dead process; refuses a live one or a non-socket file. */
async function claimSocketPath(path: string): Promise<void> {
  const info = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!info) return;
  if (!info.isSocket()) throw new SocketInUseError(`${path} exists and is not a socket; refusing to replace it`);
  if (await isServed(path)) throw new SocketInUseError(`another process is already serving ${path}`);
  await unlink(path);
}

export interface CsiServer {
  readonly socketPath: string;
  stop(graceMs?: number): Promise<void>;
}

export async function startServer(
  socketPath: string,
  services: Array<[grpc.ServiceDefinition, grpc.UntypedServiceImplementation]>,
  log: Logger,
): Promise<CsiServer> {
  await claimSocketPath(socketPath);
  const server = new grpc.Server();
  for (const [definition, implementation] of services) server.addService(definition, implementation);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  log.info('serving', { socket: socketPath });
  let stopping: Promise<void> | undefined;
  return {
    socketPath,
    stop(graceMs = 10_000) {
      stopping ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }).then(() => unlink(socketPath).catch(() => undefined));
      return stopping;
    },
  };
}
