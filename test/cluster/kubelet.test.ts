import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchV1Api, CoreV1Api, type V1Job, type V1Pod, type V1PodSpec } from '@kubernetes/client-node';
import { cleanupJob } from '../../src/backends/kube/deletion/cleanup-job.js';
import { OPENSSL, ROOT, describeWithRealParts } from '../support/requirements.js';
import { CONTROL_PLANE } from './components.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { TestKubelet, type ClaimPublisher } from './kubelet.js';

// The test kubelet on the real control plane: the Job controller makes a Job's pod, the test
// kubelet runs it for real (host processes in private mount namespaces), and the Job's outcome
// and the files the containers wrote show each feature at work.

const NODE = 'pgr-test-node';
const SHELL_IMAGE = 'pgr-test/shell:1';
const NAMESPACE = 'kubelet';
const DRIVER_IMAGE = 'ghcr.io/pg-reflinker/pg-reflinker';
// The driver image's ENTRYPOINT is the program: here, the build of this checkout.
const DRIVER_PROGRAM = [process.execPath, new URL('../../src/main.js', import.meta.url).pathname];

describeWithRealParts('the test kubelet runs Jobs for real', [CONTROL_PLANE, OPENSSL, ROOT], () => {
  let cp: ControlPlane;
  let kubelet: TestKubelet;
  let core: CoreV1Api;
  let batch: BatchV1Api;
  let scratch: string;
  const claims = new Map<string, string>(); // claim name → host directory
  const publishClaim: ClaimPublisher = async (_pod, volume) => {
    const dir = claims.get(volume.persistentVolumeClaim!.claimName);
    if (!dir) throw new Error(`no directory for claim ${volume.persistentVolumeClaim!.claimName}`);
    return dir;
  };

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'pgr-kubelet-test-'));
    cp = await startControlPlane();
    const config = cp.kubeConfig();
    core = config.makeApiClient(CoreV1Api);
    batch = config.makeApiClient(BatchV1Api);
    kubelet = await TestKubelet.start({ config, nodeName: NODE, publishClaim, images: {
      'pgr-test/shell': { entrypoint: ['/bin/sh'] },
      [DRIVER_IMAGE]: { entrypoint: DRIVER_PROGRAM },
    } });
    await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
  }, 120_000);

  afterAll(async () => {
    await kubelet?.stop();
    await cp?.stop();
    rmSync(scratch, { recursive: true, force: true });
  }, 60_000);

  async function runJob(name: string, spec: Omit<V1PodSpec, 'nodeName' | 'restartPolicy'>): Promise<{ job: V1Job; pod: V1Pod }> {
    return waitForJob(await batch.createNamespacedJob({
      namespace: NAMESPACE,
      body: {
        metadata: { name },
        spec: { backoffLimit: 0, template: { spec: { nodeName: NODE, restartPolicy: 'Never', automountServiceAccountToken: false, ...spec } } },
      },
    }));
  }

  /** Waits for the Job to end; its pod, which the Job controller deletes on a deadline, only when `withPod`. */
  async function waitForJob(created: V1Job, withPod = true): Promise<{ job: V1Job; pod: V1Pod }> {
    const name = created.metadata!.name!;
    const t0 = Date.now();
    for (;;) {
      const job = await batch.readNamespacedJob({ name, namespace: NAMESPACE });
      const done = job.status?.conditions?.find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
      if (done) {
        const pods = await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `batch.kubernetes.io/job-name=${name}` });
        if (withPod) expect(pods.items).toHaveLength(1);
        console.log(`Job ${name}: ${done.type} ${((Date.now() - t0) / 1000).toFixed(1)} s after it was created`);
        return { job, pod: pods.items[0] };
      }
      if (Date.now() - t0 > 60_000) throw new Error(`Job ${name} not finished after 60 s: ${JSON.stringify(job.status)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  test('the Node is registered and Ready', async () => {
    const node = await core.readNode({ name: NODE });
    expect(node.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
  });

  test('a Job with an init container, Secret and downward API env, secret/hostPath/emptyDir volumes, runAsUser and a restricted securityContext completes', async () => {
    await core.createNamespacedSecret({ namespace: NAMESPACE, body: { metadata: { name: 'creds' }, stringData: { password: 's3cret' } } });
    const out = join(scratch, 'out');
    mkdirSync(out);
    chmodSync(out, 0o777); // written by uid 65534
    const created = join(scratch, 'created', 'by-kubelet');
    const { job, pod } = await runJob('features', {
      securityContext: { runAsUser: 65534, runAsGroup: 65534 },
      volumes: [
        { name: 'creds', secret: { secretName: 'creds', defaultMode: 0o600 } },
        { name: 'out', hostPath: { path: out, type: 'Directory' } },
        { name: 'created', hostPath: { path: created, type: 'DirectoryOrCreate' } },
        { name: 'shared', emptyDir: {} },
      ],
      initContainers: [{
        name: 'init',
        image: SHELL_IMAGE,
        securityContext: { runAsUser: 0, runAsGroup: 0 }, // the container's identity overrides the pod's
        args: ['-c', 'id -u > /pg-reflinker/shared/init-uid; stat -c %a /etc/pgr-creds/password > /pg-reflinker/shared/secret-mode; cat /etc/pgr-creds/password > /pg-reflinker/shared/password'],
        volumeMounts: [
          { name: 'creds', mountPath: '/etc/pgr-creds', readOnly: true },
          { name: 'shared', mountPath: '/pg-reflinker/shared' },
        ],
      }],
      containers: [{
        name: 'main',
        image: SHELL_IMAGE,
        command: ['/bin/sh', '-c'],
        args: [[
          'r=/var/lib/pgr-kubelet-test/out/report',
          'echo "uid=$(id -u) gid=$(id -g)" > $r',
          'echo "init-uid=$(cat /pg-reflinker/shared/init-uid) secret-mode=$(cat /pg-reflinker/shared/secret-mode) copied=$(cat /pg-reflinker/shared/password)" >> $r',
          'echo "env-password=$PASSWORD pod=$POD_NAME namespace=$POD_NAMESPACE node=$NODE_NAME ip=$POD_IP greeting=$GREETING" >> $r',
          'cat /etc/pgr-creds/password 2>/dev/null && echo secret-readable >> $r || echo secret-unreadable >> $r',
          'touch /pg-reflinker/read-only/x 2>/dev/null && echo ro-writable >> $r || echo ro-refused >> $r',
          'ls -d /pg-reflinker/created >> $r',
          'touch /var/tmp/pgr-rootfs-probe 2>/dev/null && echo rootfs-writable >> $r || echo rootfs-read-only >> $r',
          'echo "bounding=$(awk \'/^CapBnd/ {print $2}\' /proc/self/status) no-new-privs=$(awk \'/^NoNewPrivs/ {print $2}\' /proc/self/status)" >> $r',
          'printf "done %s" "$POD_NAME" > /dev/termination-log',
        ].join('\n')],
        env: [
          { name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'creds', key: 'password' } } },
          { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
          { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
          { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
          { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
          { name: 'GREETING', value: 'hello $(POD_NAME)' },
        ],
        securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'], add: ['CHOWN'] } },
        volumeMounts: [
          { name: 'creds', mountPath: '/etc/pgr-creds', readOnly: true },
          { name: 'shared', mountPath: '/pg-reflinker/shared' },
          { name: 'out', mountPath: '/var/lib/pgr-kubelet-test/out' },
          { name: 'out', mountPath: '/pg-reflinker/read-only', readOnly: true },
          { name: 'created', mountPath: '/pg-reflinker/created' },
        ],
      }],
    });
    const podName = pod.metadata!.name!;
    expect(job.status?.conditions?.find((c) => c.type === 'Complete')?.status).toBe('True');
    expect(pod.status?.phase).toBe('Succeeded');
    expect(pod.status?.podIP).toBe('127.0.0.1');
    expect(pod.status?.initContainerStatuses?.[0].state?.terminated).toMatchObject({ exitCode: 0, reason: 'Completed' });
    expect(pod.status?.containerStatuses?.[0].state?.terminated).toMatchObject({ exitCode: 0, reason: 'Completed', message: `done ${podName}` });
    expect(readFileSync(join(out, 'report'), 'utf8').split('\n')).toEqual([
      'uid=65534 gid=65534',
      'init-uid=0 secret-mode=600 copied=s3cret',
      `env-password=s3cret pod=${podName} namespace=${NAMESPACE} node=${NODE} ip=127.0.0.1 greeting=hello ${podName}`,
      'secret-unreadable', // 0600 root-owned, as with kubelet when no fsGroup is set
      'ro-refused',
      '/pg-reflinker/created',
      'rootfs-read-only',
      'bounding=0000000000000001 no-new-privs=1', // CAP_CHOWN only
      '',
    ]);
    expect(existsSync(created)).toBe(true); // DirectoryOrCreate
    // The mount points were made inside the container's namespace only.
    expect(existsSync('/pg-reflinker')).toBe(false);
    expect(existsSync('/var/lib/pgr-kubelet-test')).toBe(false);
    expect(existsSync('/etc/pgr-creds')).toBe(false);
    expect(existsSync('/var/tmp/pgr-rootfs-probe')).toBe(false);
  }, 90_000);

  test('a failing container fails its Job, and its pod says why (FallbackToLogsOnError)', async () => {
    const { job, pod } = await runJob('failing', {
      containers: [{
        name: 'main',
        image: SHELL_IMAGE,
        command: ['sh', '-c', 'echo "starting"; echo "broken: the thing is missing" >&2; exit 3'],
        terminationMessagePolicy: 'FallbackToLogsOnError',
      }],
    });
    expect(job.status?.conditions?.find((c) => c.type === 'Failed')).toMatchObject({ status: 'True', reason: 'BackoffLimitExceeded' });
    expect(pod.status?.phase).toBe('Failed');
    const terminated = pod.status?.containerStatuses?.[0].state?.terminated;
    expect(terminated).toMatchObject({ exitCode: 3, reason: 'Error' });
    expect(terminated?.message).toContain('broken: the thing is missing');
  }, 90_000);

  test('the cleanup Job our controller renders removes a volume directory of uid 26 under the prefix', async () => {
    const prefix = join(scratch, 'prefix');
    const volume = join(prefix, 'pvc-1234');
    mkdirSync(join(volume, 'pgdata'), { recursive: true });
    writeFileSync(join(volume, 'pgdata', 'PG_VERSION'), '15\n');
    chownSync(join(volume, 'pgdata', 'PG_VERSION'), 26, 26);
    chownSync(join(volume, 'pgdata'), 26, 26);
    chmodSync(join(volume, 'pgdata'), 0o700);
    const sibling = join(prefix, 'pvc-5678');
    mkdirSync(sibling);
    await core.createNamespacedServiceAccount({ namespace: NAMESPACE, body: { metadata: { name: 'pg-reflinker-jobs' } } });
    const job = cleanupJob({
      volumeId: `${NODE}/pvc-1234`,
      node: NODE,
      dir: 'pvc-1234',
      namespace: NAMESPACE,
      image: `${DRIVER_IMAGE}:0.1.0`,
      hostPathPrefix: prefix,
      serviceAccountName: 'pg-reflinker-jobs',
      ttlSecondsAfterFinished: 600,
      activeDeadlineSeconds: 60,
    });
    const { job: finished, pod } = await waitForJob(await batch.createNamespacedJob({ namespace: NAMESPACE, body: job }));
    expect(finished.status?.conditions?.find((c) => c.type === 'Complete')?.status).toBe('True');
    expect(pod.status?.containerStatuses?.[0]).toMatchObject({ name: 'cleanup', state: { terminated: expect.objectContaining({ exitCode: 0 }) } });
    const log = readFileSync(join(kubelet.podDir(pod.metadata!.uid!), 'containers', 'cleanup', 'log'), 'utf8');
    expect(log).toContain(JSON.stringify({ volumeId: `${NODE}/pvc-1234`, outcome: 'deleted' }));
    expect(existsSync(volume)).toBe(false);
    expect(existsSync(sibling)).toBe(true);
  }, 90_000);

  test("a Job's activeDeadlineSeconds: the Job controller deletes the pod and the test kubelet kills its processes", async () => {
    const pids = join(scratch, 'pids');
    mkdirSync(pids);
    const created = await batch.createNamespacedJob({
      namespace: NAMESPACE,
      body: {
        metadata: { name: 'overdue' },
        spec: {
          backoffLimit: 0,
          activeDeadlineSeconds: 2,
          template: {
            spec: {
              nodeName: NODE,
              restartPolicy: 'Never',
              automountServiceAccountToken: false,
              terminationGracePeriodSeconds: 1,
              volumes: [{ name: 'pids', hostPath: { path: pids, type: 'Directory' } }],
              containers: [{
                name: 'main',
                image: SHELL_IMAGE,
                // A child in the background too: the kill must reach the whole process group.
                command: ['sh', '-c', 'sleep 300 & echo $! > /pids/child; echo $$ > /pids/shell; wait'],
                volumeMounts: [{ name: 'pids', mountPath: '/pids' }],
              }],
            },
          },
        },
      },
    });
    const { job } = await waitForJob(created, false);
    expect(job.status?.conditions?.find((c) => c.type === 'Failed')).toMatchObject({ status: 'True', reason: 'DeadlineExceeded' });
    const running = ['shell', 'child'].map((f) => Number(readFileSync(join(pids, f), 'utf8')));
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const t0 = Date.now();
    while (running.some(alive) && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 100));
    expect(running.filter(alive)).toEqual([]);
    // Graceful deletion finished by the kubelet: the pod object is gone.
    const t1 = Date.now();
    let left = 1;
    while (Date.now() - t1 < 15_000) {
      left = (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: 'batch.kubernetes.io/job-name=overdue' })).items.length;
      if (left === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(left).toBe(0);
  }, 90_000);

  async function waitForPodEnd(name: string): Promise<V1Pod> {
    const t0 = Date.now();
    for (;;) {
      const pod = await core.readNamespacedPod({ name, namespace: NAMESPACE });
      if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return pod;
      if (Date.now() - t0 > 30_000) throw new Error(`pod ${name} still ${pod.status?.phase} after 30 s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  test('a claim is mounted from the directory publishClaim gives, read-only when the volume says so', async () => {
    const data = join(scratch, 'claim-data');
    mkdirSync(data);
    claims.set('data-claim', data);
    await core.createNamespacedPod({
      namespace: NAMESPACE,
      body: {
        metadata: { name: 'with-claim' },
        spec: {
          nodeName: NODE,
          restartPolicy: 'Never',
          automountServiceAccountToken: false,
          volumes: [
            { name: 'data', persistentVolumeClaim: { claimName: 'data-claim' } },
            { name: 'data-ro', persistentVolumeClaim: { claimName: 'data-claim', readOnly: true } },
          ],
          containers: [{
            name: 'main',
            image: SHELL_IMAGE,
            command: ['sh', '-c', 'echo written > /var/lib/postgresql-test/data/file; touch /ro/other 2>/dev/null || echo ro-refused > /var/lib/postgresql-test/data/ro'],
            volumeMounts: [{ name: 'data', mountPath: '/var/lib/postgresql-test/data' }, { name: 'data-ro', mountPath: '/ro' }],
          }],
        },
      },
    });
    const pod = await waitForPodEnd('with-claim');
    expect(pod.status?.phase).toBe('Succeeded');
    expect(readFileSync(join(data, 'file'), 'utf8')).toBe('written\n');
    expect(readFileSync(join(data, 'ro'), 'utf8')).toBe('ro-refused\n');
  }, 60_000);

  test("a pod's own activeDeadlineSeconds: the test kubelet kills it and the pod fails with DeadlineExceeded", async () => {
    await core.createNamespacedPod({
      namespace: NAMESPACE,
      body: {
        metadata: { name: 'pod-deadline' },
        spec: {
          nodeName: NODE,
          restartPolicy: 'Never',
          automountServiceAccountToken: false,
          activeDeadlineSeconds: 1,
          containers: [{ name: 'main', image: SHELL_IMAGE, command: ['sleep', '300'] }],
        },
      },
    });
    const t0 = Date.now();
    const pod = await waitForPodEnd('pod-deadline');
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(pod.status).toMatchObject({ phase: 'Failed', reason: 'DeadlineExceeded' });
    expect(pod.status?.containerStatuses?.[0].state?.terminated?.exitCode).toBe(143); // SIGTERM
  }, 60_000);
});
