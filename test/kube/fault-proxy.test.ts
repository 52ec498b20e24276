import { expect, test } from '@jest/globals';
import { ApiException, BatchV1Api, CoreV1Api, Watch } from '@kubernetes/client-node';
import { ApiError, FaultyKubeApiServer } from '../support/kube-apiserver.js';
import { describeOnRealApiServer, until } from './fixtures.js';

// The fault proxy (what is left of the API-server double) in front of the real kube-apiserver:
// it forwards everything with the upstream's identity, and injects only what it is told to.

describeOnRealApiServer('the fault proxy in front of the real API server', (suite) => {
  async function proxied() {
    const t = await suite.env();
    const proxy = await new FaultyKubeApiServer(t.w.controllerConfig).start();
    return { t, proxy, core: proxy.kubeConfig().makeApiClient(CoreV1Api), batch: proxy.kubeConfig().makeApiClient(BatchV1Api) };
  }
  const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as ApiException<string>);

  test("forwards with the upstream's identity: the real server answers, and its RBAC decides", async () => {
    const { t, proxy, core, batch } = await proxied();
    try {
      await t.api.create('configmaps', { metadata: { namespace: t.w.driver, name: 'through' }, data: { a: '1' } });
      expect((await core.readNamespacedConfigMap({ namespace: t.w.driver, name: 'through' })).data).toEqual({ a: '1' });
      expect((await batch.listNamespacedJob({ namespace: t.w.db })).items).toEqual([]);
      // The chart's controller role reads no Secrets: the real server says so.
      const forbidden = await failure(core.listNamespacedSecret({ namespace: t.w.db }));
      expect(forbidden).toBeInstanceOf(ApiException);
      expect(forbidden!.code).toBe(403);
      expect(forbidden!.body).toContain(`User \\"${t.w.controllerUser}\\" cannot list resource \\"secrets\\"`);
    } finally {
      await proxy.stop();
    }
  });

  test('injects an error as a Kubernetes Status, only for the requests it is told to', async () => {
    const { t, proxy, core } = await proxied();
    try {
      proxy.intercept = (r) => (r.method === 'GET' && r.path.endsWith('/configmaps') ? new ApiError(429, 'TooManyRequests', 'slow down') : undefined);
      const err = await failure(core.listNamespacedConfigMap({ namespace: t.w.driver }));
      expect(err!.code).toBe(429);
      expect(JSON.parse(err!.body)).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'TooManyRequests', message: 'slow down', code: 429 });
      await expect(core.listNamespacedConfigMap({ namespace: t.w.driver, limit: 1 }).then(() => 'ok')).rejects.toBeDefined();
      proxy.intercept = undefined;
      await expect(core.listNamespacedConfigMap({ namespace: t.w.driver })).resolves.toBeDefined();
    } finally {
      await proxy.stop();
    }
  });

  test('drops open watches; the client sees its watch end', async () => {
    const { t, proxy } = await proxied();
    try {
      let ended = false;
      const seen: string[] = [];
      // A Job first: the watch's initial ADDED event is what makes the server send the response head.
      await t.api.create('jobs.batch', { metadata: { namespace: t.w.db, name: 'seen' }, spec: { template: { spec: { restartPolicy: 'Never', nodeName: 'node-a', containers: [{ name: 'c', image: 'i' }] } } } });
      await new Watch(proxy.kubeConfig()).watch(`/apis/batch/v1/namespaces/${t.w.db}/jobs`, {}, (type) => seen.push(type), () => (ended = true));
      await until(async () => proxy.openWatches === 1 && seen.includes('ADDED'), 5000, 'the ADDED event through the proxy');
      proxy.dropWatches();
      await until(async () => ended, 5000, 'the watch to end');
      expect(proxy.openWatches).toBe(0);
    } finally {
      await proxy.stop();
    }
  });
});
