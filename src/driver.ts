import type { Server } from 'node:http';
import { LocalBackend } from './backends/local/backend.js';
import type { Config } from './config.js';
import { controllerService } from './controller/service.js';
import type { KubeBackendFactory } from './backends/kube/factory.js';
import { wrapService, type HandlerContext } from './csi/handler.js';
import { identityService } from './csi/identity.js';
import { loadCsi } from './csi/proto.js';
import { startServer, type CsiServer } from './csi/server.js';
import { rootReadiness, startHealthServer, type Readiness } from './health.js';
import type { Logger } from './log.js';
import { Metrics } from './metrics.js';
import { nodeService } from './node/service.js';
import { VERSION } from './version.js';
import { resolveRoot } from './volume/paths.js';

export interface RunningDriver {
  csi: CsiServer;
  health?: Server;
  stop(): Promise<void>;
}

/** Serves the CSI services of a role on its unix socket. The Kubernetes backend comes from `kube` (a type import here: standalone never loads it). */
export async function startDriver(config: Config, log: Logger, kube?: KubeBackendFactory): Promise<RunningDriver> {
  const metrics = new Metrics(true);
  const ctx: HandlerContext = { log, metrics };
  const csi = loadCsi();
  const services: Parameters<typeof startServer>[1] = [];
  let readiness: Readiness;
  let stopBackend: (() => void) | undefined;

  if (config.role === 'standalone' || config.role === 'node') {
    const root = await resolveRoot(config.root).catch((err: Error) => {
      throw new Error(`volume root ${config.root} is not usable: ${err.message}`);
    });
    readiness = rootReadiness(root);
    services.push([csi.Node.service, wrapService('Node', nodeService({ nodeId: config.nodeId, root }), ctx)]);
    if (config.role === 'standalone') {
      const backend = new LocalBackend({ root, node: config.nodeId, log, metrics });
      services.push([csi.Controller.service, wrapService('Controller', controllerService({ backend, onlyNode: config.nodeId }), ctx)]);
    }
  } else if (config.role === 'controller') {
    if (!kube) throw new Error('the controller role needs the Kubernetes backend');
    const made = await kube(config, ctx);
    readiness = made.readiness;
    stopBackend = made.stop;
    services.push([csi.Controller.service, wrapService('Controller', controllerService({ backend: made.backend }), ctx)]);
  } else {
    throw new Error(`role ${config.role} serves no CSI services`);
  }
  // CSI Probe feeds the livenessprobe sidecar, which restarts the container when it fails: it
  // reports the node's own prerequisites (the volume root), never the API server's availability,
  // which only /readyz reports (a restart would not bring the API server back).
  const probe: Readiness = config.role === 'controller' ? async () => undefined : readiness;
  const identity = identityService({ version: VERSION, servesController: config.role !== 'node', readiness: probe });
  services.unshift([csi.Identity.service, wrapService('Identity', identity, ctx)]);

  const server = await startServer(config.socketPath, services, log);
  const health = config.metricsAddress ? await startHealthServer(config.metricsAddress, metrics, readiness, log) : undefined;
  return {
    csi: server,
    health,
    async stop() {
      stopBackend?.();
      health?.close();
      await server.stop();
    },
  };
}
