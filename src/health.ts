import { createServer, type Server } from 'node:http';
import { access, constants, stat } from 'node:fs/promises';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

export type Readiness = () => Promise<string | undefined>;

/** Ready when the volume root is a writable directory. */
export function rootReadiness(root: string): Readiness {
  return async () => {
    try {
      if (!(await stat(root)).isDirectory()) return `volume root ${root} is not a directory`;
      await access(root, constants.W_OK);
      return undefined;
    } catch (err) {
      return `volume root ${root} is not usable: ${(err as Error).message}`;
    }
  };
}

/** /metrics (Prometheus), /healthz (the process answers), /readyz (the role's prerequisites hold). */
export async function startHealthServer(address: string, metrics: Metrics, readiness: Readiness, log: Logger): Promise<Server> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  const server = createServer((req, res) => {
    void (async () => {
      if (req.url === '/metrics') {
        res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(await metrics.registry.metrics());
      } else if (req.url === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (req.url === '/readyz') {
        const problem = await readiness();
        res.writeHead(problem ? 503 : 200, { 'content-type': 'text/plain' }).end(`${problem ?? 'ready'}\n`);
      } else {
        res.writeHead(404).end();
      }
    })().catch((err: Error) => res.writeHead(500).end(err.message));
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host || undefined, resolve));
  log.info('health and metrics endpoint', { address });
  return server;
}
