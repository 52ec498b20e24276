import { parseArgs } from 'node:util';
import { LOG_LEVELS, type LogLevel } from './log.js';
import { nodeNameProblem } from './volume/id.js';

export const ROLES = ['controller', 'node', 'standalone', 'cleanup'] as const;
export type Role = (typeof ROLES)[number];

export interface Config {
  role: Role;
  /** Filesystem path of the unix socket. */
  socketPath: string;
  nodeId: string;
  root: string;
  logLevel: LogLevel;
  /** `host:port` or `:port` for /metrics, /healthz, /readyz; empty = off. */
  metricsAddress: string;
  namespacePath: string[];
  driverNamespace: string;
  driverImage: string;
  jobServiceAccount: string;
  /** cleanup role: the volume to remove. */
  volumeId: string;
}

export class ConfigError extends Error {}

interface Option {
  flag: string;
  env?: string;
  roles: readonly Role[];
  default?: string;
  help: string;
}

const ALL = ROLES;
export const OPTIONS: Record<string, Option> = {
  endpoint: { flag: 'endpoint', env: 'CSI_ENDPOINT', roles: ['controller', 'node', 'standalone'], default: 'unix:///csi/csi.sock', help: 'CSI endpoint, unix:///path/to/csi.sock' },
  nodeId: { flag: 'node-id', env: 'NODE_NAME', roles: ['node', 'standalone'], help: 'this node\'s Kubernetes name (node id and topology value)' },
  root: { flag: 'root', env: 'HOSTPATH_PREFIX', roles: ['controller', 'node', 'standalone', 'cleanup'], default: '/var/lib/pg-reflinker', help: 'directory on the reflink filesystem that holds the volumes' },
  logLevel: { flag: 'log-level', env: 'LOG_LEVEL', roles: ALL, default: 'info', help: `log level: ${LOG_LEVELS.join(', ')}` },
  metricsAddress: { flag: 'metrics-address', env: 'METRICS_ADDRESS', roles: ['controller', 'node', 'standalone'], default: '', help: 'serve /metrics, /healthz, /readyz on [host]:port (off when empty)' },
  namespacePath: { flag: 'namespace-path', env: 'NAMESPACE_PATH', roles: ['controller'], default: '', help: 'comma list of namespaces searched for cross-namespace clone sources' },
  driverNamespace: { flag: 'driver-namespace', env: 'POD_NAMESPACE', roles: ['controller'], help: 'namespace of the driver (cleanup Jobs run there)' },
  driverImage: { flag: 'driver-image', env: 'DRIVER_IMAGE', roles: ['controller'], help: 'image for node-side cleanup and plain-copy Jobs (the driver image)' },
  jobServiceAccount: { flag: 'job-service-account', env: 'JOB_SERVICE_ACCOUNT', roles: ['controller'], default: 'default', help: 'service account of Job pods (needs no API rights)' },
  volumeId: { flag: 'volume-id', roles: ['cleanup'], help: 'volume to remove from this node' },
};

const ENDPOINT_RE = /^unix:\/\/(\/[^\0]+)$/;

export function socketPathOf(endpoint: string): string {
  const match = ENDPOINT_RE.exec(endpoint) ?? (endpoint.startsWith('/') ? [endpoint, endpoint] : undefined);
  if (!match) throw new ConfigError(`endpoint "${endpoint}" must be unix:///absolute/path`);
  return match[1]!;
}

export function usage(role?: Role): string {
  const lines = [`usage: pg-reflinker ${role ?? `<${ROLES.join('|')}>`} [options]`, ''];
  for (const opt of Object.values(OPTIONS)) {
    if (role && !opt.roles.includes(role)) continue;
    const env = opt.env ? ` (env ${opt.env})` : '';
    const def = opt.default ? ` [default: ${opt.default}]` : '';
    lines.push(`  --${opt.flag.padEnd(20)} ${opt.help}${env}${def}`);
  }
  return lines.join('\n');
}

/** Flags win over environment variables, which win over defaults; bad or missing values throw ConfigError. */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv): Config | 'help' {
  const [roleArg, ...rest] = argv;
  if (!roleArg || roleArg === '--help' || roleArg === '-h') return 'help';
  if (!(ROLES as readonly string[]).includes(roleArg)) throw new ConfigError(`unknown role "${roleArg}"; expected one of ${ROLES.join(', ')}`);
  const role = roleArg as Role;
  const options = Object.fromEntries(Object.values(OPTIONS).map((o) => [o.flag, { type: 'string' as const }]));
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  if (parsed.values.help) return 'help';
  const value = (key: keyof typeof OPTIONS): string => {
    const opt = OPTIONS[key]!;
    const given = (parsed.values as Record<string, string | boolean | undefined>)[opt.flag];
    if (typeof given === 'string') {
      if (!opt.roles.includes(role)) throw new ConfigError(`--${opt.flag} does not apply to the ${role} role`);
      return given;
    }
    const fromEnv = opt.env ? env[opt.env] : undefined;
    return fromEnv ?? opt.default ?? '';
  };
  const need = (key: keyof typeof OPTIONS): string => {
    const v = value(key);
    const opt = OPTIONS[key]!;
    if (!v) throw new ConfigError(`--${opt.flag}${opt.env ? ` (or ${opt.env})` : ''} is required for the ${role} role`);
    return v;
  };
  const uses = (key: keyof typeof OPTIONS) => OPTIONS[key]!.roles.includes(role);

  const logLevel = value('logLevel');
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) throw new ConfigError(`log level "${logLevel}" is not one of ${LOG_LEVELS.join(', ')}`);
  const root = need('root');
  if (!root.startsWith('/')) throw new ConfigError(`root "${root}" must be an absolute path`);
  const nodeId = uses('nodeId') ? need('nodeId') : '';
  if (nodeId) {
    const problem = nodeNameProblem(nodeId);
    if (problem) throw new ConfigError(`invalid --node-id: ${problem}`);
  }
  const metricsAddress = uses('metricsAddress') ? value('metricsAddress') : '';
  if (metricsAddress && !/^[^:]*:\d{1,5}$/.test(metricsAddress)) throw new ConfigError(`metrics address "${metricsAddress}" must be [host]:port`);
  // value() refuses the flag in other roles; the environment variable only counts where it applies.
  const namespacePathValue = value('namespacePath');
  const namespacePath = (uses('namespacePath') ? namespacePathValue : '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const ns of namespacePath) {
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(ns)) throw new ConfigError(`namespace-path entry "${ns}" is not a valid namespace name`);
  }
  return {
    role,
    socketPath: uses('endpoint') ? socketPathOf(need('endpoint')) : '',
    nodeId,
    root,
    logLevel: logLevel as LogLevel,
    metricsAddress,
    namespacePath,
    driverNamespace: role === 'controller' ? need('driverNamespace') : '',
    driverImage: role === 'controller' ? need('driverImage') : '',
    jobServiceAccount: value('jobServiceAccount'),
    volumeId: role === 'cleanup' ? need('volumeId') : '',
  };
}
