import { afterAll, afterEach, beforeAll, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorOf, grpc, type CsiClient } from '../support/csi-client.js';
import { isRunning, spawnBystander, startTimeOf } from '../support/proc.js';
import { ROOT, XFS, describeWithRealParts } from '../support/requirements.js';
import { createVolumeRetrying } from '../support/retry-create.js';
import { startStandaloneOnLoopFs, type StandaloneOnLoopFs } from '../support/standalone.js';

const NODE = 'records-node';
const GiB = 1024 ** 3;
const mountCap = { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };

// The local backend's job and volume records against what a crash, a reused pid or a hostile
// populator can leave behind: real driver process, real XFS, real processes.
describeWithRealParts('local backend records (standalone, real XFS)', [ROOT, XFS], () => {
  let standalone: StandaloneOnLoopFs | undefined;
  let client: CsiClient;
  let root: string;
  const bystanders: ReturnType<typeof spawnBystander>[] = [];
  const recordFile = (dir: string) => join(root, '.pg-reflinker', 'volumes', `${dir}.json`);
  const jobDir = (dir: string) => join(root, '.pg-reflinker', 'jobs', dir);

  const emptyVolume = async (name: string) => (await client.controller('CreateVolume', { name, volume_capabilities: [mountCap], capacity_range: { required_bytes: GiB } })).volume;
  const cloneRequest = (name: string, sourceId: string) => ({
    name,
    volume_capabilities: [mountCap],
    capacity_range: { required_bytes: GiB },
    volume_content_source: { volume: { volume_id: sourceId } },
  });

  /** A source volume, published once so that it holds a file, then unpublished. */
  async function sourceWithFile(name: string, content: string): Promise<string> {
    const volume = await emptyVolume(name);
    const target = join(standalone!.fs.base, 'pods', name);
    await mkdir(target, { recursive: true });
    await client.node('NodePublishVolume', { volume_id: volume.volume_id, target_path: target, volume_capability: mountCap, volume_context: volume.volume_context });
    await writeFile(join(target, 'data.txt'), content);
    await client.node('NodeUnpublishVolume', { volume_id: volume.volume_id, target_path: target });
    return volume.volume_id;
  }

  /** The job record an earlier driver left for a clone whose process has since gone and whose pid now belongs to `pid`. */
  async function staleJobRecord(name: string, sourceId: string, pid: number): Promise<void> {
    const jd = jobDir(name);
    await mkdir(jd, { recursive: true, mode: 0o700 });
    const startedAt = Date.now() - 60_000;
    await writeFile(join(jd, 'spec.json'), JSON.stringify({ name, volumeId: `${NODE}/${name}`, capacityBytes: GiB, sourceVolumeId: sourceId, mode: 'plain', startedAt }));
    await writeFile(join(jd, 'pid'), String(pid));
    // Recorded for the earlier process: same pid, earlier start.
    await writeFile(join(jd, 'process.json'), JSON.stringify({ pid, startTime: startTimeOf(pid) - 1 }));
  }

  beforeAll(async () => {
    standalone = await startStandaloneOnLoopFs({ sizeMb: 512, node: NODE });
    ({ client, root } = standalone);
  }, 120_000);

  afterEach(() => {
    for (const b of bystanders.splice(0)) b.kill('SIGKILL');
  });

  afterAll(async () => {
    await standalone?.stop();
  });

  it('a recorded populator pid now used by an unrelated process: CreateVolume does not wait on it forever', async () => {
    const sourceId = await sourceWithFile('reuse-src', 'reuse');
    const stranger = spawnBystander(true);
    bystanders.push(stranger);
    await staleJobRecord('reuse-clone', sourceId, stranger.pid);
    const volume = await createVolumeRetrying(client, cloneRequest('reuse-clone', sourceId), 20_000);
    expect(volume.volume_context['pg-reflinker.csi/kind']).toBe('clone');
    expect(await readFile(join(root, 'reuse-clone', 'data.txt'), 'utf8')).toBe('reuse');
    expect(isRunning(stranger.pid)).toBe(true);
  }, 60_000);

  it('DeleteVolume never signals a process whose pid was recorded for an earlier populator, nor fails when its group is gone (ESRCH)', async () => {
    const sourceId = await sourceWithFile('esrch-src', 'x');
    const leader = spawnBystander(true);
    const member = spawnBystander(false); // not a group leader: kill(-pid) is ESRCH
    bystanders.push(leader, member);
    await staleJobRecord('stranger-leader', sourceId, leader.pid);
    await staleJobRecord('stranger-member', sourceId, member.pid);
    await client.controller('DeleteVolume', { volume_id: `${NODE}/stranger-leader` });
    await client.controller('DeleteVolume', { volume_id: `${NODE}/stranger-member` });
    expect(isRunning(leader.pid)).toBe(true);
    expect(isRunning(member.pid)).toBe(true);
    expect(existsSync(jobDir('stranger-leader'))).toBe(false);
    expect(existsSync(jobDir('stranger-member'))).toBe(false);
  }, 60_000);

  it('an empty or garbage volume record (a crash mid-write) is recovered from: CreateVolume and DeleteVolume still answer', async () => {
    const volume = await emptyVolume('torn-empty');
    await truncate(recordFile('torn-empty'), 0);
    expect((await emptyVolume('torn-empty')).volume_id).toBe(volume.volume_id);
    await writeFile(recordFile('torn-empty'), '{"name": "torn-em');
    await client.controller('DeleteVolume', { volume_id: volume.volume_id });
    expect(existsSync(recordFile('torn-empty'))).toBe(false);
  });

  it('a populated clone whose record is torn keeps its data: CreateVolume (same name) returns it, DeleteVolume then removes it', async () => {
    const sourceId = await sourceWithFile('torn-src', 'precious');
    const request = cloneRequest('torn-clone', sourceId);
    const first = await createVolumeRetrying(client, request);
    for (const damage of [() => truncate(recordFile('torn-clone'), 0), () => writeFile(recordFile('torn-clone'), '\u0000garbage{')]) {
      await damage();
      const again = await createVolumeRetrying(client, request);
      expect(again.volume_id).toBe(first.volume_id);
      expect(again.volume_context['pg-reflinker.csi/kind']).toBe('clone');
      expect(again.volume_context['pg-reflinker.csi/sourceVolumeId']).toBe(sourceId);
      expect(await readFile(join(root, 'torn-clone', 'data.txt'), 'utf8')).toBe('precious');
    }
    expect(JSON.parse(await readFile(recordFile('torn-clone'), 'utf8')).name).toBe('torn-clone');
    await client.controller('DeleteVolume', { volume_id: first.volume_id });
    expect(existsSync(join(root, 'torn-clone'))).toBe(false);
  }, 60_000);

  it('a plain copy never runs as root: a root-owned source volume is copied as nobody (65534)', async () => {
    const sourceId = await sourceWithFile('rootsrc', 'owned by root');
    expect((await stat(join(root, 'rootsrc', 'data.txt'))).uid).toBe(0);
    await createVolumeRetrying(client, cloneRequest('rootsrc-clone', sourceId));
    expect((await stat(join(root, 'rootsrc-clone', 'data.txt'))).uid).toBe(65534);
    expect((await stat(join(root, 'rootsrc-clone'))).uid).toBe(65534);
  }, 60_000);

  it('a root-owned pgdata is refused with FAILED_PRECONDITION and nothing is copied', async () => {
    const volume = await emptyVolume('rootpg');
    await mkdir(join(root, 'rootpg', 'pgdata'), { recursive: true, mode: 0o700 });
    await writeFile(join(root, 'rootpg', 'pgdata', 'PG_VERSION'), '15\n');
    const err = await errorOf(client.controller('CreateVolume', cloneRequest('rootpg-clone', volume.volume_id)));
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/pgdata .* is owned by root/);
    expect(existsSync(join(root, 'rootpg-clone'))).toBe(false);
  }, 60_000);
});
