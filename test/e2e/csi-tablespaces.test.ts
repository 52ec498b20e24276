import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, initPrimary, ownedDir, postgresUser, startClone, type PgServer } from '../../testbed/postgres.js';
import { createTls } from '../../testbed/tls.js';
import { treeDigest } from '../../testbed/tree.js';
import type { LoopFs } from '../../testbed/xfs.js';
import { errorOf, grpc, type CsiClient } from '../support/csi-client.js';
import { createVolumeRetrying } from '../support/retry-create.js';
import { OPENSSL, POSTGRES, ROOT, XFS, describeWithRealParts } from '../support/requirements.js';
import { startStandaloneOnLoopFs, type StandaloneOnLoopFs } from '../support/standalone.js';

const NODE = 'ts-node';
const mountCap = { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };

interface Volume {
  volume_id: string;
  volume_context: Record<string, string>;
}

describeWithRealParts('tablespaces through the CSI API (standalone, real XFS, real PostgreSQL 15)', [ROOT, XFS, POSTGRES, OPENSSL], () => {
  let fs: LoopFs;
  let standalone: StandaloneOnLoopFs | undefined;
  let client: CsiClient;
  let primary: PgServer;
  let source: { volume: Volume; target: string };
  let seq = 0;

  const createVolume = (request: object): Promise<Volume> => createVolumeRetrying(client, request);

  async function publish(volume: Volume): Promise<string> {
    const target = join(fs.base, 'pods', `pod-${++seq}`, 'mount');
    await mkdir(join(target, '..'), { recursive: true });
    await client.node('NodePublishVolume', { volume_id: volume.volume_id, target_path: target, volume_capability: mountCap, volume_context: volume.volume_context });
    return target;
  }

  const cloneRequest = (name: string) => ({
    name,
    volume_capabilities: [mountCap],
    capacity_range: { required_bytes: 1024 ** 3 },
    volume_content_source: { volume: { volume_id: source.volume.volume_id } },
  });

  beforeAll(async () => {
    standalone = await startStandaloneOnLoopFs({ sizeMb: 1024, node: NODE });
    ({ fs, client } = standalone);
    const volume = await createVolume({ name: 'ts-source', volume_capabilities: [mountCap] });
    source = { volume, target: await publish(volume) };
    const tls = await createTls(join(fs.base, 'tls'), { serverKeyOwner: postgresUser() });
    primary = await initPrimary({ volumeDir: source.target, port: await freePort(), socketDir: join(fs.base, 'sock-primary'), logFile: join(fs.base, 'primary.log'), tls });
  }, 180_000);

  afterAll(async () => {
    await primary?.stop().catch(() => undefined);
    await standalone?.stop();
  }, 120_000);

  it('refuses a source with a tablespace outside its volume (FAILED_PRECONDITION naming it) and leaves nothing behind', async () => {
    const location = await ownedDir(join(fs.base, 'ts-outside'), 0o700);
    await primary.sql(`CREATE TABLESPACE ts_outside LOCATION '${location}'`);
    try {
      const err = await errorOf(createVolume(cloneRequest('clone-ts-outside')));
      expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(err.details).toMatch(/tablespace "ts_outside" \(oid \d+\) at .*ts-outside: outside the source volume/);
      expect(existsSync(join(standalone!.root, 'clone-ts-outside'))).toBe(false);
      expect(await readdir(location)).toEqual(['PG_15_202209061']);
    } finally {
      await primary.sql('DROP TABLESPACE ts_outside');
    }
  }, 120_000);

  it('clones a source with a tablespace inside its volume completely and independently: writes in the clone change no byte of the source', async () => {
    const location = join(source.target, 'tblspc', 'ts_inside');
    await ownedDir(join(source.target, 'tblspc'), 0o700);
    await ownedDir(location, 0o700);
    await primary.sql(`CREATE TABLESPACE ts_inside LOCATION '${location}'`);
    for (const statement of [
      'CREATE TABLE inside_rows (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = off) TABLESPACE ts_inside',
      "INSERT INTO inside_rows SELECT g, 'source' FROM generate_series(1, 20000) g",
      'VACUUM (FREEZE) inside_rows',
      'CHECKPOINT',
    ]) {
      await primary.sql(statement);
    }
    const volume = await createVolume(cloneRequest('clone-ts-inside'));
    expect(volume.volume_context['pg-reflinker.csi/mode']).toBe('online');
    const before = await treeDigest(location);
    const target = await publish(volume);
    const oid = await primary.sql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts_inside'");
    expect(await readlink(join(target, 'pgdata', 'pg_tblspc', oid))).toBe('../../tblspc/ts_inside');
    const clone = await startClone({ volumeDir: target, port: await freePort(), socketDir: join(fs.base, 'sock-clone'), logFile: join(fs.base, 'clone.log') });
    try {
      expect(await clone.sql("SELECT count(*) FROM inside_rows WHERE v = 'source'")).toBe('20000');
      await clone.sql("UPDATE inside_rows SET v = 'clone'");
      await clone.sql('CHECKPOINT');
      expect(await clone.sql("SELECT count(*) FROM inside_rows WHERE v = 'clone'")).toBe('20000');
    } finally {
      await clone.stop();
    }
    await primary.sql('CHECKPOINT');
    expect(await treeDigest(location)).toEqual(before);
    expect(await primary.sql("SELECT count(*) FROM inside_rows WHERE v = 'source'")).toBe('20000');
    await client.node('NodeUnpublishVolume', { volume_id: volume.volume_id, target_path: target });
    await client.controller('DeleteVolume', { volume_id: volume.volume_id });
  }, 180_000);
});
