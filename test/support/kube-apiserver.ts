import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { PatchError, jsonPatch, mergePatch } from './kube-apiserver-patch.js';
import { SelectorError, parseFieldSelector, parseLabelSelector, type KubeObject } from './kube-apiserver-selectors.js';

export type { KubeObject } from './kube-apiserver-selectors.js';

// An API-server double that speaks real HTTP/JSON on 127.0.0.1, so @kubernetes/client-node runs
// as it does against a cluster (pods, PVCs, PVs, nodes, namespaces, events, ConfigMaps, Jobs,
// CloudNativePG Clusters, StorageClasses): get, list (label and field selectors, limit/continue), create
// (generateName, 409), replace, patch (merge, strategic-as-merge, JSON patch), delete
// (preconditions, finalizers, owner-reference garbage collection), watch (resourceVersion,
// replay, 410 Gone), and Status objects shaped like Kubernetes'. Tests seed and mutate the
// in-memory store directly (and play the kubelet and the Job controller that way).

interface ResourceType {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  /** Field selectors the real API server accepts for this resource. */
  fields: readonly string[];
}

const META_FIELDS = ['metadata.name', 'metadata.namespace'];

export const RESOURCES: readonly ResourceType[] = [
  {
    group: '',
    version: 'v1',
    plural: 'pods',
    kind: 'Pod',
    namespaced: true,
    fields: [
      ...META_FIELDS,
      'spec.nodeName',
      'spec.restartPolicy',
      'spec.schedulerName',
      'spec.serviceAccountName',
      'spec.hostNetwork',
      'status.phase',
      'status.podIP',
      'status.nominatedNodeName',
    ],
  },
  { group: '', version: 'v1', plural: 'persistentvolumeclaims', kind: 'PersistentVolumeClaim', namespaced: true, fields: META_FIELDS },
  { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true, fields: META_FIELDS },
  { group: '', version: 'v1', plural: 'persistentvolumes', kind: 'PersistentVolume', namespaced: false, fields: ['metadata.name'] },
  { group: '', version: 'v1', plural: 'nodes', kind: 'Node', namespaced: false, fields: ['metadata.name', 'spec.unschedulable'] },
  { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false, fields: ['metadata.name', 'status.phase'] },
  {
    group: '',
    version: 'v1',
    plural: 'events',
    kind: 'Event',
    namespaced: true,
    fields: [
      ...META_FIELDS,
      'involvedObject.kind',
      'involvedObject.namespace',
      'involvedObject.name',
      'involvedObject.uid',
      'involvedObject.apiVersion',
      'involvedObject.resourceVersion',
      'involvedObject.fieldPath',
      'reason',
      'reportingComponent',
      'source',
      'type',
    ],
  },
  { group: 'batch', version: 'v1', plural: 'jobs', kind: 'Job', namespaced: true, fields: [...META_FIELDS, 'status.successful'] },
  { group: 'postgresql.cnpg.io', version: 'v1', plural: 'clusters', kind: 'Cluster', namespaced: true, fields: META_FIELDS },
  { group: 'storage.k8s.io', version: 'v1', plural: 'storageclasses', kind: 'StorageClass', namespaced: false, fields: ['metadata.name'] },
];

/** `plural` for the core group, `plural.group` otherwise (as kubectl names them): `pods`, `jobs.batch`. */
export type ResourceName = string;
const resourceName = (r: ResourceType): ResourceName => (r.group ? `${r.plural}.${r.group}` : r.plural);
const BY_NAME = new Map(RESOURCES.map((r) => [resourceName(r), r]));

function resourceOf(name: ResourceName): ResourceType {
  const r = BY_NAME.get(name);
  if (!r) throw new Error(`the API-server double does not serve ${name}`);
  return r;
}

const keyOf = (ns: string | undefined, name: string) => `${ns ?? ''}/${name}`;
const apiVersionOf = (r: ResourceType) => (r.group ? `${r.group}/${r.version}` : r.version);

interface WatchEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  resource: ResourceName;
  object: KubeObject;
}

interface Watcher {
  resource: ResourceName;
  namespace?: string;
  matches: (obj: KubeObject) => boolean;
  res: ServerResponse;
}

export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType?: string;
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

const HISTORY_LIMIT = 5000;

export class FakeKubeApiServer {
  private readonly server: Server;
  private readonly store = new Map<ResourceName, Map<string, KubeObject>>();
  private readonly history: WatchEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private rv = 1000;
  private port = 0;
  /** Every request served, in order (tests assert on what the client did). */
  readonly requests: RequestRecord[] = [];
  /** Return an ApiError to fail a request before it is served (fault injection). */
  intercept?: (req: RequestRecord) => ApiError | undefined;
  /** Creating in a namespace that does not exist fails with 404, as on a real server. */
  strictNamespaces = true;

  constructor() {
    for (const r of RESOURCES) this.store.set(resourceName(r), new Map());
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A KubeConfig that points @kubernetes/client-node at this server. */
  kubeConfig(): KubeConfig {
    const config = new KubeConfig();
    config.loadFromOptions({
      clusters: [{ name: 'double', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'tester', token: 'test-token' }],
      contexts: [{ name: 'double', cluster: 'double', user: 'tester' }],
      currentContext: 'double',
    });
    return config;
  }

  /** Closes every open watch (as an API server restart or a load balancer timeout would). */
  dropWatches(): void {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
  }

  get resourceVersion(): number {
    return this.rv;
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  // ---- store access for tests ----

  get<T extends KubeObject = KubeObject>(resource: ResourceName, namespace: string | undefined, name: string): T | undefined {
    const obj = this.items(resource).get(keyOf(this.nsFor(resource, namespace), name));
    return obj ? (structuredClone(obj) as T) : undefined;
  }

  list<T extends KubeObject = KubeObject>(resource: ResourceName, namespace?: string, labelSelector?: string): T[] {
    const matches = parseLabelSelector(labelSelector ?? null);
    return [...this.items(resource).values()]
      .filter((o) => (namespace === undefined || o.metadata.namespace === namespace) && matches(o))
      .map((o) => structuredClone(o) as T);
  }

  /** Creates an object as a POST would (uid, resourceVersion, defaults); throws ApiError on conflict. */
  create<T extends KubeObject = KubeObject>(resource: ResourceName, obj: Omit<KubeObject, 'metadata'> & { metadata: Partial<KubeObject['metadata']> }): T {
    const r = resourceOf(resource);
    return structuredClone(this.doCreate(r, r.namespaced ? (obj.metadata.namespace ?? 'default') : undefined, obj as KubeObject)) as T;
  }

  /** Applies a merge patch to an object (spec, status, metadata alike), emitting MODIFIED. */
  patch<T extends KubeObject = KubeObject>(resource: ResourceName, namespace: string | undefined, name: string, patch: object): T {
    const r = resourceOf(resource);
    return structuredClone(this.doPatch(r, this.nsFor(resource, namespace), name, (o) => mergePatch(o, patch) as KubeObject)) as T;
  }

  /** Deletes as the API would (finalizers honoured, dependents collected unless orphaned). */
  delete(resource: ResourceName, namespace: string | undefined, name: string, propagationPolicy = 'Background'): void {
    this.doDelete(resourceOf(resource), this.nsFor(resource, namespace), name, { propagationPolicy });
  }

  private items(resource: ResourceName): Map<string, KubeObject> {
    return this.store.get(resourceName(resourceOf(resource)))!;
  }

  private nsFor(resource: ResourceName, namespace: string | undefined): string | undefined {
    return resourceOf(resource).namespaced ? namespace : undefined;
  }

  // ---- HTTP ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const query = Object.fromEntries(url.searchParams.entries());
    const record: RequestRecord = { method: req.method ?? 'GET', path: url.pathname, query, contentType: req.headers['content-type'] };
    this.requests.push(record);
    try {
      const injected = this.intercept?.(record);
      if (injected) throw injected;
      const body = await readBody(req);
      if (url.pathname === '/version') {
        return send(res, 200, { major: '1', minor: '33', gitVersion: 'v1.33.0-double', platform: 'linux/amd64' });
      }
      const route = parsePath(url.pathname);
      if (!route) throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${url.pathname})`);
      const { r, namespace, name, subresource } = route;
      const method = record.method;
      if (method === 'GET' && !name) {
        if (query.watch === 'true' || query.watch === '1') return this.watch(r, namespace, url.searchParams, res);
        return send(res, 200, this.doList(r, namespace, url.searchParams));
      }
      if (!name) {
        if (method === 'POST') {
          if (r.namespaced && !namespace) throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
          const obj = parseJson(body) as KubeObject;
          return send(res, 201, this.doCreate(r, namespace, obj));
        }
        throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
      }
      if (subresource && subresource !== 'status') throw new ApiError(404, 'NotFound', `subresource ${subresource} is not served`);
      switch (method) {
        case 'GET':
          return send(res, 200, this.mustGet(r, namespace, name));
        case 'PUT': {
          const obj = parseJson(body) as KubeObject;
          return send(res, 200, this.doReplace(r, namespace, name, obj));
        }
        case 'PATCH':
          return send(res, 200, this.doPatch(r, namespace, name, (o) => applyPatch(o, body, record.contentType ?? '')));
        case 'DELETE': {
          const opts = body ? (parseJson(body) as DeleteOptions) : {};
          if (query.propagationPolicy) opts.propagationPolicy = query.propagationPolicy;
          return send(res, 200, this.doDelete(r, namespace, name, opts));
        }
        default:
          throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
      }
    } catch (err) {
      const e =
        err instanceof ApiError
          ? err
          : err instanceof SelectorError || err instanceof PatchError
            ? new ApiError(400, 'BadRequest', err.message)
            : new ApiError(500, 'InternalError', (err as Error).message);
      if (!res.headersSent) send(res, e.code, statusObject(e));
      else res.end();
    }
  }

  private mustGet(r: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const obj = this.store.get(resourceName(r))!.get(keyOf(namespace, name));
    if (!obj) throw notFound(r, name);
    return obj;
  }

  private bump(): string {
    this.rv += 1;
    return String(this.rv);
  }

  private emit(r: ResourceType, type: WatchEvent['type'], object: KubeObject): void {
    const event: WatchEvent = { rv: this.rv, type, resource: resourceName(r), object: structuredClone(object) };
    this.history.push(event);
    if (this.history.length > HISTORY_LIMIT) this.history.shift();
    for (const w of this.watchers) {
      if (w.resource !== event.resource) continue;
      if (w.namespace !== undefined && object.metadata.namespace !== w.namespace) continue;
      if (!w.matches(object)) continue;
      w.res.write(`${JSON.stringify({ type, object })}\n`);
    }
  }

  private doList(r: ResourceType, namespace: string | undefined, params: URLSearchParams): object {
    const labels = parseLabelSelector(params.get('labelSelector'));
    const fields = parseFieldSelector(params.get('fieldSelector'), r.fields);
    const items = [...this.store.get(resourceName(r))!.values()]
      .filter((o) => (namespace === undefined || o.metadata.namespace === namespace) && labels(o) && fields(o))
      .sort((a, b) => keyOf(a.metadata.namespace, a.metadata.name).localeCompare(keyOf(b.metadata.namespace, b.metadata.name)));
    const offset = params.get('continue') ? Number(Buffer.from(params.get('continue')!, 'base64url').toString()) : 0;
    const limit = Number(params.get('limit') ?? 0);
    const page = limit > 0 ? items.slice(offset, offset + limit) : items.slice(offset);
    const next = limit > 0 && offset + limit < items.length ? Buffer.from(String(offset + limit)).toString('base64url') : undefined;
    return {
      kind: `${r.kind}List`,
      apiVersion: apiVersionOf(r),
      metadata: { resourceVersion: String(this.rv), ...(next ? { continue: next } : {}) },
      items: page,
    };
  }

  private doCreate(r: ResourceType, namespace: string | undefined, input: KubeObject): KubeObject {
    const obj = structuredClone(input);
    obj.metadata ??= { name: '' };
    if (!obj.metadata.name && obj.metadata.generateName) obj.metadata.name = `${obj.metadata.generateName}${randomSuffix()}`;
    const name = obj.metadata.name;
    if (!name) throw new ApiError(422, 'Invalid', `${r.kind} "" is invalid: metadata.name: Required value: name or generateName is required`);
    validateName(r, name);
    if (r.namespaced) {
      if (obj.metadata.namespace && obj.metadata.namespace !== namespace) {
        throw new ApiError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
      }
      if (this.strictNamespaces && !this.store.get('namespaces')!.has(keyOf(undefined, namespace!))) {
        throw new ApiError(404, 'NotFound', `namespaces "${namespace}" not found`, { name: namespace, kind: 'namespaces' });
      }
      obj.metadata.namespace = namespace;
    } else {
      delete obj.metadata.namespace;
    }
    const items = this.store.get(resourceName(r))!;
    if (items.has(keyOf(namespace, name))) {
      throw new ApiError(409, 'AlreadyExists', `${qualified(r)} "${name}" already exists`, { name, group: r.group, kind: r.plural });
    }
    obj.apiVersion = apiVersionOf(r);
    obj.kind = r.kind;
    obj.metadata.uid = randomUUID();
    obj.metadata.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    obj.metadata.generation = 1;
    applyDefaults(r, obj);
    obj.metadata.resourceVersion = this.bump();
    items.set(keyOf(namespace, name), obj);
    this.emit(r, 'ADDED', obj);
    return obj;
  }

  private doReplace(r: ResourceType, namespace: string | undefined, name: string, input: KubeObject): KubeObject {
    const current = this.mustGet(r, namespace, name);
    const rv = input.metadata?.resourceVersion;
    if (rv && rv !== current.metadata.resourceVersion) throw conflict(r, name);
    return this.store_(r, namespace, name, {
      ...input,
      metadata: { ...input.metadata, uid: current.metadata.uid, creationTimestamp: current.metadata.creationTimestamp, name, namespace },
    });
  }

  private doPatch(r: ResourceType, namespace: string | undefined, name: string, change: (obj: KubeObject) => KubeObject): KubeObject {
    const current = this.mustGet(r, namespace, name);
    const next = change(structuredClone(current));
    const rv = next.metadata?.resourceVersion;
    if (rv && rv !== current.metadata.resourceVersion) throw conflict(r, name);
    next.metadata = { ...next.metadata, uid: current.metadata.uid, name, namespace: current.metadata.namespace };
    return this.store_(r, namespace, name, next);
  }

  /** Stores a changed object; an object being deleted goes once its last finalizer is gone. */
  private store_(r: ResourceType, namespace: string | undefined, name: string, obj: KubeObject): KubeObject {
    obj.apiVersion = apiVersionOf(r);
    obj.kind = r.kind;
    obj.metadata.resourceVersion = this.bump();
    if (!r.namespaced) delete obj.metadata.namespace;
    if (obj.metadata.deletionTimestamp && !(obj.metadata.finalizers ?? []).length) {
      this.store.get(resourceName(r))!.delete(keyOf(namespace, name));
      this.emit(r, 'DELETED', obj);
      this.collect(obj.metadata.uid!, 'Background');
      return obj;
    }
    this.store.get(resourceName(r))!.set(keyOf(namespace, name), obj);
    this.emit(r, 'MODIFIED', obj);
    return obj;
  }

  private doDelete(r: ResourceType, namespace: string | undefined, name: string, opts: DeleteOptions): KubeObject {
    const current = this.mustGet(r, namespace, name);
    const pre = opts.preconditions;
    if (pre?.uid && pre.uid !== current.metadata.uid) {
      throw new ApiError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${qualified(r)} "${name}": Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${current.metadata.uid}`,
        { name, group: r.group, kind: r.plural },
      );
    }
    if (pre?.resourceVersion && pre.resourceVersion !== current.metadata.resourceVersion) throw conflict(r, name);
    // batch/v1 Jobs orphan their pods unless told otherwise (the API default kubectl overrides).
    const policy = opts.propagationPolicy ?? (r.plural === 'jobs' ? 'Orphan' : 'Background');
    if ((current.metadata.finalizers ?? []).length > 0) {
      if (current.metadata.deletionTimestamp) return current;
      const marked = structuredClone(current);
      marked.metadata.deletionTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      return this.store_(r, namespace, name, marked);
    }
    this.store.get(resourceName(r))!.delete(keyOf(namespace, name));
    this.bump();
    const gone = structuredClone(current);
    gone.metadata.resourceVersion = String(this.rv);
    this.emit(r, 'DELETED', gone);
    if (policy !== 'Orphan') this.collect(current.metadata.uid!, policy);
    return gone;
  }

  /** The garbage collector: dependents of a deleted owner go too. */
  private collect(ownerUid: string, policy: string): void {
    for (const r of RESOURCES) {
      for (const obj of [...this.store.get(resourceName(r))!.values()]) {
        if (obj.metadata.ownerReferences?.some((o) => o.uid === ownerUid)) {
          this.doDelete(r, obj.metadata.namespace, obj.metadata.name, { propagationPolicy: policy });
        }
      }
    }
  }

  private watch(r: ResourceType, namespace: string | undefined, params: URLSearchParams, res: ServerResponse): void {
    const labels = parseLabelSelector(params.get('labelSelector'));
    const fields = parseFieldSelector(params.get('fieldSelector'), r.fields);
    const matches = (o: KubeObject) => labels(o) && fields(o);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const write = (type: string, object: object) => res.write(`${JSON.stringify({ type, object })}\n`);
    const from = params.get('resourceVersion');
    const inScope = (o: KubeObject) => (namespace === undefined || o.metadata.namespace === namespace) && matches(o);
    if (!from || from === '0') {
      for (const obj of this.store.get(resourceName(r))!.values()) if (inScope(obj)) write('ADDED', obj);
    } else {
      const since = Number(from);
      const oldest = this.history[0]?.rv ?? this.rv;
      if (!Number.isInteger(since) || since < oldest - 1) {
        write('ERROR', statusObject(new ApiError(410, 'Expired', `too old resource version: ${from} (${oldest - 1})`)));
        res.end();
        return;
      }
      for (const e of this.history) if (e.rv > since && e.resource === resourceName(r) && inScope(e.object)) write(e.type, e.object);
    }
    const watcher: Watcher = { resource: resourceName(r), namespace, matches, res };
    this.watchers.add(watcher);
    const timeout = Number(params.get('timeoutSeconds') ?? 0);
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    const close = () => {
      clearTimeout(timer);
      this.watchers.delete(watcher);
    };
    res.on('close', close);
    res.on('finish', close);
  }
}

interface DeleteOptions {
  propagationPolicy?: string;
  preconditions?: { uid?: string; resourceVersion?: string };
}

function parsePath(pathname: string): { r: ResourceType; namespace?: string; name?: string; subresource?: string } | undefined {
  let group: string;
  let version: string;
  let rest: string[];
  const parts = pathname.split('/').filter(Boolean);
  if (parts[0] === 'api') {
    group = '';
    version = parts[1] ?? '';
    rest = parts.slice(2);
  } else if (parts[0] === 'apis') {
    group = parts[1] ?? '';
    version = parts[2] ?? '';
    rest = parts.slice(3);
  } else {
    return undefined;
  }
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [plural, name, subresource] = rest;
  const r = RESOURCES.find((x) => x.group === group && x.version === version && x.plural === plural);
  if (!r || (namespace !== undefined && !r.namespaced)) return undefined;
  return { r, namespace, name, subresource };
}

function applyPatch(obj: KubeObject, body: string, contentType: string): KubeObject {
  const type = contentType.split(';')[0]!.trim();
  const patch = parseJson(body);
  if (type === 'application/merge-patch+json' || type === 'application/strategic-merge-patch+json') return mergePatch(obj, patch) as KubeObject;
  if (type === 'application/json-patch+json') return jsonPatch(obj, patch) as KubeObject;
  throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got "${contentType}")`);
}

const NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function validateName(r: ResourceType, name: string): void {
  const max = r.plural === 'jobs' || r.plural === 'namespaces' ? 63 : 253;
  if (name.length > max || !NAME_RE.test(name) || ((r.plural === 'namespaces' || r.plural === 'jobs') && name.includes('.'))) {
    throw new ApiError(
      422,
      'Invalid',
      `${r.kind} "${name}" is invalid: metadata.name: Invalid value: "${name}": must be a lowercase RFC 1123 ${max === 63 ? 'label' : 'subdomain'} of at most ${max} characters`,
      { name, group: r.group, kind: r.kind },
    );
  }
}

/** What the real API server (or its controllers, instantly) fills in. */
function applyDefaults(r: ResourceType, obj: KubeObject): void {
  const spec = (obj.spec ??= {}) as Record<string, unknown>;
  if (r.plural === 'jobs') {
    const uid = obj.metadata.uid!;
    const template = (spec.template ??= {}) as { metadata?: { labels?: Record<string, string> } };
    template.metadata ??= {};
    template.metadata.labels = {
      ...template.metadata.labels,
      'batch.kubernetes.io/controller-uid': uid,
      'batch.kubernetes.io/job-name': obj.metadata.name,
      'controller-uid': uid,
      'job-name': obj.metadata.name,
    };
    spec.selector ??= { matchLabels: { 'batch.kubernetes.io/controller-uid': uid } };
    spec.backoffLimit ??= 6;
    spec.completions ??= 1;
    spec.parallelism ??= 1;
    obj.status ??= {};
  } else if (r.plural === 'pods') {
    obj.status ??= { phase: 'Pending' };
  } else if (r.plural === 'persistentvolumeclaims') {
    obj.status ??= { phase: 'Pending' };
  } else if (r.plural === 'persistentvolumes') {
    obj.status ??= { phase: 'Available' };
  } else if (r.plural === 'namespaces') {
    obj.status ??= { phase: 'Active' };
    delete obj.spec;
  } else if (r.plural === 'events' || r.plural === 'configmaps') {
    delete obj.spec;
  }
}

const qualified = (r: ResourceType) => (r.group ? `${r.plural}.${r.group}` : r.plural);

function notFound(r: ResourceType, name: string): ApiError {
  return new ApiError(404, 'NotFound', `${qualified(r)} "${name}" not found`, { name, group: r.group || undefined, kind: r.plural });
}

function conflict(r: ResourceType, name: string): ApiError {
  return new ApiError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualified(r)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    { name, group: r.group || undefined, kind: r.plural },
  );
}

function statusObject(e: ApiError): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: e.message, reason: e.reason, details: e.details, code: e.code };
}

function send(res: ServerResponse, code: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    throw new ApiError(400, 'BadRequest', 'the request body is not valid JSON');
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  return Array.from({ length: 5 }, () => alphabet[Math.floor(Math.random() * alphabet.length)]).join('');
}

export async function startKubeApiServer(): Promise<FakeKubeApiServer> {
  return new FakeKubeApiServer().start();
}
