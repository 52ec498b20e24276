import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../src/exec.js';
import { readMounts } from '../../src/volume/mountinfo.js';
import { POPULATED_MARKER } from '../../src/populator/layout.js';
import { startPopulator } from '../../testbed/populator.js';
import { checkPgbenchInvariant, freePort, grantBackup, initPrimary, ownedDir, PgServer, pgbenchInit, postgresUser, startClone } from '../../testbed/postgres.js';
import { createTls } from '../../testbed/tls.js';
import { treeDigest } from '../../testbed/tree.js';
import { createLoopFs, type LoopFs } from '../../testbed/xfs.js';
import { csiClient, type CsiClient } from '../support/csi-client.js';
import { startDriverProcess, type DriverProcess } from '../support/driver-process.js';
import { OPENSSL, POSTGRES, ROOT, XFS, describeWithRealParts } from '../support/requirements.js';
import { createVolumeRetrying } from '../support/retry-create.js';

const NODE = 'crash-node';
const mountCap = { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
type Volume = { volume_id: string; volume_context: Record<string, string> };

/**
 * The populator's durability, proved by a crash: `xfs_io -x -c shutdown` (no -f) stops the XFS at
 * once and throws away whatever its log has not written yet, as xfstests' godown does; after
 * unmount and mount, log recovery shows what a power cut would have left. The loop device's cache
 * does not hide a loss: what XFS never submitted is gone, whatever the backing file caches.
 * The source stays idle around each clone, so no fsync of PostgreSQL's forces the log for us.
 */
describeWithRealParts('a clone survives a crash of its XFS right after it was reported ready (shutdown without log flush)', [ROOT, XFS, POSTGRES, OPENSSL], () => {
  let fs: LoopFs;
  let root: string;
  let socket: string;
  let driver: DriverProcess | undefined;
  let client: CsiClient | undefined;
  let primary: PgServer | undefined;
  let sourcePgdata: string;
  let seq = 0;
  const volumeDir = (name: string) => join(root, name);

  async function startDriver(): Promise<void> {
    driver = await startDriverProcess(['standalone', '--endpoint', `unix://${socket}`, '--root', root, '--node-id', NODE], socket);
    client = csiClient(socket);
  }

  async function stopDriver(): Promise<void> {
    client?.close();
    client = undefined;
    await driver?.stop();
    driver = undefined;
  }

  async function publish(volume: Volume): Promise<string> {
    const target = join(fs.base, 'pods', `pod-${++seq}`, 'mount');
    await mkdir(join(target, '..'), { recursive: true });
    await client!.node('NodePublishVolume', { volume_id: volume.volume_id, target_path: target, volume_capability: mountCap, volume_context: volume.volume_context });
    return target;
  }

  async function startSource(): Promise<void> {
    primary = await PgServer.start({ dataDir: sourcePgdata, port: await freePort(), socketDir: join(fs.base, 'sock-source'), logFile: join(fs.base, `source-${++seq}.log`) });
  }

  /** pg_ctl cannot read postmaster.pid from a filesystem that is shut down: SIGQUIT (immediate shutdown) by the pid read before. */
  async function stopSourceAfterShutdown(pid: number): Promise<void> {
    process.kill(pid, 'SIGQUIT');
    await primary?.stop('immediate');
    primary = undefined;
  }

  /** Quiet source, everything before this moment on disk: what follows is the clone's alone. */
  async function settle(): Promise<void> {
    await primary!.sql('CHECKPOINT');
    await run('sync', ['-f', fs.mountPoint]);
  }

  /** Shutdown without log flush, then unmount everything and mount again (log recovery); driver and source restarted. */
  async function crashAndRecover(): Promise<void> {
    const postmaster = Number((await readFile(join(sourcePgdata, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    await run('xfs_io', ['-x', '-c', 'shutdown', fs.mountPoint]);
    await stopSourceAfterShutdown(postmaster);
    await stopDriver();
    await unmountAll();
    await run('mount', ['-o', 'loop', fs.image, fs.mountPoint], { timeoutMs: 60_000 });
    await startDriver();
    await startSource();
  }

  /** Everything mounted under the test's directory, deepest first; a populator still exiting may keep it busy for a moment. */
  async function unmountAll(): Promise<void> {
    const mounted = async () => (await readMounts()).map((m) => m.mountPoint).filter((p) => p.startsWith(`${fs.base}/`));
    const deadline = Date.now() + 30_000;
    for (let left = await mounted(); left.length > 0; left = await mounted()) {
      if (Date.now() > deadline) throw new Error(`still mounted after the crash: ${left.join(', ')}`);
      for (const target of left.sort((a, b) => b.length - a.length)) await run('umount', [target], { okCodes: [32], timeoutMs: 60_000 });
      await new Promise((r) => setTimeout(r, 100));
    }
    // The filesystem itself goes only when its last user lets go (a process still exiting, a copy of
    // the mount elsewhere); mounting the image before that would give back the same shut-down one.
    // Its loop device is detached (autoclear) at that moment.
    for (;;) {
      const attached = (await run('losetup', ['-j', fs.image])).stdout.trim();
      if (!attached) return;
      if (Date.now() > deadline) throw new Error(`the shut-down filesystem is still in use: ${attached}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const cloneRequest = (name: string) => ({
    name,
    volume_capabilities: [mountCap],
    capacity_range: { required_bytes: 1024 ** 3 },
    parameters: { 'standalone.user': 'streaming_replica' },
    volume_content_source: { volume: { volume_id: `${NODE}/source` } },
  });

  async function expectWorkingClone(volume: Volume): Promise<void> {
    const target = await publish(volume);
    const n = ++seq;
    const server = await startClone({ volumeDir: target, port: await freePort(), socketDir: join(fs.base, `sock-clone-${n}`), logFile: join(fs.base, `clone-${n}.log`) });
    try {
      const sums = await checkPgbenchInvariant(server);
      expect(sums.accounts).toBe(sums.branches);
    } finally {
      await server.stop();
      await client!.node('NodeUnpublishVolume', { volume_id: volume.volume_id, target_path: target });
    }
  }

  beforeAll(async () => {
    fs = await createLoopFs({ kind: 'xfs', sizeMb: 2048 });
    root = join(fs.mountPoint, 'volumes');
    await mkdir(root);
    socket = join(fs.base, 'csi.sock');
    await startDriver();
    const source = (await client!.controller('CreateVolume', { name: 'source', volume_capabilities: [mountCap], parameters: {} })).volume as Volume;
    const target = await publish(source);
    sourcePgdata = join(volumeDir('source'), 'pgdata');
    const tls = await createTls(join(fs.base, 'tls'), { serverKeyOwner: postgresUser() });
    primary = await initPrimary({ volumeDir: target, port: await freePort(), socketDir: join(fs.base, 'sock-source'), logFile: join(fs.base, 'source.log'), tls });
    await grantBackup(primary);
    await pgbenchInit(primary, 2);
  }, 300_000);

  afterAll(async () => {
    await primary?.stop('immediate');
    await stopDriver();
    await fs?.teardown();
  }, 120_000);

  it('a clone CreateVolume reported ready is complete after the crash, byte for byte, and starts with the invariant intact', async () => {
    await settle();
    const volume = await createVolumeRetrying(client!, cloneRequest('ready-then-crash'));
    // Read through the page cache only: reading forces no log write.
    const atReady = await treeDigest(volumeDir('ready-then-crash'));
    expect(atReady[POPULATED_MARKER]).toBeDefined();
    await crashAndRecover();
    expect(await treeDigest(volumeDir('ready-then-crash'))).toEqual(atReady);
    await expectWorkingClone(volume);
  }, 300_000);

  it('the populator alone (as in a Job: no driver record written after it) leaves a durable clone when it reports success', async () => {
    // The local backend's record of the volume is itself fsynced, which on XFS forces the log over
    // the populator's work too; a Job on a node has nothing of the kind after the populator.
    await settle();
    const dir = await ownedDir(join(fs.mountPoint, 'direct'), 0o755);
    const dest = await ownedDir(join(dir, 'clone'), 0o700);
    const pg = postgresUser();
    const populator = await startPopulator(
      { mode: 'online', conninfo: primary!.socketConninfo('streaming_replica'), sourceDir: sourcePgdata, volumeDir: dest, label: 'direct-crash', uid: pg.uid, gid: pg.gid },
      { user: pg },
    );
    const done = await populator.done;
    expect(done.reason).toBeUndefined();
    expect(done.code).toBe(0);
    const atReady = await treeDigest(dest);
    expect(atReady[POPULATED_MARKER]).toBeDefined();
    await crashAndRecover();
    // The removal of the populator's own staging directory is not made durable (it may come back,
    // emptied, beside the result, and the next run of a populator removes it); the result is.
    const recovered = Object.fromEntries(Object.entries(await treeDigest(dest)).filter(([path]) => !path.startsWith('.pgr-staging/')));
    expect(recovered).toEqual(atReady);
  }, 300_000);

  it('a clone cut off by the crash before it was ready is never served: no marker, not publishable, made again from scratch', async () => {
    // The context a CO holds for a clone: NodePublishVolume must refuse such a volume without its marker.
    const { volume_context: cloneContext } = await createVolumeRetrying(client!, cloneRequest('context-sample'));
    await settle();
    const name = 'cut-off';
    const staging = join(volumeDir(name), '.pgr-staging', 'pgdata');
    // One call (the driver waits up to 5 s): its answer does not matter, the crash comes first.
    const call = client!.controller('CreateVolume', cloneRequest(name)).catch((err: Error) => err);
    const deadline = Date.now() + 30_000;
    while (!existsSync(staging) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    expect(existsSync(staging)).toBe(true);
    await crashAndRecover();
    await call;
    expect(existsSync(join(volumeDir(name), POPULATED_MARKER))).toBe(false);
    const target = join(fs.base, 'pods', 'cut-off', 'mount');
    await mkdir(join(target, '..'), { recursive: true });
    await expect(
      client!.node('NodePublishVolume', { volume_id: `${NODE}/${name}`, target_path: target, volume_capability: mountCap, volume_context: cloneContext }),
    ).rejects.toThrow(/not populated yet/);
    // The same CreateVolume again: the interrupted population is cleaned up and runs anew.
    const volume = await createVolumeRetrying(client!, cloneRequest(name));
    expect(existsSync(join(volumeDir(name), POPULATED_MARKER))).toBe(true);
    await expectWorkingClone(volume);
  }, 300_000);
});
