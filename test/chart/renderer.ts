// Builds and runs test/chart/render/main.go: Helm's template engine (Go text/template + sprig +
// Helm's built-ins) re-created with Debian's Go toolchain and libraries. See main.go for what it
// implements and why Helm itself is not used.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Debian packages that provide the Go toolchain and every library the renderer imports. */
export const APT_PACKAGES = [
  'golang-go',
  'golang-github-masterminds-sprig-dev',
  'golang-github-ghodss-yaml-dev',
  'golang-github-xeipuuv-gojsonschema-dev',
] as const;

/** Where Debian installs Go library sources (GOPATH mode, no network needed). */
const GOPATH = '/usr/share/gocode';
const REQUIRED_GO_PACKAGES = [
  'github.com/Masterminds/sprig',
  'github.com/Masterminds/semver',
  'github.com/ghodss/yaml',
  'github.com/xeipuuv/gojsonschema',
];

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
const RENDERER_SOURCE = path.join(TEST_DIR, 'render', 'main.go');

export type Toolchain = { ok: true; go: string; goVersion: string } | { ok: false; reason: string };

/** Looks for Go and the Debian Go libraries; never throws. */
export function probeToolchain(): Toolchain {
  const candidates = ['go', '/usr/lib/go/bin/go'];
  let go: string | undefined;
  let goVersion = '';
  for (const c of candidates) {
    const r = spawnSync(c, ['version'], { encoding: 'utf8' });
    if (r.status === 0) {
      go = c;
      goVersion = r.stdout.trim();
      break;
    }
  }
  const missing: string[] = [];
  if (!go) missing.push('the Go toolchain (go)');
  for (const p of REQUIRED_GO_PACKAGES) {
    if (!existsSync(path.join(GOPATH, 'src', p))) missing.push(`${GOPATH}/src/${p}`);
  }
  if (!existsSync(RENDERER_SOURCE)) missing.push(RENDERER_SOURCE);
  if (missing.length > 0 || !go) {
    return {
      ok: false,
      reason:
        `chart tests need ${missing.join(', ')}; install them with\n` +
        `  apt-get install -y --no-install-recommends ${APT_PACKAGES.join(' ')}`,
    };
  }
  return { ok: true, go, goVersion };
}

/**
 * Builds the renderer once per source/toolchain version into the system temp directory and
 * returns the binary's path. Offline: GOPATH mode against Debian's sources, GOPROXY=off.
 */
export function buildRenderer(tc: { go: string; goVersion: string }): string {
  const source = readFileSync(RENDERER_SOURCE);
  const key = createHash('sha256').update(source).update(tc.goVersion).digest('hex').slice(0, 16);
  const root = path.join(tmpdir(), 'pg-reflinker-chart-render');
  const bin = path.join(root, key, 'render');
  if (existsSync(bin)) return bin;
  mkdirSync(path.dirname(bin), { recursive: true });
  const partial = `${bin}.${process.pid}.tmp`;
  const r = spawnSync(tc.go, ['build', '-o', partial, RENDERER_SOURCE], {
    cwd: path.dirname(RENDERER_SOURCE),
    encoding: 'utf8',
    timeout: 5 * 60_000,
    env: {
      ...process.env,
      GO111MODULE: 'off',
      GOPATH,
      GOPROXY: 'off',
      GOFLAGS: '',
      GOTOOLCHAIN: 'local',
      CGO_ENABLED: '0',
      GOCACHE: path.join(root, 'gocache'),
    },
  });
  if (r.status !== 0) {
    rmSync(partial, { force: true });
    throw new Error(`building the chart renderer failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stderr}`);
  }
  renameSync(partial, bin);
  return bin;
}

export interface RenderedDocument {
  source: string;
  index: number;
  yaml: string;
  object: K8sObject;
}

export interface RenderResult {
  chart: { name: string; version: string; appVersion?: string; apiVersion: string };
  values: Record<string, unknown>;
  documents: RenderedDocument[];
  notes: string;
}

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

export interface RenderOptions {
  chartDir?: string;
  valueFiles?: string[];
  releaseName?: string;
  namespace?: string;
  /** missingkey=error: a template that reads an undefined value fails. */
  strict?: boolean;
}

export type RenderOutcome = { ok: true; result: RenderResult } | { ok: false; error: string };

export function render(bin: string, opts: RenderOptions = {}): RenderOutcome {
  const args = ['--chart', opts.chartDir ?? CHART_DIR];
  for (const f of opts.valueFiles ?? []) args.push('-f', f);
  args.push('--release-name', opts.releaseName ?? 'pg-reflinker');
  args.push('--namespace', opts.namespace ?? 'pg-reflinker-system');
  if (opts.strict ?? true) args.push('--strict');
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) return { ok: false, error: (r.stderr || r.error?.message || `exit ${r.status}`).trim() };
  return { ok: true, result: JSON.parse(r.stdout) as RenderResult };
}

/** Renders and throws with the renderer's message on failure. */
export function renderOrThrow(bin: string, opts: RenderOptions = {}): RenderResult {
  const out = render(bin, opts);
  if (!out.ok) throw new Error(`chart rendering failed:\n${out.error}`);
  return out.result;
}
