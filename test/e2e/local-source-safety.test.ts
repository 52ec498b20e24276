import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chown, mkdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../src/exec.js';
import { freePort, initPrimary, postgresUser, type PgServer as Server } from '../../testbed/postgres.js';
import { runAs } from '../../testbed/run-as.js';
import { createTls } from '../../testbed/tls.js';
import { errorOf, grpc, type CsiClient } from '../support/csi-client.js';
import { OPENSSL, POSTGRES, ROOT, XFS, describeWithRealParts } from '../support/requirements.js';
import { createVolumeRetrying, type CreatedVolume } from '../support/retry-create.js';
import { startStandaloneOnLoopFs, type StandaloneOnLoopFs } from '../support/standalone.js';

const NODE = 'safety-node';
const GiB = 1024 ** 3;
const mountCap = { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };

/** Processes whose environment carries PGR_LABEL=<label>: the populator of that clone. */
function populatorProcesses(label: string): { pid: number; uid: number; env: Map<string, string> }[] {
  const found = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const vars = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (!vars.includes(`PGR_LABEL=${label}`)) continue;
      const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))![1]);
      found.push({ pid: Number(entry), uid, env: new Map(vars.filter(Boolean).map((v) => [v.slice(0, v.indexOf('=')), v.slice(v.indexOf('=') + 1)])) });
    } catch {
      /* gone, or a kernel thread */
    }
  }
  return found;
}

// Two tenants' live PostgreSQL servers A and B on one standalone driver. A's postmaster.pid is
// forged to point at B (or at nothing real): a clone of A must never be a clone of B.
describeWithRealParts('standalone clones trust the kernel, not postmaster.pid (real XFS, real PostgreSQL 15)', [ROOT, XFS, POSTGRES, OPENSSL], () => {
  let standalone: StandaloneOnLoopFs | undefined;
  let client: CsiClient;
  let base: string;
  let a: Server;
  let b: Server;
  let aVolume: CreatedVolume;
  let seq = 0;
  const pidFile = (s: Server) => join(s.dataDir, 'postmaster.pid');
  const postmasterPid = async (s: Server) => Number((await readFile(pidFile(s), 'utf8')).split('\n')[0]);
  const cloneOf = (source: CreatedVolume, name = `clone-${++seq}`) => ({
    name,
    volume_capabilities: [mountCap],
    capacity_range: { required_bytes: GiB },
    volume_content_source: { volume: { volume_id: source.volume_id } },
  });

  /** Rewrites lines (0-based) of a postmaster.pid, returning the original text. */
  async function forge(file: string, lines: Record<number, string>): Promise<string> {
    const original = await readFile(file, 'utf8');
    const parts = original.split('\n');
    for (const [i, value] of Object.entries(lines)) parts[Number(i)] = value;
    await writeFile(file, parts.join('\n'));
    return original;
  }

  async function tenant(name: string): Promise<{ volume: CreatedVolume; server: Server }> {
    const volume = (await client.controller('CreateVolume', { name, volume_capabilities: [mountCap], capacity_range: { required_bytes: GiB } })).volume;
    const target = join(base, 'pods', name);
    await mkdir(join(target, '..'), { recursive: true });
    await client.node('NodePublishVolume', { volume_id: volume.volume_id, target_path: target, volume_capability: mountCap, volume_context: volume.volume_context });
    const tls = await createTls(join(base, `tls-${name}`), { serverKeyOwner: postgresUser() });
    const server = await initPrimary({ volumeDir: target, port: await freePort(), socketDir: join(base, `sock-${name}`), logFile: join(base, `${name}.log`), tls });
    await writeFile(join(target, 'whoami'), name);
    return { volume, server };
  }

  beforeAll(async () => {
    standalone = await startStandaloneOnLoopFs({ sizeMb: 2048, node: NODE });
    ({ client } = standalone);
    base = standalone.fs.base;
    ({ volume: aVolume, server: a } = await tenant('tenant-a'));
    ({ server: b } = await tenant('tenant-b'));
  }, 300_000);

  afterAll(async () => {
    for (const s of [a, b]) await s?.stop().catch(() => undefined);
    await standalone?.stop();
  }, 120_000);

  it("a postmaster.pid naming B's postmaster pid is refused with FAILED_PRECONDITION naming the mismatch", async () => {
    const bPid = await postmasterPid(b);
    const aPid = await postmasterPid(a);
    const original = await forge(pidFile(a), { 0: String(bPid) });
    try {
      const request = cloneOf(aVolume);
      const err = await errorOf(createVolumeRetrying(client, request));
      expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(err.details).toContain(`postmaster.pid names pid ${bPid}`);
      expect(err.details).toContain(`is pid ${aPid}`);
      expect(existsSync(join(standalone!.root, request.name))).toBe(false);
    } finally {
      await writeFile(pidFile(a), original);
    }
  }, 120_000);

  it("a postmaster.pid naming B's port and socket directory is refused: A's server does not listen there", async () => {
    const original = await forge(pidFile(a), { 3: String(b.port), 4: b.socketDir });
    try {
      const request = cloneOf(aVolume);
      const err = await errorOf(createVolumeRetrying(client, request));
      expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(err.details).toContain(`${b.socketDir}/.s.PGSQL.${b.port}`);
      expect(existsSync(join(standalone!.root, request.name))).toBe(false);
    } finally {
      await writeFile(pidFile(a), original);
    }
  }, 120_000);

  it("another program working in A's pgdata (a shell; another clone's populator reads through it) neither hides nor replaces A's server: the clone is online", async () => {
    const pg = postgresUser();
    const visitor = spawn('sleep', ['120'], { cwd: a.dataDir, uid: pg.uid, gid: pg.gid, stdio: 'ignore' });
    try {
      const clone = await createVolumeRetrying(client, cloneOf(aVolume));
      expect(clone.volume_context['pg-reflinker.csi/mode']).toBe('online');
      await client.controller('DeleteVolume', { volume_id: clone.volume_id });
    } finally {
      visitor.kill('SIGKILL');
    }
  }, 120_000);

  it('while the copy runs: the populator is not root, carries the pinned source identity, and cannot replace the root-owned job record', async () => {
    const pg = postgresUser();
    const aPid = await postmasterPid(a);
    const request = cloneOf(aVolume, 'held-clone');
    process.kill(aPid, 'SIGSTOP'); // psql's connection now waits (PGCONNECT_TIMEOUT 30 s): the population stays running
    try {
      expect((await errorOf(client.controller('CreateVolume', request))).code).toBe(grpc.status.ABORTED);
      const procs = populatorProcesses('held-clone');
      expect(procs.length).toBeGreaterThan(0);
      const pgdata = await stat(a.dataDir);
      for (const p of procs) {
        expect(p.uid).toBe(pg.uid);
        expect(p.env.get('PGR_SOURCE_ID')).toBe(`${pgdata.dev}:${pgdata.ino}`);
      }
      const jd = join(standalone!.root, '.pg-reflinker', 'jobs', 'held-clone');
      expect((await stat(jd)).uid).toBe(0);
      for (const name of ['pid', 'process.json', 'spec.json']) {
        const attempt = await runAs(pg, 'bash', ['-c', 'echo 1 >"$0/forged.$1" && mv -f "$0/forged.$1" "$0/$1"', jd, name], { okCodes: [1] });
        expect(attempt.code).toBe(1);
      }
      // DeleteVolume stops the running population (its whole process group) and removes it.
      await client.controller('DeleteVolume', { volume_id: `${NODE}/held-clone` });
      expect(populatorProcesses('held-clone')).toEqual([]);
      expect(existsSync(jd)).toBe(false);
      expect(existsSync(join(standalone!.root, 'held-clone'))).toBe(false);
    } finally {
      process.kill(aPid, 'SIGCONT');
    }
  }, 120_000);

  it("the populator's outputs are read without following its links: a forged stderr symlink leaks nothing into the error", async () => {
    const pg = postgresUser();
    const secret = join(base, 'root-only-secret');
    await writeFile(secret, 'TOP-SECRET-of-root\n', { mode: 0o600 });
    const aPid = await postmasterPid(a);
    const request = cloneOf(aVolume, 'forged-out');
    process.kill(aPid, 'SIGSTOP');
    try {
      expect((await errorOf(client.controller('CreateVolume', request))).code).toBe(grpc.status.ABORTED);
      const jd = join(standalone!.root, '.pg-reflinker', 'jobs', 'forged-out');
      const writable = [jd, join(jd, 'out')].filter((d) => existsSync(d));
      const theirs = [];
      for (const d of writable) if ((await stat(d)).uid === pg.uid) theirs.push(d);
      expect(theirs).toHaveLength(1);
      await runAs(pg, 'bash', ['-c', 'ln -sfn "$1" "$0/stderr" && echo 1 >"$0/rc"', theirs[0]!, secret]);
      for (const p of populatorProcesses('forged-out')) process.kill(p.pid, 'SIGKILL');
    } finally {
      process.kill(aPid, 'SIGCONT');
    }
    const err = await errorOf(createVolumeRetrying(client, request));
    expect(err.details).not.toContain('TOP-SECRET');
    expect([grpc.status.FAILED_PRECONDITION, grpc.status.INTERNAL]).toContain(err.code);
    expect(await readFile(secret, 'utf8')).toBe('TOP-SECRET-of-root\n');
  }, 120_000);

  it("root reads nothing of A's through a link or a FIFO: postmaster.pid and PG_VERSION replaced by either, the call answers at once and leaks nothing", async () => {
    const secret = join(base, 'root-only-secret-2');
    await writeFile(secret, 'ANOTHER-SECRET-of-root\n', { mode: 0o600 });
    for (const file of ['postmaster.pid', 'PG_VERSION']) {
      const path = join(a.dataDir, file);
      const original = await readFile(path, 'utf8');
      for (const kind of ['fifo', 'symlink'] as const) {
        await rm(path);
        if (kind === 'fifo') await run('mkfifo', ['-m', '0600', path]);
        else await symlink(secret, path);
        try {
          const started = Date.now();
          const err = await errorOf(createVolumeRetrying(client, cloneOf(aVolume)));
          expect(Date.now() - started).toBeLessThan(20_000);
          expect(err.code).not.toBe(grpc.status.DEADLINE_EXCEEDED);
          expect(err.details).not.toContain('ANOTHER-SECRET');
        } finally {
          await rm(path);
          await writeFile(path, original, { mode: 0o600 });
          await chown(path, postgresUser().uid, postgresUser().gid);
        }
      }
    }
  }, 300_000);

  // Last: A stays stopped.
  it("A stopped, its postmaster.pid forged to name B's live server: a plain copy of A, never a clone of B", async () => {
    const original = await readFile(pidFile(a), 'utf8');
    await a.stop();
    const forged = original.split('\n');
    forged[0] = String(await postmasterPid(b));
    forged[3] = String(b.port);
    forged[4] = b.socketDir;
    await writeFile(pidFile(a), forged.join('\n'));
    const volume = await createVolumeRetrying(client, cloneOf(aVolume));
    expect(volume.volume_context['pg-reflinker.csi/mode']).toBe('plain');
    const cloneDir = join(standalone!.root, volume.volume_id.split('/')[1]!);
    expect(await readFile(join(cloneDir, 'whoami'), 'utf8')).toBe('tenant-a');
  }, 180_000);
});
