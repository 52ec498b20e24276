import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

// What is left of our API-server double: a pass-through proxy in front of the REAL kube-apiserver
// that can inject the faults a real server cannot be made to produce on demand. Everything it
// does not inject is the real server's answer. It is still needed for:
//   - 5xx and 429 answers to chosen requests (an etcd hiccup on one create, a restarting server
//     on one update): `intercept`;
//   - watches the server closes under the client (a restart, a load balancer's idle timeout):
//     `dropWatches`.
// Everything else (objects, selectors, patches, deletion and garbage collection, watches,
// RBAC) is tested against the real server (test/kube/kube-cluster.ts).

export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export class FaultyKubeApiServer {
  private readonly server: Server;
  private readonly watches = new Set<ServerResponse>();
  private readonly sockets = new Set<Socket>();
  private port = 0;
  private readonly target: URL;
  private readonly ca: Buffer;
  private readonly token: string;
  /** Return an ApiError to answer a request with it instead of forwarding it. */
  intercept?: (req: RequestRecord) => ApiError | undefined;

  /** `upstream`: the real server and the bearer token every forwarded request carries. */
  constructor(upstream: KubeConfig) {
    const cluster = upstream.getCurrentCluster();
    const user = upstream.getCurrentUser();
    if (!cluster?.caData || !user?.token) throw new Error('the upstream KubeConfig needs a CA and a bearer token');
    this.target = new URL(cluster.server);
    this.ca = Buffer.from(cluster.caData, 'base64');
    this.token = user.token;
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** A KubeConfig that sends @kubernetes/client-node through this proxy (which adds the credentials). */
  kubeConfig(): KubeConfig {
    const config = new KubeConfig();
    config.loadFromOptions({
      clusters: [{ name: 'faulty', server: `http://127.0.0.1:${this.port}`, skipTLSVerify: true }],
      users: [{ name: 'through-proxy' }],
      contexts: [{ name: 'faulty', cluster: 'faulty', user: 'through-proxy' }],
      currentContext: 'faulty',
    });
    return config;
  }

  /** Watches open through the proxy right now. */
  get openWatches(): number {
    return this.watches.size;
  }

  /** Ends every open watch, as an API server restart or an idle timeout would. */
  dropWatches(): void {
    for (const res of this.watches) res.destroy();
    this.watches.clear();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const record: RequestRecord = { method: req.method ?? 'GET', path: url.pathname, query: Object.fromEntries(url.searchParams.entries()) };
    const injected = this.intercept?.(record);
    if (injected) {
      req.resume();
      const body = JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: injected.message, reason: injected.reason, code: injected.code });
      res.writeHead(injected.code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const isWatch = record.query.watch === 'true' || record.query.watch === '1';
    const headers = { ...req.headers, host: this.target.host, authorization: `Bearer ${this.token}` };
    const upstream = httpsRequest(
      { hostname: this.target.hostname, port: this.target.port, path: req.url, method: req.method, headers, ca: this.ca },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        res.once('close', () => answer.destroy());
        answer.pipe(res);
      },
    );
    // A watch counts from its request: the server may send the response head only with the first event.
    if (isWatch) {
      this.watches.add(res);
      res.once('close', () => {
        this.watches.delete(res);
        upstream.destroy();
      });
    }
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  }
}
