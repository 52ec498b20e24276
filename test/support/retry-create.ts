import { grpc, type CsiClient } from './csi-client.js';

export type CreatedVolume = { volume_id: string; volume_context: Record<string, string> };

/** CreateVolume, retried while the driver answers ABORTED (population running), as the sidecar does, up to `timeoutMs`. */
export async function createVolumeRetrying(client: CsiClient, request: object, timeoutMs = 60_000): Promise<CreatedVolume> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return (await client.controller('CreateVolume', request)).volume;
    } catch (err) {
      if ((err as grpc.ServiceError).code !== grpc.status.ABORTED || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
