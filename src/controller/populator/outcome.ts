import { failedPrecondition, internal, resourceExhausted, type CsiError } from '../../csi/errors.js';
import type { SourceVolume, VolumeSpec } from '../backend.js';
import { CONTEXT_KIND } from '../backend.js';
import type { PopulatorResult } from './result.js';

const KEY = 'pg-reflinker.csi/';

/** The volume_context of a populated clone: where it came from and what the copy was (same on every call). */
export function cloneContext(spec: VolumeSpec & { source: SourceVolume }, mode: 'online' | 'plain', result: PopulatorResult): Record<string, string> {
  const context: Record<string, string> = {
    [CONTEXT_KIND]: 'clone',
    [`${KEY}source`]: spec.source.description,
    [`${KEY}sourceVolumeId`]: spec.source.ref.volumeId,
    [`${KEY}node`]: spec.ref.node,
    [`${KEY}mode`]: mode,
    [`${KEY}seconds`]: result.seconds.toFixed(3),
    [`${KEY}files`]: String(result.files),
    [`${KEY}bytes`]: String(result.bytes),
  };
  if (mode === 'online') {
    context[`${KEY}startLsn`] = result.startLsn ?? '';
    context[`${KEY}stopLsn`] = result.stopLsn ?? '';
    context[`${KEY}timeline`] = String(result.timeline ?? '');
    context[`${KEY}backupFrom`] = result.backupFrom ?? '';
    context[`${KEY}checkpointSeconds`] = result.checkpointSeconds.toFixed(3);
    context[`${KEY}copySeconds`] = result.copySeconds.toFixed(3);
    context[`${KEY}walSeconds`] = result.walSeconds.toFixed(3);
  }
  return context;
}

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
