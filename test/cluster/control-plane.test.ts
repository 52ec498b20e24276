import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { ApiException, BatchV1Api, CoreV1Api, VersionApi, type V1Pod } from '@kubernetes/client-node';
import { OPENSSL, describeWithRealParts } from '../support/requirements.js';
import { CONTROL_PLANE } from './components.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';

// The real control plane (etcd, kube-apiserver, kube-controller-manager from their Go modules),
// driven by @kubernetes/client-node. In CI the binaries must have been built (build.sh).

describeWithRealParts('a real control plane on loopback', [CONTROL_PLANE, OPENSSL], () => {
  let cp: ControlPlane;
  let startSeconds = 0;

  beforeAll(async () => {
    const t0 = Date.now();
    cp = await startControlPlane();
    startSeconds = (Date.now() - t0) / 1000;
    console.log(`control plane ready in ${startSeconds.toFixed(1)} s at ${cp.server} (pids ${JSON.stringify(cp.pids())})`);
  }, 120_000);
  afterAll(async () => {
    const pids = Object.values(cp?.pids() ?? {}).filter((p): p is number => p !== undefined);
    await cp?.stop();
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow(); // every component gone
  }, 60_000);

  test('serves the pinned Kubernetes version', async () => {
    const info = await cp.kubeConfig().makeApiClient(VersionApi).getCode();
    const goMod = readFileSync(new URL('../../../test/cluster/tools/kube/go.mod', import.meta.url), 'utf8');
    const pinned = /^require k8s\.io\/kubernetes (v\S+)/m.exec(goMod)?.[1] ?? /^\s+k8s\.io\/kubernetes (v\S+)/m.exec(goMod)?.[1];
    expect(pinned).toMatch(/^v1\.\d+\.\d+$/);
    expect(info.gitVersion).toBe(pinned);
  });

  test('RBAC is on: a user with no binding is forbidden, the admin is not', async () => {
    const nobody = cp.kubeConfigFor('pgr-test-nobody').makeApiClient(CoreV1Api);
    const err = await nobody.listNamespace().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ApiException);
    expect((err as ApiException<string>).code).toBe(403);
    await expect(cp.kubeConfig().makeApiClient(CoreV1Api).listNamespace()).resolves.toBeDefined();
  });

  test('the Job controller creates the pod of a Job', async () => {
    const config = cp.kubeConfig();
    const core = config.makeApiClient(CoreV1Api);
    const batch = config.makeApiClient(BatchV1Api);
    await core.createNamespace({ body: { metadata: { name: 'jobs' } } });
    const job = await batch.createNamespacedJob({
      namespace: 'jobs',
      body: {
        metadata: { name: 'hello' },
        spec: {
          backoffLimit: 0,
          template: { spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'debian:12', command: ['true'] }] } },
        },
      },
    });
    const t0 = Date.now();
    let pods: V1Pod[] = [];
    while (Date.now() - t0 < 30_000) {
      pods = (await core.listNamespacedPod({ namespace: 'jobs', labelSelector: 'batch.kubernetes.io/job-name=hello' })).items;
      if (pods.length > 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    if (pods.length === 0) throw new Error(`no pod for the Job after 30 s; controller-manager log:\n${cp.logTail('kube-controller-manager', 40)}`);
    console.log(`Job pod created ${((Date.now() - t0) / 1000).toFixed(1)} s after the Job`);
    expect(pods).toHaveLength(1);
    const [pod] = pods;
    expect(pod.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: 'Job', name: 'hello', uid: job.metadata?.uid, controller: true })]);
    expect(pod.spec?.containers[0].image).toBe('debian:12');
    // The ServiceAccount admission plugin mounted the token that the controller-manager's
    // service-account and root-CA publishers make possible.
    expect(pod.spec?.serviceAccountName).toBe('default');
    expect(pod.spec?.volumes?.some((v) => v.name.startsWith('kube-api-access-'))).toBe(true);
    expect(pod.status?.phase).toBe('Pending'); // no scheduler, no kubelet
  }, 60_000);
});
