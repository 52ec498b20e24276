/** libpq `key='value'` connection string; values quoted so paths and names may hold spaces or quotes. Empty values are left out. */
export function libpqConninfo(params: Record<string, string | number | undefined>): string {
  return Object.entries(params)
    .filter(([, value]) => value !== undefined && value !== '')
    .map(([key, value]) => {
      if (!/^[a-z_]+$/.test(key)) throw new Error(`bad libpq parameter name ${JSON.stringify(key)}`);
      return `${key}='${String(value).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
    })
    .join(' ');
}

export interface TlsConninfoOptions {
  /** Name checked against the server certificate with verify-full (e.g. `<cluster>-rw.<ns>.svc`). */
  host: string;
  /** The pod IP to reach (with verify-full, host is still what the certificate must name). */
  hostaddr?: string;
  port?: number;
  user?: string;
  sslmode?: 'verify-ca' | 'verify-full';
  sslrootcert: string;
  sslcert: string;
  sslkey: string;
}

/** A client-certificate connection to database `postgres`, as CNPG's pg_hba allows `streaming_replica` to make. */
export function tlsConninfo(o: TlsConninfoOptions): string {
  return libpqConninfo({
    host: o.host,
    hostaddr: o.hostaddr,
    port: o.port ?? 5432,
    dbname: 'postgres',
    user: o.user ?? 'streaming_replica',
    sslmode: o.sslmode ?? 'verify-ca',
    sslrootcert: o.sslrootcert,
    sslcert: o.sslcert,
    sslkey: o.sslkey,
  });
}
