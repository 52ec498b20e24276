import { LABEL_PATTERN } from './layout.js';

// The populator's inputs: environment variables only, the same for a child process and a Job.

/** The environment the script reads. Values are strings, as in any environment. */
export type PopulatorEnv = {
  /** `online` (a running server: backup bracket over one psql session) or `plain` (no server). Default online. */
  PGR_MODE: 'online' | 'plain';
  /** online: any libpq connection string (TLS client cert, or `host=/socket/dir port=... user=... dbname=postgres`). */
  PGR_CONNINFO?: string;
  /** online: the source PGDATA as mounted (owned by PGR_UID). */
  PGR_SOURCE_PGDATA?: string;
  /** plain: the source volume directory; all of it is copied. */
  PGR_SOURCE_DIR?: string;
  /** The destination volume directory (must exist, on the source's filesystem). */
  PGR_VOLUME_DIR: string;
  /** Backup label = the clone's volume name; LABEL_PATTERN. */
  PGR_LABEL: string;
  /** Owner of the result (default 26, CNPG's postgres). The script chowns only when run as root. */
  PGR_UID: string;
  PGR_GID: string;
  /** The source directory's identity `<st_dev>:<st_ino>` as the caller saw it; the script refuses a source that is not this directory. */
  PGR_SOURCE_ID?: string;
  /** `verified`: the caller checked that no server runs on the source's pgdata, so a postmaster.pid in it is stale. */
  PGR_SERVER_STOPPED?: 'verified';
  /** plain: `1` when the StorageClass allowed crash-consistent copies of a volume in use. */
  PGR_CRASH_CONSISTENT?: '1';
  /** Scratch space: the script makes `pgr-populate.XXXXXX/` in it (removed on success, kept with its `log` on failure); default: inside the staging directory. */
  PGR_WORK_DIR?: string;
  /** Benchmark control only: `syncfs` makes the result durable the old way, `sync -f` of the whole filesystem, instead of fsync of what the clone wrote. */
  PGR_DURABILITY?: 'syncfs';
};

export interface PopulatorOptions {
  mode: 'online' | 'plain';
  /** online only. */
  conninfo?: string;
  /** online: the source PGDATA; plain: the source volume directory. */
  sourceDir: string;
  volumeDir: string;
  label: string;
  uid?: number;
  gid?: number;
  workDir?: string;
  /** `<st_dev>:<st_ino>` of sourceDir as the caller resolved it (pins the source against swaps). */
  sourceIdentity?: string;
  /** plain: the caller verified that no server runs on the source (a postmaster.pid there is stale). */
  serverStopped?: boolean;
  /** plain: the copy may be crash-consistent (the StorageClass allowed it). */
  crashConsistent?: boolean;
  /** Benchmark control only (see PGR_DURABILITY). */
  durability?: 'fsync' | 'syncfs';
}

/** Builds the script's environment; throws on values the script would refuse. */
export function populatorEnv(opts: PopulatorOptions): PopulatorEnv {
  if (!LABEL_PATTERN.test(opts.label)) throw new Error(`populator label ${JSON.stringify(opts.label)} must match ${LABEL_PATTERN}`);
  for (const [name, id] of [['uid', opts.uid], ['gid', opts.gid]] as const) {
    if (id !== undefined && !(Number.isInteger(id) && id >= 0)) throw new Error(`populator ${name} must be a non-negative integer, not ${id}`);
  }
  if (opts.mode === 'online' && !opts.conninfo) throw new Error('populator: online mode needs a connection string');
  const env: PopulatorEnv = {
    PGR_MODE: opts.mode,
    PGR_VOLUME_DIR: opts.volumeDir,
    PGR_LABEL: opts.label,
    PGR_UID: String(opts.uid ?? 26),
    PGR_GID: String(opts.gid ?? 26),
  };
  if (opts.mode === 'online') {
    env.PGR_CONNINFO = opts.conninfo as string;
    env.PGR_SOURCE_PGDATA = opts.sourceDir;
  } else {
    env.PGR_SOURCE_DIR = opts.sourceDir;
  }
  if (opts.workDir) env.PGR_WORK_DIR = opts.workDir;
  if (opts.sourceIdentity !== undefined) {
    if (!/^[0-9]+:[0-9]+$/.test(opts.sourceIdentity)) throw new Error(`populator source identity ${JSON.stringify(opts.sourceIdentity)} must be <dev>:<ino>`);
    env.PGR_SOURCE_ID = opts.sourceIdentity;
  }
  if (opts.serverStopped) env.PGR_SERVER_STOPPED = 'verified';
  if (opts.crashConsistent) env.PGR_CRASH_CONSISTENT = '1';
  if (opts.durability === 'syncfs') env.PGR_DURABILITY = 'syncfs';
  return env;
}
