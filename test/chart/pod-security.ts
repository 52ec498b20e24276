// The Kubernetes Pod Security Standards ("baseline" and "restricted", latest version) as a
// checker over a pod spec: one function per control, each returning its violations, so a
// failing test names the rule it broke.

export interface SecurityContext {
  privileged?: unknown;
  allowPrivilegeEscalation?: unknown;
  runAsNonRoot?: unknown;
  runAsUser?: unknown;
  runAsGroup?: unknown;
  readOnlyRootFilesystem?: unknown;
  procMount?: unknown;
  capabilities?: { add?: unknown[]; drop?: unknown[] };
  seccompProfile?: { type?: unknown };
  appArmorProfile?: { type?: unknown };
  seLinuxOptions?: { type?: unknown; user?: unknown; role?: unknown };
  windowsOptions?: { hostProcess?: unknown };
  sysctls?: Array<{ name?: unknown }>;
}

export interface Container {
  name: string;
  image?: unknown;
  securityContext?: SecurityContext;
  ports?: Array<{ hostPort?: unknown; containerPort?: unknown; name?: unknown; protocol?: unknown }>;
  [field: string]: unknown;
}

export interface PodSpec {
  hostNetwork?: unknown;
  hostPID?: unknown;
  hostIPC?: unknown;
  securityContext?: SecurityContext;
  containers: Container[];
  initContainers?: Container[];
  ephemeralContainers?: Container[];
  volumes?: Array<Record<string, unknown> & { name: string }>;
  [field: string]: unknown;
}

export interface PodTemplate {
  metadata?: { labels?: Record<string, unknown>; annotations?: Record<string, unknown> };
  spec: PodSpec;
}

function allContainers(spec: PodSpec): Container[] {
  return [...(spec.initContainers ?? []), ...spec.containers, ...(spec.ephemeralContainers ?? [])];
}

type Control = (tpl: PodTemplate) => string[];

// ---- baseline ----
const hostProcess: Control = ({ spec }) =>
  [spec.securityContext, ...allContainers(spec).map((c) => c.securityContext)]
    .filter((sc) => sc?.windowsOptions?.hostProcess === true)
    .map(() => 'HostProcess: windowsOptions.hostProcess must not be true');

const hostNamespaces: Control = ({ spec }) =>
  (['hostNetwork', 'hostPID', 'hostIPC'] as const)
    .filter((f) => spec[f] === true)
    .map((f) => `Host Namespaces: ${f} must not be true`);

const privileged: Control = ({ spec }) =>
  allContainers(spec)
    .filter((c) => c.securityContext?.privileged === true)
    .map((c) => `Privileged Containers: ${c.name} is privileged`);

const BASELINE_CAPS = new Set([
  'AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE',
  'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT',
]);
const baselineCapabilities: Control = ({ spec }) =>
  allContainers(spec).flatMap((c) =>
    (c.securityContext?.capabilities?.add ?? [])
      .filter((cap) => !BASELINE_CAPS.has(String(cap)))
      .map((cap) => `Capabilities: ${c.name} adds ${String(cap)}`),
  );

const hostPathVolumes: Control = ({ spec }) =>
  (spec.volumes ?? []).filter((v) => v.hostPath !== undefined).map((v) => `HostPath Volumes: ${v.name}`);

const hostPorts: Control = ({ spec }) =>
  allContainers(spec).flatMap((c) =>
    (c.ports ?? []).filter((p) => p.hostPort !== undefined && p.hostPort !== 0).map(() => `Host Ports: ${c.name} uses a hostPort`),
  );

const appArmor: Control = ({ spec, metadata }) => {
  const out: string[] = [];
  for (const [k, v] of Object.entries(metadata?.annotations ?? {})) {
    if (k.startsWith('container.apparmor.security.beta.kubernetes.io/') && v !== 'runtime/default' && !String(v).startsWith('localhost/')) {
      out.push(`AppArmor: annotation ${k}=${String(v)}`);
    }
  }
  for (const sc of [spec.securityContext, ...allContainers(spec).map((c) => c.securityContext)]) {
    const t = sc?.appArmorProfile?.type;
    if (t !== undefined && t !== 'RuntimeDefault' && t !== 'Localhost') out.push(`AppArmor: profile ${String(t)}`);
  }
  return out;
};

const SELINUX_TYPES = new Set(['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t']);
const seLinux: Control = ({ spec }) =>
  [spec.securityContext, ...allContainers(spec).map((c) => c.securityContext)].flatMap((sc) => {
    const o = sc?.seLinuxOptions;
    if (!o) return [];
    const out: string[] = [];
    if (o.type !== undefined && !SELINUX_TYPES.has(String(o.type))) out.push(`SELinux: type ${String(o.type)}`);
    if (o.user !== undefined && o.user !== '') out.push('SELinux: user must not be set');
    if (o.role !== undefined && o.role !== '') out.push('SELinux: role must not be set');
    return out;
  });

const procMount: Control = ({ spec }) =>
  allContainers(spec)
    .filter((c) => c.securityContext?.procMount !== undefined && c.securityContext.procMount !== 'Default')
    .map((c) => `/proc Mount Type: ${c.name}`);

const seccompNotUnconfined: Control = ({ spec }) =>
  [spec.securityContext, ...allContainers(spec).map((c) => c.securityContext)]
    .filter((sc) => sc?.seccompProfile?.type === 'Unconfined')
    .map(() => 'Seccomp: Unconfined is not allowed');

const SAFE_SYSCTLS = new Set([
  'kernel.shm_rmid_forced', 'net.ipv4.ip_local_port_range', 'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies', 'net.ipv4.ping_group_range', 'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time', 'net.ipv4.tcp_fin_timeout', 'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
]);
const sysctls: Control = ({ spec }) =>
  (spec.securityContext?.sysctls ?? [])
    .filter((s) => !SAFE_SYSCTLS.has(String(s.name)))
    .map((s) => `Sysctls: ${String(s.name)} is not in the safe set`);

// ---- restricted ----
const RESTRICTED_VOLUME_SOURCES = new Set([
  'configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret',
]);
const volumeTypes: Control = ({ spec }) =>
  (spec.volumes ?? []).flatMap((v) =>
    Object.keys(v)
      .filter((k) => k !== 'name' && !RESTRICTED_VOLUME_SOURCES.has(k))
      .map((k) => `Volume Types: ${v.name} uses ${k}`),
  );

const privilegeEscalation: Control = ({ spec }) =>
  allContainers(spec)
    .filter((c) => c.securityContext?.allowPrivilegeEscalation !== false)
    .map((c) => `Privilege Escalation: ${c.name} must set allowPrivilegeEscalation: false`);

const runningAsNonRoot: Control = ({ spec }) => {
  const podSays = spec.securityContext?.runAsNonRoot;
  const out: string[] = [];
  if (podSays === false) out.push('Running as Non-root: pod sets runAsNonRoot: false');
  for (const c of allContainers(spec)) {
    const own = c.securityContext?.runAsNonRoot;
    if (own === false) out.push(`Running as Non-root: ${c.name} sets runAsNonRoot: false`);
    else if (own !== true && podSays !== true) out.push(`Running as Non-root: ${c.name} does not set runAsNonRoot: true`);
  }
  return out;
};

const runningAsNonRootUser: Control = ({ spec }) =>
  [
    { who: 'pod', sc: spec.securityContext },
    ...allContainers(spec).map((c) => ({ who: c.name, sc: c.securityContext })),
  ]
    .filter(({ sc }) => sc?.runAsUser === 0)
    .map(({ who }) => `Running as Non-root user: ${who} sets runAsUser: 0`);

const seccompRequired: Control = ({ spec }) => {
  const ok = (t: unknown): boolean => t === 'RuntimeDefault' || t === 'Localhost';
  const podType = spec.securityContext?.seccompProfile?.type;
  const out: string[] = [];
  if (podType !== undefined && !ok(podType)) out.push(`Seccomp (restricted): pod profile ${String(podType)}`);
  for (const c of allContainers(spec)) {
    const t = c.securityContext?.seccompProfile?.type;
    if (t !== undefined ? !ok(t) : !ok(podType)) out.push(`Seccomp (restricted): ${c.name} has no RuntimeDefault/Localhost profile`);
  }
  return out;
};

const capabilitiesRestricted: Control = ({ spec }) =>
  allContainers(spec).flatMap((c) => {
    const caps = c.securityContext?.capabilities;
    const out: string[] = [];
    if (!(caps?.drop ?? []).includes('ALL')) out.push(`Capabilities (restricted): ${c.name} must drop ALL`);
    for (const a of caps?.add ?? []) {
      if (a !== 'NET_BIND_SERVICE') out.push(`Capabilities (restricted): ${c.name} adds ${String(a)}`);
    }
    return out;
  });

export const BASELINE_CONTROLS: Record<string, Control> = {
  hostProcess, hostNamespaces, privileged, baselineCapabilities, hostPathVolumes, hostPorts, appArmor,
  seLinux, procMount, seccompNotUnconfined, sysctls,
};

export const RESTRICTED_CONTROLS: Record<string, Control> = {
  ...BASELINE_CONTROLS,
  volumeTypes, privilegeEscalation, runningAsNonRoot, runningAsNonRootUser, seccompRequired, capabilitiesRestricted,
};

/** Every violation of the restricted profile, keyed by control. Empty object: compliant. */
export function restrictedViolations(tpl: PodTemplate): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [name, control] of Object.entries(RESTRICTED_CONTROLS)) {
    const v = control(tpl);
    if (v.length > 0) out[name] = v;
  }
  return out;
}

/**
 * A copy of `tpl` that breaks every control a pod of ours could: host network, a hostPath
 * volume, a privileged root container that escalates, adds SYS_ADMIN and opens a hostPort, and
 * a second container with an Unconfined seccomp profile and runAsNonRoot: false.
 */
export function breakEveryControl(tpl: PodTemplate): PodTemplate {
  const broken = JSON.parse(JSON.stringify(tpl)) as PodTemplate;
  broken.spec.hostNetwork = true;
  broken.spec.volumes = [...(broken.spec.volumes ?? []), { name: 'host', hostPath: { path: '/' } }];
  const c0 = broken.spec.containers[0];
  c0.securityContext = { ...c0.securityContext, privileged: true, allowPrivilegeEscalation: true, runAsUser: 0, capabilities: { add: ['SYS_ADMIN'] } };
  c0.ports = [{ containerPort: 80, hostPort: 80 }];
  const c1 = broken.spec.containers[1];
  c1.securityContext = { ...c1.securityContext, seccompProfile: { type: 'Unconfined' }, runAsNonRoot: false };
  return broken;
}
