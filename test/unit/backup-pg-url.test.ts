/**
 * BACKUP_POSTGRES_URL as libpq reads it: each form becomes the PG* variables pg_dump gets, and the
 * remote script (run here by sh, with a pg_dump that records what it was given) exports them, puts
 * the password in a private pgpass file and never in argv or the environment.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dumpPostgres, restorePostgres } from '../../lib/commands/backup.ts';
import { render } from '../../lib/core/cmd.ts';
import { parsePgUrl, pgStdin } from '../../lib/config/pg-url.ts';

describe('parsePgUrl', () => {
  it.each<[string, Record<string, string>, string | undefined, string]>([
    ['postgres://app:app%20pw@127.0.0.1:5433/app', { PGUSER: 'app', PGHOST: '127.0.0.1', PGPORT: '5433', PGDATABASE: 'app' }, 'app pw', 'app on 127.0.0.1:5433'],
    ['postgresql://app@db.internal/shop', { PGUSER: 'app', PGHOST: 'db.internal', PGDATABASE: 'shop' }, undefined, 'shop on db.internal:5432'],
    ['postgres://u%40corp:p%3Aw%2F%25@h/d', { PGUSER: 'u@corp', PGHOST: 'h', PGDATABASE: 'd' }, 'p:w/%', 'd on h:5432'],
    ['postgres://app@/app?host=/var/run/postgresql', { PGUSER: 'app', PGDATABASE: 'app', PGHOST: '/var/run/postgresql' }, undefined, 'app on /var/run/postgresql (socket):5432'],
    ['postgres://app@%2Ftmp%2Fpg:6000/app', { PGUSER: 'app', PGHOST: '/tmp/pg', PGPORT: '6000', PGDATABASE: 'app' }, undefined, 'app on /tmp/pg (socket):6000'],
    ['postgres://a@h/d?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3', { PGUSER: 'a', PGHOST: 'h', PGDATABASE: 'd', PGSSLMODE: 'verify-full', PGSSLROOTCERT: '/etc/ca.pem', PGCONNECT_TIMEOUT: '3' }, undefined, 'd on h:5432'],
    ['postgres://a@[::1]:5432,h2/d', { PGUSER: 'a', PGHOST: '::1,h2', PGPORT: '5432,', PGDATABASE: 'd' }, undefined, 'd on ::1,h2:5432,'],
    ['postgres://a@h/d?password=x%3Ay', { PGUSER: 'a', PGHOST: 'h', PGDATABASE: 'd' }, 'x:y', 'd on h:5432'],
  ])('%s', (url, env, password, where) => {
    expect(parsePgUrl(url)).toEqual({ env, password, where });
  });

  it.each([
    ['mysql://a@h/d', 'is not a postgres://'],
    ['postgres://a:p%zz@h/d', 'its password has a bad percent-encoding'],
    ['postgres://a@h:99999/d', 'its port 99999 is not 1-65535'],
    ['postgres://a@h/d?sslmod=require', 'its parameter "sslmod" is not one skiff passes on'],
    ['postgres://a@h/d?connect_timeout=soon', 'its connect_timeout is not a number of seconds'],
    ['postgres://a@h/d?options=a%0Ab', 'holds a line break'],
    ['postgres://a@h/d#frag', 'is not a postgres://'],
  ])('refuses %s, never naming the password', (url, message) => {
    expect(() => parsePgUrl(url)).toThrow(message);
    try {
      parsePgUrl(url);
    } catch (e) {
      expect(String(e)).not.toContain('p%zz');
    }
  });

  it('stdin holds one line per variable, and the password escaped for pgpass', () => {
    expect(pgStdin(parsePgUrl('postgres://a:p%3Aw%5Cd%20x@h:1/d'))).toBe('PGUSER=a\nPGHOST=h\nPGPORT=1\nPGDATABASE=d\nPASSWORD=p\\:w\\\\d x\n');
  });
});

describe('the remote script, run by sh with a recording pg_dump', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-pg-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'bin'));
  mkdirSync(join(dir, 'stage'));
  // A pg_dump and pg_restore that record their argv, PG* environment and pgpass file.
  for (const tool of ['pg_dump', 'pg_restore']) {
    writeFileSync(
      join(dir, 'bin', tool),
      `#!/bin/sh\n{ echo "argv $*"; env | grep '^PG' | sort; echo "pgpass $(cat "$PGPASSFILE")"; } >>"${dir}/${tool}.log"\n[ "$1" = -l ] && exit 0\nfor a; do case $a in -f) next=1 ;; *) [ -n "$next" ] && echo dump >"$a"; next= ;; esac; done\nexit 0\n`,
    );
    chmodSync(join(dir, 'bin', tool), 0o755);
  }
  const run = (c: ReturnType<typeof dumpPostgres>, stdin: string) => {
    if (c.kind !== 'script') throw new Error('a script');
    return spawnSync('sh', ['-c', c.text, 'sh', ...c.args.map(String)], {
      input: stdin,
      encoding: 'utf8',
      env: { PATH: `${join(dir, 'bin')}:/usr/bin:/bin`, PGPASSWORD: 'from the host', PGSERVICE: 'elsewhere' },
    });
  };

  it('pg_dump gets the URL as PG* variables, a 10 s connect timeout, and the password only in its pgpass file', () => {
    const url = 'postgres://app:s3cr%3At@%2Fvar%2Frun%2Fpostgresql:6543/shop?sslmode=require';
    const r = run(dumpPostgres(join(dir, 'stage')), pgStdin(parsePgUrl(url)));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const log = readFileSync(join(dir, 'pg_dump.log'), 'utf8');
    expect(log).toContain('PGHOST=/var/run/postgresql\n');
    expect(log).toContain('PGPORT=6543\n');
    expect(log).toContain('PGDATABASE=shop\n');
    expect(log).toContain('PGUSER=app\n');
    expect(log).toContain('PGSSLMODE=require\n');
    expect(log).toContain('PGCONNECT_TIMEOUT=10\n');
    expect(log).toContain('pgpass *:*:*:*:s3cr\\:t\n');
    expect(log).not.toMatch(/PGPASSWORD|PGSERVICE=/);
    expect(log.split('\n').find((l) => l.startsWith('argv'))).not.toContain('s3cr');
    expect(render(dumpPostgres('/b'))).not.toContain('s3cr');
  });

  it('a connect_timeout in the URL wins; pg_restore gets the database with -d', () => {
    const r = run(restorePostgres(join(dir, 'stage/postgres.dump')), pgStdin(parsePgUrl('postgres://app@127.0.0.1/app?connect_timeout=3')));
    expect(r.status).toBe(0);
    const log = readFileSync(join(dir, 'pg_restore.log'), 'utf8');
    expect(log).toContain('PGCONNECT_TIMEOUT=3\n');
    expect(log).toContain(`argv --clean --if-exists --single-transaction --no-owner -d app ${join(dir, 'stage/postgres.dump')}`);
  });

  it('a line skiff does not send is refused (exit 2), nothing run', () => {
    const r = run(restorePostgres('/x'), 'LD_PRELOAD=/evil.so\n');
    expect(r.status).toBe(2);
  });
});
