// The real control plane the Kubernetes-backend suites run against (one per suite file, started
// in beforeAll): etcd + kube-apiserver + kube-controller-manager from test/cluster, with the
// CloudNativePG Cluster CRD, two Node objects, and an audit log of every request. Each test gets
// its own namespaces (a "world"), and the controller runs as the chart's controller
// ServiceAccount with the chart's own RBAC, so a missing permission fails the test.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig, RbacAuthorizationV1Api, type V1ClusterRole, type V1ClusterRoleBinding, type V1Role, type V1RoleBinding } from '@kubernetes/client-node';
import { renderOrThrow } from '../chart/helm-chart.js';
import { components, CONTROL_PLANE } from '../cluster/components.js';
import { startControlPlane, type ControlPlane } from '../cluster/control-plane.js';
import { OPENSSL, type Requirement } from '../support/requirements.js';
import { AdminApi, type KubeObject } from './admin-api.js';
import { AuditLog, auditFlags } from './audit-log.js';

export const KUBE_SUITE_NEEDS: Requirement[] = [CONTROL_PLANE, components('helm'), OPENSSL];
export const TOPOLOGY_KEY = 'topology.pg-reflinker.csi/node';
export const NODES = ['node-a', 'node-b'];

// Only the controllers whose work these tests rely on: Jobs make pods, the garbage collector
// removes a deleted Job's pods, the protection controllers release PVs and PVCs, and the
// service-account and root-CA publishers make namespaces usable. No node lifecycle controller:
// the nodes here have no kubelet unless a test starts one, and nobody is evicted for that.
const CONTROLLERS = [
  'job-controller',
  'garbage-collector-controller',
  'persistentvolume-protection-controller',
  'persistentvolumeclaim-protection-controller',
  'serviceaccount-controller',
  'root-ca-certificate-publisher-controller',
];

const CLUSTER_CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'clusters.postgresql.cnpg.io' },
  spec: {
    group: 'postgresql.cnpg.io',
    names: { kind: 'Cluster', listKind: 'ClusterList', plural: 'clusters', singular: 'cluster' },
    scope: 'Namespaced',
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        subresources: { status: {} },
        // Loose on purpose: the controller must cope with whatever a Cluster holds (the tests
        // put strings where CloudNativePG's schema has integers).
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
              status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
            },
          },
        },
      },
    ],
  },
};

/** One test's namespaces, and the controller's identity in its driver namespace. */
export interface World {
  n: number;
  db: string;
  apps: string;
  other: string;
  driver: string;
  /** The controller's user name as the API server sees it (audit log, RBAC messages). */
  controllerUser: string;
  /** The controller's credentials: a token of the chart's controller ServiceAccount. */
  controllerConfig: KubeConfig;
}

export interface KubeCluster {
  cp: ControlPlane;
  admin: AdminApi;
  audit: AuditLog;
  world(): Promise<World>;
  /** A client config for `token` against this server (no client certificate). */
  configWithToken(token: string, server?: string): KubeConfig;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startKubeCluster(): Promise<KubeCluster> {
  const auditDir = mkdtempSync(join(tmpdir(), 'pgr-kube-audit-'));
  const t0 = Date.now();
  const cp = await startControlPlane({ apiserverFlags: auditFlags(auditDir), controllerManagerFlags: [`--controllers=${CONTROLLERS.join(',')}`] });
  const admin = new AdminApi(cp.kubeConfig());
  // As JSON: the typed client's model would drop x-kubernetes-preserve-unknown-fields (and the server prune every field).
  await admin.create('customresourcedefinitions.apiextensions.k8s.io', CLUSTER_CRD);
  for (;;) {
    const crd = await admin.get<KubeObject & { status?: { conditions?: Array<{ type: string; status: string }> } }>('customresourcedefinitions.apiextensions.k8s.io', undefined, CLUSTER_CRD.metadata.name);
    if (crd?.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
    await sleep(100);
  }
  // Registered nodes as kubelet leaves them; no kubelet answers for them unless a test runs one.
  for (const name of NODES) {
    await admin.core.createNode({ body: { metadata: { name, labels: { 'kubernetes.io/hostname': name, [TOPOLOGY_KEY]: name } } } });
  }
  console.log(`kube suite: control plane, CRD and nodes ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const caData = cp.kubeConfig().getCurrentCluster()!.caData;
  const configWithToken = (token: string, server = cp.server) => {
    const config = new KubeConfig();
    config.loadFromOptions({
      clusters: [{ name: 'test', server, caData, skipTLSVerify: false }],
      users: [{ name: 'controller', token }],
      contexts: [{ name: 'test', cluster: 'test', user: 'controller' }],
      currentContext: 'test',
    });
    return config;
  };

  let worlds = 0;
  const world = async (): Promise<World> => {
    const n = ++worlds;
    const w = { n, db: `db-${n}`, apps: `apps-${n}`, other: `other-${n}`, driver: `pgr-${n}` };
    for (const name of [w.db, w.apps, w.other, w.driver]) await admin.core.createNamespace({ body: { metadata: { name } } });
    // Pods need their ServiceAccount (admission refuses them otherwise): the controller makes `default`.
    for (const namespace of [w.db, w.apps, w.other, w.driver]) {
      while (!(await admin.core.readNamespacedServiceAccount({ namespace, name: 'default' }).then(() => true, () => false))) await sleep(50);
    }
    const sa = await installControllerRbac(cp, w.driver, `r${n}`);
    const { status } = await admin.core.createNamespacedServiceAccountToken({ namespace: w.driver, name: sa, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
    return { ...w, controllerUser: `system:serviceaccount:${w.driver}:${sa}`, controllerConfig: configWithToken(status!.token) };
  };

  return {
    cp,
    admin,
    audit: new AuditLog(auditDir),
    world,
    configWithToken,
    async stop() {
      await cp.stop();
      rmSync(auditDir, { recursive: true, force: true });
    },
  };
}

/**
 * The chart's controller ServiceAccount and everything RBAC binds to it, rendered by the real
 * helm for a release in `namespace`: the controller runs with exactly the rights a user's
 * cluster gives it. Returns the ServiceAccount's name.
 */
async function installControllerRbac(cp: ControlPlane, namespace: string, release: string): Promise<string> {
  const config = cp.kubeConfig();
  const core = config.makeApiClient(CoreV1Api);
  const rbac = config.makeApiClient(RbacAuthorizationV1Api);
  const objects = renderOrThrow({ namespace, releaseName: release }).documents.map((d) => d.object);
  const deployment = objects.find((o) => o.kind === 'Deployment') as { spec: { template: { spec: { serviceAccountName: string } } } } | undefined;
  const sa = deployment!.spec.template.spec.serviceAccountName;
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: sa } } });
  const bindsController = (o: { subjects?: Array<{ kind: string; name: string }> }) => o.subjects?.some((s) => s.kind === 'ServiceAccount' && s.name === sa) ?? false;
  const bindings = objects.filter((o) => (o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding') && bindsController(o as never));
  const roleNames = new Set(bindings.map((b) => (b as unknown as { roleRef: { name: string } }).roleRef.name));
  for (const o of objects.filter((x) => roleNames.has(x.metadata.name))) {
    if (o.kind === 'ClusterRole') await rbac.createClusterRole({ body: o as unknown as V1ClusterRole });
    if (o.kind === 'Role') await rbac.createNamespacedRole({ namespace, body: o as unknown as V1Role });
  }
  for (const b of bindings) {
    if (b.kind === 'ClusterRoleBinding') await rbac.createClusterRoleBinding({ body: b as unknown as V1ClusterRoleBinding });
    else await rbac.createNamespacedRoleBinding({ namespace, body: b as unknown as V1RoleBinding });
  }
  return sa;
}
