import { status, type ServerUnaryCall, type sendUnaryData, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { CsiError, statusName } from './errors.js';

export type RpcHandler = (request: never) => Promise<object>;
export type RpcTable = Record<string, RpcHandler>;

export interface HandlerContext {
  log: Logger;
  metrics: Metrics;
}

/** The volume a request is about, for the log line; never the request itself (it may carry secrets). */
function subjectOf(request: Record<string, unknown>): Record<string, string> {
  const subject: Record<string, string> = {};
  for (const key of ['name', 'volume_id', 'target_path', 'volume_path'] as const) {
    const value = request[key];
    if (typeof value === 'string' && value) subject[key] = value;
  }
  return subject;
}

/**
 * Turns a table of `async (request) => response` functions into gRPC unary handlers:
 * one log line per call, metrics, and thrown errors mapped to statuses (unknown errors → INTERNAL).
 */
export function wrapService(service: string, table: RpcTable, ctx: HandlerContext): UntypedServiceImplementation {
  const implementation: UntypedServiceImplementation = {};
  for (const [method, handler] of Object.entries(table)) {
    implementation[method] = async (call: ServerUnaryCall<Record<string, unknown>, object>, callback: sendUnaryData<object>) => {
      const started = process.hrtime.bigint();
      let code: status = status.OK;
      let message = '';
      let response: object | undefined;
      try {
        response = await handler(call.request as never);
      } catch (err) {
        code = err instanceof CsiError ? err.code : status.INTERNAL;
        message = err instanceof Error ? err.message : String(err);
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const codeName = statusName(code);
      ctx.metrics.rpcTotal.inc({ method, code: codeName });
      ctx.metrics.rpcSeconds.observe({ method, code: codeName }, seconds);
      const level = code === status.OK || code === status.ABORTED ? 'info' : code === status.INTERNAL ? 'error' : 'warn';
      ctx.log.log(level, 'rpc', {
        method: `${service}.${method}`,
        ...subjectOf(call.request ?? {}),
        code: codeName,
        ms: Math.round(seconds * 1000),
        ...(message ? { error: message } : {}),
      });
      if (code === status.OK) callback(null, response);
      else callback({ code, details: message, name: codeName, message });
    };
  }
  return implementation;
}
