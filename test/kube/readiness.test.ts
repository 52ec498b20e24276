import { csiClient } from '../support/csi-client.js';
import { afterEach, describe, expect, test } from '@jest/globals';
import { ApiError, type FakeKubeApiServer } from '../support/kube-apiserver.js';
import { DRIVER_NS, startCluster, startController, type Controller } from './fixtures.js';

// The controller is ready when the API server answers a request its ClusterRole allows.

let api: FakeKubeApiServer;
let ctl: Controller;

afterEach(async () => {
  await ctl?.stop();
  await api?.stop();
});

describe('controller readiness', () => {
  test('ready while the API answers (/readyz), with a cheap RBAC-covered request', async () => {
    ({ api } = await startCluster());
    ctl = await startController(api);
    expect(await ctl.http('/readyz')).toEqual({ status: 200, body: 'ready\n' });
    const probe = api.requests.find((r) => r.path === `/apis/batch/v1/namespaces/${DRIVER_NS}/jobs` && r.query.limit === '1');
    expect(probe).toBeDefined();
  });

  test('an API server that refuses: not ready, with the reason', async () => {
    ({ api } = await startCluster());
    api.intercept = (r) => (r.query.limit === '1' ? new ApiError(403, 'Forbidden', 'jobs.batch is forbidden: User "system:serviceaccount:pg-reflinker:controller" cannot list resource "jobs"') : undefined);
    ctl = await startController(api);
    const res = await ctl.http('/readyz');
    expect(res.status).toBe(503);
    expect(res.body).toMatch(/the Kubernetes API is not usable: jobs.batch is forbidden/);
    // CSI Probe drives the livenessprobe sidecar: an API outage must not restart the controller.
    const identity = csiClient(ctl.driver.csi.socketPath);
    expect(await identity.identity('Probe', {})).toEqual({ ready: { value: true } });
    identity.close();
  });
});
