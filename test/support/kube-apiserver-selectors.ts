// Label and field selectors as the Kubernetes API server parses and applies them.

export type KubeObject = {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generateName?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    finalizers?: string[];
    ownerReferences?: Array<{ uid: string; kind?: string; name?: string }>;
    deletionTimestamp?: string;
    creationTimestamp?: string;
    generation?: number;
  };
  [key: string]: unknown;
};

export class SelectorError extends Error {}

type LabelRequirement = (labels: Record<string, string>) => boolean;

/** Splits on commas that are not inside parentheses (`a in (x,y),b`). */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts.map((p) => p.trim()).filter(Boolean);
}

const LABEL_KEY_RE = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

function requireKey(key: string): string {
  if (!LABEL_KEY_RE.test(key)) throw new SelectorError(`invalid label key "${key}"`);
  return key;
}

function parseLabelRequirement(part: string): LabelRequirement {
  let m = /^(\S+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(part);
  if (m) {
    const key = requireKey(m[1]!);
    const values = new Set(m[3]!.split(',').map((v) => v.trim()));
    return m[2] === 'in' ? (l) => key in l && values.has(l[key]!) : (l) => !(key in l) || !values.has(l[key]!);
  }
  m = /^([^!=\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(part);
  if (m) {
    const key = requireKey(m[1]!);
    const value = m[3]!;
    return m[2] === '!=' ? (l) => l[key] !== value : (l) => l[key] === value;
  }
  m = /^!\s*(\S+)$/.exec(part);
  if (m) {
    const key = requireKey(m[1]!);
    return (l) => !(key in l);
  }
  const key = requireKey(part);
  return (l) => key in l;
}

export function parseLabelSelector(text: string | null): (obj: KubeObject) => boolean {
  if (!text) return () => true;
  const requirements = splitTopLevel(text).map(parseLabelRequirement);
  return (obj) => requirements.every((r) => r(obj.metadata.labels ?? {}));
}

function fieldValue(obj: KubeObject, path: string): string {
  let value: unknown = obj;
  for (const part of path.split('.')) {
    if (value === null || typeof value !== 'object') return '';
    value = (value as Record<string, unknown>)[part];
  }
  if (value === undefined || value === null) return '';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/** Parses a field selector, refusing fields the resource does not support (like the real server: 400). */
export function parseFieldSelector(text: string | null, supported: readonly string[]): (obj: KubeObject) => boolean {
  if (!text) return () => true;
  const requirements = splitTopLevel(text).map((part) => {
    const m = /^([^!=]+?)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (!m) throw new SelectorError(`invalid field selector "${part}"`);
    const [, field, op, value] = m as unknown as [string, string, string, string];
    if (!supported.includes(field)) throw new SelectorError(`field label not supported: ${field}`);
    return (obj: KubeObject) => (op === '!=' ? fieldValue(obj, field) !== value : fieldValue(obj, field) === value);
  });
  return (obj) => requirements.every((r) => r(obj));
}
