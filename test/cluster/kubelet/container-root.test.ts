import { describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerRootPlan, UnsupportedLayout } from './container-root.js';

// The plan only (no mount is made here): which mount points land on a tmpfs, and which host
// directories get covered. kubelet.test.ts runs the plans for real.

const ROOT = '/run/pgr-test-root';
const volume = (containerPath: string) => ({ containerPath, hostPath: '/srv/volume', readOnly: false, kind: 'dir' as const });

describe('a container root plan', () => {
  test('a missing top-level directory is made on the root tmpfs, without covering anything', () => {
    const { commands } = new ContainerRootPlan(ROOT).mountAll([volume('/pgr-not-on-host/data')]);
    expect(commands.filter((c) => c.includes('tmpfs'))).toHaveLength(1); // the root itself
    expect(commands).toContain(`'/usr/bin/mkdir' '${ROOT}/pgr-not-on-host'`);
    expect(commands).toContain(`'/usr/bin/mkdir' '${ROOT}/pgr-not-on-host/data'`);
    expect(commands.at(-1)).toBe(`'/usr/bin/mount' '--bind' '/srv/volume' '${ROOT}/pgr-not-on-host/data'`);
  });

  test('a directory missing under a host directory covers that directory with a tmpfs and binds its entries back', () => {
    const { commands } = new ContainerRootPlan(ROOT).mountAll([{ ...volume('/etc/pgr-not-on-host'), readOnly: true }]);
    const cover = commands.indexOf(`'/usr/bin/mount' '-t' 'tmpfs' '-o' 'mode=755' 'pgr-shadow' '${ROOT}/etc'`);
    expect(cover).toBeGreaterThan(0);
    expect(commands.slice(cover)).toContain(`'/usr/bin/mount' '--bind' '/etc/passwd' '${ROOT}/etc/passwd'`);
    expect(commands.slice(-2)).toEqual([
      `'/usr/bin/mount' '--bind' '/srv/volume' '${ROOT}/etc/pgr-not-on-host'`,
      `'/usr/bin/mount' '-o' 'remount,bind,ro' '${ROOT}/etc/pgr-not-on-host'`,
    ]);
  });

  test('a mount point inside a volume is made in the volume; one through a host symlink is refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgr-root-plan-'));
    try {
      const { commands } = new ContainerRootPlan(ROOT).mountAll([
        { ...volume('/data'), hostPath: dir },
        { ...volume('/data/inner'), hostPath: '/srv/other' },
      ]);
      expect(commands.filter((c) => c.includes('tmpfs'))).toHaveLength(1);
      expect(commands).toContain(`'/usr/bin/mkdir' '${ROOT}/data/inner'`);
      symlinkSync('/etc', join(dir, 'link'));
      expect(() => new ContainerRootPlan(ROOT).mountAll([{ ...volume('/data'), hostPath: dir }, volume('/data/link/x')])).toThrow(UnsupportedLayout);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
