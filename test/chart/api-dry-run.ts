// Sends rendered objects to a real kube-apiserver as they are: the document's YAML text itself
// (Content-Type application/yaml), so the server's own YAML decoder reads what helm printed,
// with dryRun=All (nothing is stored) and fieldValidation=Strict (an unknown or duplicated field
// is an error, not a silently dropped value). The answer carries the object as the server read
// and defaulted it, and every Warning header.
import { request } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

export interface ApiAnswer {
  status: number;
  /** The response body, parsed (an object, or a Status on failure). */
  body: Record<string, unknown>;
  /** The text of each Warning header (admission warnings, deprecations). */
  warnings: string[];
}

/** A Warning header's text: `299 - "text"`, with the quoted string's backslash escapes undone. */
function unquoteWarning(header: string): string {
  const quoted = /^\d{3} \S+ "(.*)"/.exec(header)?.[1];
  return quoted === undefined ? header : quoted.replace(/\\(.)/g, '$1');
}

interface Resource {
  plural: string;
  namespaced: boolean;
}

export class DryRunApi {
  private readonly server: string;
  private readonly tls: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  private readonly discovered = new Map<string, Map<string, Resource> | undefined>();

  constructor(kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    const user = kc.getCurrentUser();
    if (!cluster || !user?.certData || !user.keyData) throw new Error('DryRunApi needs a kubeconfig with a client certificate');
    const b64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64') : undefined);
    this.server = cluster.server;
    this.tls = { ca: b64(cluster.caData), cert: b64(user.certData), key: b64(user.keyData) };
  }

  request(method: string, path: string, body?: string, contentType = 'application/json'): Promise<ApiAnswer> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { accept: 'application/json' };
      if (body !== undefined) headers['content-type'] = contentType;
      const req = request(`${this.server}${path}`, { method, headers, ...this.tls, timeout: 30_000 }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => {
          const warnings: string[] = [];
          for (let i = 0; i < res.rawHeaders.length; i += 2) {
            if (res.rawHeaders[i].toLowerCase() === 'warning') warnings.push(unquoteWarning(res.rawHeaders[i + 1]));
          }
          let parsed: Record<string, unknown>;
          try {
            parsed = JSON.parse(text) as Record<string, unknown>;
          } catch {
            parsed = { text };
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, warnings });
        });
      });
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
      req.end(body);
    });
  }

  /** The resource the server serves for apiVersion + kind, or undefined when it serves none. */
  async resourceOf(apiVersion: string, kind: string): Promise<Resource | undefined> {
    if (!this.discovered.has(apiVersion)) {
      const a = await this.request('GET', apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`);
      const list = a.status === 200 ? (a.body.resources as Array<{ name: string; kind: string; namespaced: boolean }>) : undefined;
      this.discovered.set(apiVersion, list && new Map(
        list.filter((r) => !r.name.includes('/')).map((r) => [r.kind, { plural: r.name, namespaced: r.namespaced }]),
      ));
    }
    return this.discovered.get(apiVersion)?.get(kind);
  }

  /**
   * Creates `text` (YAML or JSON of one object of apiVersion/kind, namespace as given in it) with
   * dryRun=All and fieldValidation=Strict. Throws when the server serves no such kind.
   */
  async dryRunCreate(text: string, object: { apiVersion: string; kind: string; metadata: { namespace?: string } }, contentType = 'application/yaml'): Promise<ApiAnswer> {
    const resource = await this.resourceOf(object.apiVersion, object.kind);
    if (!resource) throw new Error(`the API server serves no ${object.apiVersion} ${object.kind}`);
    const group = object.apiVersion.includes('/') ? `/apis/${object.apiVersion}` : `/api/${object.apiVersion}`;
    const ns = resource.namespaced ? `/namespaces/${object.metadata.namespace ?? 'default'}` : '';
    return this.request('POST', `${group}${ns}/${resource.plural}?dryRun=All&fieldValidation=Strict`, text, contentType);
  }
}
