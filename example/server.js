// The example app that skiff deploys by default: plain Node HTTP, notes in SQLite, a health check,
// and a graceful drain on SIGTERM so a deploy never cuts a request in half.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import Database from 'better-sqlite3';

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));
const VERSION = process.env.APP_VERSION || pkg.version;
const ENVIRONMENT = process.env.APP_ENV || 'development';
const HOST = process.env.HOST || '127.0.0.1';
const DATA_DIR = process.env.DATA_DIR || './data';
const MAX_BODY = 64 * 1024;

// Bad settings stop the app at once with one line, rather than failing later in a stranger way
// (a NaN timeout, for one, would fire at once and turn every graceful stop into exit 1).
const fail = (message) => {
  console.error(message);
  process.exit(1);
};
const wholeNumber = (name, fallback, min, max, what) => {
  const raw = process.env[name] ?? String(fallback);
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= min && n <= max)) fail(`${name} must be ${what}, not ${JSON.stringify(raw)}`);
  return n;
};
const PORT = wholeNumber('PORT', 3000, 1, 65535, 'a number from 1 to 65535');
const SHUTDOWN_TIMEOUT_MS = wholeNumber('SHUTDOWN_TIMEOUT_MS', 10_000, 0, 2 ** 31 - 1, 'a whole number of milliseconds');
const SLOW_MS = wholeNumber('SLOW_MS', 1000, 0, 2 ** 31 - 1, 'a whole number of milliseconds');

let db;
try {
  mkdirSync(DATA_DIR, { recursive: true });
  db = new Database(join(DATA_DIR, 'app.db'));
  // WAL lets readers (and an online backup) run beside the writer; busy_timeout rides out short locks.
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  db.exec('CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, created_at TEXT NOT NULL)');
} catch (error) {
  fail(`cannot open the database in ${DATA_DIR}: ${error.message}`);
}
const insertNote = db.prepare('INSERT INTO notes (body, created_at) VALUES (?, ?) RETURNING id, body, created_at');
const listNotes = db.prepare('SELECT id, body, created_at FROM notes ORDER BY id DESC LIMIT 100');
const countNotes = db.prepare('SELECT count(*) AS count FROM notes');

const started = Date.now();

const check = (fn) => {
  try {
    fn();
    return { ok: true };
  } catch (error) {
    return { ok: false, error: error.message };
  }
};

// Unique per process, also across containers (where every app is pid 1) sharing one data folder.
const INSTANCE = `${process.pid}-${randomBytes(6).toString('hex')}`;

const health = (forwarded) => {
  const checks = {
    dataDir: check(() => {
      const probe = join(DATA_DIR, `.health-${INSTANCE}`);
      writeFileSync(probe, 'ok');
      rmSync(probe);
    }),
    database: check(() => countNotes.get()),
  };
  // Lets tests (and you) see what a deploy does with a release that never becomes healthy.
  if (process.env.HEALTH_FAIL === '1') checks.forced = { ok: false, error: 'HEALTH_FAIL is set' };
  // Fails only behind a proxy (it sets X-Forwarded-For): a release that passes its direct check but not through the proxy.
  if (process.env.HEALTH_FAIL_PROXIED === '1' && forwarded) checks.forced = { ok: false, error: 'HEALTH_FAIL_PROXIED is set' };
  const ok = Object.values(checks).every((c) => c.ok);
  const memory = process.memoryUsage();
  return {
    code: ok ? 200 : 503,
    body: {
      status: ok ? 'ok' : 'fail',
      timestamp: new Date().toISOString(),
      uptime: (Date.now() - started) / 1000,
      environment: ENVIRONMENT,
      version: VERSION,
      memory: { rss: memory.rss, heapUsed: memory.heapUsed },
      checks,
    },
  };
};

// Set on SIGTERM/SIGINT; from then on every answer closes its connection (see stop below).
let stopping = false;

const send = (res, code, body) => {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(code, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    ...(stopping ? { connection: 'close' } : {}),
  });
  res.end(text);
};

const httpError = (status, message) => Object.assign(new Error(message), { status });

const readJson = (req) =>
  new Promise((resolve, reject) => {
    // Refuse early when the client announces a big body. Either way the request is not destroyed:
    // Node reads and drops the rest after we answer, so the client gets its 413 rather than a reset.
    if (Number(req.headers['content-length']) > MAX_BODY) return reject(httpError(413, 'request body over 64 KiB'));
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size <= MAX_BODY) chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > MAX_BODY) return reject(httpError(413, 'request body over 64 KiB'));
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString() || 'null'));
      } catch {
        reject(httpError(400, 'body is not JSON'));
      }
    });
    req.on('error', reject);
  });

const routes = {
  'GET /': () => [200, `hello ${VERSION} (${ENVIRONMENT})\n`],
  'GET /api/health': (req) => {
    const h = health(Boolean(req.headers['x-forwarded-for']));
    return [h.code, h.body];
  },
  'GET /api/notes': () => [200, listNotes.all()],
  'GET /api/notes/count': () => [200, countNotes.get()],
  'POST /api/notes': async (req) => {
    const input = await readJson(req);
    const body = input?.body;
    if (typeof body !== 'string' || body.length < 1 || body.length > 10_000) {
      return [400, { error: 'body must be a string of 1 to 10000 characters' }];
    }
    return [201, insertNote.get(body, new Date().toISOString())];
  },
  'GET /slow': () => new Promise((resolve) => setTimeout(() => resolve([200, 'slow done\n']), SLOW_MS)),
};

const server = createServer(async (req, res) => {
  // Split rather than new URL(): a request line like "GET //[" must get a 404, not throw.
  const path = (req.url ?? '/').split('?')[0];
  try {
    const route = routes[`${req.method} ${path}`];
    const [code, body] = route ? await route(req) : [404, { error: `no route for ${req.method} ${path}` }];
    send(res, code, body);
  } catch (error) {
    send(res, error.status ?? 500, { error: error.status ? error.message : 'internal error' });
    if (!error.status) console.error(error);
  }
});

server.on('error', (error) => {
  console.error(error.code === 'EADDRINUSE' ? `port ${PORT} is already in use` : error.message);
  process.exit(1);
});

server.listen(PORT, HOST, () => {
  console.log(`listening on http://${HOST}:${PORT} (version ${VERSION}, env ${ENVIRONMENT})`);
});

// Graceful stop: refuse new connections, let in-flight requests finish, then close the database.
// Keep-alive matters here: server.close() waits for every open connection, so idle ones are closed
// now and busy ones answer with "connection: close" (see send), else a client's pooled connection
// would hold the drain open until its keep-alive timeout.
const stop = (signal) => {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: draining`);
  server.close(() => {
    db.close();
    console.log('stopped');
    process.exit(0);
  });
  server.closeIdleConnections();
  setTimeout(() => {
    console.error(`still busy after ${SHUTDOWN_TIMEOUT_MS} ms: exiting`);
    process.exit(1);
  }, SHUTDOWN_TIMEOUT_MS).unref();
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
