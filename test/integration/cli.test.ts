import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rename, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { csiClient } from '../support/csi-client.js';
import { MAIN, startDriverProcess } from '../support/driver-process.js';

const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, [MAIN, ...args], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', timeout: 20_000 });

async function scratch(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'pgr-cli-'));
}

describe('the pg-reflinker command', () => {
  it('prints usage for --help, per role', () => {
    const all = cli(['--help']);
    expect(all.status).toBe(0);
    expect(all.stdout).toContain('usage: pg-reflinker <controller|node|standalone|cleanup>');
    const node = cli(['node', '--help']);
    expect(node.stdout).toContain('--node-id');
    expect(node.stdout).not.toContain('--namespace-path');
  });

  it.each([
    [['standalone', '--root', '/tmp'], 'pg-reflinker: --node-id (or NODE_NAME) is required for the standalone role'],
    [['frobnicate'], 'pg-reflinker: unknown role "frobnicate"'],
    [['node', '--node-id', 'n', '--endpoint', 'tcp://x'], 'must be unix:///absolute/path'],
  ])('rejects bad configuration %j with one line on stderr and exit code 2', (args, message) => {
    const result = cli(args);
    expect(result.status).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(message);
  });

  it('refuses to start on a root that does not exist', () => {
    const result = cli(['standalone', '--endpoint', 'unix:///tmp/pgr-never.sock', '--root', '/nonexistent/pgr', '--node-id', 'n']);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('volume root /nonexistent/pgr is not usable');
    expect(existsSync('/tmp/pgr-never.sock')).toBe(false);
  });

  it('replaces a stale socket, refuses a live one, and shuts down cleanly on SIGTERM', async () => {
    const dir = await scratch();
    const socket = join(dir, 'csi.sock');
    // A stale socket: bound once, its server gone.
    await new Promise<void>((resolve) => {
      const stale = createServer().listen(socket, () => {
        stale.close();
        resolve();
      });
    });
    await writeFile(join(dir, 'marker'), '');
    const args = ['standalone', '--endpoint', `unix://${socket}`, '--root', dir, '--node-id', 'cli-node'];
    const driver = await startDriverProcess(args, socket);
    const second = cli(args);
    expect(second.status).toBe(1);
    expect(second.stderr).toContain(`another process is already serving ${socket}`);
    const client = csiClient(socket);
    expect((await client.identity('GetPluginInfo', {})).name).toBe('pg-reflinker.csi');
    client.close();
    expect(await driver.stop('SIGTERM')).toBe(0);
    expect(existsSync(socket)).toBe(false);
    expect(driver.logs()).toContain('"shutting down"');
  });

  it('refuses to replace a file that is not a socket', async () => {
    const dir = await scratch();
    const notSocket = join(dir, 'csi.sock');
    await writeFile(notSocket, 'precious');
    const result = cli(['standalone', '--endpoint', `unix://${notSocket}`, '--root', dir, '--node-id', 'n']);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('is not a socket; refusing to replace it');
  });

  it('logs one structured line per RPC, without secrets', async () => {
    const dir = await scratch();
    const socket = join(dir, 'csi.sock');
    const driver = await startDriverProcess(['standalone', '--endpoint', `unix://${socket}`, '--root', dir, '--node-id', 'log-node'], socket);
    const client = csiClient(socket);
    await client
      .controller('CreateVolume', { name: 'logged', volume_capabilities: [{ mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }], secrets: { password: 'hunter2-secret' } })
      .catch(() => undefined);
    client.close();
    await driver.stop();
    const lines = driver.logs().split('\n').filter((l) => l.includes('"rpc"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const create = lines.find((l) => l.method === 'Controller.CreateVolume');
    expect(create).toMatchObject({ name: 'logged', code: 'OK', level: 'info' });
    expect(typeof create?.ms).toBe('number');
    expect(driver.logs()).not.toContain('hunter2-secret');
  });

  it('serves /metrics, /healthz and /readyz; readiness follows the volume root', async () => {
    const dir = await scratch();
    const root = join(dir, 'root');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(root);
    const socket = join(dir, 'csi.sock');
    const port = 20000 + Math.floor(Math.random() * 20000);
    const driver = await startDriverProcess(
      ['standalone', '--endpoint', `unix://${socket}`, '--root', root, '--node-id', 'm-node', '--metrics-address', `127.0.0.1:${port}`],
      socket,
    );
    const client = csiClient(socket);
    try {
      await client.identity('Probe', {});
      await client.controller('DeleteVolume', { volume_id: 'm-node/gone' });
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/pg_reflinker_rpc_total\{method="Probe",code="OK"\} 1/);
      expect(metrics).toMatch(/pg_reflinker_rpc_total\{method="DeleteVolume",code="OK"\} 1/);
      expect(metrics).toContain('pg_reflinker_rpc_duration_seconds_bucket');
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
      await rename(root, `${root}.moved`);
      const notReady = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(notReady.status).toBe(503);
      expect(await notReady.text()).toContain('is not usable');
      expect((await client.identity('Probe', {})).ready).toEqual({ value: false });
    } finally {
      client.close();
      await driver.stop();
    }
  });
});
