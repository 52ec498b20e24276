import { describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { libpqConninfo, tlsConninfo } from '../../src/populator/conninfo.js';
import { parsePopulatorFailure, parsePopulatorResult } from '../../src/populator/result.js';
import { populatorEnv } from '../../src/populator/env.js';
import { renderPopulatorScript } from '../../src/populator/script.js';

const script = renderPopulatorScript();
const session = script.slice(script.indexOf("<<'SQL'\n"), script.indexOf('\nSQL\n'));

describe('populator script text', () => {
  test('is valid bash with no template escapes left', () => {
    expect(script.startsWith('#!/usr/bin/env bash\n')).toBe(true);
    expect(script).not.toContain('\\`');
    expect(script).not.toContain('\\${');
    const check = spawnSync('bash', ['-n'], { input: script, encoding: 'utf8' });
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  test('runs one psql session that stops on errors and reads no psqlrc', () => {
    expect(script.match(/^\s*psql /gm)).toHaveLength(1);
    expect(script).toContain('psql -X -q -w -v ON_ERROR_STOP=1');
  });

  test('session: timeouts off, slot before start, version-dependent start/stop, fast checkpoint, no archive wait', () => {
    const order = [
      'SET statement_timeout = 0',
      'SET idle_session_timeout = 0',
      "pg_create_physical_replication_slot(:'slot', true, true)",
      "pg_backup_start(:'label', true)",
      "pg_start_backup(:'label', true, false)",
      'copy-tree',
      'pg_backup_stop(false)',
      'pg_stop_backup(false, false)',
      ' wal ',
      '\\o backup_label',
      '\\qecho -n :labelfile',
    ].map((needle) => session.indexOf(needle));
    expect(order.every((pos) => pos >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(session).toContain('server_version_num');
    expect(session).toContain('pg_is_in_recovery()');
    expect(session).toContain("coalesce(spcmapfile, '')");
  });

  test('shell results are checked in SQL, never with \\! (whose status psql ignores)', () => {
    expect(session).not.toContain('\\!');
    const steps = session.match(/^\\set ok `.*`$/gm) ?? [];
    expect(steps).toHaveLength(3); // tablespaces (before the backup), copy-tree, wal
    for (const step of steps) expect(step).toMatch(/&& echo on \|\| echo off`$/);
    expect(session.match(/RAISE EXCEPTION/g)?.length).toBeGreaterThanOrEqual(3);
  });

  test('the server ends the session within a minute of a dead peer', () => {
    for (const setting of ['tcp_keepalives_idle = 10', 'tcp_keepalives_interval = 5', 'tcp_keepalives_count = 3', 'tcp_user_timeout = 30000']) {
      expect(session).toContain(`SET ${setting};`);
    }
  });

  test('never writes a tablespace_map (it would make the clone recreate links to the source)', () => {
    expect(session).not.toMatch(/\\o tablespace_map/);
    expect(script).not.toContain('mv tablespace_map');
  });

  test('copies with reflink, publishes by rename, and cleans staging on exit', () => {
    // Through the pinned source (the working directory), never through a path that could be swapped.
    expect(script).toContain('--reflink=always ./. "$dst/"');
    expect(script).toContain('mv -n -T');
    expect(script).toContain('trap pgr_cleanup EXIT');
    expect(script).toContain('stat -f -c %T');
    for (const name of ['postmaster.pid', 'postmaster.opts', 'standby.signal', 'recovery.signal', 'backup_label.old', 'pg_internal.init', 'pgsql_tmp']) {
      expect(script).toContain(name);
    }
    for (const dir of ['pg_replslot', 'pg_stat_tmp', 'pg_dynshmem', 'pg_notify', 'pg_serial', 'pg_snapshots', 'pg_subtrans']) {
      expect(script).toContain(dir);
    }
  });
});

describe('populatorEnv', () => {
  test('online', () => {
    expect(populatorEnv({ mode: 'online', conninfo: 'host=/run port=5432', sourceDir: '/src/pgdata', volumeDir: '/v/pvc-1', label: 'pvc-1' })).toEqual({
      PGR_MODE: 'online',
      PGR_CONNINFO: 'host=/run port=5432',
      PGR_SOURCE_PGDATA: '/src/pgdata',
      PGR_VOLUME_DIR: '/v/pvc-1',
      PGR_LABEL: 'pvc-1',
      PGR_UID: '26',
      PGR_GID: '26',
    });
  });

  test('plain, with owner and work dir', () => {
    expect(populatorEnv({ mode: 'plain', conninfo: '', sourceDir: '/src', volumeDir: '/v', label: 'a.b', uid: 101, gid: 104, workDir: '/w' })).toEqual({
      PGR_MODE: 'plain',
      PGR_SOURCE_DIR: '/src',
      PGR_VOLUME_DIR: '/v',
      PGR_LABEL: 'a.b',
      PGR_UID: '101',
      PGR_GID: '104',
      PGR_WORK_DIR: '/w',
    });
  });

  test('refuses what the script would refuse', () => {
    const base = { mode: 'plain' as const, sourceDir: '/s', volumeDir: '/v' };
    expect(() => populatorEnv({ ...base, label: 'has space' })).toThrow(/label/);
    expect(() => populatorEnv({ ...base, label: "it's" })).toThrow(/label/);
    expect(() => populatorEnv({ ...base, label: '' })).toThrow(/label/);
    expect(() => populatorEnv({ ...base, label: 'x', uid: -1 })).toThrow(/uid/);
    expect(() => populatorEnv({ mode: 'online', sourceDir: '/s', volumeDir: '/v', label: 'x' })).toThrow(/connection string/);
  });
});

describe('result parsers', () => {
  const online = {
    mode: 'online',
    label: 'pvc-1',
    startLsn: '0/6000028',
    stopLsn: '0/6000100',
    timeline: 1,
    backupFrom: 'standby',
    files: 979,
    bytes: 118396705,
    seconds: 0.453,
    checkpointSeconds: 0.235,
    copySeconds: 0.062,
    walSeconds: 0.01,
  };

  test('parses the last line', () => {
    expect(parsePopulatorResult(`noise\n${JSON.stringify(online)}\n`)).toEqual(online);
    const plain = { ...online, mode: 'plain', startLsn: null, stopLsn: null, timeline: null, backupFrom: null };
    expect(parsePopulatorResult(JSON.stringify(plain))).toEqual(plain);
  });

  test('rejects what is not a result', () => {
    expect(() => parsePopulatorResult('')).toThrow(/no result/);
    expect(() => parsePopulatorResult('{"mode":"online"}')).toThrow(/bad/);
    expect(() => parsePopulatorResult(JSON.stringify({ ...online, startLsn: null }))).toThrow(/startLsn/);
    expect(() => parsePopulatorResult(JSON.stringify({ ...online, backupFrom: 'replica' }))).toThrow(/backupFrom/);
    expect(() => parsePopulatorResult(JSON.stringify({ ...online, files: '3' }))).toThrow(/files/);
  });

  test('failure reason: our line, else the last line', () => {
    expect(parsePopulatorFailure('cp: oops\npg-reflinker populate: psql: FATAL: no\n')).toBe('psql: FATAL: no');
    expect(parsePopulatorFailure('bash: line 1: x: command not found\n\n')).toBe('bash: line 1: x: command not found');
    expect(parsePopulatorFailure('')).toBe('failed without a message');
  });
});

describe('conninfo', () => {
  test('quotes values', () => {
    expect(libpqConninfo({ host: '/a b', port: 5432, user: "o'k\\", sslmode: undefined, dbname: '' })).toBe(
      "host='/a b' port='5432' user='o\\'k\\\\'",
    );
  });

  test('TLS as streaming_replica to database postgres', () => {
    expect(tlsConninfo({ host: 'c-rw.ns.svc', hostaddr: '10.0.0.5', sslmode: 'verify-full', sslrootcert: '/ca', sslcert: '/c', sslkey: '/k' })).toBe(
      "host='c-rw.ns.svc' hostaddr='10.0.0.5' port='5432' dbname='postgres' user='streaming_replica' sslmode='verify-full' sslrootcert='/ca' sslcert='/c' sslkey='/k' " +
        "keepalives='1' keepalives_idle='10' keepalives_interval='5' keepalives_count='3' tcp_user_timeout='30000'",
    );
  });
});
