// Renders charts/pg-reflinker with the real helm binary (built from helm.sh/helm/v4 by
// test/cluster/tools/build.sh): `helm template` for the objects, the client-side dry-run release
// (`helm install --dry-run=client -o json`, the same render) for NOTES.txt, which `helm template`
// does not print.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { load } from 'js-yaml';
import { componentPath } from '../cluster/components.js';

function findRepoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'charts'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find the repository root (package.json + charts/) above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

export const REPO_ROOT = findRepoRoot();
export const CHART_DIR = path.join(REPO_ROOT, 'charts', 'pg-reflinker');
export const TEST_DIR = path.join(REPO_ROOT, 'test', 'chart');

/** The shape every rendered object has at least; everything else is checked at run time. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, unknown>;
    annotations?: Record<string, unknown>;
  };
  [field: string]: unknown;
}

export interface RenderedDocument {
  /** The template it came from, as helm's `# Source:` line names it. */
  source: string;
  /** The document's text as helm printed it. */
  yaml: string;
  /** The document read by js-yaml. */
  object: K8sObject;
}

export interface RenderResult {
  chart: { name: string; version: string; appVersion?: string; apiVersion: string };
  /** What `helm template` printed. */
  manifest: string;
  documents: RenderedDocument[];
  notes: string;
  /** The manifest of the dry-run release the notes come from (the same render). */
  releaseManifest: string;
}

export interface RenderOptions {
  valueFiles?: string[];
  releaseName?: string;
  namespace?: string;
}

export type HelmOutcome = { ok: true; stdout: string; stderr: string } | { ok: false; error: string };

// Helm's own cache, config and data directories: one temporary set per test process, so the
// user's repositories and plugins never take part.
let helmHome: string | undefined;
function helmEnv(): NodeJS.ProcessEnv {
  helmHome ??= mkdtempSync(path.join(tmpdir(), 'pgr-helm-home-'));
  return {
    ...process.env,
    HELM_CACHE_HOME: path.join(helmHome, 'cache'),
    HELM_CONFIG_HOME: path.join(helmHome, 'config'),
    HELM_DATA_HOME: path.join(helmHome, 'data'),
    KUBECONFIG: path.join(helmHome, 'no-cluster.kubeconfig'),
  };
}

/** Runs the real helm with `args`; never throws on a non-zero exit. */
export function helm(args: string[]): HelmOutcome {
  const r = spawnSync(componentPath('helm'), args, { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024, env: helmEnv() });
  if (r.status !== 0) return { ok: false, error: (r.stderr || r.error?.message || `exit ${r.status}`).trim() };
  return { ok: true, stdout: r.stdout, stderr: r.stderr };
}

function releaseArgs(opts: RenderOptions): string[] {
  return [
    opts.releaseName ?? 'pg-reflinker', CHART_DIR,
    '--namespace', opts.namespace ?? 'pg-reflinker-system',
    ...(opts.valueFiles ?? []).flatMap((f) => ['-f', f]),
  ];
}

/** `helm template` with these options: its output, or helm's error message. */
export function template(opts: RenderOptions = {}): HelmOutcome {
  return helm(['template', ...releaseArgs(opts)]);
}

/** Splits helm's output on `---` lines into documents; comment-only documents are dropped. */
export function documentsOf(manifest: string): RenderedDocument[] {
  return manifest
    .split(/^---\s*$/m)
    .map((text) => text.replace(/^\n+/, ''))
    .filter((text) => text.split('\n').some((l) => l.trim() !== '' && !l.trimStart().startsWith('#')))
    .map((text) => {
      const source = /^# Source: (.+)$/m.exec(text)?.[1];
      if (!source) throw new Error(`a document without a "# Source:" line:\n${text}`);
      const yaml = text.replace(/^# Source: .+\n/m, '');
      return { source, yaml, object: load(yaml) as K8sObject };
    });
}

/** Renders the chart; throws with helm's message when helm refuses. */
export function renderOrThrow(opts: RenderOptions = {}): RenderResult {
  const rendered = template(opts);
  if (!rendered.ok) throw new Error(`helm template failed:\n${rendered.error}`);
  const release = helm(['install', ...releaseArgs(opts), '--dry-run=client', '--output', 'json']);
  if (!release.ok) throw new Error(`helm install --dry-run=client failed:\n${release.error}`);
  const r = JSON.parse(release.stdout) as { manifest: string; info: { notes?: string }; chart: { metadata: RenderResult['chart'] } };
  return {
    chart: r.chart.metadata,
    manifest: rendered.stdout,
    documents: documentsOf(rendered.stdout),
    notes: r.info.notes ?? '',
    releaseManifest: r.manifest,
  };
}

export type StrictOutcome = { ok: true; files: Record<string, string> } | { ok: false; error: string };

/**
 * Renders with helm's engine in strict mode (missingkey=error: reading a value that does not exist
 * is an error), through helm-strict-render (test/cluster/tools/helm/cmd/helm-strict-render).
 * Returns each template's rendered text by its path.
 */
export function strictRender(opts: RenderOptions = {}): StrictOutcome {
  const args = [CHART_DIR, opts.releaseName ?? 'pg-reflinker', opts.namespace ?? 'pg-reflinker-system', ...(opts.valueFiles ?? [])];
  const r = spawnSync(componentPath('helm-strict-render'), args, { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) return { ok: false, error: (r.stderr || r.error?.message || `exit ${r.status}`).trim() };
  return { ok: true, files: JSON.parse(r.stdout) as Record<string, string> };
}

/** The objects of rendered template files (NOTES.txt left out), each as JSON, sorted. */
export function objectsOfFiles(files: Record<string, string>): string[] {
  return Object.entries(files)
    .filter(([name]) => !name.endsWith('/NOTES.txt'))
    .flatMap(([, text]) => text.split(/^---\s*$/m))
    .filter((text) => text.split('\n').some((l) => l.trim() !== '' && !l.trimStart().startsWith('#')))
    .map((text) => JSON.stringify(load(text)))
    .sort();
}
