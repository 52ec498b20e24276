import { csiClient } from '../support/csi-client.js';
import { expect, test } from '@jest/globals';
import { controllerRequests, describeOnRealApiServer, startController } from './fixtures.js';

// The controller is ready when the API server answers a request its ClusterRole allows.

describeOnRealApiServer('controller readiness', (suite) => {
  test('ready while the API answers (/readyz), with a cheap RBAC-covered request', async () => {
    const t = await suite.env();
    const ctl = await startController(suite, t);
    expect(await ctl.http('/readyz')).toEqual({ status: 200, body: 'ready\n' });
    const probe = (await controllerRequests(t)).find((r) => r.verb === 'list' && r.objectRef?.resource === 'jobs' && r.objectRef.namespace === t.w.driver && /[?&]limit=1(&|$)/.test(r.requestURI));
    expect(probe?.responseStatus?.code).toBe(200);
  });

  test('an API server that refuses (a user RBAC binds to nothing): not ready, with the reason', async () => {
    const t = await suite.env();
    const ctl = await startController(suite, t, { kubeConfig: t.k.cp.kubeConfigFor(`system:serviceaccount:${t.w.driver}:unbound`) });
    const res = await ctl.http('/readyz');
    expect(res.status).toBe(503);
    expect(res.body).toMatch(/the Kubernetes API is not usable: jobs.batch is forbidden: User "system:serviceaccount:pgr-\d+:unbound" cannot list resource "jobs"/);
    // CSI Probe drives the livenessprobe sidecar: an API outage must not restart the controller.
    const identity = csiClient(ctl.driver.csi.socketPath);
    expect(await identity.identity('Probe', {})).toEqual({ ready: { value: true } });
    identity.close();
  });
});
