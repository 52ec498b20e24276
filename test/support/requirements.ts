import { describe } from '@jest/globals';
import { accessSync, constants, existsSync } from 'node:fs';

export interface Requirement {
  name: string;
  missing(): boolean;
}

const onPath = (program: string) =>
  (process.env.PATH ?? '').split(':').concat('/usr/sbin', '/sbin').some((dir) => {
    try {
      accessSync(`${dir}/${program}`, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });

export const ROOT: Requirement = { name: 'root (bind mounts, loop devices)', missing: () => process.getuid?.() !== 0 };
export const XFS: Requirement = { name: 'xfsprogs (mkfs.xfs)', missing: () => !onPath('mkfs.xfs') };
export const POSTGRES: Requirement = {
  name: 'PostgreSQL 15 server (postgresql-15)',
  missing: () => {
    try {
      accessSync('/usr/lib/postgresql/15/bin/postgres', constants.X_OK);
      return false;
    } catch {
      return true;
    }
  },
};
export const AMCHECK: Requirement = {
  name: 'amcheck and pg_amcheck (postgresql-15)',
  missing: () => !existsSync('/usr/share/postgresql/15/extension/amcheck.control') || !existsSync('/usr/lib/postgresql/15/bin/pg_amcheck'),
};
export const OPENSSL: Requirement = { name: 'openssl', missing: () => !onPath('openssl') };

/**
 * A describe block that needs real parts. In CI a missing part fails the suite loudly;
 * elsewhere the block is skipped with a message saying what is missing.
 */
export function describeWithRealParts(title: string, requirements: Requirement[], body: () => void): void {
  const missing = requirements.filter((r) => r.missing()).map((r) => r.name);
  if (missing.length === 0) return describe(title, body);
  if (process.env.CI) {
    throw new Error(`${title}: CI lacks ${missing.join(', ')}; .ci/run must install them`);
  }
  console.warn(`SKIPPED "${title}": this machine lacks ${missing.join(', ')} (CI fails instead of skipping)`);
  describe.skip(title, body);
}
