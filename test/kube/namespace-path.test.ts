import { errorOf } from '../support/csi-client.js';
import { afterEach, describe, expect, test } from '@jest/globals';
import { status } from '@grpc/grpc-js';
import type { FakeKubeApiServer } from '../support/kube-apiserver.js';
import type { FakeKubelet } from '../support/kube-apiserver-kubelet.js';
import { TOPOLOGY_KEY, addClonePvc, addCnpgCluster, addVolume, cloneRequest, startCluster, startController, recordedJobName, successLine, type Controller } from './fixtures.js';

// Cross-namespace clones through a placeholder PVC in the clone's namespace.
// Source: db/pg-1 on node-a (a CNPG instance). Clone and placeholder: namespace apps.
// The placeholder itself is an empty pg-reflinker volume that happens to live on node-b.

let api: FakeKubeApiServer;
let kubelet: FakeKubelet;
let ctl: Controller | undefined;

afterEach(async () => {
  await ctl?.stop();
  ctl = undefined;
  await api?.stop();
});

async function setup(opts: { consent?: string; placeholderSource?: string; namespacePath?: string[]; sourceNamespace?: string }) {
  ({ api, kubelet } = await startCluster());
  const ns = opts.sourceNamespace ?? 'db';
  const source = addVolume(api, {
    namespace: ns,
    pvc: 'pg-1',
    node: 'node-a',
    capacity: '20Gi',
    labels: { 'cnpg.io/cluster': 'pg', 'cnpg.io/pvcRole': 'PG_DATA' },
    annotations: opts.consent === undefined ? {} : { 'pg-reflinker.csi/allow-clone-to': opts.consent },
  });
  addCnpgCluster(api, source);
  const placeholder = addVolume(api, {
    namespace: 'apps',
    pvc: 'pg-source',
    node: 'node-b',
    capacity: '1Mi',
    annotations: { 'pg-reflinker.csi/source': opts.placeholderSource ?? 'pg-1' },
  });
  const clone = addClonePvc(api, 'apps', 'app-db-1', 'pg-source');
  ctl = await startController(api, { namespacePath: opts.namespacePath ?? ['db'] });
  const request = cloneRequest(clone.name, placeholder.volumeId, { clonePvc: { namespace: 'apps', name: 'app-db-1' }, requiredBytes: 1024 ** 2 });
  return { source, placeholder, clone, request };
}


describe('NAMESPACE_PATH and placeholders', () => {
  test('hit: the placeholder leads to the consenting source in the path; the clone lands on the source node', async () => {
    const { source, clone, request } = await setup({ consent: 'apps' });
    const first = await errorOf(ctl!.call('CreateVolume', request));
    expect(first.code).toBe(status.ABORTED);
    const jobName = recordedJobName(api, clone.name)!;
    const job = api.get('jobs.batch', 'db', jobName)!;
    expect(job).toBeDefined();
    expect(job.metadata.annotations).toMatchObject({ 'pg-reflinker.csi/source-pvc': 'db/pg-1', 'pg-reflinker.csi/clone-pvc': 'apps/app-db-1' });
    expect((job.spec as { template: { spec: { nodeName: string } } }).template.spec.nodeName).toBe('node-a');
    kubelet.finish('db', jobName, { message: successLine(clone.name) });
    const res = await ctl!.call<{ volume: Record<string, unknown> }>('CreateVolume', request);
    expect(res.volume).toMatchObject({
      volume_id: `node-a/${clone.name}`,
      capacity_bytes: 20 * 2 ** 30,
      accessible_topology: [{ segments: { [TOPOLOGY_KEY]: 'node-a' } }],
      content_source: { volume: { volume_id: source.volumeId } },
      volume_context: { 'pg-reflinker.csi/source': 'db/pg-1' },
    });
    expect(api.list('events', 'apps').map((e) => e.reason)).toEqual(['Populating', 'Populated']);
  });

  test('hit with "*" consent; a same-named PVC in the clone\'s own namespace comes first', async () => {
    const { clone, placeholder, request } = await setup({ consent: '*' });
    expect((await errorOf(ctl!.call('CreateVolume', request))).code).toBe(status.ABORTED);
    expect(api.get('jobs.batch', 'db', recordedJobName(api, clone.name)!)).toBeDefined();

    addVolume(api, { namespace: 'apps', pvc: 'pg-1', node: 'node-b' });
    const other = addClonePvc(api, 'apps', 'app-db-2', 'pg-source');
    const second = await errorOf(ctl!.call('CreateVolume', cloneRequest(other.name, placeholder.volumeId, { clonePvc: { namespace: 'apps', name: 'app-db-2' } })));
    expect(second.code).toBe(status.ABORTED);
    const job = api.get('jobs.batch', 'apps', recordedJobName(api, other.name)!)!;
    expect(job.metadata.annotations!['pg-reflinker.csi/source-pvc']).toBe('apps/pg-1');
    expect((job.spec as { template: { spec: { nodeName: string } } }).template.spec.nodeName).toBe('node-b');
  });

  test('miss: the named source is in no namespace searched → NOT_FOUND', async () => {
    const { request } = await setup({ consent: 'apps', placeholderSource: 'pg-9' });
    const err = await errorOf(ctl!.call('CreateVolume', request));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toMatch(/placeholder PVC apps\/pg-source names source PVC "pg-9", which is in none of the namespaces searched: apps, db/);
    expect(api.list('jobs.batch')).toHaveLength(0);
  });

  test('miss: a namespace outside NAMESPACE_PATH is never searched, consent or not', async () => {
    const { request } = await setup({ consent: '*', sourceNamespace: 'other' });
    expect((await errorOf(ctl!.call('CreateVolume', request))).code).toBe(status.NOT_FOUND);
  });

  test.each([[undefined], ['staging']])('refused (allow-clone-to: %p) → PERMISSION_DENIED naming the annotation', async (consent) => {
    const { request } = await setup({ consent });
    const err = await errorOf(ctl!.call('CreateVolume', request));
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toMatch(/source PVC db\/pg-1, whose owner has not allowed clones into namespace apps.*pg-reflinker\.csi\/allow-clone-to/);
    expect(api.list('jobs.batch')).toHaveLength(0);
  });

  test('a placeholder cannot stand in for a clone in another namespace', async () => {
    const { clone, placeholder } = await setup({ consent: '*' });
    const err = await errorOf(ctl!.call('CreateVolume', cloneRequest(clone.name, placeholder.volumeId, { clonePvc: { namespace: 'other', name: 'x' }, requiredBytes: 1024 })));
    expect(err.code).toBe(status.PERMISSION_DENIED);
  });
});
