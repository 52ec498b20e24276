import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../src/exec.js';

/** A CA, a server certificate and a client certificate, as CNPG's `-ca`, `-server` and `-replication` secrets hold them. */
export interface TlsFiles {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

export interface TlsOptions {
  /** Server DNS names (the first is the CN); default localhost. */
  serverNames?: string[];
  serverIps?: string[];
  /** Client certificate CN = the role it authenticates as. */
  clientCn?: string;
  /** PostgreSQL refuses a server key it does not own (mode 0600). */
  serverKeyOwner?: { uid: number; gid: number };
  /** libpq likewise for the client key. */
  clientKeyOwner?: { uid: number; gid: number };
  days?: number;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export async function createTls(dir: string, opts: TlsOptions = {}): Promise<TlsFiles> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const f = (name: string) => join(dir, name);
  const days = String(opts.days ?? 7);
  const names = opts.serverNames ?? ['localhost'];
  const ips = opts.serverIps ?? ['127.0.0.1'];
  const files: TlsFiles = {
    dir,
    caCert: f('ca.crt'),
    caKey: f('ca.key'),
    serverCert: f('server.crt'),
    serverKey: f('server.key'),
    clientCert: f('client.crt'),
    clientKey: f('client.key'),
  };
  const openssl = (args: string[]) => run('openssl', args, { timeoutMs: 30_000, cwd: dir });
  await openssl(['req', '-x509', '-new', ...EC, '-keyout', files.caKey, '-out', files.caCert, '-days', days,
    '-subj', '/CN=pg-reflinker test CA', '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const issue = async (name: 'server' | 'client', cn: string, extensions: string[]) => {
    await openssl(['req', '-new', ...EC, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`]);
    await writeFile(f(`${name}.ext`), extensions.join('\n') + '\n');
    await openssl(['x509', '-req', '-in', f(`${name}.csr`), '-CA', files.caCert, '-CAkey', files.caKey, '-CAcreateserial',
      '-days', days, '-out', f(`${name}.crt`), '-extfile', f(`${name}.ext`)]);
  };
  const san = [...names.map((n) => `DNS:${n}`), ...ips.map((ip) => `IP:${ip}`)].join(',');
  await issue('server', names[0] ?? 'localhost', ['basicConstraints=CA:FALSE', 'extendedKeyUsage=serverAuth', `subjectAltName=${san}`]);
  await issue('client', opts.clientCn ?? 'streaming_replica', ['basicConstraints=CA:FALSE', 'extendedKeyUsage=clientAuth']);
  for (const key of [files.caKey, files.serverKey, files.clientKey]) await chmod(key, 0o600);
  for (const cert of [files.caCert, files.serverCert, files.clientCert]) await chmod(cert, 0o644);
  if (opts.serverKeyOwner) await chown(files.serverKey, opts.serverKeyOwner.uid, opts.serverKeyOwner.gid);
  if (opts.clientKeyOwner) await chown(files.clientKey, opts.clientKeyOwner.uid, opts.clientKeyOwner.gid);
  return files;
}
