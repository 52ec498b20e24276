import { status } from '@grpc/grpc-js';

export { status as Code };

/** An error that carries the gRPC status the CSI spec names for it. */
export class CsiError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

export const invalidArgument = (message: string) => new CsiError(status.INVALID_ARGUMENT, message);
export const notFound = (message: string) => new CsiError(status.NOT_FOUND, message);
export const alreadyExists = (message: string) => new CsiError(status.ALREADY_EXISTS, message);
export const failedPrecondition = (message: string) => new CsiError(status.FAILED_PRECONDITION, message);
export const resourceExhausted = (message: string) => new CsiError(status.RESOURCE_EXHAUSTED, message);
export const aborted = (message: string) => new CsiError(status.ABORTED, message);
export const internal = (message: string) => new CsiError(status.INTERNAL, message);
export const unimplemented = (message: string) => new CsiError(status.UNIMPLEMENTED, message);
export const outOfRange = (message: string) => new CsiError(status.OUT_OF_RANGE, message);

export const statusName = (code: status): string => status[code] ?? String(code);
