/** The example app on its own: routes, health, SQLite in WAL mode, limits, and the drain on SIGTERM. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { createRequire } from 'node:module';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT } from '../support/sandbox.ts';

const SERVER = join(ROOT, 'example/server.js');

/** The few parts of better-sqlite3 used here, loaded from the example app's own node_modules. */
type SqliteDb = { pragma(source: string, options: { simple: true }): unknown; close(): void };
type SqliteCtor = new (path: string, options?: { readonly?: boolean }) => SqliteDb;
const Sqlite = createRequire(join(ROOT, 'example/package.json'))('better-sqlite3') as SqliteCtor;

interface App {
  readonly child: ChildProcess;
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly out: { stdout: string; stderr: string };
  readonly exit: Promise<number | null>;
}

const children: ChildProcess[] = [];
const dirs: string[] = [];

/** A port nobody listens on right now: the OS picks one, we release it for the app. */
const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });

/** Spawns server.js with a test environment; does not wait for it to listen. */
const spawnApp = (env: Record<string, string>, dataDir: string, port: number): App => {
  const child = spawn('node', [SERVER], {
    env: { PATH: process.env.PATH ?? '', PORT: String(port), DATA_DIR: dataDir, APP_VERSION: '9.9.9', APP_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const out = { stdout: '', stderr: '' };
  child.stdout?.on('data', (b: Buffer) => (out.stdout += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out.stderr += b.toString()));
  // 'close' rather than 'exit': by then stdout and stderr have been read to the end.
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, url: `http://127.0.0.1:${port}`, port, dataDir, out, exit };
};

/** Starts the app and polls until it answers; fails at once (with its stderr) if it exits first. */
const start = async (env: Record<string, string> = {}): Promise<App> => {
  const dataDir = mkdtempSync(join(tmpdir(), 'skiff-example-'));
  dirs.push(dataDir);
  const app = spawnApp(env, dataDir, await freePort());
  let exited = false;
  void app.exit.then(() => (exited = true));
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`example app exited before listening: ${app.out.stderr}`);
    if (await fetch(app.url).then(() => true, () => false)) return app;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`example app did not answer within 20 s: ${app.out.stderr}`);
};

/** One GET on its own keep-alive connection, resolved once the request has been handed to the OS. */
const inFlight = (url: string, agent: Agent): { sent: Promise<void>; response: Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> } => {
  let sent!: () => void;
  const sentP = new Promise<void>((r) => (sent = r));
  const response = new Promise<{ status: number; headers: IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.on('finish', () => sent());
    req.end();
  });
  return { sent: sentP, response };
};

afterEach(async () => {
  await Promise.all(
    children.splice(0).map((c) =>
      c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => (c.once('exit', r), c.kill('SIGKILL'))),
    ),
  );
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('example app', () => {
  it('shows its version and environment, and logs where it listens', async () => {
    const app = await start();
    const res = await fetch(app.url);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await res.text()).toBe('hello 9.9.9 (test)\n');
    expect(app.out.stdout).toContain(`listening on http://127.0.0.1:${app.port} (version 9.9.9, env test)`);
  });

  it('falls back to the version in its package.json', async () => {
    const app = await start({ APP_VERSION: '' });
    expect(await (await fetch(app.url)).text()).toBe('hello 1.0.0 (test)\n');
  });

  it('answers its health check with every field', async () => {
    const app = await start();
    const res = await fetch(`${app.url}/api/health`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      status: 'ok',
      environment: 'test',
      version: '9.9.9',
      uptime: expect.any(Number),
      memory: { rss: expect.any(Number), heapUsed: expect.any(Number) },
      checks: { dataDir: { ok: true }, database: { ok: true } },
    });
    expect(new Date(String(body.timestamp)).toISOString()).toBe(body.timestamp);
  });

  it('answers 503 when HEALTH_FAIL=1', async () => {
    const app = await start({ HEALTH_FAIL: '1' });
    const res = await fetch(`${app.url}/api/health`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({
      status: 'fail',
      checks: { dataDir: { ok: true }, database: { ok: true }, forced: { ok: false, error: 'HEALTH_FAIL is set' } },
    });
  });

  it('stores notes in SQLite in WAL mode', async () => {
    const app = await start();
    const post = async (body: string): Promise<Response> => fetch(`${app.url}/api/notes`, { method: 'POST', body });
    const first = await post(JSON.stringify({ body: 'first' }));
    expect(first.status).toBe(201);
    expect(await first.json()).toMatchObject({ id: 1, body: 'first', created_at: expect.any(String) });
    expect((await post(JSON.stringify({ body: 'second' }))).status).toBe(201);
    expect(await (await fetch(`${app.url}/api/notes/count`)).json()).toEqual({ count: 2 });
    // Newest first.
    expect(await (await fetch(`${app.url}/api/notes`)).json()).toMatchObject([{ body: 'second' }, { body: 'first' }]);

    expect(existsSync(join(app.dataDir, 'app.db-wal'))).toBe(true);
    const db = new Sqlite(join(app.dataDir, 'app.db'), { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      db.close();
    }
  });

  it('rejects bad input with JSON errors', async () => {
    const app = await start();
    const post = async (body: string): Promise<Response> => fetch(`${app.url}/api/notes`, { method: 'POST', body });
    for (const bad of ['{"body": ""}', '{"body": 5}', '{}', 'null', JSON.stringify({ body: 'x'.repeat(10_001) })]) {
      const res = await post(bad);
      expect(res.status, bad.slice(0, 20)).toBe(400);
      expect(await res.json()).toEqual({ error: 'body must be a string of 1 to 10000 characters' });
    }
    expect((await post(JSON.stringify({ body: 'x'.repeat(10_000) }))).status).toBe(201);
    const notJson = await post('not json');
    expect([notJson.status, await notJson.json()]).toEqual([400, { error: 'body is not JSON' }]);
    const tooBig = await post(JSON.stringify({ body: 'x'.repeat(70_000) }));
    expect([tooBig.status, await tooBig.json()]).toEqual([413, { error: 'request body over 64 KiB' }]);
    const missing = await fetch(`${app.url}/nope?x=1`);
    expect([missing.status, await missing.json()]).toEqual([404, { error: 'no route for GET /nope' }]);
    expect(await (await fetch(`${app.url}/api/notes/count`)).json()).toEqual({ count: 1 });
  });

  it('answers 404 to a path that is not a valid URL, and keeps running', async () => {
    const app = await start();
    const reply = await new Promise<string>((resolve, reject) => {
      let data = '';
      const s = connect(app.port, '127.0.0.1', () => s.write('GET //[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      s.on('data', (b: Buffer) => (data += b.toString()));
      s.on('end', () => resolve(data));
      s.on('error', reject);
    });
    expect(reply.split('\r\n')[0]).toBe('HTTP/1.1 404 Not Found');
    expect((await fetch(`${app.url}/api/health`)).status).toBe(200);
  });

  it('finishes an in-flight request on SIGTERM, closes its keep-alive connection, then exits 0', async () => {
    // SHUTDOWN_TIMEOUT_MS is below Node's 5 s keep-alive timeout: a drain that waited for the
    // client's pooled connection to time out would be forced and exit 1.
    const app = await start({ SLOW_MS: '1500', SHUTDOWN_TIMEOUT_MS: '4000' });
    const agent = new Agent({ keepAlive: true });
    try {
      const slow = inFlight(`${app.url}/slow`, agent);
      await slow.sent;
      // The slow request's bytes reached the server before this one's, so once this is answered
      // the server has read /slow too: it is in flight, with no fixed sleep.
      expect((await fetch(`${app.url}/api/health`)).status).toBe(200);
      app.child.kill('SIGTERM');
      const res = await slow.response;
      expect([res.status, res.body]).toEqual([200, 'slow done\n']);
      // Only answers sent after SIGTERM close their connection: proof the request was in flight.
      expect(res.headers.connection).toBe('close');
      expect(await app.exit).toBe(0);
      expect(app.out.stdout.trim().split('\n').slice(-2)).toEqual(['SIGTERM: draining', 'stopped']);
    } finally {
      agent.destroy();
    }
  });

  it('stops at once on SIGINT when idle', async () => {
    const app = await start();
    app.child.kill('SIGINT');
    expect(await app.exit).toBe(0);
    expect(app.out.stdout).toContain('SIGINT: draining\nstopped\n');
  });

  it('refuses an invalid PORT', async () => {
    const base = mkdtempSync(join(tmpdir(), 'skiff-example-'));
    dirs.push(base);
    const dataDir = join(base, 'data');
    for (const port of ['abc', '0', '70000', '0x10', '']) {
      const app = spawnApp({ PORT: port }, dataDir, 0);
      expect(await app.exit, port).toBe(1);
      expect(app.out.stderr).toBe(`PORT must be a number from 1 to 65535, not ${JSON.stringify(port)}\n`);
    }
    // It stops before touching DATA_DIR.
    expect(existsSync(dataDir)).toBe(false);
  }, 15_000); // an app that accepted a bad PORT would listen instead of exiting

  it('says so when its port is in use', async () => {
    const first = await start();
    const second = spawnApp({}, first.dataDir, first.port);
    expect(await second.exit).toBe(1);
    expect(second.out.stderr).toBe(`port ${first.port} is already in use\n`);
  });
});
