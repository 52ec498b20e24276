// Tests of the Helm chart charts/pg-reflinker, rendered by the real helm (v4, built by
// test/cluster/tools/build.sh; see helm-chart.ts). Without it the tests cannot run: in CI that is
// a failure, elsewhere a loudly reported skip. What the API server says about the objects is in
// api-server.test.ts.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { CONTROLLER_NAMESPACE_RBAC_RULES, CONTROLLER_RBAC_RULES } from '../../src/backends/kube/rbac.js';
import { parseCowExtentSize } from '../../src/controller/parameters.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { load } from 'js-yaml';

import { describeWithRealParts } from '../support/requirements.js';
import { components } from '../cluster/components.js';
import {
  CHART_DIR, TEST_DIR, helm, objectsOfFiles, renderOrThrow, strictRender, template, type K8sObject, type RenderResult,
} from './helm-chart.js';
import { DRIVER_NAME, imageProblem, labelsMatch, podTemplateOf, validateObjects } from './manifest-checks.js';
import { breakEveryControl, restrictedViolations, type Container, type PodTemplate } from './pod-security.js';

const NS = 'pg-reflinker-system';
const NONDEFAULT_NS = 'storage';
const NONDEFAULT_VALUES = path.join(TEST_DIR, 'values-nondefault.yaml');
const SOCKET = '/csi/csi.sock';
const SIDECAR_IMAGES = {
  provisioner: 'registry.k8s.io/sig-storage/csi-provisioner:v6.3.0',
  registrar: 'registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.17.0',
  liveness: 'registry.k8s.io/sig-storage/livenessprobe:v2.19.0',
};

// ---------- small accessors over rendered objects ----------
function all(r: RenderResult): K8sObject[] {
  return r.documents.map((d) => d.object);
}
function one(r: RenderResult, kind: string, name?: string): K8sObject {
  const found = all(r).filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0];
}
function kinds(r: RenderResult): string[] {
  return all(r).map((o) => o.kind).sort();
}
function container(tpl: PodTemplate, name: string): Container {
  const c = tpl.spec.containers.find((x) => x.name === name);
  if (!c) throw new Error(`no container ${name}; have ${tpl.spec.containers.map((x) => x.name).join(', ')}`);
  return c;
}
interface EnvVar { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath?: string } } }
function env(c: Container): Record<string, EnvVar> {
  return Object.fromEntries(((c.env ?? []) as EnvVar[]).map((e) => [e.name, e]));
}
function args(c: Container): string[] {
  return (c.args ?? []) as string[];
}
interface Mount { name: string; mountPath: string; mountPropagation?: string; readOnly?: boolean }
function mounts(c: Container): Mount[] {
  return (c.volumeMounts ?? []) as Mount[];
}
function volume(tpl: PodTemplate, name: string): Record<string, unknown> {
  const v = (tpl.spec.volumes ?? []).find((x) => x.name === name);
  if (!v) throw new Error(`no volume ${name}`);
  return v;
}
function ruleTriples(role: K8sObject): string[] {
  const out: string[] = [];
  for (const r of role.rules as Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>) {
    for (const g of r.apiGroups) for (const res of r.resources) for (const v of r.verbs) out.push(`${g}/${res}:${v}`);
  }
  return out.sort();
}
function triples(spec: Record<string, string[]>): string[] {
  return Object.entries(spec).flatMap(([gr, verbs]) => verbs.map((v) => `${gr}:${v}`)).sort();
}
function controllerPod(r: RenderResult): PodTemplate {
  return podTemplateOf(one(r, 'Deployment'));
}
function nodePod(r: RenderResult): PodTemplate {
  return podTemplateOf(one(r, 'DaemonSet'));
}

describeWithRealParts('the chart rendered by the real helm', [components('helm', 'helm-strict-render')], () => {
  let def: RenderResult;
  let alt: RenderResult;
  let scratch = '';

  /** Writes a values file into the scratch directory and returns its path. */
  const valuesFile = (name: string, yamlText: string): string => {
    const f = path.join(scratch, `${name}.yaml`);
    writeFileSync(f, yamlText);
    return f;
  };

  beforeAll(() => {
    scratch = mkdtempSync(path.join(tmpdir(), 'pg-reflinker-chart-test-'));
    def = renderOrThrow({ namespace: NS });
    alt = renderOrThrow({ namespace: NONDEFAULT_NS, valueFiles: [NONDEFAULT_VALUES], releaseName: 'db' });
  }, 60_000);

  afterAll(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  describe('chart with default values', () => {
    test('renders exactly the objects the design lists', () => {
      expect(kinds(def)).toEqual([
        'CSIDriver', 'ClusterRole', 'ClusterRole', 'ClusterRoleBinding', 'ClusterRoleBinding', 'DaemonSet',
        'Deployment', 'Role', 'Role', 'RoleBinding', 'RoleBinding', 'Service', 'Service', 'ServiceAccount', 'ServiceAccount',
        'StorageClass', 'StorageClass',
      ]);
      expect(def.chart).toMatchObject({ apiVersion: 'v2', name: 'pg-reflinker', appVersion: '0.1.0' });
    });

    test('every object is structurally valid', () => {
      expect(validateObjects(all(def), NS)).toEqual([]);
    });

    test('helm lint --strict passes, with no warning', () => {
      const lint = helm(['lint', '--strict', CHART_DIR, '--namespace', NS]);
      expect(lint.ok ? lint.stdout : lint.error).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
      expect(lint.ok && lint.stdout.split('\n').filter((l) => /^\[(WARNING|ERROR)\]/.test(l))).toEqual([]);
    });

    test.each([
      ['default values', NS, [] as string[]],
      ['non-default values', NONDEFAULT_NS, [NONDEFAULT_VALUES]],
    ])('strict rendering (helm\'s engine, missingkey=error) succeeds with %s and gives what helm template gives', (_name, namespace, valueFiles) => {
      const r = namespace === NS ? def : alt;
      const strict = strictRender({ namespace, valueFiles, releaseName: namespace === NS ? 'pg-reflinker' : 'db' });
      if (!strict.ok) throw new Error(`a template reads a value that does not exist:\n${strict.error}`);
      expect(objectsOfFiles(strict.files)).toEqual(all(r).map((o) => JSON.stringify(o)).sort());
      expect(strict.files['pg-reflinker/templates/NOTES.txt'].trim()).toEqual(r.notes.trim());
    });

    test('the dry-run release the NOTES come from has exactly the manifest helm template prints', () => {
      expect(def.releaseManifest.trim()).toBe(def.manifest.trim());
      expect(alt.releaseManifest.trim()).toBe(alt.manifest.trim());
    });

    test('CSIDriver pg-reflinker.csi: no attach, pod info, Persistent only, fsGroupPolicy None', () => {
      const d = one(def, 'CSIDriver');
      expect(d.metadata.name).toBe(DRIVER_NAME);
      expect(d.spec).toMatchObject({
        attachRequired: false,
        podInfoOnMount: true,
        volumeLifecycleModes: ['Persistent'],
        fsGroupPolicy: 'None',
        storageCapacity: false,
      });
    });

    test('StorageClasses: clones Immediate + Retain, empty volumes WaitForFirstConsumer, both pg-reflinker.csi', () => {
      const clone = one(def, 'StorageClass', 'pg-reflinker');
      const local = one(def, 'StorageClass', 'pg-reflinker-local');
      expect(clone).toMatchObject({
        provisioner: DRIVER_NAME, volumeBindingMode: 'Immediate', reclaimPolicy: 'Retain',
        allowVolumeExpansion: false, parameters: { allowCrashConsistent: 'false', preferStandby: 'true' },
      });
      expect(local).toMatchObject({
        provisioner: DRIVER_NAME, volumeBindingMode: 'WaitForFirstConsumer', allowVolumeExpansion: false,
        parameters: { cowExtentSize: '8k' },
      });
      // The driver accepts what the chart renders.
      expect(parseCowExtentSize(String((local.parameters as Record<string, unknown>).cowExtentSize))).toBe(8192);
      expect(one(def, 'CSIDriver').metadata.name).toBe(clone.provisioner);
    });

    test('the controller pod meets the restricted Pod Security Standard, rule by rule', () => {
      const tpl = controllerPod(def);
      expect(restrictedViolations(tpl)).toEqual({});
      const pod = tpl.spec;
      expect(pod.hostNetwork ?? false).toBe(false);
      expect(pod.hostPID ?? false).toBe(false);
      expect(pod.hostIPC ?? false).toBe(false);
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      expect(pod.securityContext?.runAsUser).toBe(10001);
      expect(pod.securityContext?.runAsGroup).toBe(10001);
      for (const v of pod.volumes ?? []) expect(Object.keys(v).filter((k) => k !== 'name')).toEqual(['emptyDir']);
      expect(pod.containers.map((c) => c.name)).toEqual(['controller', 'csi-provisioner', 'liveness-probe']);
      for (const c of pod.containers) {
        const sc = c.securityContext ?? {};
        expect({ c: c.name, privileged: sc.privileged ?? false }).toEqual({ c: c.name, privileged: false });
        expect({ c: c.name, ape: sc.allowPrivilegeEscalation }).toEqual({ c: c.name, ape: false });
        expect({ c: c.name, ro: sc.readOnlyRootFilesystem }).toEqual({ c: c.name, ro: true });
        expect({ c: c.name, drop: sc.capabilities?.drop, add: sc.capabilities?.add }).toEqual({ c: c.name, drop: ['ALL'], add: undefined });
        expect({ c: c.name, seccomp: sc.seccompProfile?.type ?? 'RuntimeDefault' }).toEqual({ c: c.name, seccomp: 'RuntimeDefault' });
        expect(sc.runAsUser === undefined || sc.runAsUser !== 0).toBe(true);
        expect(sc.runAsNonRoot).not.toBe(false);
        expect((c.ports ?? []).every((p) => p.hostPort === undefined)).toBe(true);
      }
    });

    test('the Pod Security checker itself flags each kind of violation', () => {
      const tpl = breakEveryControl(controllerPod(def));
      expect(Object.keys(restrictedViolations(tpl)).sort()).toEqual([
        'baselineCapabilities', 'capabilitiesRestricted', 'hostNamespaces', 'hostPathVolumes', 'hostPorts',
        'privilegeEscalation', 'privileged', 'runningAsNonRoot', 'runningAsNonRootUser', 'seccompNotUnconfined',
        'seccompRequired', 'volumeTypes',
      ]);
    });

    test('only the node plugin container is privileged, and the node pod shares no host namespace', () => {
      const privileged: string[] = [];
      for (const w of [...all(def)].filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet')) {
        const tpl = podTemplateOf(w);
        expect(tpl.spec.hostNetwork ?? false).toBe(false);
        expect(tpl.spec.hostPID ?? false).toBe(false);
        for (const c of [...(tpl.spec.initContainers ?? []), ...tpl.spec.containers]) {
          if (c.securityContext?.privileged === true) privileged.push(`${w.kind}/${c.name}`);
          else {
            expect({ c: c.name, ape: c.securityContext?.allowPrivilegeEscalation }).toEqual({ c: c.name, ape: false });
            expect({ c: c.name, drop: c.securityContext?.capabilities?.drop }).toEqual({ c: c.name, drop: ['ALL'] });
          }
        }
      }
      expect(privileged).toEqual(['DaemonSet/node']);
    });

    test('controller Deployment: one replica, Recreate, controller + csi-provisioner + livenessprobe', () => {
      const d = one(def, 'Deployment');
      expect(d.metadata.namespace).toBe(NS);
      expect(d.spec).toMatchObject({ replicas: 1, strategy: { type: 'Recreate' } });
      const tpl = controllerPod(def);
      expect(args(container(tpl, 'controller'))).toEqual(['controller']);
      expect(container(tpl, 'csi-provisioner').image).toBe(SIDECAR_IMAGES.provisioner);
      expect(container(tpl, 'liveness-probe').image).toBe(SIDECAR_IMAGES.liveness);
    });

    test('csi-provisioner flags: extra metadata, leader election, tuned timeout and retries, no strict topology', () => {
      const p = container(controllerPod(def), 'csi-provisioner');
      expect(args(p)).toEqual([
        `--csi-address=${SOCKET}`,
        '--extra-create-metadata',
        '--leader-election',
        '--leader-election-namespace=$(NAMESPACE)',
        '--timeout=30s',
        '--retry-interval-max=30s',
        '--http-endpoint=:8080',
      ]);
      expect(args(p).some((a) => a.startsWith('--strict-topology'))).toBe(false);
      expect(env(p).NAMESPACE.valueFrom?.fieldRef?.fieldPath).toBe('metadata.namespace');
      expect(p.livenessProbe).toMatchObject({ httpGet: { path: '/healthz/leader-election', port: 'provisioner' } });
      expect(p.ports).toEqual([{ name: 'provisioner', containerPort: 8080, protocol: 'TCP' }]);
    });

    test('every container of both pods reaches the same CSI socket', () => {
      for (const tpl of [controllerPod(def), nodePod(def)]) {
        for (const c of tpl.spec.containers) {
          expect({ c: c.name, m: mounts(c).find((m) => m.name === 'socket-dir')?.mountPath }).toEqual({ c: c.name, m: '/csi' });
          const addr = args(c).find((a) => a.startsWith('--csi-address='));
          const endpoint = env(c).CSI_ENDPOINT?.value;
          expect({ c: c.name, socket: addr ? addr.slice('--csi-address='.length) : endpoint?.replace(/^unix:\/\//, '') }).toEqual({ c: c.name, socket: SOCKET });
        }
      }
      expect(volume(controllerPod(def), 'socket-dir')).toEqual({ name: 'socket-dir', emptyDir: {} });
    });

    test('controller container: the configuration contract as environment variables', () => {
      const tpl = controllerPod(def);
      const c = container(tpl, 'controller');
      const e = env(c);
      expect(Object.keys(e).sort()).toEqual([
        'CSI_ENDPOINT', 'DRIVER_IMAGE', 'HOSTPATH_PREFIX', 'JOB_SERVICE_ACCOUNT', 'LOG_LEVEL', 'METRICS_ADDRESS',
        'NAMESPACE_PATH', 'POD_NAMESPACE',
      ]);
      expect(e.CSI_ENDPOINT.value).toBe(`unix://${SOCKET}`);
      expect(e.HOSTPATH_PREFIX.value).toBe('/var/lib/pg-reflinker');
      expect(e.LOG_LEVEL.value).toBe('info');
      expect(e.METRICS_ADDRESS.value).toBe(':9810');
      expect(e.NAMESPACE_PATH.value).toBe('');
      expect(e.POD_NAMESPACE.valueFrom?.fieldRef?.fieldPath).toBe('metadata.namespace');
      expect(e.DRIVER_IMAGE.value).toBe(c.image);
      expect(e.JOB_SERVICE_ACCOUNT.value).toBe('default');
      expect(c.image).toBe('ghcr.io/pg-reflinker/pg-reflinker:0.1.0');
      // The controller never touches node filesystems: no hostPath anywhere in its pod.
      expect((tpl.spec.volumes ?? []).some((v) => 'hostPath' in v)).toBe(false);
    });

    test('node DaemonSet: node plugin env, Bidirectional kubelet pods dir and prefix, registrar path', () => {
      const tpl = nodePod(def);
      expect(tpl.spec.containers.map((c) => c.name)).toEqual(['node', 'node-driver-registrar', 'liveness-probe']);
      const node = container(tpl, 'node');
      expect(args(node)).toEqual(['node']);
      const e = env(node);
      expect(e.NODE_NAME.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
      expect(e.HOSTPATH_PREFIX.value).toBe('/var/lib/pg-reflinker');
      expect(e.CSI_ENDPOINT.value).toBe(`unix://${SOCKET}`);
      expect(e.LOG_LEVEL.value).toBe('info');
      expect(node.image).toBe(container(controllerPod(def), 'controller').image);
      const m = Object.fromEntries(mounts(node).map((x) => [x.name, x]));
      expect(m['pods-dir']).toMatchObject({ mountPath: '/var/lib/kubelet/pods', mountPropagation: 'Bidirectional' });
      expect(m['data-dir']).toMatchObject({ mountPath: '/var/lib/pg-reflinker', mountPropagation: 'Bidirectional' });
      expect(volume(tpl, 'pods-dir')).toEqual({ name: 'pods-dir', hostPath: { path: '/var/lib/kubelet/pods', type: 'Directory' } });
      expect(volume(tpl, 'data-dir')).toEqual({ name: 'data-dir', hostPath: { path: '/var/lib/pg-reflinker', type: 'DirectoryOrCreate' } });
      expect(volume(tpl, 'socket-dir')).toEqual({ name: 'socket-dir', hostPath: { path: '/var/lib/kubelet/plugins/pg-reflinker.csi', type: 'DirectoryOrCreate' } });
      expect(volume(tpl, 'registration-dir')).toEqual({ name: 'registration-dir', hostPath: { path: '/var/lib/kubelet/plugins_registry', type: 'Directory' } });
      // Host paths and container paths of the kubelet dir and the prefix are the same, so the
      // paths kubelet and the driver exchange mean the same inside and outside the container.
      for (const name of ['pods-dir', 'data-dir']) {
        expect(m[name].mountPath).toBe((volume(tpl, name).hostPath as { path: string }).path);
      }
      const reg = container(tpl, 'node-driver-registrar');
      expect(reg.image).toBe(SIDECAR_IMAGES.registrar);
      expect(args(reg)).toContain('--kubelet-registration-path=/var/lib/kubelet/plugins/pg-reflinker.csi/csi.sock');
      expect(mounts(reg).find((x) => x.name === 'registration-dir')?.mountPath).toBe('/registration');
      expect(container(tpl, 'liveness-probe').image).toBe(SIDECAR_IMAGES.liveness);
      expect(tpl.spec.automountServiceAccountToken).toBe(false);
      expect(tpl.spec.tolerations).toEqual([{ operator: 'Exists' }]);
    });

    test('liveness: driver containers probe the livenessprobe sidecar\'s port, which calls CSI Probe', () => {
      for (const tpl of [controllerPod(def), nodePod(def)]) {
        const lp = container(tpl, 'liveness-probe');
        const endpoint = args(lp).find((a) => a.startsWith('--http-endpoint='));
        expect(endpoint).toBe('--http-endpoint=:9808');
        const driver = tpl.spec.containers[0];
        expect(driver.livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'healthz' } });
        expect(driver.ports).toContainEqual({ name: 'healthz', containerPort: 9808, protocol: 'TCP' });
      }
    });

    test('all images are pinned; sidecars at the versions the design names', () => {
      const images = [controllerPod(def), nodePod(def)].flatMap((t) => t.spec.containers.map((c) => String(c.image)));
      for (const i of images) expect({ i, problem: imageProblem(i) }).toEqual({ i, problem: undefined });
      expect(new Set(images)).toEqual(new Set(['ghcr.io/pg-reflinker/pg-reflinker:0.1.0', ...Object.values(SIDECAR_IMAGES)]));
    });

    test('RBAC: the controller gets exactly its listed rules, csi-provisioner its standard ones, nobody Secrets', () => {
      const controllerRole = one(def, 'ClusterRole', 'pg-reflinker-controller');
      // The chart grants exactly what the Kubernetes backend declares it uses (src/backends/kube/rbac.ts).
      expect(ruleTriples(controllerRole)).toEqual(ruleTriples({ rules: CONTROLLER_RBAC_RULES } as unknown as K8sObject));
      const provisionerRole = one(def, 'ClusterRole', 'pg-reflinker-provisioner');
      expect(ruleTriples(provisionerRole)).toEqual(triples({
        '/persistentvolumes': ['get', 'list', 'watch', 'create', 'patch', 'delete'],
        '/persistentvolumeclaims': ['get', 'list', 'watch', 'update'],
        'storage.k8s.io/storageclasses': ['get', 'list', 'watch'],
        '/events': ['list', 'watch', 'create', 'update', 'patch'],
        'storage.k8s.io/csinodes': ['get', 'list', 'watch'],
        '/nodes': ['get', 'list', 'watch'],
        'snapshot.storage.k8s.io/volumesnapshots': ['get', 'list'],
        'snapshot.storage.k8s.io/volumesnapshotcontents': ['get', 'list'],
      }));
      const role = one(def, 'Role', 'pg-reflinker-leader-election');
      expect(role.metadata.namespace).toBe(NS);
      expect(ruleTriples(role)).toEqual(triples({ 'coordination.k8s.io/leases': ['get', 'list', 'watch', 'create', 'update', 'delete'] }));
      // The clone records: ConfigMaps in the driver's (release) namespace only, never cluster-wide.
      const records = one(def, 'Role', 'pg-reflinker-controller-records');
      expect(records.metadata.namespace).toBe(NS);
      expect(ruleTriples(records)).toEqual(ruleTriples({ rules: CONTROLLER_NAMESPACE_RBAC_RULES } as unknown as K8sObject));
      expect(ruleTriples(records)).toEqual(triples({ '/configmaps': ['get', 'list', 'create', 'update', 'delete'] }));
      expect(ruleTriples(controllerRole).some((t) => t.includes('configmaps'))).toBe(false);
      for (const r of all(def).filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role')) {
        expect(ruleTriples(r).filter((t) => /\/(secrets|\*):/.test(t) || t.endsWith(':*'))).toEqual([]);
      }
      // The rules template keeps the controller's rules in one commented block.
      const rbacSource = readFileSync(path.join(CHART_DIR, 'templates', 'rbac.yaml'), 'utf8');
      expect(rbacSource).toMatch(/# ---- pg-reflinker controller:[^\n]*\n(?:.*\n)*?\s*# ---- end of the pg-reflinker controller's rules ----/);
    });

    test('RBAC bindings: the controller ServiceAccount gets both ClusterRoles and the lease Role; the node one nothing', () => {
      const bound = all(def)
        .filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding')
        .flatMap((b) => (b.subjects as Array<{ name: string }>).map((s) => `${s.name}->${(b.roleRef as { kind: string; name: string }).kind}/${(b.roleRef as { name: string }).name}`))
        .sort();
      expect(bound).toEqual([
        'pg-reflinker-controller->ClusterRole/pg-reflinker-controller',
        'pg-reflinker-controller->ClusterRole/pg-reflinker-provisioner',
        'pg-reflinker-controller->Role/pg-reflinker-controller-records',
        'pg-reflinker-controller->Role/pg-reflinker-leader-election',
      ]);
      expect(controllerPod(def).spec.serviceAccountName).toBe('pg-reflinker-controller');
      expect(nodePod(def).spec.serviceAccountName).toBe('pg-reflinker-node');
      expect(one(def, 'ServiceAccount', 'pg-reflinker-node').automountServiceAccountToken).toBe(false);
    });

    test('metrics: a headless Service per component on the metrics port, no ServiceMonitor by default', () => {
      for (const [component, tpl] of [['controller', controllerPod(def)], ['node', nodePod(def)]] as const) {
        const s = one(def, 'Service', `pg-reflinker-${component}-metrics`);
        const spec = s.spec as { clusterIP: string; selector: Record<string, string>; ports: unknown[] };
        expect(spec.clusterIP).toBe('None');
        expect(labelsMatch(spec.selector, tpl.metadata?.labels)).toBe(true);
        expect(spec.ports).toEqual([{ name: 'metrics', port: 9810, targetPort: 'metrics', protocol: 'TCP' }]);
        expect(tpl.spec.containers[0].ports).toContainEqual({ name: 'metrics', containerPort: 9810, protocol: 'TCP' });
        expect(env(tpl.spec.containers[0]).METRICS_ADDRESS.value).toBe(':9810');
      }
      expect(all(def).some((o) => o.kind === 'ServiceMonitor')).toBe(false);
    });

    test('NOTES: the one-time GRANT and a clone PVC example', () => {
      expect(def.notes).toContain(
        'GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean), pg_backup_stop(boolean) TO streaming_replica;',
      );
      const pvc = /\n( +)apiVersion: v1\n((?:\1.*\n)+)/.exec(def.notes);
      expect(pvc).not.toBeNull();
      const indent = pvc![1];
      const example = load(`apiVersion: v1\n${pvc![2].split('\n').map((l) => l.slice(indent.length)).join('\n')}`) as K8sObject;
      expect(example).toMatchObject({
        kind: 'PersistentVolumeClaim',
        spec: { storageClassName: 'pg-reflinker', dataSource: { kind: 'PersistentVolumeClaim' } },
      });
      expect(def.notes).toContain('storageClass: pg-reflinker-local');
      expect(def.notes).toContain('/var/lib/pg-reflinker');
    });
  });

  describe('chart with non-default values (test/chart/values-nondefault.yaml)', () => {
    test('every object is structurally valid', () => {
      expect(validateObjects(all(alt), NONDEFAULT_NS)).toEqual([]);
    });

    test('helm lint --strict passes with these values, with no warning', () => {
      const lint = helm(['lint', '--strict', CHART_DIR, '--namespace', NONDEFAULT_NS, '-f', NONDEFAULT_VALUES]);
      expect(lint.ok ? lint.stdout : lint.error).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
      expect(lint.ok && lint.stdout.split('\n').filter((l) => /^\[(WARNING|ERROR)\]/.test(l))).toEqual([]);
    });

    test('names follow fullnameOverride; the local class is gone; a ServiceMonitor appears', () => {
      expect(kinds(alt)).toEqual([
        'CSIDriver', 'ClusterRole', 'ClusterRole', 'ClusterRoleBinding', 'ClusterRoleBinding', 'DaemonSet',
        'Deployment', 'Role', 'Role', 'RoleBinding', 'RoleBinding', 'Service', 'Service', 'ServiceAccount', 'ServiceAccount',
        'ServiceMonitor', 'StorageClass',
      ]);
      expect(one(alt, 'Deployment').metadata.name).toBe('reflinker-controller');
      expect(one(alt, 'DaemonSet').metadata.name).toBe('reflinker-node');
      expect(one(alt, 'CSIDriver').metadata.name).toBe(DRIVER_NAME);
    });

    test('the clone class: own name, Delete reclaim, crash-consistent copies allowed, annotations', () => {
      const sc = one(alt, 'StorageClass');
      expect(sc).toMatchObject({
        metadata: { name: 'db-clones', annotations: { 'storageclass.kubernetes.io/is-default-class': 'false' } },
        provisioner: DRIVER_NAME, reclaimPolicy: 'Delete', volumeBindingMode: 'Immediate',
        parameters: { allowCrashConsistent: 'true', preferStandby: 'false' },
      });
    });

    test('prefix and kubeletDir reach every path; namespacePath becomes a comma list', () => {
      const node = nodePod(alt);
      const n = container(node, 'node');
      expect(env(n).HOSTPATH_PREFIX.value).toBe('/mnt/reflink-data/volumes');
      expect(env(container(controllerPod(alt), 'controller')).HOSTPATH_PREFIX.value).toBe('/mnt/reflink-data/volumes');
      expect(volume(node, 'data-dir')).toEqual({ name: 'data-dir', hostPath: { path: '/mnt/reflink-data/volumes', type: 'DirectoryOrCreate' } });
      expect(volume(node, 'pods-dir')).toEqual({ name: 'pods-dir', hostPath: { path: '/var/lib/k0s/kubelet/pods', type: 'Directory' } });
      expect(volume(node, 'socket-dir')).toMatchObject({ hostPath: { path: '/var/lib/k0s/kubelet/plugins/pg-reflinker.csi' } });
      expect(volume(node, 'registration-dir')).toMatchObject({ hostPath: { path: '/var/lib/k0s/kubelet/plugins_registry' } });
      expect(mounts(n)).toContainEqual({ name: 'pods-dir', mountPath: '/var/lib/k0s/kubelet/pods', mountPropagation: 'Bidirectional' });
      expect(mounts(n)).toContainEqual({ name: 'data-dir', mountPath: '/mnt/reflink-data/volumes', mountPropagation: 'Bidirectional' });
      expect(args(container(node, 'node-driver-registrar'))).toContain('--kubelet-registration-path=/var/lib/k0s/kubelet/plugins/pg-reflinker.csi/csi.sock');
      const e = env(container(controllerPod(alt), 'controller'));
      expect(e.NAMESPACE_PATH.value).toBe('db-followers,db-archive');
      expect(e.LOG_LEVEL.value).toBe('debug');
      expect(e.JOB_SERVICE_ACCOUNT.value).toBe('pg-reflinker-jobs');
      expect(alt.notes).toContain('/mnt/reflink-data/volumes');
    });

    test('image, pull secrets, sidecar tuning and the controller uid', () => {
      const ctl = controllerPod(alt);
      const c = container(ctl, 'controller');
      expect(c.image).toBe('registry.example.internal/storage/pg-reflinker:0.1.0-rc.2');
      expect(c.imagePullPolicy).toBe('Always');
      expect(env(c).DRIVER_IMAGE.value).toBe(c.image);
      expect(container(nodePod(alt), 'node').image).toBe(c.image);
      expect(ctl.spec.imagePullSecrets).toEqual([{ name: 'internal-registry' }]);
      expect(nodePod(alt).spec.imagePullSecrets).toEqual([{ name: 'internal-registry' }]);
      const p = args(container(ctl, 'csi-provisioner'));
      expect(p).toContain('--timeout=2m');
      expect(p).toContain('--retry-interval-max=1m30s');
      expect(ctl.spec.securityContext).toMatchObject({ runAsUser: 65532, runAsGroup: 65532, runAsNonRoot: true });
      expect(restrictedViolations(ctl)).toEqual({});
    });

    test('placement and resources per component and container', () => {
      const ctl = controllerPod(alt);
      const node = nodePod(alt);
      expect(ctl.spec).toMatchObject({
        nodeSelector: { 'node-role.kubernetes.io/control-plane': '' },
        tolerations: [{ key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' }],
        priorityClassName: 'system-cluster-critical',
      });
      expect(ctl.metadata?.annotations).toEqual({ 'example.com/owner': 'storage-team' });
      expect(node.spec).toMatchObject({
        nodeSelector: { 'pg-reflinker.csi/enabled': 'true' },
        tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'postgres', effect: 'NoSchedule' }],
        priorityClassName: 'system-node-critical',
        affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/os', operator: 'In', values: ['linux'] }] }] } } },
      });
      expect(container(ctl, 'controller').resources).toEqual({ requests: { cpu: '50m', memory: '128Mi' }, limits: { cpu: '1', memory: '512Mi' } });
      expect(container(ctl, 'csi-provisioner').resources).toEqual({ requests: { cpu: '20m', memory: '48Mi' }, limits: { memory: '128Mi' } });
      expect(container(node, 'node').resources).toEqual({ requests: { cpu: '20m', memory: '96Mi' }, limits: { memory: '384Mi' } });
    });

    test('metrics on another port, with a ServiceMonitor selecting both Services', () => {
      for (const tpl of [controllerPod(alt), nodePod(alt)]) {
        expect(env(tpl.spec.containers[0]).METRICS_ADDRESS.value).toBe(':9900');
        expect(tpl.spec.containers[0].ports).toContainEqual({ name: 'metrics', containerPort: 9900, protocol: 'TCP' });
      }
      const sm = one(alt, 'ServiceMonitor');
      expect(sm.metadata.labels).toMatchObject({ release: 'kube-prometheus-stack' });
      const sel = (sm.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
      const selected = all(alt).filter((o) => o.kind === 'Service' && labelsMatch(sel, o.metadata.labels)).map((o) => o.metadata.name).sort();
      expect(selected).toEqual(['reflinker-controller-metrics', 'reflinker-node-metrics']);
      expect((sm.spec as { endpoints: unknown[] }).endpoints).toEqual([
        expect.objectContaining({ port: 'metrics', path: '/metrics', interval: '15s', scrapeTimeout: '5s' }),
      ]);
      for (const s of selected) {
        expect(one(alt, 'Service', s).metadata.annotations).toEqual({ 'example.com/scrape': 'true' });
      }
    });

    test('NOTES follow the values', () => {
      expect(alt.notes).toContain('StorageClass db-clones');
      expect(alt.notes).toContain('local class is disabled');
      expect(alt.notes).not.toContain('Reclaim policy Retain');
    });
  });

  describe('switches and guards', () => {
    test('metrics off: no Services, no METRICS_ADDRESS, no metrics port', () => {
      const r = renderOrThrow({ namespace: NS, valueFiles: [valuesFile('metrics-off', 'metrics:\n  enabled: false\n')] });
      expect(validateObjects(all(r), NS)).toEqual([]);
      expect(all(r).some((o) => o.kind === 'Service' || o.kind === 'ServiceMonitor')).toBe(false);
      for (const tpl of [controllerPod(r), nodePod(r)]) {
        expect(env(tpl.spec.containers[0]).METRICS_ADDRESS).toBeUndefined();
        expect((tpl.spec.containers[0].ports ?? []).map((p) => p.name)).toEqual(['healthz']);
      }
    });

    test('both StorageClasses off: none rendered, NOTES say how to make one', () => {
      const f = valuesFile('no-classes', 'storageClasses:\n  clone:\n    enabled: false\n  local:\n    enabled: false\n');
      const r = renderOrThrow({ namespace: NS, valueFiles: [f] });
      expect(all(r).some((o) => o.kind === 'StorageClass')).toBe(false);
      expect(r.notes).toContain('clone class is disabled');
      expect(r.notes).toContain('local class is disabled');
      expect(validateObjects(all(r), NS)).toEqual([]);
    });

    test.each([
      ['a ServiceMonitor without metrics', 'metrics:\n  enabled: false\n  serviceMonitor:\n    enabled: true\n', 'metrics.serviceMonitor.enabled needs metrics.enabled'],
      ['two classes with one name', 'storageClasses:\n  local:\n    name: pg-reflinker\n', 'must differ'],
      ['the prefix inside the kubelet dir', 'hostpathPrefix: /var/lib/kubelet/pg\n', 'must not contain one another'],
      ['the kubelet dir inside the prefix', 'hostpathPrefix: /var\n', 'must not contain one another'],
    ])('refuses %s', (_name, yamlText, message) => {
      const out = template({ namespace: NS, valueFiles: [valuesFile(`guard-${_name.replace(/\W+/g, '-')}`, yamlText)] });
      expect(out.ok).toBe(false);
      if (!out.ok) expect(out.error).toContain(message);
    });
  });

  describe('values.schema.json', () => {
    test('is draft-07, closed at the top level, and accepts the defaults and the non-default file', () => {
      const schema = JSON.parse(readFileSync(path.join(CHART_DIR, 'values.schema.json'), 'utf8')) as Record<string, unknown>;
      expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
      expect(schema.additionalProperties).toBe(false);
      const values = load(readFileSync(path.join(CHART_DIR, 'values.yaml'), 'utf8')) as Record<string, unknown>;
      expect(Object.keys(schema.properties as object).sort()).toEqual(Object.keys(values).sort());
      // Both renders above went through the schema (helm validates the merged values).
      expect(def.documents.length).toBeGreaterThan(0);
      expect(alt.documents.length).toBeGreaterThan(0);
    });

    test.each([
      ['an unknown top-level key', 'replicas: 2\n', "at '': additional properties 'replicas' not allowed"],
      ['a misspelt nested key', 'metrics:\n  prot: 9810\n', "at '/metrics': additional properties 'prot' not allowed"],
      ['a port as a string', 'metrics:\n  port: "9810"\n', "at '/metrics/port': got string, want integer"],
      ['a port taken by a sidecar', 'metrics:\n  port: 9808\n', "at '/metrics/port': 'not' failed"],
      ['a boolean as a string', 'metrics:\n  enabled: "yes"\n', "at '/metrics/enabled': got string, want boolean"],
      ['namespacePath as a string', 'namespacePath: team-a,team-b\n', "at '/namespacePath': got string, want array"],
      ['an invalid namespace', 'namespacePath: [Team_A]\n', "at '/namespacePath/0': 'Team_A' does not match pattern"],
      ['reclaimPolicy Recycle', 'storageClasses:\n  clone:\n    reclaimPolicy: Recycle\n', "at '/storageClasses/clone/reclaimPolicy': value must be one of 'Retain', 'Delete'"],
      ['a relative prefix', 'hostpathPrefix: var/lib/x\n', "at '/hostpathPrefix': 'var/lib/x' does not match pattern"],
      ['a prefix with a trailing slash', 'hostpathPrefix: /var/lib/x/\n', "at '/hostpathPrefix': '/var/lib/x/' does not match pattern"],
      ['a prefix with ..', 'hostpathPrefix: /var/lib/../etc\n', "at '/hostpathPrefix': '/var/lib/../etc' does not match pattern"],
      ['kubeletDir as a number', 'kubeletDir: 5\n', "at '/kubeletDir': got number, want string"],
      ['an unknown log level', 'logLevel: trace\n', "at '/logLevel': value must be one of 'error', 'warn', 'info', 'debug'"],
      ['image tag latest', 'image:\n  tag: latest\n', "at '/image/tag': 'not' failed"],
      ['a sidecar tag latest', 'sidecars:\n  livenessProbe:\n    image:\n      tag: latest\n', "at '/sidecars/livenessProbe/image/tag': 'not' failed"],
      ['an empty sidecar tag', 'sidecars:\n  provisioner:\n    image:\n      tag: ""\n', "at '/sidecars/provisioner/image/tag': '' does not match pattern"],
      ['a timeout without unit', 'sidecars:\n  provisioner:\n    timeout: 30\n', "at '/sidecars/provisioner/timeout': got number, want string"],
      ['a bad duration', 'sidecars:\n  provisioner:\n    retryIntervalMax: 30 seconds\n', "at '/sidecars/provisioner/retryIntervalMax': '30 seconds' does not match pattern"],
      ['resources as a list', 'controller:\n  resources: [cpu]\n', "at '/controller/resources': got array, want object"],
      ['a bad quantity', 'node:\n  resources:\n    limits:\n      memory: lots\n', "at '/node/resources/limits/memory': 'lots' does not match pattern"],
      ['tolerations as a map', 'node:\n  tolerations:\n    operator: Exists\n', "at '/node/tolerations': got object, want array"],
      ['a nodeSelector with a number', 'controller:\n  nodeSelector:\n    disk: 1\n', "at '/controller/nodeSelector/disk': got number, want string"],
      ['the controller as root', 'controller:\n  runAsUser: 0\n', "at '/controller/runAsUser': minimum: got 0, want 1"],
      ['a pull policy typo', 'image:\n  pullPolicy: IfNotPresnt\n', "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'"],
      ['allowCrashConsistent as a string', 'storageClasses:\n  clone:\n    allowCrashConsistent: "false"\n', "at '/storageClasses/clone/allowCrashConsistent': got string, want boolean"],
      ['a cowExtentSize with a bad unit', 'storageClasses:\n  local:\n    cowExtentSize: 8x\n', "at '/storageClasses/local/cowExtentSize': '8x' does not match pattern"],
      ['a ServiceMonitor label that is not a string', 'metrics:\n  serviceMonitor:\n    labels:\n      release: 1\n', "at '/metrics/serviceMonitor/labels/release': got number, want string"],
    ])('rejects %s', (name, yamlText, fragment) => {
      const out = template({ namespace: NS, valueFiles: [valuesFile(`bad-${name.replace(/\W+/g, '-')}`, yamlText)] });
      expect(out.ok).toBe(false);
      if (!out.ok) {
        expect(out.error).toContain("values don't meet the specifications of the schema");
        expect(out.error).toContain(fragment);
      }
    });
  });

  describe('documentation', () => {
    const LEAF_MAPS = new Set(['resources', 'nodeSelector', 'tolerations', 'affinity', 'podAnnotations', 'annotations', 'labels']);
    function leafKeys(v: Record<string, unknown>, prefix = ''): string[] {
      return Object.entries(v).flatMap(([k, x]) => {
        const key = prefix ? `${prefix}.${k}` : k;
        const recurse = x !== null && typeof x === 'object' && !Array.isArray(x) && !LEAF_MAPS.has(k);
        return recurse ? leafKeys(x as Record<string, unknown>, key) : [key];
      });
    }

    test('the chart README documents every value', () => {
      const readme = readFileSync(path.join(CHART_DIR, 'README.md'), 'utf8');
      const values = load(readFileSync(path.join(CHART_DIR, 'values.yaml'), 'utf8')) as Record<string, unknown>;
      const missing = leafKeys(values).filter((k) => !readme.includes(`| \`${k}\``));
      expect(missing).toEqual([]);
      expect(readme).toContain('fsGroupPolicy');
    });
  });
});
