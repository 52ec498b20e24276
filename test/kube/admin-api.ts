// The cluster admin's view of the real API server, for test setup and assertions: read, list,
// create, patch and delete any object by resource name, and write the status subresource the
// way the components that own it (kubelet, the PV controller, CloudNativePG) do. Plain JSON over
// HTTPS: objects come back exactly as the server sent them (no client-side model drops a field
// of a custom resource or a `null` in a merge patch).
import { request } from 'node:https';
import { ApiException, CoreV1Api, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';

export type KubeObject = KubernetesObject & {
  metadata: NonNullable<KubernetesObject['metadata']> & { name: string };
  [key: string]: unknown;
};

/** `plural` for the core group, `plural.group` otherwise (as kubectl names them). */
const RESOURCES = {
  pods: { apiVersion: 'v1', kind: 'Pod', prefix: '/api/v1', plural: 'pods', namespaced: true },
  persistentvolumeclaims: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', prefix: '/api/v1', plural: 'persistentvolumeclaims', namespaced: true },
  persistentvolumes: { apiVersion: 'v1', kind: 'PersistentVolume', prefix: '/api/v1', plural: 'persistentvolumes', namespaced: false },
  configmaps: { apiVersion: 'v1', kind: 'ConfigMap', prefix: '/api/v1', plural: 'configmaps', namespaced: true },
  events: { apiVersion: 'v1', kind: 'Event', prefix: '/api/v1', plural: 'events', namespaced: true },
  nodes: { apiVersion: 'v1', kind: 'Node', prefix: '/api/v1', plural: 'nodes', namespaced: false },
  'jobs.batch': { apiVersion: 'batch/v1', kind: 'Job', prefix: '/apis/batch/v1', plural: 'jobs', namespaced: true },
  'customresourcedefinitions.apiextensions.k8s.io': { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', prefix: '/apis/apiextensions.k8s.io/v1', plural: 'customresourcedefinitions', namespaced: false },
  'clusters.postgresql.cnpg.io': { apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', prefix: '/apis/postgresql.cnpg.io/v1', plural: 'clusters', namespaced: true },
} as const;
export type ResourceName = keyof typeof RESOURCES;

export class AdminApi {
  /** Typed client for the calls with options of their own (delete with a body, tokens). */
  readonly core: CoreV1Api;

  constructor(readonly config: KubeConfig) {
    this.core = config.makeApiClient(CoreV1Api);
  }

  private path(resource: ResourceName, namespace: string | undefined, name?: string, subresource?: string): string {
    const r = RESOURCES[resource];
    const ns = r.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
    return `${r.prefix}${ns}/${r.plural}${name ? `/${encodeURIComponent(name)}` : ''}${subresource ? `/${subresource}` : ''}`;
  }

  private async send<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const server = new URL(this.config.getCurrentCluster()!.server);
    const options: import('node:https').RequestOptions = { method, hostname: server.hostname, port: server.port, path, headers: { accept: 'application/json' } };
    await this.config.applyToHTTPSOptions(options);
    const text = body === undefined ? undefined : JSON.stringify(body);
    if (text) options.headers = { ...options.headers, 'content-type': contentType, 'content-length': Buffer.byteLength(text) };
    return new Promise<T>((resolve, reject) => {
      const req = request(options, (res) => {
        let data = '';
        res.on('data', (d: Buffer) => (data += d.toString()));
        res.on('end', () => {
          const code = res.statusCode ?? 0;
          if (code >= 200 && code < 300) resolve((data ? JSON.parse(data) : undefined) as T);
          else reject(new ApiException(code, `${method} ${path}: ${data}`, data, {}));
        });
      });
      req.on('error', reject);
      if (text) req.write(text);
      req.end();
    });
  }

  async get<T extends KubeObject = KubeObject>(resource: ResourceName, namespace: string | undefined, name: string): Promise<T | undefined> {
    try {
      return await this.send<T>('GET', this.path(resource, namespace, name));
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw err;
    }
  }

  async list<T extends KubeObject = KubeObject>(resource: ResourceName, namespace?: string, labelSelector?: string): Promise<T[]> {
    const query = labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : '';
    return (await this.send<{ items: T[] }>('GET', `${this.path(resource, namespace)}${query}`)).items;
  }

  async create<T extends KubeObject = KubeObject>(resource: ResourceName, obj: { metadata: Partial<KubeObject['metadata']>; [key: string]: unknown }): Promise<T> {
    const { apiVersion, kind } = RESOURCES[resource];
    return this.send<T>('POST', this.path(resource, obj.metadata.namespace), { apiVersion, kind, ...obj });
  }

  /** A JSON merge patch of the object (spec and metadata; with a status subresource, status is ignored here). */
  async patch<T extends KubeObject = KubeObject>(resource: ResourceName, namespace: string | undefined, name: string, patch: object): Promise<T> {
    return this.send<T>('PATCH', this.path(resource, namespace, name), patch, 'application/merge-patch+json');
  }

  /** Writes `status` through the status subresource, as the component that owns it would. */
  async patchStatus(resource: ResourceName, namespace: string | undefined, name: string, status: object): Promise<void> {
    await this.send('PATCH', this.path(resource, namespace, name, 'status'), { status }, 'application/merge-patch+json');
  }

  async delete(resource: ResourceName, namespace: string | undefined, name: string, propagationPolicy?: 'Background' | 'Foreground' | 'Orphan'): Promise<void> {
    await this.send('DELETE', this.path(resource, namespace, name), propagationPolicy ? { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy } : undefined);
  }
}
