import { describe, expect, it } from '@jest/globals';
import { failureStatus } from '../../src/populator/failure.js';

describe('populator failure → gRPC status', () => {
  it.each([
    'permission denied: role streaming_replica may not run the backup functions; as a superuser, run once on the primary: GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean), pg_backup_stop(boolean) TO streaming_replica;',
    'reflink copy not possible from /a (filesystem xfs) to /b (filesystem ext2/ext3): cp: failed to clone',
    'psql: connection to server at "10.0.0.5", port 5432 failed: FATAL:  certificate authentication failed for user "streaming_replica"',
    'psql: FATAL:  role "nobody" does not exist',
  ])('asks the user to act (FAILED_PRECONDITION): %s', (reason) => {
    expect(failureStatus(reason)).toBe('FAILED_PRECONDITION');
  });

  it.each([
    'WAL segment 000000010000000000000005 (needed from 0/5000028 to 0/6000100) is missing from /var/lib/pg-reflinker/pvc-2/pgdata/pg_wal: removed before it could be copied',
    'unexpected failure (exit 2) at line 40',
    'copy of /var/lib/pg-reflinker/pvc-1/pgdata failed (cp exit 1): cp: error reading: Input/output error',
  ])('reports a fault of ours or of the system (INTERNAL), even when a path says pg-reflinker: %s', (reason) => {
    expect(failureStatus(reason)).toBe('INTERNAL');
  });

  it('a full filesystem is RESOURCE_EXHAUSTED, not a reflink problem', () => {
    expect(failureStatus('no space left on the clone\'s filesystem: cp: failed to clone: No space left on device')).toBe('RESOURCE_EXHAUSTED');
  });
});
