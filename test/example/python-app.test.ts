/**
 * The Python example (examples/python) on its own, run by Debian's python3 with Debian's packages
 * (test/infra/up.sh): its routes and errors, the migration, bad settings at start, and the drain
 * on SIGTERM.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/sandbox.ts';

const PY = '/usr/bin/python3';
const dir = mkdtempSync(join(tmpdir(), 'skiff-python-app-'));
const app = join(dir, 'app');
const children: ChildProcess[] = [];

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });

const baseEnv = (dataDir: string, extra: Record<string, string> = {}) => ({ PATH: '/usr/bin:/bin', DATA_DIR: dataDir, APP_VERSION: '9.9.9', APP_ENV: 'test', ...extra });

/** Starts `python -m app` and waits until it answers its health check. */
const start = async (dataDir: string, extra: Record<string, string> = {}) => {
  const port = await freePort();
  const child = spawn(PY, ['-m', 'app'], { cwd: app, env: baseEnv(dataDir, { PORT: String(port), ...extra }), stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const out = { text: '' };
  child.stdout?.on('data', (b: Buffer) => (out.text += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out.text += b.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    try {
      await fetch(`${url}/api/health`);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { child, url, out, exit };
};

/** Runs `python -m app` to its end (a start that must fail). */
const runToEnd = (env: Record<string, string>) => spawnSync(PY, ['-m', 'app'], { cwd: app, env, encoding: 'utf8', timeout: 30_000 });

describe('the Python example app', () => {
  const data = join(dir, 'data');
  let a: Awaited<ReturnType<typeof start>>;

  beforeAll(async () => {
    cpSync(join(ROOT, 'examples/python'), app, { recursive: true, filter: (p) => !/(\.venv|__pycache__)/.test(p) });
    execFileSync(PY, ['-m', 'alembic', 'upgrade', 'head'], { cwd: app, env: baseEnv(data), stdio: 'ignore' });
    a = await start(data);
  });
  afterAll(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('says hello with its version and environment, and is healthy with the schema at 0001', async () => {
    expect(await (await fetch(`${a.url}/`)).text()).toBe('hello 9.9.9 (test)\n');
    const h = await fetch(`${a.url}/api/health`);
    expect(h.status).toBe(200);
    expect(await h.json()).toMatchObject({ status: 'ok', version: '9.9.9', environment: 'test', schema: '0001', checks: { dataDir: { ok: true }, database: { ok: true } } });
  });

  it('stays healthy under concurrent health checks (each check probes the data folder with a file of its own)', async () => {
    const codes = await Promise.all(Array.from({ length: 40 }, async () => (await fetch(`${a.url}/api/health`)).status));
    expect(codes.filter((c) => c !== 200)).toEqual([]);
  });

  it('keeps notes, and answers bad requests with a JSON error', async () => {
    const post = (body: string) => fetch(`${a.url}/api/notes`, { method: 'POST', body });
    const made = await post(JSON.stringify({ body: 'first' }));
    expect(made.status).toBe(201);
    expect(await made.json()).toMatchObject({ body: 'first' });
    expect(await (await fetch(`${a.url}/api/notes/count`)).json()).toEqual({ count: 1 });
    expect(((await (await fetch(`${a.url}/api/notes`)).json()) as { body: string }[])[0]?.body).toBe('first');
    for (const [body, status, error] of [
      ['not json', 400, 'body is not JSON'],
      [JSON.stringify({ body: '' }), 400, 'body must be a string of 1 to 10000 characters'],
      [JSON.stringify([1]), 400, 'body must be a string of 1 to 10000 characters'],
      [JSON.stringify({ body: 'x'.repeat(70_000) }), 413, 'request body over 64 KiB'],
    ] as const) {
      const r = await post(body);
      expect(r.status).toBe(status);
      expect(await r.json()).toEqual({ error });
    }
    const missing = await fetch(`${a.url}/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: 'Not Found' });
  });

  it('before the first migration: healthy (schema null), notes answer 503 naming the fix', async () => {
    const b = await start(join(dir, 'fresh'));
    const h = (await (await fetch(`${b.url}/api/health`)).json()) as { status: string; schema: unknown };
    expect(h).toMatchObject({ status: 'ok', schema: null });
    const r = await fetch(`${b.url}/api/notes`);
    expect(r.status).toBe(503);
    expect(((await r.json()) as { error: string }).error).toContain('run the migrations');
    b.child.kill('SIGTERM');
    expect(await b.exit).toBe(0);
  });

  it('MIGRATE_ON_START=1 migrates, and leaves a newer schema alone (a rollback)', async () => {
    const fresh = join(dir, 'migrate');
    const b = await start(fresh, { MIGRATE_ON_START: '1' });
    expect((await (await fetch(`${b.url}/api/notes/count`)).json()) as unknown).toEqual({ count: 0 });
    b.child.kill('SIGTERM');
    await b.exit;
    execFileSync('sqlite3', [join(fresh, 'app.db'), "UPDATE alembic_version SET version_num = '0099'"]);
    const c = await start(fresh, { MIGRATE_ON_START: '1' });
    expect(c.out.text).toContain("the database is at revision 0099, newer than this release's migrations: left as it is");
    expect((await fetch(`${c.url}/api/health`)).status).toBe(200);
    c.child.kill('SIGTERM');
    await c.exit;
  });

  it('a request in flight at SIGTERM finishes, then it exits 0', async () => {
    const b = await start(data, { SLOW_MS: '800' });
    const slow = fetch(`${b.url}/slow`).then((r) => r.text());
    await new Promise((r) => setTimeout(r, 200));
    b.child.kill('SIGTERM');
    expect(await slow).toBe('slow done\n');
    expect(await b.exit).toBe(0);
  });

  it.each([
    ['a PORT that is not a port', { PORT: '70000' }, "PORT must be a number from 1 to 65535, not '70000'"],
    ['a SLOW_MS that is not a number', { PORT: '1', SLOW_MS: '1s' }, "SLOW_MS must be a whole number of milliseconds, not '1s'"],
    ['a DATABASE_URL of another kind, not echoed', { PORT: '1', DATABASE_URL: 'mysql://u:hunter2@h/db' }, 'DATABASE_URL must start with sqlite:// or postgresql://'],
    ['a DATA_DIR that cannot be made', { PORT: '1', DATA_DIR: '/proc/none' }, 'cannot start:'],
  ])('%s stops it at start with one line (exit 1)', (_what, env, line) => {
    const r = runToEnd({ ...baseEnv(data), ...env });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(line);
    expect(r.stderr).not.toContain('hunter2');
  });

  it('a failed migration at start stops it (exit 1) with the reason', () => {
    const r = runToEnd({ ...baseEnv(join(dir, 'bad')), PORT: '1', MIGRATE_ON_START: '1', DATABASE_URL: 'postgresql://nobody@127.0.0.1:1/none' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('migration failed:');
  });
});
