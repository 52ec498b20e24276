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

/**
 * libpq TCP settings for the populator's session, which holds a backup and a replication slot
 * open on the source: a peer that vanishes (node lost, network partition) ends the session
 * within a minute instead of at the Job's deadline. Unacknowledged data: tcp_user_timeout
 * (30 s); an idle connection: keepalives_idle + keepalives_interval × keepalives_count (25 s).
 */
export const SESSION_KEEPALIVES = {
  keepalives: 1,
  keepalives_idle: 10,
  keepalives_interval: 5,
  keepalives_count: 3,
  tcp_user_timeout: 30_000,
} as const;

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
    ...SESSION_KEEPALIVES,
  });
}
