import * as grpc from '@grpc/grpc-js';
import { loadCsi } from '../../src/csi/proto.js';

export type Call = (method: string, request: object) => Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface CsiClient {
  identity: Call;
  controller: Call;
  node: Call;
  close(): void;
}

/** A real gRPC client on the driver's unix socket, one promise-returning function per service. */
export function csiClient(socketPath: string): CsiClient {
  const csi = loadCsi();
  const address = `unix://${socketPath}`;
  const made = [csi.Identity, csi.Controller, csi.Node].map((Ctor) => new Ctor(address, grpc.credentials.createInsecure()));
  const caller =
    (client: grpc.Client): Call =>
    (method, request) =>
      new Promise((resolve, reject) => {
        const fn = (client as unknown as Record<string, Function>)[method];
        if (!fn) return reject(new Error(`no such method ${method}`));
        fn.call(client, request, { deadline: Date.now() + 60_000 }, (err: grpc.ServiceError | null, res: unknown) =>
          err ? reject(err) : resolve(res),
        );
      });
  return {
    identity: caller(made[0]!),
    controller: caller(made[1]!),
    node: caller(made[2]!),
    close: () => made.forEach((c) => c.close()),
  };
}

/** Resolves to the gRPC status code a call fails with (or 0 when it succeeds). */
export async function codeOf(promise: Promise<unknown>): Promise<number> {
  try {
    await promise;
    return grpc.status.OK;
  } catch (err) {
    return (err as grpc.ServiceError).code;
  }
}

export async function errorOf(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

export { grpc };
