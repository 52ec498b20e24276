// Where the real components built by test/cluster/tools/build.sh are: its manifest in the tools
// cache (PGR_TOOLS_CACHE, default ~/.cache/pg-reflinker/tools), or one env var per component
// (PGR_KUBE_APISERVER=/path/to/kube-apiserver, ...) that overrides it.
import { accessSync, constants, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Requirement } from '../support/requirements.js';

export type Component =
  | 'etcd'
  | 'kube-apiserver'
  | 'kube-controller-manager'
  | 'csi-provisioner'
  | 'csi-snapshotter'
  | 'snapshot-controller'
  | 'csi-sanity'
  | 'helm'
  | 'helm-strict-render'
  | 'snapshot-crds';

export interface Built {
  version: string;
  path: string;
}

export function toolsCache(): string {
  return process.env.PGR_TOOLS_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'pg-reflinker', 'tools');
}

function manifest(): Partial<Record<Component, Built>> {
  try {
    return JSON.parse(readFileSync(join(toolsCache(), 'manifest.json'), 'utf8'));
  } catch {
    return {};
  }
}

/** The built component, or undefined when build.sh has not built it on this machine. */
export function component(name: Component): Built | undefined {
  const override = process.env[`PGR_${name.toUpperCase().replace(/-/g, '_')}`];
  const found = override ? { version: 'from env', path: override } : manifest()[name];
  if (!found) return undefined;
  try {
    accessSync(found.path, name === 'snapshot-crds' ? constants.R_OK : constants.X_OK);
    return found;
  } catch {
    return undefined;
  }
}

export function componentPath(name: Component): string {
  const found = component(name);
  if (!found) throw new Error(`${name} is not built: run test/cluster/tools/build.sh`);
  return found.path;
}

export const components = (...names: Component[]): Requirement => ({
  name: `${names.join(', ')} (built by test/cluster/tools/build.sh)`,
  missing: () => names.some((n) => component(n) === undefined),
});

export const CONTROL_PLANE = components('etcd', 'kube-apiserver', 'kube-controller-manager');
