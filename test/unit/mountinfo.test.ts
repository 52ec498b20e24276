import { describe, expect, it } from '@jest/globals';
import { isBindOf, locate, mountsShowing, parseMountInfo } from '../../src/volume/mountinfo.js';

const TABLE = [
  '22 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
  '40 22 7:0 / /srv/xfs rw,relatime - xfs /dev/loop0 rw',
  '41 22 7:0 /volumes/pvc-1 /var/lib/kubelet/pods/p/volumes/x/mount rw,relatime - xfs /dev/loop0 rw',
  '42 22 7:0 /volumes/pvc-1/pgdata /mnt/only\\040pgdata ro,relatime - xfs /dev/loop0 rw',
  '43 22 254:0 /var/lib/pg-reflinker/pvc-2 /tmp/target rw - ext4 /dev/vda rw',
].join('\n');

describe('mount table', () => {
  const mounts = parseMountInfo(TABLE);

  it('parses and unescapes mountinfo', () => {
    expect(mounts).toHaveLength(5);
    expect(mounts[3]).toMatchObject({ mountPoint: '/mnt/only pgdata', root: '/volumes/pvc-1/pgdata', options: ['ro', 'relatime'] });
  });

  it('locates a path on its filesystem', () => {
    expect(locate('/srv/xfs/volumes/pvc-1', mounts)).toEqual({ majorMinor: '7:0', root: '/volumes/pvc-1' });
    expect(locate('/var/lib/pg-reflinker/pvc-2', mounts)).toEqual({ majorMinor: '254:0', root: '/var/lib/pg-reflinker/pvc-2' });
  });

  it('finds every place a volume directory is shown, including subdirectories', () => {
    expect(mountsShowing('/srv/xfs/volumes/pvc-1', mounts).map((m) => m.mountPoint)).toEqual([
      '/var/lib/kubelet/pods/p/volumes/x/mount',
      '/mnt/only pgdata',
    ]);
    expect(mountsShowing('/srv/xfs/volumes/pvc-10', mounts)).toEqual([]);
    // A filesystem mounted inside a volume: rm -r would descend into it.
    const withInner = parseMountInfo(`${TABLE}\n50 40 8:1 / /srv/xfs/volumes/pvc-10/inner rw - ext4 /dev/sdb rw`);
    expect(mountsShowing('/srv/xfs/volumes/pvc-10', withInner).map((m) => m.mountPoint)).toEqual(['/srv/xfs/volumes/pvc-10/inner']);
    expect(mountsShowing('/var/lib/pg-reflinker/pvc-2', mounts).map((m) => m.mountPoint)).toEqual(['/tmp/target']);
  });

  it('tells whether a target is a bind mount of exactly a given directory', () => {
    expect(isBindOf('/var/lib/kubelet/pods/p/volumes/x/mount', '/srv/xfs/volumes/pvc-1', mounts)).toBe(true);
    expect(isBindOf('/mnt/only pgdata', '/srv/xfs/volumes/pvc-1', mounts)).toBe(false);
    expect(isBindOf('/tmp/target', '/srv/xfs/volumes/pvc-1', mounts)).toBe(false);
  });
});
