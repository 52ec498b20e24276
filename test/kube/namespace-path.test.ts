import { errorOf } from '../support/csi-client.js';
import { expect, test } from '@jest/globals';
import { status } from '@grpc/grpc-js';
import {
  TOPOLOGY_KEY,
  addClonePvc,
  addCnpgCluster,
  addVolume,
  cloneRequest,
  describeOnRealApiServer,
  eventsOn,
  jobsInWorld,
  recordedJobName,
  startController,
  successLine,
} from './fixtures.js';

// Cross-namespace clones through a placeholder PVC in the clone's namespace.
// Source: db/pg-1 on node-a (a CNPG instance). Clone and placeholder: namespace apps.
// The placeholder itself is an empty pg-reflinker volume that happens to live on node-b.

describeOnRealApiServer('NAMESPACE_PATH and placeholders', (suite) => {
  async function setup(opts: { consent?: string; placeholderSource?: string; sourceNamespace?: 'db' | 'other' }) {
    const t = await suite.env();
    const { w } = t;
    const ns = opts.sourceNamespace === 'other' ? w.other : w.db;
    const source = await addVolume(t, {
      namespace: ns,
      pvc: 'pg-1',
      node: 'node-a',
      capacity: '20Gi',
      labels: { 'cnpg.io/cluster': 'pg', 'cnpg.io/pvcRole': 'PG_DATA' },
      annotations: opts.consent === undefined ? {} : { 'pg-reflinker.csi/allow-clone-to': opts.consent === 'apps' ? w.apps : opts.consent },
    });
    await addCnpgCluster(t, source);
    const placeholder = await addVolume(t, {
      namespace: w.apps,
      pvc: 'pg-source',
      node: 'node-b',
      capacity: '1Mi',
      annotations: { 'pg-reflinker.csi/source': opts.placeholderSource ?? 'pg-1' },
    });
    const clone = await addClonePvc(t, w.apps, 'app-db-1', 'pg-source');
    const ctl = await startController(suite, t, { namespacePath: [w.db] });
    const request = cloneRequest(clone.name, placeholder.volumeId, { clonePvc: { namespace: w.apps, name: 'app-db-1' }, requiredBytes: 1024 ** 2 });
    return { t, w, api: t.api, kubelet: t.kubelet, ctl, source, placeholder, clone, request };
  }

  test('hit: the placeholder leads to the consenting source in the path; the clone lands on the source node', async () => {
    const { t, w, api, kubelet, ctl, source, clone, request } = await setup({ consent: 'apps' });
    const first = await errorOf(ctl.call('CreateVolume', request));
    expect(first.code).toBe(status.ABORTED);
    const jobName = (await recordedJobName(t, clone.name))!;
    const job = (await api.get('jobs.batch', w.db, jobName))!;
    expect(job).toBeDefined();
    expect(job.metadata.annotations).toMatchObject({ 'pg-reflinker.csi/source-pvc': `${w.db}/pg-1`, 'pg-reflinker.csi/clone-pvc': `${w.apps}/app-db-1` });
    expect((job.spec as { template: { spec: { nodeName: string } } }).template.spec.nodeName).toBe('node-a');
    await kubelet.finish(w.db, jobName, { message: successLine(clone.name) });
    const res = await ctl.call<{ volume: Record<string, unknown> }>('CreateVolume', request);
    expect(res.volume).toMatchObject({
      volume_id: `node-a/${clone.name}`,
      capacity_bytes: 20 * 2 ** 30,
      accessible_topology: [{ segments: { [TOPOLOGY_KEY]: 'node-a' } }],
      content_source: { volume: { volume_id: source.volumeId } },
      volume_context: { 'pg-reflinker.csi/source': `${w.db}/pg-1` },
    });
    expect((await eventsOn(t, w.apps, 'app-db-1')).map((e) => e.reason)).toEqual(['Populating', 'Populated']);
  });

  test("hit with \"*\" consent; a same-named PVC in the clone's own namespace comes first", async () => {
    const { t, w, api, ctl, clone, placeholder, request } = await setup({ consent: '*' });
    expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.ABORTED);
    expect(await api.get('jobs.batch', w.db, (await recordedJobName(t, clone.name))!)).toBeDefined();

    await addVolume(t, { namespace: w.apps, pvc: 'pg-1', node: 'node-b' });
    const other = await addClonePvc(t, w.apps, 'app-db-2', 'pg-source');
    const second = await errorOf(ctl.call('CreateVolume', cloneRequest(other.name, placeholder.volumeId, { clonePvc: { namespace: w.apps, name: 'app-db-2' } })));
    expect(second.code).toBe(status.ABORTED);
    const job = (await api.get('jobs.batch', w.apps, (await recordedJobName(t, other.name))!))!;
    expect(job.metadata.annotations!['pg-reflinker.csi/source-pvc']).toBe(`${w.apps}/pg-1`);
    expect((job.spec as { template: { spec: { nodeName: string } } }).template.spec.nodeName).toBe('node-b');
  });

  test('miss: the named source is in no namespace searched → NOT_FOUND', async () => {
    const { t, w, ctl, request } = await setup({ consent: 'apps', placeholderSource: 'pg-9' });
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toContain(`placeholder PVC ${w.apps}/pg-source names source PVC "pg-9", which is in none of the namespaces searched: ${w.apps}, ${w.db}`);
    expect(await jobsInWorld(t)).toHaveLength(0);
  });

  test('miss: a namespace outside NAMESPACE_PATH is never searched, consent or not', async () => {
    const { ctl, request } = await setup({ consent: '*', sourceNamespace: 'other' });
    expect((await errorOf(ctl.call('CreateVolume', request))).code).toBe(status.NOT_FOUND);
  });

  test.each([[undefined], ['staging']])('refused (allow-clone-to: %p) → PERMISSION_DENIED naming the annotation', async (consent) => {
    const { t, w, ctl, request } = await setup({ consent });
    const err = await errorOf(ctl.call('CreateVolume', request));
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toMatch(new RegExp(`source PVC ${w.db}/pg-1, whose owner has not allowed clones into namespace ${w.apps}.*pg-reflinker\\.csi/allow-clone-to`));
    expect(await jobsInWorld(t)).toHaveLength(0);
  });

  test('a placeholder cannot stand in for a clone in another namespace', async () => {
    const { w, ctl, clone, placeholder } = await setup({ consent: '*' });
    const err = await errorOf(ctl.call('CreateVolume', cloneRequest(clone.name, placeholder.volumeId, { clonePvc: { namespace: w.other, name: 'x' }, requiredBytes: 1024 })));
    expect(err.code).toBe(status.PERMISSION_DENIED);
  });
});
