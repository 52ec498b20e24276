import { describe, expect, it } from '@jest/globals';
import { InvalidVolumeId, dirForName, formatVolumeId, parseVolumeId } from '../../src/volume/id.js';

describe('volume ids', () => {
  it('round-trips node and directory', () => {
    const id = formatVolumeId('node-a.example.com', 'pvc-0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0');
    expect(parseVolumeId(id)).toEqual({ node: 'node-a.example.com', dir: 'pvc-0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0', volumeId: id });
  });

  it('uses the sidecar name as the directory, and a digest for names that are not plain file names', () => {
    expect(dirForName('pvc-0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0')).toBe('pvc-0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0');
    for (const name of ['../etc', '.hidden', 'a/b', 'x'.repeat(48), 'sanity name with spaces', '']) {
      const dir = dirForName(name);
      expect(dir).toMatch(/^h-[0-9a-f]{32}$/);
    }
    expect(dirForName('x'.repeat(48))).not.toBe(dirForName('x'.repeat(49)));
  });

  it.each([
    ['', 'empty'],
    ['../x', 'node name ".." is not a lowercase DNS subdomain'],
    ['/etc/passwd', 'not of the form'],
    ['node/../x', 'not of the form'],
    ['node/..', 'not a valid volume directory'],
    ['node/.pg-reflinker', 'not a valid volume directory'],
    ['Node/pvc-1', 'not a lowercase DNS subdomain'],
    ['-node/pvc-1', 'not a lowercase DNS subdomain'],
    ['node/pvc 1', 'not a valid volume directory'],
    [`node/${'a'.repeat(200)}`, 'longer than 128 bytes'],
    [`${'n'.repeat(81)}/pvc-1`, 'longer than 80'],
  ])('rejects %j (%s)', (id, reason) => {
    expect(() => parseVolumeId(id)).toThrow(InvalidVolumeId);
    expect(() => parseVolumeId(id)).toThrow(reason);
  });

  it('keeps every id within 128 bytes for the longest node name and any volume name', () => {
    const node = 'n'.repeat(80);
    for (const name of ['pvc-0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0', 'y'.repeat(47), 'z'.repeat(128)]) {
      expect(Buffer.byteLength(formatVolumeId(node, dirForName(name)))).toBeLessThanOrEqual(128);
    }
  });
});
