import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  amcheck,
  checkPgbenchInvariant,
  freePort,
  grantBackup,
  initPrimary,
  pgbenchInit,
  postgresUser,
  revokeBackup,
  startClone,
  startPgbench,
  startStandby,
  type PgServer,
  type PgbenchLoad,
} from '../../testbed/postgres.js';
import { createTls } from '../../testbed/tls.js';
import type { LoopFs } from '../../testbed/xfs.js';
import { errorOf, grpc, type CsiClient } from '../support/csi-client.js';
import { createVolumeRetrying } from '../support/retry-create.js';
import { OPENSSL, POSTGRES, ROOT, XFS, describeWithRealParts } from '../support/requirements.js';
import { startStandaloneOnLoopFs, type StandaloneOnLoopFs } from '../support/standalone.js';

const NODE = 'e2e-node';
const mountCap = { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
const CLONES_UNDER_LOAD = 10;

interface Published {
  volume: { volume_id: string; volume_context: Record<string, string> };
  target: string;
}

describeWithRealParts('clones of a live PostgreSQL through the CSI API (standalone, real XFS, real PostgreSQL 15)', [ROOT, XFS, POSTGRES, OPENSSL], () => {
  let fs: LoopFs;
  let standalone: StandaloneOnLoopFs | undefined;
  let client: CsiClient;
  let primary: PgServer;
  let load: PgbenchLoad | undefined;
  let seq = 0;
  const dirOf = (volumeId: string) => join(fs.mountPoint, 'volumes', volumeId.split('/')[1]!);

  const createVolume = (request: object): Promise<Published['volume']> => createVolumeRetrying(client, request);

  async function publish(volume: Published['volume']): Promise<Published> {
    const target = join(fs.base, 'pods', `pod-${++seq}`, 'mount');
    await mkdir(join(target, '..'), { recursive: true });
    await client.node('NodePublishVolume', { volume_id: volume.volume_id, target_path: target, volume_capability: mountCap, volume_context: volume.volume_context });
    return { volume, target };
  }

  async function unpublishAndDelete(p: Published): Promise<void> {
    await client.node('NodeUnpublishVolume', { volume_id: p.volume.volume_id, target_path: p.target });
    await client.controller('DeleteVolume', { volume_id: p.volume.volume_id });
  }

  const cloneRequest = (source: string, parameters: Record<string, string> = {}) => ({
    name: `clone-${process.pid}-${++seq}`,
    volume_capabilities: [mountCap],
    capacity_range: { required_bytes: 1024 ** 3 },
    parameters: { 'standalone.user': 'streaming_replica', ...parameters },
    volume_content_source: { volume: { volume_id: source } },
  });

  /** Publishes the clone, starts PostgreSQL on it with no restore_command, checks it, tears it down. */
  async function verifyClone(volume: Published['volume']): Promise<void> {
    const published = await publish(volume);
    const clone = await startClone({ volumeDir: published.target, port: await freePort(), socketDir: join(fs.base, `sock-${++seq}`), logFile: join(fs.base, `clone-${seq}.log`) });
    try {
      await checkPgbenchInvariant(clone);
      await amcheck(clone);
    } finally {
      await clone.stop();
    }
    await unpublishAndDelete(published);
  }

  let source: Published;

  beforeAll(async () => {
    standalone = await startStandaloneOnLoopFs({ sizeMb: 6144, node: NODE });
    ({ fs, client } = standalone);
    source = await publish(await createVolume({ name: 'source-primary', volume_capabilities: [mountCap] }));
    const tls = await createTls(join(fs.base, 'tls'), { serverKeyOwner: postgresUser() });
    primary = await initPrimary({ volumeDir: source.target, port: await freePort(), socketDir: join(fs.base, 'sock-primary'), logFile: join(fs.base, 'primary.log'), tls });
    await grantBackup(primary);
    await pgbenchInit(primary, 20);
    load = startPgbench(primary);
  }, 600_000);

  afterAll(async () => {
    await load?.stop().catch(() => undefined);
    await primary?.stop().catch(() => undefined);
    await standalone?.stop();
  }, 120_000);

  it(`makes ${CLONES_UNDER_LOAD} consecutive clones of the primary under write load; each starts with no WAL archive and passes the pgbench invariant and pg_amcheck`, async () => {
    let verified = 0;
    for (let i = 0; i < CLONES_UNDER_LOAD; i++) {
      const request = cloneRequest(source.volume.volume_id);
      const volume = await createVolume(request);
      expect(volume.volume_context['pg-reflinker.csi/mode']).toBe('online');
      expect(volume.volume_context['pg-reflinker.csi/backupFrom']).toBe('primary');
      expect(volume.volume_context['pg-reflinker.csi/startLsn']).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
      expect(await createVolume(request)).toEqual(volume);
      await verifyClone(volume);
      verified++;
    }
    console.log(`clones under load verified: ${verified}/${CLONES_UNDER_LOAD}`);
    expect(verified).toBe(CLONES_UNDER_LOAD);
  }, 1_200_000);

  it('clones a streaming standby (the follower) consistently', async () => {
    const follower = await publish(await createVolume({ name: 'source-standby', volume_capabilities: [mountCap] }));
    const standby = await startStandby(primary, { volumeDir: follower.target, port: await freePort(), socketDir: join(fs.base, 'sock-standby'), logFile: join(fs.base, 'standby.log') });
    try {
      const volume = await createVolume(cloneRequest(follower.volume.volume_id));
      expect(volume.volume_context['pg-reflinker.csi/backupFrom']).toBe('standby');
      await verifyClone(volume);
    } finally {
      await standby.stop();
    }
    await unpublishAndDelete(follower);
  }, 600_000);

  it('without the one-time GRANT, fails with the exact GRANT to run and leaves nothing behind', async () => {
    await revokeBackup(primary);
    try {
      const request = cloneRequest(source.volume.volume_id);
      const err = await errorOf(createVolume(request));
      expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(err.details).toContain('GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean), pg_backup_stop(boolean) TO streaming_replica');
      expect(existsSync(join(fs.mountPoint, 'volumes', request.name))).toBe(false);
      expect(await readdir(join(fs.mountPoint, 'volumes', '.pg-reflinker', 'jobs')).catch(() => [])).toEqual([]);
      const slots = await primary.sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'pgr\\_%'");
      expect(slots).toBe('0');
    } finally {
      await grantBackup(primary);
    }
  }, 300_000);
});

describeWithRealParts('clones on a filesystem without reflink', [ROOT, XFS], () => {
  let fs: LoopFs;
  let standalone: StandaloneOnLoopFs | undefined;
  let client: CsiClient;

  beforeAll(async () => {
    standalone = await startStandaloneOnLoopFs({ kind: 'xfs-noreflink', sizeMb: 512, node: NODE });
    ({ fs, client } = standalone);
  }, 120_000);

  afterAll(async () => {
    await standalone?.stop();
  });

  it('answers FAILED_PRECONDITION naming the filesystem and leaves nothing behind', async () => {
    const source = (await client.controller('CreateVolume', { name: 'plain-src', volume_capabilities: [mountCap] })).volume;
    const target = join(fs.base, 'src-mount');
    await client.node('NodePublishVolume', { volume_id: source.volume_id, target_path: target, volume_capability: mountCap, volume_context: source.volume_context });
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(target, 'data'), 'x'.repeat(100_000));
    const err = await errorOf(client.controller('CreateVolume', { name: 'plain-clone', volume_capabilities: [mountCap], volume_content_source: { volume: { volume_id: source.volume_id } } }));
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/xfs/);
    expect(err.details).toMatch(/reflink/);
    expect(existsSync(join(fs.mountPoint, 'volumes', 'plain-clone'))).toBe(false);
    await client.node('NodeUnpublishVolume', { volume_id: source.volume_id, target_path: target });
  });
});
