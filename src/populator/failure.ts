import { failedPrecondition, internal, resourceExhausted, type CsiError } from '../csi/errors.js';

// A failed population's reason, as the CSI status the sidecar and the user act on.

export type FailureStatus = 'FAILED_PRECONDITION' | 'RESOURCE_EXHAUSTED' | 'INTERNAL';

/**
 * A full filesystem is RESOURCE_EXHAUSTED (free space, then retry); failures the user must fix on
 * their side are FAILED_PRECONDITION; the rest (I/O errors, our faults) are INTERNAL.
 */
export function failureStatus(reason: string): FailureStatus {
  if (/no space left on device|quota exceeded/i.test(reason)) return 'RESOURCE_EXHAUSTED';
  return /permission denied|GRANT EXECUTE|reflink copy not possible|not supported|role .* does not exist|authentication failed|certificate|tablespace|refusing/i.test(reason)
    ? 'FAILED_PRECONDITION'
    : 'INTERNAL';
}

/** The CSI error for a failed population: `message` (default: the reason) under failureStatus(reason). */
export function failureError(reason: string, message = reason): CsiError {
  const code = failureStatus(reason);
  return code === 'FAILED_PRECONDITION' ? failedPrecondition(message) : code === 'RESOURCE_EXHAUSTED' ? resourceExhausted(message) : internal(message);
}
