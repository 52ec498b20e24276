import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { ApiException, BatchV1Api, CoreV1Api, CustomObjectsApi, PatchStrategy, Watch, setHeaderOptions, type V1Job } from '@kubernetes/client-node';
import { FakeKubeApiServer, startKubeApiServer } from '../support/kube-apiserver.js';

// The API-server double, driven by the real @kubernetes/client-node over HTTP.

let api: FakeKubeApiServer;
let core: CoreV1Api;
let batch: BatchV1Api;

beforeAll(async () => {
  api = await startKubeApiServer();
  const config = api.kubeConfig();
  core = config.makeApiClient(CoreV1Api);
  batch = config.makeApiClient(BatchV1Api);
  for (const name of ['ns1', 'ns2']) api.create('namespaces', { metadata: { name } });
});
afterAll(() => api.stop());

const statusOf = async (p: Promise<unknown>) => {
  try {
    await p;
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(ApiException);
    const e = err as ApiException<string>;
    return { code: e.code, body: JSON.parse(e.body) as { kind: string; reason: string; message: string; code: number } };
  }
};

describe('the API-server double', () => {
  test('create fills in uid, resourceVersion, creationTimestamp; a second create is 409 AlreadyExists', async () => {
    const pod = await core.createNamespacedPod({ namespace: 'ns1', body: { metadata: { name: 'p1', labels: { app: 'x' } }, spec: { containers: [{ name: 'c', image: 'i' }] } } });
    expect(pod.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number(pod.metadata?.resourceVersion)).toBeGreaterThan(0);
    expect(pod.metadata?.creationTimestamp).toBeInstanceOf(Date);
    const again = await statusOf(core.createNamespacedPod({ namespace: 'ns1', body: { metadata: { name: 'p1' }, spec: { containers: [] } } }));
    expect(again).toEqual({ code: 409, body: expect.objectContaining({ kind: 'Status', reason: 'AlreadyExists', message: 'pods "p1" already exists', code: 409 }) });
  });

  test('generateName, 404 NotFound in Kubernetes shape, unknown namespace', async () => {
    const pod = await core.createNamespacedPod({ namespace: 'ns1', body: { metadata: { generateName: 'gen-' }, spec: { containers: [] } } });
    expect(pod.metadata?.name).toMatch(/^gen-[a-z0-9]{5}$/);
    expect(await statusOf(core.readNamespacedPod({ namespace: 'ns1', name: 'nope' }))).toEqual({
      code: 404,
      body: expect.objectContaining({ kind: 'Status', status: 'Failure', reason: 'NotFound', message: 'pods "nope" not found', code: 404 }),
    });
    expect((await statusOf(batch.readNamespacedJob({ namespace: 'ns1', name: 'j' })))?.body.message).toBe('jobs.batch "j" not found');
    expect((await statusOf(core.createNamespacedPod({ namespace: 'ghost', body: { metadata: { name: 'x' }, spec: { containers: [] } } })))?.code).toBe(404);
  });

  test('list with label and field selectors; unsupported field selectors are refused like the real server', async () => {
    api.create('pods', { metadata: { namespace: 'ns2', name: 'a', labels: { app: 'db', tier: 'x' } }, spec: { nodeName: 'n1' }, status: { phase: 'Running' } });
    api.create('pods', { metadata: { namespace: 'ns2', name: 'b', labels: { app: 'db' } }, spec: { nodeName: 'n2' }, status: { phase: 'Pending' } });
    api.create('pods', { metadata: { namespace: 'ns2', name: 'c', labels: { app: 'web' } }, spec: { nodeName: 'n1' }, status: { phase: 'Running' } });
    const names = async (q: { labelSelector?: string; fieldSelector?: string }) =>
      (await core.listNamespacedPod({ namespace: 'ns2', ...q })).items.map((p) => p.metadata?.name);
    expect(await names({ labelSelector: 'app=db' })).toEqual(['a', 'b']);
    expect(await names({ labelSelector: 'app in (db,web),!tier' })).toEqual(['b', 'c']);
    expect(await names({ labelSelector: 'app!=db' })).toEqual(['c']);
    expect(await names({ fieldSelector: 'spec.nodeName=n1,status.phase=Running' })).toEqual(['a', 'c']);
    expect(await names({ fieldSelector: 'metadata.name=b' })).toEqual(['b']);
    const bad = await statusOf(core.listPersistentVolume({ fieldSelector: 'spec.csi.volumeHandle=x' }));
    expect(bad).toEqual({ code: 400, body: expect.objectContaining({ reason: 'BadRequest', message: 'field label not supported: spec.csi.volumeHandle' }) });
    const all = await core.listPodForAllNamespaces({ labelSelector: 'app=db', limit: 1 });
    expect(all.items).toHaveLength(1);
    const rest = await core.listPodForAllNamespaces({ labelSelector: 'app=db', limit: 1, _continue: all.metadata?._continue });
    expect(rest.items[0]?.metadata?.name).toBe('b');
  });

  test('events are selectable by involvedObject fields', async () => {
    await core.createNamespacedEvent({
      namespace: 'ns1',
      body: { metadata: { name: 'e1' }, involvedObject: { kind: 'PersistentVolumeClaim', name: 'data', namespace: 'ns1' }, reason: 'Populated', message: 'ok', type: 'Normal' },
    });
    const list = await core.listNamespacedEvent({ namespace: 'ns1', fieldSelector: 'involvedObject.kind=PersistentVolumeClaim,involvedObject.name=data' });
    expect(list.items.map((e) => e.reason)).toEqual(['Populated']);
  });

  test('merge, strategic-merge and JSON patches', async () => {
    api.create('persistentvolumes', { metadata: { name: 'pv1', finalizers: ['a', 'b'] }, spec: { capacity: { storage: '1Gi' } } });
    await core.patchPersistentVolume({ name: 'pv1', body: { metadata: { labels: { x: '1' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    await core.patchPersistentVolume({ name: 'pv1', body: { metadata: { labels: { y: '2' } } } }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
    const patched = await core.patchPersistentVolume({ name: 'pv1', body: [{ op: 'replace', path: '/metadata/finalizers', value: ['b'] }] });
    expect(patched.metadata?.labels).toEqual({ x: '1', y: '2' });
    expect(patched.metadata?.finalizers).toEqual(['b']);
    expect(api.requests.at(-1)?.contentType).toBe('application/json-patch+json');
  });

  test('delete: uid preconditions, finalizers, Background propagation removes owned pods, Jobs orphan by default', async () => {
    const job = await batch.createNamespacedJob({ namespace: 'ns1', body: { metadata: { name: 'j1' }, spec: { template: { spec: { containers: [], restartPolicy: 'Never' } } } } });
    expect(job.spec?.template.metadata?.labels?.['batch.kubernetes.io/controller-uid']).toBe(job.metadata?.uid);
    api.create('pods', { metadata: { namespace: 'ns1', name: 'j1-pod', ownerReferences: [{ uid: job.metadata!.uid!, kind: 'Job', name: 'j1' }] }, spec: {} });
    const wrongUid = await statusOf(batch.deleteNamespacedJob({ namespace: 'ns1', name: 'j1', body: { preconditions: { uid: 'other' } } }));
    expect(wrongUid?.code).toBe(409);
    await batch.deleteNamespacedJob({ namespace: 'ns1', name: 'j1', propagationPolicy: 'Background', body: { preconditions: { uid: job.metadata!.uid } } });
    expect(api.get('jobs.batch', 'ns1', 'j1')).toBeUndefined();
    expect(api.get('pods', 'ns1', 'j1-pod')).toBeUndefined();

    const j2 = api.create('jobs.batch', { metadata: { namespace: 'ns1', name: 'j2' }, spec: { template: { spec: {} } } });
    api.create('pods', { metadata: { namespace: 'ns1', name: 'j2-pod', ownerReferences: [{ uid: j2.metadata.uid!, kind: 'Job', name: 'j2' }] }, spec: {} });
    await batch.deleteNamespacedJob({ namespace: 'ns1', name: 'j2' });
    expect(api.get('pods', 'ns1', 'j2-pod')).toBeDefined();

    await core.deletePersistentVolume({ name: 'pv1' });
    expect(api.get('persistentvolumes', undefined, 'pv1')?.metadata.deletionTimestamp).toBeDefined();
    api.patch('persistentvolumes', undefined, 'pv1', { metadata: { finalizers: null } });
    expect(api.get('persistentvolumes', undefined, 'pv1')).toBeUndefined();
  });

  test('watch streams ADDED/MODIFIED/DELETED, resumes from a resourceVersion, and answers 410 for a compacted one', async () => {
    const created = await batch.createNamespacedJob({ namespace: 'ns2', body: { metadata: { name: 'w1' }, spec: { template: { spec: { containers: [] } } } } });
    const rv = created.metadata!.resourceVersion!;
    api.patch('jobs.batch', 'ns2', 'w1', { status: { active: 1 } }); // before the watch starts: replayed
    const seen: Array<[string, string | undefined]> = [];
    const watch = new Watch(api.kubeConfig());
    let ended: (err: unknown) => void = () => undefined;
    const done = new Promise((resolve) => (ended = resolve));
    const controller = await watch.watch(
      '/apis/batch/v1/namespaces/ns2/jobs',
      { fieldSelector: 'metadata.name=w1', resourceVersion: rv },
      (type, obj: V1Job) => seen.push([type, obj.metadata?.resourceVersion]),
      (err) => ended(err),
    );
    api.create('jobs.batch', { metadata: { namespace: 'ns2', name: 'other' }, spec: { template: { spec: {} } } }); // filtered out
    api.patch('jobs.batch', 'ns2', 'w1', { status: { succeeded: 1 } });
    api.delete('jobs.batch', 'ns2', 'w1');
    const start = Date.now();
    while (seen.length < 3 && Date.now() - start < 3000) await new Promise((r) => setTimeout(r, 10));
    expect(seen.map(([t]) => t)).toEqual(['MODIFIED', 'MODIFIED', 'DELETED']);
    controller.abort();
    await done;

    const gone: string[] = [];
    await new Promise<void>((resolve) => {
      void watch.watch('/apis/batch/v1/namespaces/ns2/jobs', { resourceVersion: '1' }, (type, obj: { code?: number }) => gone.push(`${type}:${obj.code}`), () => resolve());
    });
    expect(gone).toEqual(['ERROR:410']);
  });

  test('custom resources: CloudNativePG clusters', async () => {
    api.create('clusters.postgresql.cnpg.io', { metadata: { namespace: 'ns1', name: 'pg' }, spec: { instances: 1 }, status: { image: 'img' } });
    const custom = api.kubeConfig().makeApiClient(CustomObjectsApi);
    const obj = (await custom.getNamespacedCustomObject({ group: 'postgresql.cnpg.io', version: 'v1', namespace: 'ns1', plural: 'clusters', name: 'pg' })) as { kind: string; status: { image: string } };
    expect(obj.kind).toBe('Cluster');
    expect(obj.status.image).toBe('img');
    expect((await statusOf(custom.getNamespacedCustomObject({ group: 'postgresql.cnpg.io', version: 'v1', namespace: 'ns1', plural: 'clusters', name: 'x' })))?.code).toBe(404);
  });
});
