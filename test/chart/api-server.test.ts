// The chart's objects, as the real helm renders them, sent to a real kube-apiserver (the
// test/cluster control plane: etcd + kube-apiserver + kube-controller-manager, RBAC and the
// default admission plugins, PodSecurity among them) with dryRun=All and strict field validation,
// and the controller's pod in a namespace that enforces the restricted Pod Security Standard.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import path from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { OPENSSL, describeWithRealParts } from '../support/requirements.js';
import { CONTROL_PLANE, components } from '../cluster/components.js';
import { startControlPlane, type ControlPlane } from '../cluster/control-plane.js';
import { DryRunApi, type ApiAnswer } from './api-dry-run.js';
import { TEST_DIR, renderOrThrow, type K8sObject, type RenderedDocument, type RenderResult } from './helm-chart.js';
import { podTemplateOf } from './manifest-checks.js';
import { breakEveryControl, restrictedViolations, type PodTemplate } from './pod-security.js';

const NS = 'pg-reflinker-system';
const NONDEFAULT_NS = 'storage';
const RESTRICTED_NS = 'pgr-psa-restricted';
const RESTRICTED = { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' };

/** What a test shows for one object: where it came from and what the server said, nothing else. */
function verdict(d: RenderedDocument, a: ApiAnswer) {
  return { object: `${d.source} ${d.object.kind}/${d.object.metadata.name}`, status: a.status, message: a.body.message, warnings: a.warnings };
}

/** The workload's pod template as a Pod of its own in `namespace`. */
function podOf(workload: K8sObject, namespace: string, tpl: PodTemplate = podTemplateOf(workload)): K8sObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: `${workload.metadata.name}-pod`, namespace, labels: tpl.metadata?.labels as Record<string, unknown> }, spec: tpl.spec };
}

/**
 * The object as the API's Go types can hold it: an env var's `value: ""` is no value at all to
 * them (EnvVar.Value is omitempty; the container sees an empty variable either way), so the
 * server's answer has no `value` there.
 */
function asGoTypesHoldIt(o: K8sObject): K8sObject {
  return JSON.parse(JSON.stringify(o), (key, v: unknown) => {
    if (key === 'env' && Array.isArray(v)) return v.map((e: Record<string, unknown>) => (e.value === '' ? { name: e.name } : e));
    return v;
  }) as K8sObject;
}

// PodSecurity admission's name for each check it reports (k8s.io/pod-security-admission) and the
// control of pod-security.ts that is the same rule.
const CONTROL_OF_CHECK: Record<string, string> = {
  'host namespaces': 'hostNamespaces', privileged: 'privileged', 'non-default capabilities': 'baselineCapabilities',
  'hostPath volumes': 'hostPathVolumes', hostPort: 'hostPorts', 'seccompProfile': 'seccompRequired',
  'allowPrivilegeEscalation != false': 'privilegeEscalation', 'unrestricted capabilities': 'capabilitiesRestricted',
  'restricted volume types': 'volumeTypes', 'runAsNonRoot != true': 'runningAsNonRoot', 'runAsUser=0': 'runningAsNonRootUser',
};
// At the restricted level these baseline checks are replaced by their restricted counterparts,
// which the server names instead.
const REPLACED_AT_RESTRICTED: Record<string, string> = {
  hostPathVolumes: 'volumeTypes', baselineCapabilities: 'capabilitiesRestricted', seccompNotUnconfined: 'seccompRequired',
};

/** The checks a PodSecurity refusal names: `violates PodSecurity "...": name (detail), name (detail)`. */
function checksNamed(message: string): string[] {
  const list = message.replace(/^.*?violates PodSecurity "[^"]+": /, '');
  const names: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < list.length; i++) {
    if (list[i] === '(' && depth++ === 0) names.push(list.slice(start, i).replace(/^, /, '').trim());
    if (list[i] === ')' && --depth === 0) start = i + 1;
  }
  return names;
}

/** The controls pod-security.ts finds broken that PodSecurity admission at restricted reports. */
function controlsReportedAtRestricted(tpl: PodTemplate): string[] {
  const broken = Object.keys(restrictedViolations(tpl));
  return broken.filter((c) => !(c in REPLACED_AT_RESTRICTED && broken.includes(REPLACED_AT_RESTRICTED[c]))).sort();
}

function inNamespace(o: K8sObject, namespace: string): K8sObject {
  return { ...o, metadata: { ...o.metadata, namespace } };
}

describeWithRealParts('the chart on a real API server', [components('helm'), CONTROL_PLANE, OPENSSL], () => {
  let cp: ControlPlane;
  let api: DryRunApi;
  let def: RenderResult;
  let alt: RenderResult;
  const workload = (r: RenderResult, kind: string) => r.documents.map((d) => d.object).find((o) => o.kind === kind)!;

  beforeAll(async () => {
    def = renderOrThrow({ namespace: NS });
    alt = renderOrThrow({ namespace: NONDEFAULT_NS, valueFiles: [path.join(TEST_DIR, 'values-nondefault.yaml')], releaseName: 'db' });
    cp = await startControlPlane();
    api = new DryRunApi(cp.kubeConfig());
    const core = cp.kubeConfig().makeApiClient(CoreV1Api);
    for (const name of [NS, NONDEFAULT_NS]) await core.createNamespace({ body: { metadata: { name } } });
    await core.createNamespace({ body: { metadata: { name: RESTRICTED_NS, labels: RESTRICTED } } });
    // The pods name their ServiceAccounts; the ServiceAccount admission plugin wants them to exist.
    for (const name of ['pg-reflinker-controller', 'pg-reflinker-node', 'reflinker-controller']) {
      await core.createNamespacedServiceAccount({ namespace: RESTRICTED_NS, body: { metadata: { name } } });
    }
  }, 120_000);
  afterAll(async () => {
    await cp?.stop();
  }, 60_000);

  test('default values: the server accepts every object, without a warning, and reads each YAML document as js-yaml does', async () => {
    for (const d of def.documents) {
      const a = await api.dryRunCreate(d.yaml, d.object);
      expect(verdict(d, a)).toEqual({ ...verdict(d, a), status: 201, message: undefined, warnings: [] });
      // The server's reading (Go, sigs.k8s.io/yaml, then defaulting) holds every field js-yaml read, with the same value.
      expect(a.body).toMatchObject(asGoTypesHoldIt(d.object));
    }
    expect(def.documents.length).toBe(17);
  });

  test('the check can fail: the server refuses a document with an unknown field or a duplicated one', async () => {
    const d = def.documents.find((x) => x.object.kind === 'StorageClass')!;
    const unknown = await api.dryRunCreate(`${d.yaml.trimEnd()}\nvolumeBindingMod: Immediate\n`, d.object);
    expect({ status: unknown.status, message: unknown.body.message }).toEqual({ status: 400, message: expect.stringContaining('unknown field "volumeBindingMod"') });
    const duplicated = await api.dryRunCreate(`${d.yaml.trimEnd()}\nreclaimPolicy: Delete\n`, d.object);
    expect({ status: duplicated.status, message: duplicated.body.message }).toEqual({ status: 400, message: expect.stringContaining('key "reclaimPolicy" already set in map') });
  });

  test('non-default values: the same, except the ServiceMonitor, whose CRD (prometheus-operator) this cluster lacks', async () => {
    const unserved: string[] = [];
    for (const d of alt.documents) {
      if (!(await api.resourceOf(d.object.apiVersion, d.object.kind))) {
        unserved.push(`${d.object.apiVersion}/${d.object.kind}`);
        continue;
      }
      const a = await api.dryRunCreate(d.yaml, d.object);
      expect(verdict(d, a)).toEqual({ ...verdict(d, a), status: 201, message: undefined, warnings: [] });
      expect(a.body).toMatchObject(asGoTypesHoldIt(d.object));
    }
    expect(unserved).toEqual(['monitoring.coreos.com/v1/ServiceMonitor']);
  });

  test('restricted namespace: the controller pod is admitted (both value sets), the node pod refused', async () => {
    for (const r of [def, alt]) {
      const pod = podOf(workload(r, 'Deployment'), RESTRICTED_NS);
      const a = await api.dryRunCreate(JSON.stringify(pod), pod, 'application/json');
      expect({ pod: pod.metadata.name, status: a.status, message: a.body.message, warnings: a.warnings })
        .toEqual({ pod: pod.metadata.name, status: 201, message: undefined, warnings: [] });
    }
    const node = podOf(workload(def, 'DaemonSet'), RESTRICTED_NS);
    const refused = await api.dryRunCreate(JSON.stringify(node), node, 'application/json');
    expect(refused.status).toBe(403);
    expect(String(refused.body.message)).toMatch(/violates PodSecurity "restricted:latest": .*privileged.*hostPath/);
    console.log(`PodSecurity restricted on the node pod: ${String(refused.body.message)}`);
  });

  test('PodSecurity admission and pod-security.ts find the same controls broken, in the node pod and in a pod broken every way', async () => {
    for (const [name, tpl] of [
      ['node', podTemplateOf(workload(def, 'DaemonSet'))],
      ['broken-controller', breakEveryControl(podTemplateOf(workload(def, 'Deployment')))],
    ] as const) {
      const pod = podOf({ ...workload(def, 'Deployment'), metadata: { name } }, RESTRICTED_NS, tpl);
      const a = await api.dryRunCreate(JSON.stringify(pod), pod, 'application/json');
      expect(a.status).toBe(403);
      const byServer = checksNamed(String(a.body.message)).map((c) => CONTROL_OF_CHECK[c] ?? `unknown check: ${c}`).sort();
      expect({ pod: name, controls: byServer }).toEqual({ pod: name, controls: controlsReportedAtRestricted(tpl) });
    }
  });

  test('restricted namespace: PodSecurity has no warning for the controller Deployment, and warns for the node DaemonSet', async () => {
    const deployment = inNamespace(workload(def, 'Deployment'), RESTRICTED_NS);
    const d = await api.dryRunCreate(JSON.stringify(deployment), deployment, 'application/json');
    expect({ status: d.status, warnings: d.warnings }).toEqual({ status: 201, warnings: [] });
    const daemonSet = inNamespace(workload(def, 'DaemonSet'), RESTRICTED_NS);
    const n = await api.dryRunCreate(JSON.stringify(daemonSet), daemonSet, 'application/json');
    expect(n.status).toBe(201); // workloads are warned about, their pods refused
    expect(n.warnings.join('\n')).toMatch(/would violate PodSecurity "restricted:latest"/);
  });
});
