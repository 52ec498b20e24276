import { describe, expect, test } from '@jest/globals';
import type { V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { status } from '@grpc/grpc-js';
import { ApiException } from '@kubernetes/client-node';
import { toCsiError } from '../../src/backends/kube/api/client.js';
import { clusterInfo } from '../../src/backends/kube/clone/cnpg.js';
import { jobPhase, podVerdict } from '../../src/backends/kube/api/jobs.js';
import { cleanupJobName, eventName, populateJobName, uidFromVolumeName } from '../../src/backends/kube/api/names.js';
import { volumeKey } from '../../src/volume/id.js';
import { consents, searchOrder } from '../../src/backends/kube/clone/namespace-path.js';
import { InvalidQuantity, parseQuantity } from '../../src/backends/kube/api/quantity.js';
import { CONTROLLER_RBAC_RULES } from '../../src/backends/kube/rbac.js';
import { CsiError } from '../../src/csi/errors.js';

describe('Kubernetes quantities', () => {
  test.each([
    ['10Gi', 10 * 2 ** 30],
    ['1.5Gi', 1.5 * 2 ** 30],
    ['500M', 500e6],
    ['1G', 1e9],
    ['1Ti', 2 ** 40],
    ['123', 123],
    ['1e3', 1000],
    ['1.5e3', 1500],
    ['100m', 1],
    ['1500m', 2],
    ['0', 0],
    ['.5Ki', 512],
    ['2k', 2000],
  ])('%s = %d bytes', (text, bytes) => expect(parseQuantity(text)).toBe(bytes));

  test.each(['', 'Gi', '10GB', '-1Gi', '1.2.3', '10 Gi'])('%p is refused', (text) => expect(() => parseQuantity(text)).toThrow(InvalidQuantity));
});

describe('names', () => {
  test('volume keys and Job names are DNS labels within 63 characters', () => {
    const dir = 'pvc-0b7e1d2c-3f4a-4b5c-8d9e-0f1a2b3c4d5e';
    expect(volumeKey(dir)).toBe(dir);
    expect(populateJobName(dir, 'k3x9q2m7')).toBe(`pgr-populate-${dir}-k3x9q2m7`);
    expect(populateJobName(dir, 'k3x9q2m7')).toHaveLength(62);
    expect(cleanupJobName(dir)).toBe(`pgr-cleanup-${dir}`);
    for (const odd of ['UPPER', 'a.b', 'x_y', 'ends-', 'a'.repeat(47), `pvc-${'a'.repeat(60)}`]) {
      const name = populateJobName(odd, 'k3x9q2m7');
      expect(name.length).toBeLessThanOrEqual(63);
      expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
    expect(volumeKey('UPPER')).not.toBe(volumeKey('upper'));
    expect(uidFromVolumeName(`pvc-${'0b7e1d2c-3f4a-4b5c-8d9e-0f1a2b3c4d5e'}`)).toBe('0b7e1d2c-3f4a-4b5c-8d9e-0f1a2b3c4d5e');
    expect(eventName('clone', 'PopulateFailed', 'ABC-123-def')).toBe('clone.pgr-populatefailed-abc123def');
  });
});

describe('cross-namespace consent', () => {
  const pvc = (namespace: string, allow?: string): V1PersistentVolumeClaim => ({
    metadata: { namespace, name: 'db', annotations: allow === undefined ? {} : { 'pg-reflinker.csi/allow-clone-to': allow } },
  });
  test('same namespace needs nothing; others need the source owner to list them (or *)', () => {
    expect(consents(pvc('a'), 'a')).toBe(true);
    expect(consents(pvc('a'), 'b')).toBe(false);
    expect(consents(pvc('a', 'c, b'), 'b')).toBe(true);
    expect(consents(pvc('a', 'c'), 'b')).toBe(false);
    expect(consents(pvc('a', '*'), 'b')).toBe(true);
    expect(consents(pvc('a', ''), 'b')).toBe(false);
  });
  test('search order: the clone namespace, then NAMESPACE_PATH, each once', () => {
    expect(searchOrder('apps', ['db', 'apps', 'shared'])).toEqual(['apps', 'db', 'shared']);
  });
});

describe('CloudNativePG Cluster reading', () => {
  test('status wins over spec; defaults follow CloudNativePG', () => {
    expect(clusterInfo('db', 'pg', {})).toEqual({ name: 'pg', namespace: 'db', objectUid: undefined, image: undefined, uid: 26, gid: 26, caSecret: 'pg-ca', replicationSecret: 'pg-replication', walStorage: false });
    expect(
      clusterInfo('db', 'pg', {
        spec: { imageName: 'spec-img', postgresUID: 1001, postgresGID: 1002, walStorage: {}, certificates: { serverCASecret: 'my-ca' } },
        status: { image: 'status-img', certificates: { replicationTLSSecret: 'my-repl' } },
      }),
    ).toMatchObject({ image: 'status-img', uid: 1001, gid: 1002, caSecret: 'my-ca', replicationSecret: 'my-repl', walStorage: true });
  });
});

describe('Job and pod state', () => {
  test('phase from conditions; Failed counts only once no pod is left', () => {
    expect(jobPhase({ status: {} })).toBe('running');
    expect(jobPhase({ status: { conditions: [{ type: 'Complete', status: 'True' }] } })).toBe('succeeded');
    expect(jobPhase({ status: { conditions: [{ type: 'Failed', status: 'True' }] } })).toBe('failed');
    expect(jobPhase({ status: { active: 1, conditions: [{ type: 'Failed', status: 'True' }] } })).toBe('running');
    expect(jobPhase({ status: { conditions: [{ type: 'FailureTarget', status: 'True' }] } })).toBe('running');
  });
  test('pod verdicts: termination message, failed init container, waiting reason', () => {
    expect(podVerdict([], 'populate')).toEqual({ state: 'no pod yet' });
    expect(
      podVerdict([{ status: { phase: 'Failed', containerStatuses: [{ name: 'populate', state: { terminated: { exitCode: 1, message: 'pg-reflinker populate: x\n' } } } as never] } }], 'populate'),
    ).toMatchObject({ message: 'pg-reflinker populate: x', exitCode: 1 });
    expect(
      podVerdict([{ status: { phase: 'Failed', initContainerStatuses: [{ name: 'prepare', state: { terminated: { exitCode: 1, message: 'chown: denied' } } } as never] } }], 'populate').problem,
    ).toBe('init container prepare failed (exit 1): chown: denied');
    expect(
      podVerdict([{ status: { phase: 'Pending', containerStatuses: [{ name: 'populate', state: { waiting: { reason: 'ImagePullBackOff', message: 'no such image' } } } as never] } }], 'populate').state,
    ).toBe('ImagePullBackOff: no such image');
  });
});

describe('API errors as CSI statuses', () => {
  test('unreachable or overloaded → UNAVAILABLE, forbidden → INTERNAL naming RBAC', () => {
    const e = (code: number) => new ApiException(code, 'x', JSON.stringify({ message: `status ${code}` }), {});
    expect((toCsiError(new Error('ECONNREFUSED'), 'doing') as CsiError).code).toBe(status.UNAVAILABLE);
    expect((toCsiError(e(503), 'doing') as CsiError).code).toBe(status.UNAVAILABLE);
    expect((toCsiError(e(429), 'doing') as CsiError).code).toBe(status.UNAVAILABLE);
    const forbidden = toCsiError(e(403), 'doing') as CsiError;
    expect(forbidden.code).toBe(status.INTERNAL);
    expect(forbidden.message).toMatch(/ClusterRole.*doing: status 403/);
  });
});

describe('errors that are not API answers', () => {
  const codeOf = (err: unknown) => (toCsiError(err, 'doing') as CsiError).code;

  test('network failures are UNAVAILABLE (the sidecar retries)', () => {
    const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });
    expect(codeOf(withCode('connect ECONNREFUSED 127.0.0.1:6443', 'ECONNREFUSED'))).toBe(status.UNAVAILABLE);
    expect(codeOf(withCode('read ECONNRESET', 'ECONNRESET'))).toBe(status.UNAVAILABLE);
    expect(codeOf(withCode('connect ETIMEDOUT 10.0.0.1:443', 'ETIMEDOUT'))).toBe(status.UNAVAILABLE);
    expect(codeOf(withCode('getaddrinfo EAI_AGAIN kubernetes.default.svc', 'EAI_AGAIN'))).toBe(status.UNAVAILABLE);
    expect(codeOf(new Error('socket hang up'))).toBe(status.UNAVAILABLE);
    expect(codeOf(new TypeError('fetch failed', { cause: withCode('connect ECONNREFUSED', 'ECONNREFUSED') }))).toBe(status.UNAVAILABLE);
  });

  test('our own bugs and bad input are INTERNAL, not retried forever as UNAVAILABLE', () => {
    expect(codeOf(new TypeError("Cannot read properties of undefined (reading 'name')"))).toBe(status.INTERNAL);
    expect(codeOf(new Error('populator label "a b" must match /x/'))).toBe(status.INTERNAL);
    expect(codeOf(new SyntaxError('Unexpected token } in JSON at position 3'))).toBe(status.INTERNAL);
    expect(codeOf('a thrown string')).toBe(status.INTERNAL);
  });
});

describe('RBAC', () => {
  test('the controller reads no Secrets and holds no wildcard', () => {
    for (const rule of CONTROLLER_RBAC_RULES) {
      expect(rule.resources).not.toContain('secrets');
      expect(rule.resources).not.toContain('*');
      expect(rule.verbs).not.toContain('*');
    }
  });
});
