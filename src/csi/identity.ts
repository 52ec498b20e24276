import type { RpcTable } from './handler.js';

export const DRIVER_NAME = 'pg-reflinker.csi';
export const TOPOLOGY_KEY = 'topology.pg-reflinker.csi/node';

export interface IdentityOptions {
  version: string;
  servesController: boolean;
  /** Resolves to undefined when ready, or to the reason it is not. */
  readiness: () => Promise<string | undefined>;
}

export function identityService(opts: IdentityOptions): RpcTable {
  return {
    async GetPluginInfo() {
      return { name: DRIVER_NAME, vendor_version: opts.version, manifest: {} };
    },
    async GetPluginCapabilities() {
      const services = [
        ...(opts.servesController ? ['CONTROLLER_SERVICE'] : []),
        'VOLUME_ACCESSIBILITY_CONSTRAINTS',
      ];
      return { capabilities: services.map((type) => ({ service: { type } })) };
    },
    async Probe() {
      const problem = await opts.readiness();
      return { ready: { value: problem === undefined } };
    },
  };
}
