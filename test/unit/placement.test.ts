import { describe, expect, it } from '@jest/globals';
import { status } from '@grpc/grpc-js';
import { placeClone, placeEmptyVolume } from '../../src/controller/placement.js';
import { CsiError } from '../../src/csi/errors.js';

const t = (node: string) => ({ segments: { 'topology.pg-reflinker.csi/node': node } });
const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as CsiError).code;
  }
  return status.OK;
};

describe('placement', () => {
  it('puts an empty volume on the first preferred node, else the first requisite', () => {
    expect(placeEmptyVolume({ requisite: [t('a'), t('b')], preferred: [t('b'), t('a')] })).toBe('b');
    expect(placeEmptyVolume({ requisite: [t('a'), t('b')], preferred: [] })).toBe('a');
    expect(codeOf(() => placeEmptyVolume({ requisite: [], preferred: [] }))).toBe(status.INVALID_ARGUMENT);
  });

  it('in standalone only uses its own node, when allowed', () => {
    expect(placeEmptyVolume(undefined, 'me')).toBe('me');
    expect(placeEmptyVolume({ requisite: [t('x'), t('me')], preferred: [t('x')] }, 'me')).toBe('me');
    expect(codeOf(() => placeEmptyVolume({ requisite: [t('x')], preferred: [] }, 'me'))).toBe(status.RESOURCE_EXHAUSTED);
  });

  it('puts a clone on its source node or answers RESOURCE_EXHAUSTED naming that node (never NOT_FOUND)', () => {
    expect(placeClone({ requisite: [t('a'), t('src')], preferred: [t('a')] }, 'src')).toBe('src');
    expect(placeClone(undefined, 'src')).toBe('src');
    try {
      placeClone({ requisite: [t('a')], preferred: [t('a')] }, 'src');
      throw new Error('expected a refusal');
    } catch (err) {
      expect((err as CsiError).code).toBe(status.RESOURCE_EXHAUSTED);
      expect((err as CsiError).message).toContain('src');
    }
  });
});
