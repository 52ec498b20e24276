import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The driver's Prometheus metrics, one registry per process (tests make their own). */
export class Metrics {
  readonly registry = new Registry();
  readonly rpcTotal = new Counter({
    name: 'pg_reflinker_rpc_total',
    help: 'CSI calls served, by method and gRPC status code',
    labelNames: ['method', 'code'] as const,
    registers: [this.registry],
  });
  readonly rpcSeconds = new Histogram({
    name: 'pg_reflinker_rpc_duration_seconds',
    help: 'Time to answer a CSI call, by method and gRPC status code',
    labelNames: ['method', 'code'] as const,
    buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 1, 2, 5, 10, 30],
    registers: [this.registry],
  });
  readonly clonesTotal = new Counter({
    name: 'pg_reflinker_clones_total',
    help: 'Clone populations finished, by result (succeeded, failed) and mode (online, plain)',
    labelNames: ['result', 'mode'] as const,
    registers: [this.registry],
  });
  readonly cloneSeconds = new Histogram({
    name: 'pg_reflinker_clone_duration_seconds',
    help: 'Successful clone populations, in seconds. Standalone: from starting the populator until the driver saw its result; Kubernetes: the populator\'s own run time from its result (no Job scheduling or image pull)',
    buckets: [0.5, 1, 2, 5, 10, 30, 60, 300, 900],
    registers: [this.registry],
  });
  readonly clonedBytes = new Counter({
    name: 'pg_reflinker_cloned_bytes_total',
    help: 'Logical bytes of data directories cloned (shared by reflink, not written)',
    registers: [this.registry],
  });
  readonly cleanupsTotal = new Counter({
    name: 'pg_reflinker_cleanups_total',
    help: 'Volume deletions on a node, by result (deleted, absent, failed)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  constructor(withProcessMetrics = false) {
    if (withProcessMetrics) collectDefaultMetrics({ register: this.registry });
  }
}
