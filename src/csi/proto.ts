import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const PROTO_PATH = fileURLToPath(new URL('../../../proto/csi.proto', import.meta.url));

export interface CsiServices {
  Identity: grpc.ServiceClientConstructor;
  Controller: grpc.ServiceClientConstructor;
  Node: grpc.ServiceClientConstructor;
}

let cached: CsiServices | undefined;

/** Loads csi.v1 once; messages decode with snake_case keys, string enums and numeric int64s. */
export function loadCsi(): CsiServices {
  if (cached) return cached;
  const definition = protoLoader.loadSync(PROTO_PATH, {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { csi: { v1: CsiServices } };
  cached = pkg.csi.v1;
  return cached;
}
