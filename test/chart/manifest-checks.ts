// Structural checks of rendered Kubernetes objects: what the API server would reject (or what
// would silently not work, like a Service selecting no pod), for the kinds this chart ships.
// validateObjects returns a list of problems; an empty list means the set of objects is sound.
import type { K8sObject } from './helm-chart.js';
import type { Container, PodSpec, PodTemplate } from './pod-security.js';

export const DRIVER_NAME = 'pg-reflinker.csi';

interface KindInfo {
  namespaced: boolean;
}

/** apiVersion/kind → scope, for every kind the chart may render. */
export const KNOWN_KINDS: Record<string, KindInfo> = {
  'storage.k8s.io/v1/CSIDriver': { namespaced: false },
  'storage.k8s.io/v1/StorageClass': { namespaced: false },
  'v1/ServiceAccount': { namespaced: true },
  'v1/Service': { namespaced: true },
  'rbac.authorization.k8s.io/v1/ClusterRole': { namespaced: false },
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': { namespaced: false },
  'rbac.authorization.k8s.io/v1/Role': { namespaced: true },
  'rbac.authorization.k8s.io/v1/RoleBinding': { namespaced: true },
  'apps/v1/Deployment': { namespaced: true },
  'apps/v1/DaemonSet': { namespaced: true },
  'monitoring.coreos.com/v1/ServiceMonitor': { namespaced: true },
};

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const C_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const QUANTITY = /^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$/;
const RBAC_VERBS = new Set(['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection']);
const FIELD_PATHS = new Set([
  'metadata.name', 'metadata.namespace', 'metadata.uid', 'spec.nodeName', 'spec.serviceAccountName',
  'status.hostIP', 'status.hostIPs', 'status.podIP', 'status.podIPs',
]);
const HOSTPATH_TYPES = new Set(['', 'DirectoryOrCreate', 'Directory', 'FileOrCreate', 'File', 'Socket', 'CharDevice', 'BlockDevice']);
const VOLUME_SOURCES = new Set(['hostPath', 'emptyDir', 'configMap', 'secret', 'projected', 'downwardAPI', 'persistentVolumeClaim', 'csi', 'ephemeral']);

export function kindKey(o: { apiVersion: string; kind: string }): string {
  return `${o.apiVersion}/${o.kind}`;
}

export function objectsOf(objs: K8sObject[], kind: string): K8sObject[] {
  return objs.filter((o) => o.kind === kind);
}

export function podTemplateOf(o: K8sObject): PodTemplate {
  return (o.spec as { template: PodTemplate }).template;
}

export function labelsMatch(selector: Record<string, unknown>, labels: Record<string, unknown> | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** A pinned image reference: repository:tag (tag not "latest"), or a digest. */
export function imageProblem(image: unknown): string | undefined {
  if (typeof image !== 'string' || image === '') return 'image missing';
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return undefined;
  const lastSlash = image.lastIndexOf('/');
  const colon = image.indexOf(':', lastSlash + 1);
  if (colon < 0) return `image ${image} has no tag`;
  const tag = image.slice(colon + 1);
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) return `image ${image} has an invalid tag`;
  if (tag === 'latest') return `image ${image} is not pinned (latest)`;
  return undefined;
}

function checkMetadata(o: K8sObject, namespace: string, p: (msg: string) => void): void {
  const info = KNOWN_KINDS[kindKey(o)];
  const m = o.metadata;
  if (!m || typeof m.name !== 'string' || m.name === '') return p('metadata.name missing');
  if (!DNS_SUBDOMAIN.test(m.name) || m.name.length > 253) p(`metadata.name ${m.name} is not a DNS subdomain`);
  if (info?.namespaced) {
    if (m.namespace !== namespace) p(`namespaced object must be in ${namespace}, has ${String(m.namespace)}`);
  } else if (m.namespace !== undefined) {
    p('cluster-scoped object must not have metadata.namespace');
  }
  for (const [k, v] of Object.entries(m.labels ?? {})) {
    const name = k.includes('/') ? k.slice(k.indexOf('/') + 1) : k;
    const prefix = k.includes('/') ? k.slice(0, k.indexOf('/')) : '';
    if ((prefix && !DNS_SUBDOMAIN.test(prefix)) || !LABEL_NAME.test(name) || name.length > 63) p(`label key ${k} is invalid`);
    if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v)) p(`label ${k} has an invalid value ${JSON.stringify(v)}`);
  }
  for (const [k, v] of Object.entries(m.annotations ?? {})) {
    if (typeof v !== 'string') p(`annotation ${k} must be a string, is ${JSON.stringify(v)}`);
  }
}

function checkCSIDriver(o: K8sObject, p: (msg: string) => void): void {
  const s = (o.spec ?? {}) as Record<string, unknown>;
  if (o.metadata.name !== DRIVER_NAME) p(`CSIDriver name must be ${DRIVER_NAME}`);
  for (const f of ['attachRequired', 'podInfoOnMount', 'storageCapacity', 'requiresRepublish', 'seLinuxMount']) {
    if (s[f] !== undefined && typeof s[f] !== 'boolean') p(`spec.${f} must be a boolean`);
  }
  const modes = s.volumeLifecycleModes;
  if (!Array.isArray(modes) || modes.some((m) => m !== 'Persistent' && m !== 'Ephemeral')) p('spec.volumeLifecycleModes must list Persistent/Ephemeral');
  if (s.fsGroupPolicy !== undefined && !['None', 'File', 'ReadWriteOnceWithFSType'].includes(String(s.fsGroupPolicy))) {
    p(`spec.fsGroupPolicy ${String(s.fsGroupPolicy)} is not a valid policy`);
  }
}

function checkStorageClass(o: K8sObject, p: (msg: string) => void): void {
  if (o.provisioner !== DRIVER_NAME) p(`provisioner must be ${DRIVER_NAME}`);
  if (!['Immediate', 'WaitForFirstConsumer'].includes(String(o.volumeBindingMode))) p(`volumeBindingMode ${String(o.volumeBindingMode)} is invalid`);
  if (!['Retain', 'Delete'].includes(String(o.reclaimPolicy))) p(`reclaimPolicy ${String(o.reclaimPolicy)} is invalid (Recycle is not for CSI)`);
  if (o.allowVolumeExpansion !== undefined && typeof o.allowVolumeExpansion !== 'boolean') p('allowVolumeExpansion must be a boolean');
  for (const [k, v] of Object.entries((o.parameters ?? {}) as Record<string, unknown>)) {
    if (typeof v !== 'string') p(`parameter ${k} must be a string, is ${JSON.stringify(v)}`);
    if (k.startsWith('csi.storage.k8s.io/')) p(`parameter ${k} is in the sidecar's reserved prefix`);
  }
}

function checkRole(o: K8sObject, p: (msg: string) => void): void {
  const rules = o.rules;
  if (!Array.isArray(rules) || rules.length === 0) return p('rules missing');
  rules.forEach((r: Record<string, unknown>, i: number) => {
    const groups = r.apiGroups;
    const resources = r.resources;
    const verbs = r.verbs;
    if (!Array.isArray(groups) || groups.some((g) => typeof g !== 'string')) p(`rule ${i}: apiGroups must be a list of strings`);
    if (!Array.isArray(resources) || resources.length === 0 || resources.some((x) => typeof x !== 'string' || x === '')) p(`rule ${i}: resources missing`);
    if (!Array.isArray(verbs) || verbs.length === 0) p(`rule ${i}: verbs missing`);
    for (const v of Array.isArray(verbs) ? verbs : []) if (!RBAC_VERBS.has(String(v))) p(`rule ${i}: verb ${String(v)} is not allowed here`);
    for (const x of [...(Array.isArray(groups) ? groups : []), ...(Array.isArray(resources) ? resources : [])]) {
      if (x === '*') p(`rule ${i}: wildcards are not least privilege`);
    }
    if (Array.isArray(resources) && resources.includes('secrets')) p(`rule ${i}: grants access to Secrets`);
  });
}

function checkBinding(o: K8sObject, objs: K8sObject[], p: (msg: string) => void): void {
  const ref = o.roleRef as { apiGroup?: string; kind?: string; name?: string } | undefined;
  if (!ref || ref.apiGroup !== 'rbac.authorization.k8s.io') return p('roleRef.apiGroup must be rbac.authorization.k8s.io');
  const wanted = o.kind === 'RoleBinding' ? ['Role', 'ClusterRole'] : ['ClusterRole'];
  if (!wanted.includes(String(ref.kind))) p(`roleRef.kind ${String(ref.kind)} is invalid for a ${o.kind}`);
  const target = objs.find(
    (x) => x.kind === ref.kind && x.metadata.name === ref.name && (ref.kind !== 'Role' || x.metadata.namespace === o.metadata.namespace),
  );
  if (!target) p(`roleRef ${String(ref.kind)}/${String(ref.name)} is not rendered by the chart`);
  const subjects = o.subjects as Array<{ kind?: string; name?: string; namespace?: string }> | undefined;
  if (!Array.isArray(subjects) || subjects.length === 0) return p('subjects missing');
  for (const s of subjects) {
    if (s.kind !== 'ServiceAccount') {
      p(`subject kind ${String(s.kind)}: only the chart's ServiceAccounts are expected`);
      continue;
    }
    const sa = objs.find((x) => x.kind === 'ServiceAccount' && x.metadata.name === s.name && x.metadata.namespace === s.namespace);
    if (!sa) p(`subject ServiceAccount ${String(s.namespace)}/${String(s.name)} is not rendered by the chart`);
  }
}

function checkContainer(c: Container, volumes: Set<string>, p: (msg: string) => void): void {
  const where = `container ${String(c.name)}`;
  if (typeof c.name !== 'string' || !DNS_LABEL.test(c.name)) p(`${where}: name must be a DNS label`);
  const img = imageProblem(c.image);
  if (img) p(`${where}: ${img}`);
  if (c.imagePullPolicy !== undefined && !['Always', 'IfNotPresent', 'Never'].includes(String(c.imagePullPolicy))) p(`${where}: imagePullPolicy invalid`);
  const env = (c.env ?? []) as Array<{ name?: unknown; value?: unknown; valueFrom?: { fieldRef?: { fieldPath?: unknown } } }>;
  const envNames = new Set<string>();
  for (const e of env) {
    if (typeof e.name !== 'string' || !C_IDENTIFIER.test(e.name)) p(`${where}: env name ${JSON.stringify(e.name)} is invalid`);
    else if (envNames.has(e.name)) p(`${where}: env ${e.name} is set twice`);
    else envNames.add(e.name);
    if ((e.value === undefined) === (e.valueFrom === undefined)) p(`${where}: env ${String(e.name)} needs exactly one of value/valueFrom`);
    if (e.value !== undefined && typeof e.value !== 'string') p(`${where}: env ${String(e.name)} value must be a string, is ${JSON.stringify(e.value)}`);
    const fp = e.valueFrom?.fieldRef?.fieldPath;
    if (e.valueFrom?.fieldRef && !FIELD_PATHS.has(String(fp))) p(`${where}: env ${String(e.name)} fieldPath ${String(fp)} is not supported`);
  }
  for (const field of ['args', 'command'] as const) {
    const list = c[field];
    if (list === undefined) continue;
    if (!Array.isArray(list) || list.some((a) => typeof a !== 'string')) {
      p(`${where}: ${field} must be a list of strings`);
      continue;
    }
    for (const a of list as string[]) {
      for (const m of a.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
        if (!envNames.has(m[1])) p(`${where}: ${field} refers to $(${m[1]}) but the container has no such env var`);
      }
    }
  }
  const portNames = new Set<string>();
  for (const port of c.ports ?? []) {
    if (!Number.isInteger(port.containerPort) || (port.containerPort as number) < 1 || (port.containerPort as number) > 65535) {
      p(`${where}: containerPort ${JSON.stringify(port.containerPort)} must be an integer 1-65535`);
    }
    if (port.protocol !== undefined && !['TCP', 'UDP', 'SCTP'].includes(String(port.protocol))) p(`${where}: protocol invalid`);
    if (port.name !== undefined) {
      const n = String(port.name);
      if (n.length > 15 || !IANA_SVC_NAME.test(n) || !/[a-z]/.test(n) || n.includes('--')) p(`${where}: port name ${n} is not an IANA service name`);
      if (portNames.has(n)) p(`${where}: port name ${n} used twice`);
      portNames.add(n);
    }
  }
  for (const probeName of ['livenessProbe', 'readinessProbe', 'startupProbe'] as const) {
    const probe = c[probeName] as { httpGet?: { port?: unknown; path?: unknown } } | undefined;
    const port = probe?.httpGet?.port;
    if (probe?.httpGet) {
      if (typeof port === 'string' && !portNames.has(port)) p(`${where}: ${probeName} uses port ${port}, which this container does not declare`);
      if (typeof port === 'number' && (!Number.isInteger(port) || port < 1 || port > 65535)) p(`${where}: ${probeName} port invalid`);
      if (typeof port !== 'string' && typeof port !== 'number') p(`${where}: ${probeName} port missing`);
    }
  }
  const sc = c.securityContext;
  const isPrivileged = sc?.privileged === true;
  if (isPrivileged && sc?.allowPrivilegeEscalation === false) p(`${where}: privileged with allowPrivilegeEscalation: false is rejected by the API server`);
  const mounts = (c.volumeMounts ?? []) as Array<{ name?: unknown; mountPath?: unknown; mountPropagation?: unknown }>;
  const paths = new Set<string>();
  for (const vm of mounts) {
    if (!volumes.has(String(vm.name))) p(`${where}: volumeMount ${String(vm.name)} refers to no declared volume`);
    if (typeof vm.mountPath !== 'string' || !vm.mountPath.startsWith('/')) p(`${where}: mountPath ${String(vm.mountPath)} must be absolute`);
    else if (paths.has(vm.mountPath)) p(`${where}: mountPath ${vm.mountPath} used twice`);
    else paths.add(vm.mountPath);
    if (vm.mountPropagation !== undefined && !['None', 'HostToContainer', 'Bidirectional'].includes(String(vm.mountPropagation))) {
      p(`${where}: mountPropagation ${String(vm.mountPropagation)} invalid`);
    }
    if (vm.mountPropagation === 'Bidirectional' && !isPrivileged) p(`${where}: Bidirectional mount propagation needs a privileged container`);
  }
  const res = c.resources as { requests?: Record<string, unknown>; limits?: Record<string, unknown> } | undefined;
  for (const [kind, list] of Object.entries({ requests: res?.requests ?? {}, limits: res?.limits ?? {} })) {
    for (const [k, v] of Object.entries(list)) {
      if ((typeof v !== 'string' && typeof v !== 'number') || !QUANTITY.test(String(v))) p(`${where}: resources.${kind}.${k} ${JSON.stringify(v)} is not a quantity`);
    }
  }
}

function checkPodSpec(spec: PodSpec, objs: K8sObject[], namespace: string, p: (msg: string) => void): void {
  if (!Array.isArray(spec.containers) || spec.containers.length === 0) return p('pod has no containers');
  const volumes = new Set<string>();
  for (const v of spec.volumes ?? []) {
    if (volumes.has(v.name)) p(`volume ${v.name} declared twice`);
    volumes.add(v.name);
    const sources = Object.keys(v).filter((k) => k !== 'name');
    if (sources.length !== 1 || !VOLUME_SOURCES.has(sources[0])) p(`volume ${v.name} must have exactly one known source, has ${sources.join(',')}`);
    const hp = v.hostPath as { path?: unknown; type?: unknown } | undefined;
    if (hp) {
      if (typeof hp.path !== 'string' || !hp.path.startsWith('/')) p(`volume ${v.name}: hostPath.path must be absolute`);
      if (hp.type !== undefined && !HOSTPATH_TYPES.has(String(hp.type))) p(`volume ${v.name}: hostPath.type ${String(hp.type)} invalid`);
    }
  }
  const names = new Set<string>();
  const podPorts = new Set<string>();
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    if (names.has(c.name)) p(`container name ${c.name} used twice`);
    names.add(c.name);
    checkContainer(c, volumes, (m) => p(m));
    for (const port of c.ports ?? []) {
      const key = `${String(port.containerPort)}/${String(port.protocol ?? 'TCP')}`;
      if (podPorts.has(key)) p(`port ${key} is declared by two containers of the pod`);
      podPorts.add(key);
    }
  }
  const sa = spec.serviceAccountName;
  if (typeof sa !== 'string' || !objs.some((o) => o.kind === 'ServiceAccount' && o.metadata.name === sa && o.metadata.namespace === namespace)) {
    p(`serviceAccountName ${String(sa)} is not a ServiceAccount the chart renders`);
  }
  for (const t of (spec.tolerations ?? []) as Array<{ operator?: unknown; effect?: unknown; key?: unknown; value?: unknown }>) {
    if (t.operator !== undefined && !['Exists', 'Equal'].includes(String(t.operator))) p(`toleration operator ${String(t.operator)} invalid`);
    if (t.effect !== undefined && !['', 'NoSchedule', 'PreferNoSchedule', 'NoExecute'].includes(String(t.effect))) p(`toleration effect ${String(t.effect)} invalid`);
    if (t.operator === 'Exists' && t.value !== undefined && t.value !== '') p('toleration with operator Exists must not have a value');
  }
  for (const [k, v] of Object.entries((spec.nodeSelector ?? {}) as Record<string, unknown>)) {
    if (typeof v !== 'string') p(`nodeSelector ${k} must be a string`);
  }
}

function checkWorkload(o: K8sObject, objs: K8sObject[], namespace: string, p: (msg: string) => void): void {
  const spec = o.spec as { selector?: { matchLabels?: Record<string, unknown> }; template?: PodTemplate; replicas?: unknown };
  const sel = spec?.selector?.matchLabels;
  const tpl = spec?.template;
  if (!tpl?.spec) return p('spec.template.spec missing');
  if (!sel || Object.keys(sel).length === 0) p('spec.selector.matchLabels missing');
  else if (!labelsMatch(sel, tpl.metadata?.labels)) p('spec.selector does not match the pod template labels');
  if (spec.replicas !== undefined && !Number.isInteger(spec.replicas)) p('spec.replicas must be an integer');
  checkPodSpec(tpl.spec, objs, namespace, p);
}

function podTemplates(objs: K8sObject[]): PodTemplate[] {
  return objs.filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet').map(podTemplateOf);
}

function checkService(o: K8sObject, objs: K8sObject[], p: (msg: string) => void): void {
  const spec = o.spec as { selector?: Record<string, unknown>; ports?: Array<{ name?: unknown; port?: unknown; targetPort?: unknown }> };
  if (!spec?.selector || Object.keys(spec.selector).length === 0) return p('Service without selector');
  const pods = podTemplates(objs).filter((t) => labelsMatch(spec.selector!, t.metadata?.labels));
  if (pods.length === 0) p('Service selects no pod the chart renders');
  if (pods.length > 1) p('Service selects pods of more than one workload');
  for (const port of spec.ports ?? []) {
    if (!Number.isInteger(port.port)) p(`Service port ${JSON.stringify(port.port)} must be an integer`);
    if (typeof port.targetPort === 'string') {
      const declared = pods.some((t) => t.spec.containers.some((c) => (c.ports ?? []).some((cp) => cp.name === port.targetPort)));
      if (!declared) p(`Service targetPort ${port.targetPort} is not a named port of the selected pods`);
    } else if (port.targetPort !== undefined && !Number.isInteger(port.targetPort)) {
      p('Service targetPort must be a name or an integer');
    }
  }
}

function checkServiceMonitor(o: K8sObject, objs: K8sObject[], p: (msg: string) => void): void {
  const spec = o.spec as { selector?: { matchLabels?: Record<string, unknown> }; endpoints?: Array<{ port?: unknown }>; namespaceSelector?: { matchNames?: unknown[] } };
  const sel = spec?.selector?.matchLabels;
  if (!sel) return p('ServiceMonitor without selector');
  const services = objs.filter((s) => s.kind === 'Service' && labelsMatch(sel, s.metadata.labels));
  if (services.length === 0) p('ServiceMonitor selects no Service');
  if (!spec.namespaceSelector?.matchNames?.includes(o.metadata.namespace)) p('ServiceMonitor does not look in its own namespace');
  for (const ep of spec.endpoints ?? []) {
    for (const s of services) {
      const ports = ((s.spec as { ports?: Array<{ name?: unknown }> }).ports ?? []).map((x) => x.name);
      if (!ports.includes(ep.port)) p(`ServiceMonitor endpoint port ${String(ep.port)} missing on Service ${s.metadata.name}`);
    }
  }
}

/** Every structural problem of a rendered set of objects; [] when all is well. */
export function validateObjects(objs: K8sObject[], namespace: string): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const o of objs) {
    const id = `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? '?'}`;
    const p = (msg: string): void => {
      problems.push(`${id}: ${msg}`);
    };
    if (typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') {
      p('apiVersion/kind missing');
      continue;
    }
    if (!KNOWN_KINDS[kindKey(o)]) {
      p(`unexpected apiVersion/kind ${kindKey(o)}`);
      continue;
    }
    if (seen.has(id)) p('rendered twice');
    seen.add(id);
    checkMetadata(o, namespace, p);
    switch (o.kind) {
      case 'CSIDriver': checkCSIDriver(o, p); break;
      case 'StorageClass': checkStorageClass(o, p); break;
      case 'ClusterRole':
      case 'Role': checkRole(o, p); break;
      case 'ClusterRoleBinding':
      case 'RoleBinding': checkBinding(o, objs, p); break;
      case 'Deployment':
      case 'DaemonSet': checkWorkload(o, objs, namespace, p); break;
      case 'Service': checkService(o, objs, p); break;
      case 'ServiceMonitor': checkServiceMonitor(o, objs, p); break;
      case 'ServiceAccount':
        if (o.automountServiceAccountToken !== undefined && typeof o.automountServiceAccountToken !== 'boolean') p('automountServiceAccountToken must be a boolean');
        break;
      default: break;
    }
  }
  return problems;
}
