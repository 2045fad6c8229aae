/** The example app on its own: routes, health, SQLite in WAL mode, and the drain on SIGTERM. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT } from '../support/sandbox.ts';

const PORT = 18421;
const URL = `http://127.0.0.1:${PORT}`;
let child: ChildProcess | undefined;
let dataDir = '';

const start = async (env: Record<string, string> = {}): Promise<ChildProcess> => {
  dataDir = mkdtempSync(join(tmpdir(), 'skiff-example-'));
  child = spawn('node', [join(ROOT, 'example/server.js')], {
    env: { PATH: process.env.PATH ?? '', PORT: String(PORT), DATA_DIR: dataDir, APP_VERSION: '9.9.9', APP_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (let i = 0; i < 100; i++) {
    const up = await fetch(URL).then(() => true, () => false);
    if (up) return child;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('example app did not start');
};

const exited = (c: ChildProcess): Promise<number | null> =>
  c.exitCode !== null ? Promise.resolve(c.exitCode) : new Promise((resolve) => c.on('exit', (code) => resolve(code)));

afterEach(() => {
  child?.kill('SIGKILL');
  child = undefined;
  rmSync(dataDir, { recursive: true, force: true });
});

describe('example app', () => {
  it('shows its version and environment', async () => {
    await start();
    expect(await (await fetch(URL)).text()).toBe('hello 9.9.9 (test)\n');
  });

  it('answers its health check with every field', async () => {
    await start();
    const res = await fetch(`${URL}/api/health`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ status: 'ok', environment: 'test', version: '9.9.9', checks: { dataDir: { ok: true }, database: { ok: true } } });
    expect(typeof body.uptime).toBe('number');
    expect(typeof body.timestamp).toBe('string');
    expect(body.memory).toMatchObject({ rss: expect.any(Number), heapUsed: expect.any(Number) });
  });

  it('answers 503 when a check fails', async () => {
    await start({ HEALTH_FAIL: '1' });
    const res = await fetch(`${URL}/api/health`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ status: 'fail', checks: { forced: { ok: false } } });
  });

  it('stores notes in SQLite in WAL mode', async () => {
    await start();
    const post = await fetch(`${URL}/api/notes`, { method: 'POST', body: JSON.stringify({ body: 'first' }) });
    expect(post.status).toBe(201);
    expect(await post.json()).toMatchObject({ id: 1, body: 'first' });
    expect(await (await fetch(`${URL}/api/notes/count`)).json()).toEqual({ count: 1 });
    expect(await (await fetch(`${URL}/api/notes`)).json()).toMatchObject([{ body: 'first' }]);
    expect((await fetch(`${URL}/api/notes`, { method: 'POST', body: '{"body": ""}' })).status).toBe(400);
    expect((await fetch(`${URL}/api/notes`, { method: 'POST', body: 'not json' })).status).toBe(400);
    expect((await fetch(`${URL}/nope`)).status).toBe(404);
    expect(existsSync(join(dataDir, 'app.db-wal'))).toBe(true);
  });

  it('finishes an in-flight request on SIGTERM, then exits 0', async () => {
    const c = await start({ SLOW_MS: '700' });
    const slow = fetch(`${URL}/slow`).then(async (r) => [r.status, await r.text()] as const);
    await new Promise((r) => setTimeout(r, 150));
    c.kill('SIGTERM');
    expect(await slow).toEqual([200, 'slow done\n']);
    expect(await exited(c)).toBe(0);
  });

  it('refuses an invalid PORT', async () => {
    const c = spawn('node', [join(ROOT, 'example/server.js')], { env: { PATH: process.env.PATH ?? '', PORT: 'abc' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    c.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    expect(await exited(c)).toBe(1);
    expect(stderr.trim()).toBe('PORT must be a number from 1 to 65535, not "abc"');
  });
});
