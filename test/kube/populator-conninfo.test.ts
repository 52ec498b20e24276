import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { describe, expect, test } from '@jest/globals';
import { populatorConninfo, type OnlineSource } from '../../src/backends/kube/clone/populate-job.js';

// The populator's one psql session holds a backup and a replication slot open on the source:
// a dead peer must end it within a minute, not at the Job's deadline hours later.

const PSQL = '/usr/lib/postgresql/15/bin/psql';
const copy: OnlineSource = { mode: 'online', image: 'x', clusterName: 'pg', podIP: '10.0.1.12', caSecret: 'pg-ca', replicationSecret: 'pg-replication' };

const params = (conninfo: string) => Object.fromEntries([...conninfo.matchAll(/(\w+)='((?:[^'\\]|\\.)*)'/g)].map((m) => [m[1], m[2]]));

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const psql = (conninfo: string) => spawnSync(PSQL, ['-X', '-w', '-c', 'select 1', conninfo], { encoding: 'utf8', env: { PATH: process.env.PATH }, timeout: 20_000 });

describe("the populator's libpq connection", () => {
  test('TCP keepalives and a user timeout end a session with a dead peer within a minute', () => {
    const p = params(populatorConninfo(copy, 'db'));
    expect(p).toMatchObject({ keepalives: '1', keepalives_idle: '10', keepalives_interval: '5', keepalives_count: '3', tcp_user_timeout: '30000' });
    // Unacknowledged data: tcp_user_timeout; an idle peer: idle + interval × count.
    expect(Number(p.tcp_user_timeout)).toBeLessThanOrEqual(60_000);
    expect(Number(p.keepalives_idle) + Number(p.keepalives_interval) * Number(p.keepalives_count)).toBeLessThanOrEqual(60);
    expect(p).toMatchObject({ host: 'pg-rw.db.svc', hostaddr: '10.0.1.12', sslmode: 'verify-full', user: 'streaming_replica' });
  });

  test('a real libpq (psql 15) accepts every parameter: the failure is the connection, not the string', async () => {
    const port = await closedPort();
    const conninfo = `${populatorConninfo({ ...copy, podIP: '127.0.0.1' }, 'db')} port='${port}'`;
    const r = psql(conninfo);
    expect(r.status).not.toBe(0);
    expect(r.stderr).not.toMatch(/invalid connection option|invalid .* value/);
    expect(r.stderr).toMatch(/Connection refused/);

    // The check can tell: an option libpq does not know is refused as such.
    expect(psql(`${conninfo} keepalive_bogus='1'`).stderr).toMatch(/invalid connection option "keepalive_bogus"/);
  });
});
