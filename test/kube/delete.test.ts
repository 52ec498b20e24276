import { errorOf } from '../support/csi-client.js';
import { chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@jest/globals';
import { status } from '@grpc/grpc-js';
import { TestKubelet } from '../cluster/kubelet.js';
import { ROOT } from '../support/requirements.js';
import {
  DRIVER_IMAGE,
  PREFIX,
  addClonePvc,
  addCnpgCluster,
  addVolume,
  cloneRequest,
  controllerRequests,
  describeOnRealApiServer,
  jobCreates,
  jobsInWorld,
  recordedJobName,
  startController,
  until,
  uuid,
  type ControllerOptions,
} from './fixtures.js';

// DeleteVolume: a cleanup Job on the volume's node, idempotent, ABORTED while it runs.

const VOLUME = 'node-b/pvc-11111111-2222-3333-4444-555555555555';
const JOB = 'pgr-cleanup-pvc-11111111-2222-3333-4444-555555555555';

describeOnRealApiServer(
  'DeleteVolume with the Kubernetes backend',
  (suite) => {
    async function setup(tuning: ControllerOptions = {}) {
      const t = await suite.env();
      const ctl = await startController(suite, t, tuning);
      return { t, w: t.w, api: t.api, kubelet: t.kubelet, ctl };
    }

    test('a cleanup Job on the node: ABORTED while it runs, OK once it succeeded, OK again without a second Job', async () => {
      const { t, w, api, kubelet, ctl } = await setup();
      const running = await errorOf(ctl.call('DeleteVolume', { volume_id: VOLUME }));
      expect(running.code).toBe(status.ABORTED);
      // The real Job controller may have made the pod already (Pending: node-b's kubelet does not answer).
      expect(running.details).toMatch(new RegExp(`being deleted: cleanup Job ${w.driver}/pgr-cleanup-pvc-.* on node node-b: (no pod yet|Pending)`));
      const job = (await api.get('jobs.batch', w.driver, JOB))!;
      const spec = job.spec as { backoffLimit: number; ttlSecondsAfterFinished: number; template: { spec: { nodeName: string; containers: Array<{ image: string; args: string[]; securityContext: { runAsUser: number } }>; volumes: unknown[] } } };
      expect(spec.backoffLimit).toBe(0);
      expect(spec.ttlSecondsAfterFinished).toBe(3600);
      expect(spec.template.spec.nodeName).toBe('node-b');
      expect(spec.template.spec.containers[0]).toMatchObject({ image: DRIVER_IMAGE, args: ['cleanup', '--root', PREFIX, '--volume-id', VOLUME], securityContext: { runAsUser: 0 } });
      expect(spec.template.spec.volumes).toEqual([{ name: 'prefix', hostPath: { path: PREFIX, type: 'Directory' } }]);

      await kubelet.start(w.driver, JOB);
      const still = await errorOf(ctl.call('DeleteVolume', { volume_id: VOLUME }));
      expect(still.code).toBe(status.ABORTED);
      expect(still.details).toMatch(/Running/);

      await kubelet.finish(w.driver, JOB, { message: '' });
      expect(await ctl.call('DeleteVolume', { volume_id: VOLUME })).toEqual({});
      expect(await ctl.call('DeleteVolume', { volume_id: VOLUME })).toEqual({});
      expect(await jobCreates(t, w.driver)).toBe(1);
      expect(await api.list('jobs.batch', w.driver)).toHaveLength(1);
    });

    test('a cleanup finishing during the call is seen on the watch: OK in one call', async () => {
      const { t, w, api, kubelet, ctl } = await setup({ deleteWaitMs: 8000 });
      const started = Date.now();
      const call = ctl.call('DeleteVolume', { volume_id: VOLUME });
      await until(async () => !!(await api.get('jobs.batch', w.driver, JOB)) && (await controllerRequests(t)).some((r) => r.verb === 'watch' && r.objectRef?.resource === 'jobs'), 5000, 'the cleanup Job and its watch');
      await kubelet.finish(w.driver, JOB);
      expect(await call).toEqual({});
      // Well before the 8 s the call would otherwise wait.
      expect(Date.now() - started).toBeLessThan(5000);
    });

    test("a failed cleanup reports the command's reason and starts over on the next call", async () => {
      const { t, w, api, kubelet, ctl } = await setup();
      await errorOf(ctl.call('DeleteVolume', { volume_id: VOLUME }));
      await kubelet.finish(w.driver, JOB, { exitCode: 3, message: '{"level":"info"}\npg-reflinker cleanup: /var/lib/pg-reflinker/pvc-x is a symlink; refusing to follow it out of the root' });
      const err = await errorOf(ctl.call('DeleteVolume', { volume_id: VOLUME }));
      expect(err.code).toBe(status.FAILED_PRECONDITION);
      expect(err.details).toMatch(/removing volume node-b\/pvc-.* on node node-b failed: .*is a symlink; refusing/);
      expect(await api.get('jobs.batch', w.driver, JOB)).toBeUndefined();
      expect((await errorOf(ctl.call('DeleteVolume', { volume_id: VOLUME }))).code).toBe(status.ABORTED);
      expect(await jobCreates(t, w.driver)).toBe(2);
    });

    test('the node object is gone: FAILED_PRECONDITION telling the admin how to remove the PV', async () => {
      const { t, ctl } = await setup();
      const err = await errorOf(ctl.call('DeleteVolume', { volume_id: 'node-gone/pvc-x' }));
      expect(err.code).toBe(status.FAILED_PRECONDITION);
      expect(err.details).toMatch(/node node-gone of volume node-gone\/pvc-x no longer exists.*kubectl patch pv pvc-x .*finalizers.*kubectl delete pv pvc-x/);
      expect(await jobsInWorld(t)).toHaveLength(0);
    });

    test('ids that cannot be ours are OK at once, with no Job', async () => {
      const { t, ctl } = await setup();
      expect(await ctl.call('DeleteVolume', { volume_id: '../../etc' })).toEqual({});
      expect(await jobsInWorld(t)).toHaveLength(0);
    });

    test('deleting a clone whose population still runs stops the populator first', async () => {
      const { t, w, api, kubelet, ctl } = await setup();
      const source = await addVolume(t, { namespace: w.db, pvc: 'pg-1', node: 'node-a', labels: { 'cnpg.io/cluster': 'pg' } });
      await addCnpgCluster(t, source);
      const clone = await addClonePvc(t, w.db, 'c', 'pg-1');
      await errorOf(ctl.call('CreateVolume', cloneRequest(clone.name, source.volumeId, { clonePvc: { namespace: w.db, name: 'c' } })));
      const populate = (await recordedJobName(t, clone.name))!;
      const pod = await kubelet.start(w.db, populate);
      // The Job goes; its running pod is deleted with a grace period that node-a's kubelet (played
      // here) has not confirmed yet: the populator may still be writing.
      const first = await errorOf(ctl.call('DeleteVolume', { volume_id: `node-a/${clone.name}` }));
      expect(first.code).toBe(status.ABORTED);
      expect(first.details).toMatch(new RegExp(`waiting for populator pod ${w.db}/pgr-populate-.* to stop`));
      expect(await api.get('jobs.batch', w.db, populate)).toBeUndefined();
      // As kubelet: the container stopped, the pod failed.
      await api.patchStatus('pods', w.db, pod.metadata.name, { phase: 'Failed' });
      expect((await errorOf(ctl.call('DeleteVolume', { volume_id: `node-a/${clone.name}` }))).code).toBe(status.ABORTED);
      expect(await api.get('jobs.batch', w.driver, `pgr-cleanup-${clone.name}`)).toBeDefined();
    });

    test('a populator Job someone deleted with its pods orphaned: DeleteVolume waits for the orphaned pod before cleaning up', async () => {
      const { t, w, api, kubelet, ctl } = await setup();
      const source = await addVolume(t, { namespace: w.db, pvc: 'pg-1', node: 'node-a', labels: { 'cnpg.io/cluster': 'pg' } });
      await addCnpgCluster(t, source);
      const clone = await addClonePvc(t, w.db, 'c', 'pg-1');
      await errorOf(ctl.call('CreateVolume', cloneRequest(clone.name, source.volumeId, { clonePvc: { namespace: w.db, name: 'c' } })));
      const populate = (await recordedJobName(t, clone.name))!;
      const pod = await kubelet.start(w.db, populate);
      // The real garbage collector removes the orphaned pod's owner reference; its uid label stays.
      await api.delete('jobs.batch', w.db, populate, 'Orphan');
      await until(async () => !(await api.get('jobs.batch', w.db, populate)), 15_000, 'the Job to be gone');
      const first = await errorOf(ctl.call('DeleteVolume', { volume_id: `node-a/${clone.name}` }));
      expect(first.code).toBe(status.ABORTED);
      expect(first.details).toContain(`waiting for populator pod ${w.db}/${pod.metadata.name} to stop`);
      expect(await api.get('jobs.batch', w.driver, `pgr-cleanup-${clone.name}`)).toBeUndefined();
    });

    test('a new volume under a deleted name is not answered by the old deletion', async () => {
      const { w, api, kubelet, ctl } = await setup();
      await errorOf(ctl.call('DeleteVolume', { volume_id: VOLUME }));
      await kubelet.finish(w.driver, JOB);
      expect(await ctl.call('DeleteVolume', { volume_id: VOLUME })).toEqual({});
      await ctl.call('CreateVolume', {
        name: 'pvc-11111111-2222-3333-4444-555555555555',
        volume_capabilities: [{ mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }],
        accessibility_requirements: { preferred: [{ segments: { 'topology.pg-reflinker.csi/node': 'node-b' } }] },
      });
      expect(await api.get('jobs.batch', w.driver, JOB)).toBeUndefined();
      expect((await errorOf(ctl.call('DeleteVolume', { volume_id: VOLUME }))).code).toBe(status.ABORTED);
    });

    cleanupJobsRunByATestKubelet(suite);
  },
  [ROOT],
);

/**
 * The cleanup Job run for real: the test kubelet plays node-k and runs its pods as host processes
 * (the driver image is this checkout's `node dist/src/main.js`), on a temporary prefix.
 */
function cleanupJobsRunByATestKubelet(suite: Parameters<Parameters<typeof describeOnRealApiServer>[1]>[0]): void {
  const DRIVER_PROGRAM = [process.execPath, new URL('../../src/main.js', import.meta.url).pathname];

  async function onNode() {
    const t = await suite.env();
    const prefix = mkdtempSync(join(tmpdir(), 'pgr-kube-prefix-'));
    const kubelet = await TestKubelet.start({ config: t.k.cp.kubeConfig(), nodeName: `node-k${t.w.n}`, images: { [DRIVER_IMAGE]: { entrypoint: DRIVER_PROGRAM } }, log: () => undefined });
    const ctl = await startController(suite, t, { root: prefix, deleteWaitMs: 20_000 });
    return { t, prefix, node: kubelet.nodeName, ctl, async done() { await kubelet.stop(); rmSync(prefix, { recursive: true, force: true }); } };
  }

  test('on a node with a kubelet, the cleanup Job removes the volume directory (PGDATA of uid 26) and nothing else', async () => {
    const { prefix, node, ctl, done } = await onNode();
    try {
      const dir = `pvc-${uuid()}`;
      mkdirSync(join(prefix, dir, 'pgdata'), { recursive: true, mode: 0o700 });
      writeFileSync(join(prefix, dir, 'pgdata', 'PG_VERSION'), '15\n');
      for (const p of [join(prefix, dir, 'pgdata', 'PG_VERSION'), join(prefix, dir, 'pgdata'), join(prefix, dir)]) chownSync(p, 26, 26);
      mkdirSync(join(prefix, 'pvc-sibling'));
      const res = await ctl.call('DeleteVolume', { volume_id: `${node}/${dir}` }).catch((e: Error) => e);
      // One call waits up to 20 s on the Job; the pod starts, runs and ends in a few seconds.
      expect(res).toEqual({});
      expect(existsSync(join(prefix, dir))).toBe(false);
      expect(existsSync(join(prefix, 'pvc-sibling'))).toBe(true);
    } finally {
      await done();
    }
  });

  test('on a node with a kubelet, a volume that is a symlink out of the prefix: the real cleanup refuses (exit 3), FAILED_PRECONDITION with its reason', async () => {
    const { prefix, node, ctl, done } = await onNode();
    const outside = mkdtempSync(join(tmpdir(), 'pgr-kube-outside-'));
    try {
      writeFileSync(join(outside, 'precious'), 'x');
      const dir = `pvc-${uuid()}`;
      symlinkSync(outside, join(prefix, dir));
      const err = await errorOf(ctl.call('DeleteVolume', { volume_id: `${node}/${dir}` }));
      expect(err.code).toBe(status.FAILED_PRECONDITION);
      expect(err.details).toMatch(new RegExp(`removing volume ${node}/${dir} on node ${node} failed: .*symlink`));
      expect(existsSync(join(outside, 'precious'))).toBe(true);
    } finally {
      await done();
      rmSync(outside, { recursive: true, force: true });
    }
  });
}
