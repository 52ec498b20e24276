// A real Kubernetes control plane for tests: etcd + kube-apiserver + kube-controller-manager,
// built from their Go modules by test/cluster/tools/build.sh, run as child processes on loopback
// with certificates of their own (openssl, ECDSA P-256), RBAC on, and torn down by pid.
//
// There is no kubelet and no scheduler: pods are created (by the Job controller, for instance)
// and stay Pending until a test plays the node.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { componentPath } from './components.js';

export interface ControlPlaneOptions {
  /** Extra kube-apiserver flags (`--name=value`). */
  apiserverFlags?: string[];
  /** Extra kube-controller-manager flags. */
  controllerManagerFlags?: string[];
  /** Seconds to wait for each component to become ready (default 60). */
  readyTimeoutSeconds?: number;
}

interface Proc {
  name: string;
  child: ChildProcess;
  log: string;
  exited: Promise<number | null>;
}

export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  server: string;
  /** The temporary directory: certificates, kubeconfigs, etcd data, component logs. */
  dir: string;
  /** A kubeconfig file for the cluster admin (system:masters), for helm, sidecars, kubectl. */
  adminKubeconfigPath: string;
  /** A client for the cluster admin. */
  kubeConfig(): KubeConfig;
  /** A client authenticated by a client certificate as `user` in `groups` (RBAC decides). */
  kubeConfigFor(user: string, groups?: string[]): KubeConfig;
  /** A kubeconfig file for `user` in `groups`. */
  kubeconfigFileFor(user: string, groups?: string[]): string;
  /** The pid of each running component. */
  pids(): Record<string, number | undefined>;
  /** The tail of a component's log. */
  logTail(name: 'etcd' | 'kube-apiserver' | 'kube-controller-manager', lines?: number): string;
  /** Stops every component (SIGTERM, then SIGKILL) and removes the directory. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Pki {
  constructor(private readonly dir: string) {}

  private openssl(args: string[]): void {
    execFileSync('openssl', args, { cwd: this.dir, stdio: ['ignore', 'ignore', 'pipe'] });
  }

  private key(name: string): void {
    this.openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`]);
  }

  ca(): void {
    this.key('ca');
    this.openssl(['req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=pg-reflinker-test-ca', '-days', '2', '-out', 'ca.crt',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature']);
  }

  /** Signs a certificate for `name`: a client certificate (CN=user, O=groups) or a serving one (SANs). */
  cert(name: string, cn: string, groups: string[], sans?: string[]): { crt: string; key: string } {
    this.key(name);
    const subj = `${groups.map((g) => `/O=${g}`).join('')}/CN=${cn}`;
    this.openssl(['req', '-new', '-key', `${name}.key`, '-subj', subj, '-out', `${name}.csr`]);
    const ext = [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${sans ? 'serverAuth,clientAuth' : 'clientAuth'}`,
      ...(sans ? [`subjectAltName=${sans.join(',')}`] : []),
    ].join('\n');
    writeFileSync(join(this.dir, `${name}.ext`), ext + '\n');
    this.openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2',
      '-extfile', `${name}.ext`, '-out', `${name}.crt`]);
    return { crt: join(this.dir, `${name}.crt`), key: join(this.dir, `${name}.key`) };
  }
}

function kubeconfigYaml(server: string, caFile: string, crt: string, key: string, user: string): string {
  const b64 = (f: string) => readFileSync(f).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: test`,
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(caFile)}`,
    'users:',
    `- name: ${JSON.stringify(user)}`,
    '  user:',
    `    client-certificate-data: ${b64(crt)}`,
    `    client-key-data: ${b64(key)}`,
    'contexts:',
    '- name: test',
    '  context:',
    '    cluster: test',
    `    user: ${JSON.stringify(user)}`,
    'current-context: test',
    '',
  ].join('\n');
}

/** GET `path` over TLS with a client certificate; resolves with the status code and body (0 when refused). */
function get(url: string, ca: Buffer, cert?: Buffer, key?: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request(url, { ca, cert, key, timeout: 2000, rejectUnauthorized: ca.length > 0 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const binaries = {
    etcd: componentPath('etcd'),
    apiserver: componentPath('kube-apiserver'),
    kcm: componentPath('kube-controller-manager'),
  };
  const readyMs = (options.readyTimeoutSeconds ?? 60) * 1000;
  const dir = mkdtempSync(join(tmpdir(), 'pgr-control-plane-'));
  const procs: Proc[] = [];
  let stopped = false;

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const p of [...procs].reverse()) {
      if (p.child.exitCode === null && p.child.signalCode === null && p.child.pid) {
        process.kill(p.child.pid, 'SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const code = await Promise.race([p.exited, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 10_000)))]);
        clearTimeout(timer);
        if (code === 'timeout' && p.child.exitCode === null && p.child.signalCode === null) {
          process.kill(p.child.pid, 'SIGKILL');
          await p.exited;
        }
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const run = (name: string, bin: string, args: string[]): Proc => {
    const logFile = createWriteStream(join(dir, `${name}.log`));
    const child = spawn(bin, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const proc: Proc = { name, child, log: '', exited: new Promise((r) => child.once('exit', (code) => r(code))) };
    const keep = (d: Buffer) => {
      logFile.write(d);
      proc.log = (proc.log + d.toString()).slice(-200_000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.once('exit', () => logFile.end());
    procs.push(proc);
    return proc;
  };

  const tail = (p: Proc, lines = 30) => p.log.split('\n').slice(-lines).join('\n');

  const waitFor = async (p: Proc, what: string, ready: () => Promise<boolean>) => {
    const deadline = Date.now() + readyMs;
    for (;;) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) {
        throw new Error(`${p.name} exited (${p.child.exitCode ?? p.child.signalCode}) before ${what}:\n${tail(p)}`);
      }
      if (await ready()) return;
      if (Date.now() > deadline) throw new Error(`${p.name}: no ${what} after ${readyMs / 1000} s:\n${tail(p)}`);
      await sleep(100);
    }
  };

  try {
    const pki = new Pki(dir);
    pki.ca();
    const ca = join(dir, 'ca.crt');
    const etcdCert = pki.cert('etcd', 'etcd', [], ['IP:127.0.0.1', 'DNS:localhost']);
    const etcdClient = pki.cert('apiserver-etcd-client', 'kube-apiserver-etcd-client', []);
    const serving = pki.cert('apiserver', 'kube-apiserver', [], [
      'IP:127.0.0.1', 'DNS:localhost', 'DNS:kubernetes', 'DNS:kubernetes.default', 'DNS:kubernetes.default.svc',
      'DNS:kubernetes.default.svc.cluster.local',
    ]);
    const admin = pki.cert('admin', 'pgr-test-admin', ['system:masters']);
    const kcmClient = pki.cert('kcm', 'system:kube-controller-manager', []);
    execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'sa.key'], { cwd: dir });
    execFileSync('openssl', ['ec', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });

    const [etcdClientPort, etcdPeerPort, apiPort, kcmPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const etcdUrl = `https://127.0.0.1:${etcdClientPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    const server = `https://127.0.0.1:${apiPort}`;
    const caPem = readFileSync(ca);

    const etcd = run('etcd', binaries.etcd, [
      '--name=test', `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`, `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`, `--initial-advertise-peer-urls=${peerUrl}`, `--initial-cluster=test=${peerUrl}`,
      `--cert-file=${etcdCert.crt}`, `--key-file=${etcdCert.key}`, '--client-cert-auth', `--trusted-ca-file=${ca}`,
      '--unsafe-no-fsync', '--log-level=warn',
    ]);
    const etcdClientPem = { cert: readFileSync(etcdClient.crt), key: readFileSync(etcdClient.key) };
    await waitFor(etcd, 'health', async () => {
      const r = await get(`${etcdUrl}/health`, caPem, etcdClientPem.cert, etcdClientPem.key);
      return r.status === 200 && r.body.includes('"true"');
    });

    const apiserver = run('kube-apiserver', binaries.apiserver, [
      `--etcd-servers=${etcdUrl}`, `--etcd-cafile=${ca}`, `--etcd-certfile=${etcdClient.crt}`, `--etcd-keyfile=${etcdClient.key}`,
      '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${apiPort}`,
      `--tls-cert-file=${serving.crt}`, `--tls-private-key-file=${serving.key}`, `--client-ca-file=${ca}`,
      '--authorization-mode=RBAC', '--anonymous-auth=false', '--allow-privileged=true',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${join(dir, 'sa.pub')}`, `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      // No kubelet or kube-proxy here: the loopback address cannot be an Endpoints address.
      '--endpoint-reconciler-type=none',
      `--cert-dir=${join(dir, 'apiserver-certs')}`, '--profiling=false', '--v=1',
      ...(options.apiserverFlags ?? []),
    ]);
    const adminPem = { cert: readFileSync(admin.crt), key: readFileSync(admin.key) };
    await waitFor(apiserver, 'readiness (/readyz)', async () => (await get(`${server}/readyz`, caPem, adminPem.cert, adminPem.key)).status === 200);

    const adminKubeconfigPath = join(dir, 'admin.kubeconfig');
    writeFileSync(adminKubeconfigPath, kubeconfigYaml(server, ca, admin.crt, admin.key, 'pgr-test-admin'), { mode: 0o600 });
    const kcmKubeconfig = join(dir, 'kcm.kubeconfig');
    writeFileSync(kcmKubeconfig, kubeconfigYaml(server, ca, kcmClient.crt, kcmClient.key, 'system:kube-controller-manager'), { mode: 0o600 });

    const kcm = run('kube-controller-manager', binaries.kcm, [
      `--kubeconfig=${kcmKubeconfig}`,
      '--use-service-account-credentials=true', `--service-account-private-key-file=${join(dir, 'sa.key')}`,
      `--root-ca-file=${ca}`, '--leader-elect=false', '--bind-address=127.0.0.1', `--secure-port=${kcmPort}`,
      `--cert-dir=${join(dir, 'kcm-certs')}`, '--profiling=false', '--v=1',
      ...(options.controllerManagerFlags ?? []),
    ]);
    await waitFor(kcm, 'health (/healthz)', async () => (await get(`https://127.0.0.1:${kcmPort}/healthz`, Buffer.alloc(0))).status === 200);
    // /healthz answers before the controllers start (about 5 s later): ready means the
    // service-account and root-CA publishers have done their work in `default`, so Jobs, Pods
    // and namespaces created next are handled at once.
    await waitFor(kcm, 'the default ServiceAccount and kube-root-ca.crt', async () => {
      const sa = await get(`${server}/api/v1/namespaces/default/serviceaccounts/default`, caPem, adminPem.cert, adminPem.key);
      const cm = await get(`${server}/api/v1/namespaces/default/configmaps/kube-root-ca.crt`, caPem, adminPem.cert, adminPem.key);
      return sa.status === 200 && cm.status === 200;
    });

    const users = new Map<string, string>();
    const kubeconfigFileFor = (user: string, groups: string[] = []) => {
      const key = JSON.stringify([user, groups]);
      let file = users.get(key);
      if (!file) {
        const id = `user-${users.size}`;
        const c = pki.cert(id, user, groups);
        file = join(dir, `${id}.kubeconfig`);
        writeFileSync(file, kubeconfigYaml(server, ca, c.crt, c.key, user), { mode: 0o600 });
        users.set(key, file);
      }
      return file;
    };
    const load = (file: string) => {
      const config = new KubeConfig();
      config.loadFromFile(file);
      return config;
    };
    const byName: Record<string, Proc> = { etcd, 'kube-apiserver': apiserver, 'kube-controller-manager': kcm };

    return {
      server,
      dir,
      adminKubeconfigPath,
      kubeConfig: () => load(adminKubeconfigPath),
      kubeConfigFor: (user, groups) => load(kubeconfigFileFor(user, groups)),
      kubeconfigFileFor,
      pids: () => Object.fromEntries(procs.map((p) => [p.name, p.child.exitCode === null ? p.child.pid : undefined])),
      logTail: (name, lines) => tail(byName[name], lines),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
