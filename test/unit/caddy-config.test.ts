/**
 * The Caddy driver: the JSON it sends (route, handlers, TLS policy, certificate files, access log),
 * the changes it plans against a config, and its steps against a fake admin API that applies them
 * the way Caddy 2.6 does (PUT makes missing objects and inserts into lists, PATCH replaces, POST
 * appends, DELETE removes; /id/ paths by `@id`).
 */
import { describe, expect, it } from 'vitest';
import { acmeDirectory, tlsAnswers } from '../../lib/commands/proxy.ts';
import { render, type Cmd } from '../../lib/core/cmd.ts';
import type { ExecOptions, ExecResult, Host } from '../../lib/host/host.ts';
import {
  CADDY_CERT_SECONDS,
  caddy,
  caddyCertFiles,
  caddyHandlers,
  caddyHandlersRoute,
  caddyLogger,
  caddyLoggerNames,
  caddyPolicy,
  caddyRoute,
  caddyRoutes,
  caddyServer,
  caddyConflict,
  planCaddy,
  type CaddyOp,
} from '../../lib/proxy/caddy.ts';
import { fakeClock, testConfig } from '../support/flow-ctx.ts';
import { words } from './shell-words.ts';

const HTTPS = { DEPLOY_PUBLIC_URL: 'https://app.example.com' };
const ACME = { ...HTTPS, DEPLOY_ACME_CA: 'https://127.0.0.1:14000/dir', DEPLOY_ACME_EMAIL: 'ops@example.com', DEPLOY_ACME_CA_ROOT: '/etc/pebble/ca.pem' };
const FILES = { ...HTTPS, DEPLOY_TLS_CERT: '/etc/ssl/app.pem', DEPLOY_TLS_KEY: '/etc/ssl/app.key' };
const ALL_HEADERS = {
  'Strict-Transport-Security': ['max-age=31536000'],
  'X-Content-Type-Options': ['nosniff'],
  'X-Frame-Options': ['SAMEORIGIN'],
  'Referrer-Policy': ['strict-origin-when-cross-origin'],
};

type Json = Record<string, unknown>;
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

describe('the JSON skiff sends Caddy', () => {
  it('an http URL: a route of handlers (nosniff, frame and referrer headers, no HSTS; zstd then gzip), then the route to the slot', () => {
    expect(caddyRoute(testConfig(), 3001)).toEqual({
      '@id': 'skiff-hello-staging',
      match: [{ host: ['127.0.0.1'] }],
      // Both slots: the second while the flag file is there (a stat per request), else the first.
      handle: [
        {
          handler: 'subroute',
          routes: [
            { match: [{ file: { root: '/var/lib/skiff/hello-staging', try_files: ['/live-second'] } }], handle: [{ handler: 'reverse_proxy', upstreams: [{ dial: '127.0.0.1:3002' }] }], terminal: true },
            { handle: [{ handler: 'reverse_proxy', upstreams: [{ dial: '127.0.0.1:3001' }] }] },
          ],
        },
      ],
      terminal: true,
    });
    // The same route whichever slot is live; DEPLOY_SWITCH_DIR moves the flag.
    expect(caddyRoute(testConfig(), 3002)).toEqual(caddyRoute(testConfig(), 3001));
    expect(at(caddyRoute(testConfig({ DEPLOY_SWITCH_DIR: '/srv/flags/' }), 3001), 'handle', '0', 'routes', '0', 'match', '0', 'file', 'root')).toBe('/srv/flags/hello-staging');
    // Not terminal: its handlers wrap the proxy of the route after it.
    expect(caddyHandlersRoute(testConfig())).toEqual({
      '@id': 'skiff-hello-staging-handlers',
      match: [{ host: ['127.0.0.1'] }],
      handle: [
        {
          handler: 'headers',
          response: {
            set: { 'X-Content-Type-Options': ['nosniff'], 'X-Frame-Options': ['SAMEORIGIN'], 'Referrer-Policy': ['strict-origin-when-cross-origin'] },
            deferred: true,
          },
        },
        { handler: 'encode', encodings: { zstd: {}, gzip: {} }, prefer: ['zstd', 'gzip'], minimum_length: 512 },
      ],
    });
    expect(caddyServer(testConfig(), 3001)).toMatchObject({ listen: [':8080'], routes: [caddyHandlersRoute(testConfig()), caddyRoute(testConfig(), 3001)], automatic_https: { disable: true } });
    expect(caddyPolicy(testConfig())).toBeUndefined();
    expect(caddyCertFiles(testConfig())).toBeUndefined();
  });

  it('an https URL: HSTS too; a server on the URL port with HTTP/1.1, 2 and 3 and automatic HTTPS on', () => {
    const cfg = testConfig(HTTPS);
    expect(caddyHandlers(cfg)[0]).toEqual({ handler: 'headers', response: { set: ALL_HEADERS, deferred: true } });
    const server = caddyServer(cfg, 3002);
    expect(server).toEqual({
      listen: [':443'],
      routes: [caddyHandlersRoute(cfg), caddyRoute(cfg, 3002)],
      protocols: ['h1', 'h2', 'h3'],
      logs: { logger_names: { 'app.example.com': 'skiff_hello_staging', 'app.example.com:443': 'skiff_hello_staging' }, skip_unmapped_hosts: true },
    });
  });

  it('ACME: a policy for the host with the directory, the email and the root of the directory', () => {
    expect(caddyPolicy(testConfig(ACME))).toEqual({
      '@id': 'skiff-hello-staging-tls',
      subjects: ['app.example.com'],
      issuers: [{ module: 'acme', ca: 'https://127.0.0.1:14000/dir', email: 'ops@example.com', trusted_roots_pem_files: ['/etc/pebble/ca.pem'] }],
    });
    // No DEPLOY_ACME_CA: the issuer names no directory, and Caddy's ACME issuer uses Let's Encrypt's.
    expect(caddyPolicy(testConfig(HTTPS))).toEqual({ '@id': 'skiff-hello-staging-tls', subjects: ['app.example.com'], issuers: [{ module: 'acme' }] });
    expect(caddyCertFiles(testConfig(ACME))).toBeUndefined();
  });

  it('given files: loaded, and no policy', () => {
    const cfg = testConfig(FILES);
    expect(caddyCertFiles(cfg)).toEqual({ '@id': 'skiff-hello-staging-cert', certificate: '/etc/ssl/app.pem', key: '/etc/ssl/app.key' });
    expect(caddyPolicy(cfg)).toBeUndefined();
  });

  it('the headers and encodings chosen, in the order given; none of either leaves the proxy alone', () => {
    const cfg = testConfig({ ...HTTPS, DEPLOY_HEADERS: 'hsts,referrer', DEPLOY_COMPRESSION: 'gzip' });
    expect(caddyHandlers(cfg)).toEqual([
      { handler: 'headers', response: { set: { 'Strict-Transport-Security': ['max-age=31536000'], 'Referrer-Policy': ['strict-origin-when-cross-origin'] }, deferred: true } },
      { handler: 'encode', encodings: { gzip: {} }, prefer: ['gzip'], minimum_length: 512 },
    ]);
    expect(caddyHandlers(testConfig({ DEPLOY_HEADERS: 'none', DEPLOY_COMPRESSION: 'none' }))).toEqual([]);
    expect(caddyRoutes(testConfig({ DEPLOY_HEADERS: 'none', DEPLOY_COMPRESSION: 'none' }), 3001)).toEqual([caddyRoute(testConfig(), 3001)]);
    // HSTS alone with an http URL: nothing to set.
    expect(caddyHandlers(testConfig({ DEPLOY_HEADERS: 'hsts', DEPLOY_COMPRESSION: 'none' }))).toEqual([]);
  });

  it('the access log: JSON to <dir>/<app>-<env>.access.log, from the route logger only', () => {
    expect(caddyLogger(testConfig())).toEqual({
      writer: { output: 'file', filename: '/var/log/caddy/hello-staging.access.log' },
      encoder: { format: 'json' },
      include: ['http.log.access.skiff_hello_staging'],
    });
    expect(caddyLogger(testConfig({ DEPLOY_ACCESS_LOG_DIR: '/srv/logs/' }))).toMatchObject({ writer: { filename: '/srv/logs/hello-staging.access.log' } });
    expect(caddyLogger(testConfig({ DEPLOY_ACCESS_LOG: 'off' }))).toBeUndefined();
    expect(caddyServer(testConfig({ DEPLOY_ACCESS_LOG: 'off' }), 3001)).not.toHaveProperty('logs');
    expect(caddyLoggerNames(testConfig({ DEPLOY_PUBLIC_URL: 'http://[::1]:8080' }))).toEqual({ '[::1]': 'skiff_hello_staging', '[::1]:8080': 'skiff_hello_staging' });
  });

  it('DEPLOY_ACME_CA_ROOT needs DEPLOY_ACME_CA', () => {
    expect(() => testConfig({ ...HTTPS, DEPLOY_ACME_CA_ROOT: '/etc/ca.pem' })).toThrow(/DEPLOY_ACME_CA_ROOT .*set with DEPLOY_ACME_CA/);
    expect(() => testConfig({ ...ACME, DEPLOY_ACME_CA_ROOT: 'ca.pem' })).toThrow(/DEPLOY_ACME_CA_ROOT/);
    expect(() => testConfig({ DEPLOY_ACCESS_LOG_DIR: 'logs' })).toThrow(/DEPLOY_ACCESS_LOG_DIR/);
  });
});

// A fake of Caddy's admin API over an in-memory config, as Caddy 2.6's unsyncedConfigAccess does it.
const pathOfId = (node: unknown, id: string, at: string[] = []): string[] | undefined => {
  if (Array.isArray(node)) {
    for (const [i, v] of node.entries()) {
      const p = pathOfId(v, id, [...at, String(i)]);
      if (p) return p;
    }
  } else if (node && typeof node === 'object') {
    if ((node as Json)['@id'] === id) return at;
    for (const [k, v] of Object.entries(node as Json)) {
      const p = pathOfId(v, id, [...at, k]);
      if (p) return p;
    }
  }
  return undefined;
};

/** Applies one admin API request to `root` ({ config }); returns the HTTP status and body. */
const caddyAccess = (root: Json, method: string, path: string, body: unknown): [number, string] => {
  let parts = path.replace(/^\/|\/$/g, '').split('/').map(decodeURIComponent);
  const ellipsis = parts.at(-1) === '...';
  if (ellipsis) parts = parts.slice(0, -1);
  if (parts[0] === 'id') {
    const found = pathOfId(root.config, parts[1] ?? '');
    if (!found) return [404, '{"error":"unknown object ID"}'];
    parts = ['config', ...found, ...parts.slice(2)];
  }
  let node: unknown = root;
  for (const [i, part] of parts.entries()) {
    const last = i === parts.length - 1;
    if (Array.isArray(node)) {
      const idx = Number(part);
      if (!last) {
        node = node[idx];
        continue;
      }
      if (method === 'GET') return idx < node.length ? [200, JSON.stringify(node[idx])] : [400, 'out of bounds'];
      if (method === 'PUT' && idx < node.length) node.splice(idx, 0, body);
      else if (method === 'PATCH' && idx < node.length) node[idx] = body;
      else if (method === 'DELETE' && idx < node.length) node.splice(idx, 1);
      else return [400, `array index out of bounds: ${part}`];
      return [200, ''];
    }
    if (!node || typeof node !== 'object') return [400, `invalid traversal path at: ${parts.slice(0, i + 1).join('/')}`];
    const obj = node as Json;
    if (!last) {
      if ((obj[part] === undefined || obj[part] === null) && method === 'PUT') obj[part] = {};
      node = obj[part];
      continue;
    }
    if (method === 'GET') return obj[part] === undefined ? [200, 'null'] : [200, JSON.stringify(obj[part])];
    if (method === 'POST') {
      const list = obj[part];
      if (Array.isArray(list)) list.push(...(ellipsis ? (body as unknown[]) : [body]));
      else obj[part] = body;
    } else if (method === 'PUT') {
      if (obj[part] !== undefined) return [409, `key already exists: ${part}`];
      obj[part] = body;
    } else if (method === 'PATCH') {
      if (obj[part] === undefined) return [404, `key does not exist: ${part}`];
      obj[part] = body;
    } else if (method === 'DELETE') delete obj[part];
    return [200, ''];
  }
  return [400, 'no path'];
};

interface FakeCaddy extends Host {
  readonly root: { config: unknown };
  /** The changes made, as `METHOD path`. */
  readonly changes: string[];
  /** Every command, rendered. */
  readonly commands: string[];
  /** The switch flag's state after each change of it (`second`, `first`). */
  readonly flags: string[];
}

/**
 * A host whose curl talks to the fake admin API; `handshake` answers each certificate probe (curl
 * exit status), `directory` the ACME directory's answer.
 */
const fakeCaddy = (config: unknown, opts: { handshake?: () => number; directory?: ExecResult; refuse?: RegExp } = {}): FakeCaddy => {
  const root = { config: clone(config) };
  const changes: string[] = [];
  const commands: string[] = [];
  const flags: string[] = [];
  let flag: 'none' | 'first' | 'second' = 'none';
  return {
    name: 'fake',
    root,
    changes,
    commands,
    flags,
    async exec(command: Cmd, options: ExecOptions = {}): Promise<ExecResult> {
      const rendered = render(command);
      commands.push(rendered);
      // The switch flag (lib/commands/switch-flag.ts): read, made, removed; its folder reachable.
      if (rendered.includes('ps -C caddy')) return { code: 0, stdout: 'caddy\n', stderr: '' };
      if (rendered.includes('echo ok')) return { code: 0, stdout: 'ok\n', stderr: '' };
      if (rendered.includes('echo second')) return { code: 0, stdout: `${flag}\n`, stderr: '' };
      if (rendered.includes('live-second')) {
        flag = rendered.includes('mv -f') ? 'second' : 'first';
        flags.push(flag);
        return { code: 0, stdout: '', stderr: '' };
      }
      const args = words(rendered).slice(4);
      if (rendered.includes('--resolve')) return { code: 0, stdout: `exit=${opts.handshake?.() ?? 0}\n`, stderr: '' };
      if (rendered.includes('--cacert "$3"')) return opts.directory ?? { code: 0, stdout: '{"newOrder":"x"}', stderr: '' };
      if (rendered.includes('tcp_migrate_req')) return { code: 0, stdout: '1\n', stderr: '' };
      const [method = '', , path = ''] = args;
      const body = typeof options.stdin === 'string' ? (JSON.parse(options.stdin) as unknown) : undefined;
      if (method !== 'GET') changes.push(`${method} ${path}`);
      if (opts.refuse?.test(`${method} ${path}`)) return { code: 0, stdout: 'loading new config: bad\n400', stderr: '' };
      const [status, text] = caddyAccess(root as Json, method, path, body);
      return { code: 0, stdout: `${text}\n${status}`, stderr: '' };
    },
    put: () => Promise.reject(new Error('Caddy is driven through its API only')),
    get: () => Promise.resolve(undefined),
    close: () => Promise.resolve(),
  };
};

const ADMIN_ONLY = { admin: { listen: '127.0.0.1:2019' } };
/** Someone else's site on :443, with a catch-all route last and a catch-all automation policy. */
const SHARED = {
  admin: { listen: '127.0.0.1:2019' },
  apps: {
    http: {
      servers: {
        srv0: {
          listen: [':443'],
          routes: [
            { '@id': 'blog', match: [{ host: ['blog.example.com'] }], handle: [{ handler: 'static_response', body: 'blog' }], terminal: true },
            { handle: [{ handler: 'static_response', body: 'catch-all' }] },
          ],
          logs: { logger_names: { 'blog.example.com': 'blog' } },
        },
      },
    },
    tls: { automation: { policies: [{ issuers: [{ module: 'acme', email: 'me@example.com' }] }] } },
  },
  logging: { logs: { blog: { writer: { output: 'stdout' } } } },
};

const shape = (ops: readonly CaddyOp[]) => ops.map((o) => `${o.method} ${o.path}`);
const at = (v: unknown, ...keys: (string | number)[]): unknown => keys.reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Json)[k as string] : undefined), v);

describe('planCaddy: what a switch changes', () => {
  it('the first deploy with ACME on a Caddy with no apps: policy, then log, then a server of its own', () => {
    const plan = planCaddy(ADMIN_ONLY, testConfig(ACME), 3001);
    expect(shape(plan.ops)).toEqual([
      'PUT /config/apps/tls/automation/policies',
      'PUT /config/logging/logs/skiff_hello_staging',
      'PUT /config/logging/logs/default/exclude',
      'PUT /config/apps/http/servers/skiff_443',
    ]);
    expect(plan.ops[0]?.body).toEqual([caddyPolicy(testConfig(ACME))]);
    expect(plan.ops[2]?.body).toEqual(['http.log.access.skiff_hello_staging']);
    expect(plan).toMatchObject({ awaitCertificate: true, address: '127.0.0.1', undoTls: [] });
  });

  it('once applied, the next switch with the same settings loads no config: the flag is the switch', async () => {
    const host = fakeCaddy(ADMIN_ONLY);
    const cfg = testConfig(ACME);
    await caddy(cfg, fakeClock()).switchTo(host, 3001);
    host.changes.length = 0;
    await caddy(cfg, fakeClock()).switchTo(host, 3002);
    expect(host.changes).toEqual([]);
    expect(host.flags).toEqual(['first', 'second']);
    expect(await caddy(cfg).current(host)).toBe(3002);
    await caddy(cfg, fakeClock()).switchTo(host, 3001);
    expect(host.changes).toEqual([]);
    expect(await caddy(cfg).current(host)).toBe(3001);
    // Already there: nothing is sent (each change is a reload of Caddy's config).
    expect(planCaddy(host.root.config, cfg, 3002).ops).toEqual([]);
  });

  it("changed headers rewrite the handlers' route only; the flag switches as always", async () => {
    const host = fakeCaddy(SHARED);
    await caddy(testConfig(ACME), fakeClock()).switchTo(host, 3001);
    const routes = () => at(host.root.config, 'apps', 'http', 'servers', 'srv0', 'routes') as Json[];
    const others = clone(routes().slice(2));
    host.changes.length = 0;
    const cfg = testConfig({ ...ACME, DEPLOY_HEADERS: 'nosniff' });
    await caddy(cfg, fakeClock()).switchTo(host, 3002);
    expect(host.changes).toEqual(['PATCH /id/skiff-hello-staging-handlers']);
    expect(routes().slice(0, 2)).toEqual(caddyRoutes(cfg, 3002));
    expect(routes().slice(2)).toEqual(others);
    // No header and no compression: the handlers' route goes; some again: it comes back right before skiff's route.
    const none = testConfig({ ...ACME, DEPLOY_HEADERS: 'none', DEPLOY_COMPRESSION: 'none' });
    await caddy(none, fakeClock()).switchTo(host, 3002);
    expect(routes().map((r) => r['@id'] ?? 'catch-all')).toEqual(['skiff-hello-staging', 'blog', 'catch-all']);
    host.changes.length = 0;
    await caddy(testConfig(ACME), fakeClock()).switchTo(host, 3001);
    expect(host.changes).toEqual(['PUT /config/apps/http/servers/srv0/routes/0']);
    expect(routes().slice(0, 2)).toEqual(caddyRoutes(testConfig(ACME), 3001));
  });

  it("on someone else's server on the port: first among its routes, its policies and logger names kept", async () => {
    const host = fakeCaddy(SHARED);
    await caddy(testConfig(ACME), fakeClock()).switchTo(host, 3001);
    expect(host.changes).toEqual([
      'PUT /config/apps/tls/automation/policies/0',
      'PUT /config/logging/logs/skiff_hello_staging',
      'PUT /config/logging/logs/default/exclude',
      'PUT /config/apps/http/servers/srv0/routes/0',
      'PUT /config/apps/http/servers/srv0/routes/0',
      'PUT /config/apps/http/servers/srv0/logs/logger_names/app.example.com',
      'PUT /config/apps/http/servers/srv0/logs/logger_names/app.example.com%3A443',
    ]);
    const c = host.root.config;
    expect((at(c, 'apps', 'http', 'servers', 'srv0', 'routes') as Json[]).map((r) => r['@id'] ?? 'catch-all')).toEqual(['skiff-hello-staging-handlers', 'skiff-hello-staging', 'blog', 'catch-all']);
    expect((at(c, 'apps', 'tls', 'automation', 'policies') as Json[]).map((p) => p['@id'] ?? 'catch-all')).toEqual(['skiff-hello-staging-tls', 'catch-all']);
    expect(at(c, 'apps', 'http', 'servers', 'srv0', 'logs')).toEqual({
      logger_names: { 'blog.example.com': 'blog', 'app.example.com': 'skiff_hello_staging', 'app.example.com:443': 'skiff_hello_staging' },
    });
    expect(at(c, 'logging', 'logs', 'blog')).toEqual({ writer: { output: 'stdout' } });
  });

  it('a server that logged nothing logs only skiff host', () => {
    const noLogs = clone(SHARED);
    delete (noLogs.apps.http.servers.srv0 as Partial<typeof noLogs.apps.http.servers.srv0>).logs;
    const plan = planCaddy(noLogs, testConfig(ACME), 3001);
    expect(plan.ops.find((o) => o.path === '/config/apps/http/servers/srv0/logs')?.body).toEqual({
      logger_names: { 'app.example.com': 'skiff_hello_staging', 'app.example.com:443': 'skiff_hello_staging' },
      skip_unmapped_hosts: true,
    });
  });

  it("a route of an older skiff (no handlers' route): the handlers' route goes right before it, and the route is rewritten with both slots", () => {
    const old = clone(SHARED);
    old.apps.http.servers.srv0.routes.unshift({
      '@id': 'skiff-hello-staging',
      match: [{ host: ['127.0.0.1'] }],
      handle: [{ handler: 'reverse_proxy', upstreams: [{ dial: '127.0.0.1:3001' }] } as never],
      terminal: true,
    });
    old.apps.http.servers.srv0.listen = [':8080'];
    const plan = planCaddy(old, testConfig({ DEPLOY_ACCESS_LOG: 'off' }), 3002);
    expect(shape(plan.ops)).toEqual(['PUT /config/apps/http/servers/srv0/routes/0', 'PATCH /id/skiff-hello-staging']);
    expect(plan.ops[1]?.body).toEqual(caddyRoute(testConfig(), 3002));
    // Another host in the URL: the route is replaced whole.
    expect(shape(planCaddy(old, testConfig({ DEPLOY_ACCESS_LOG: 'off', DEPLOY_PUBLIC_URL: 'http://localhost:8080', DEPLOY_HEADERS: 'none', DEPLOY_COMPRESSION: 'none' }), 3002).ops)).toEqual(['PATCH /id/skiff-hello-staging']);
  });

  it('from ACME to given files: the files load first, the policy goes last; nothing to wait for', async () => {
    const host = fakeCaddy(ADMIN_ONLY);
    await caddy(testConfig(ACME), fakeClock()).switchTo(host, 3001);
    const plan = planCaddy(host.root.config, testConfig(FILES), 3002);
    expect(shape(plan.ops)).toEqual(['PUT /config/apps/tls/certificates/load_files', 'DELETE /id/skiff-hello-staging-tls']);
    expect(plan.awaitCertificate).toBe(false);
  });

  it('from given files to ACME: the policy first, the files dropped last, and put back if no certificate comes', async () => {
    const host = fakeCaddy(ADMIN_ONLY);
    await caddy(testConfig(FILES), fakeClock()).switchTo(host, 3001);
    const plan = planCaddy(host.root.config, testConfig(ACME), 3002);
    expect(shape(plan.ops)).toEqual(['PUT /config/apps/tls/automation/policies', 'DELETE /id/skiff-hello-staging-cert']);
    expect(plan.awaitCertificate).toBe(true);
    expect(shape(plan.undoTls)).toEqual(['POST /config/apps/tls/certificates/load_files', 'DELETE /id/skiff-hello-staging-tls']);
  });

  it('a changed ACME directory: the policy is replaced, and the old one is what undo puts back', async () => {
    const host = fakeCaddy(ADMIN_ONLY);
    await caddy(testConfig(ACME), fakeClock()).switchTo(host, 3001);
    const old = at(host.root.config, 'apps', 'tls', 'automation', 'policies', 0);
    const plan = planCaddy(host.root.config, testConfig({ ...ACME, DEPLOY_ACME_CA: 'https://acme.example.net/dir' }), 3002);
    expect(shape(plan.ops)).toEqual(['PATCH /id/skiff-hello-staging-tls']);
    expect(plan.undoTls).toEqual([{ method: 'PATCH', path: '/id/skiff-hello-staging-tls', body: old, what: 'put the TLS policy skiff-hello-staging-tls back' }]);
    // keepTls (the switch back after the certificate did not come): the TLS settings are left alone.
    expect(shape(planCaddy(host.root.config, testConfig({ ...ACME, DEPLOY_ACME_CA: 'https://acme.example.net/dir' }), 3002, { keepTls: true }).ops)).toEqual([
      ]);
  });

  it("the access log turned off: skiff's logger, its exclusion and its logger names go; others' stay", async () => {
    const host = fakeCaddy(SHARED);
    await caddy(testConfig(ACME), fakeClock()).switchTo(host, 3001);
    await caddy(testConfig({ ...ACME, DEPLOY_ACCESS_LOG: 'off' }), fakeClock()).switchTo(host, 3002);
    const c = host.root.config;
    expect(at(c, 'logging', 'logs')).toEqual({ blog: { writer: { output: 'stdout' } }, default: { exclude: [] } });
    expect(at(c, 'apps', 'http', 'servers', 'srv0', 'logs')).toEqual({ logger_names: { 'blog.example.com': 'blog' } });
  });

  it('the URL moved to another port: the route leaves the old server for a server on the new one', () => {
    const host = fakeCaddy(ADMIN_ONLY);
    const plan = planCaddy(
      { apps: { http: { servers: { skiff_8080: { listen: [':8080'], routes: [caddyRoute(testConfig(), 3001)] } } } } },
      testConfig({ DEPLOY_PUBLIC_URL: 'http://127.0.0.1:8081', DEPLOY_ACCESS_LOG: 'off' }),
      3002,
    );
    expect(shape(plan.ops)).toEqual(['DELETE /id/skiff-hello-staging', 'PUT /config/apps/http/servers/skiff_8081']);
    expect(plan.ops[1]?.body).toMatchObject({ listen: [':8081'], routes: caddyRoutes(testConfig({ DEPLOY_PUBLIC_URL: 'http://127.0.0.1:8081' }), 3002) });
    expect(host.changes).toEqual([]);
  });

  it('asks for the certificate where the server listens', () => {
    const config = { apps: { http: { servers: { a: { listen: ['tcp/192.0.2.7:443'], routes: [] } } } } };
    expect(planCaddy(config, testConfig(ACME), 3001).address).toBe('192.0.2.7');
    expect(shape(planCaddy(config, testConfig(ACME), 3001).ops)).toContain('POST /config/apps/http/servers/a/routes/...');
  });
});

describe('the Caddy driver on a host', () => {
  it('waits until Caddy has the certificate, polling the handshake', async () => {
    const answers = [35, 35, 35, 0];
    const host = fakeCaddy(ADMIN_ONLY, { handshake: () => answers.shift() ?? 0 });
    const clock = fakeClock();
    await caddy(testConfig(ACME), clock).switchTo(host, 3001);
    const probes = host.commands.filter((c) => c.includes('--resolve'));
    expect(probes).toHaveLength(4);
    expect(words(probes[0] ?? '').slice(4)).toEqual(['app.example.com', '443', '127.0.0.1', '5']);
    expect(clock.sleeps).toEqual([500, 500, 500]);
  });

  it('no certificate within the deadline: the old policy is put back, the switch back leaves TLS alone (exit 1)', async () => {
    const host = fakeCaddy(ADMIN_ONLY);
    await caddy(testConfig(ACME), fakeClock()).switchTo(host, 3001);
    const served = clone(at(host.root.config, 'apps', 'tls'));
    let handshake = 35;
    const failing = fakeCaddy(host.root.config, { handshake: () => handshake });
    const clock = fakeClock();
    const driver = caddy(testConfig({ ...ACME, DEPLOY_ACME_CA: 'https://acme.example.net/dir' }), clock);
    const error = await driver.switchTo(failing, 3002).then(
      () => undefined,
      (e: unknown) => e as Error & { exitCode: number },
    );
    expect(error?.message).toBe(
      `fake: Caddy got no certificate for app.example.com from https://acme.example.net/dir within ${CADDY_CERT_SECONDS}s (Caddy's log says why, e.g. journalctl -u caddy); the TLS settings that served before are back`,
    );
    expect(error?.exitCode).toBe(1);
    expect(clock.elapsed()).toBeGreaterThanOrEqual(CADDY_CERT_SECONDS * 1000);
    expect(at(failing.root.config, 'apps', 'tls')).toEqual(served);
    failing.changes.length = 0;
    handshake = 0;
    await driver.switchTo(failing, 3001);
    expect(failing.changes).toEqual([]);
  });

  it('check asks a new ACME directory from the host, with its root, and stops before any change when it does not answer', async () => {
    const cfg = testConfig(ACME);
    const host = fakeCaddy(ADMIN_ONLY, { directory: { code: 7, stdout: '', stderr: 'curl: (7) Failed to connect to 127.0.0.1 port 14000: Connection refused' } });
    await expect(caddy(cfg).check(host)).rejects.toThrow(
      'fake: the ACME directory https://127.0.0.1:14000/dir does not answer from the host (curl: (7) Failed to connect to 127.0.0.1 port 14000: Connection refused), so Caddy could not get a certificate for app.example.com from it: fix DEPLOY_ACME_CA or DEPLOY_ACME_CA_ROOT (docs/proxies.md#tls); nothing was changed',
    );
    expect(host.changes).toEqual([]);
    const asked = host.commands.find((c) => c.includes('--cacert'));
    expect(words(asked ?? '').slice(4)).toEqual(['https://127.0.0.1:14000/dir', '10', '/etc/pebble/ca.pem']);
    const html = fakeCaddy(ADMIN_ONLY, { directory: { code: 0, stdout: '<html>hello</html>', stderr: '' } });
    await expect(caddy(cfg).check(html)).rejects.toThrow(/\(its answer is not an ACME directory\)/);
  });

  it('check asks no directory when the policy is as wanted, nor with given files', async () => {
    const host = fakeCaddy(ADMIN_ONLY);
    await caddy(testConfig(ACME), fakeClock()).switchTo(host, 3001);
    host.commands.length = 0;
    await caddy(testConfig(ACME)).check(host);
    await caddy(testConfig(FILES)).check(host);
    expect(host.commands.filter((c) => c.includes('--cacert'))).toEqual([]);
  });

  it('a route of an older skiff: current reads its port; the first switch sets the flag, then loads the route once; a refused load puts the flag back', async () => {
    const old = {
      apps: {
        http: {
          servers: {
            skiff_8080: {
              listen: [':8080'],
              routes: [{ '@id': 'skiff-hello-staging', match: [{ host: ['127.0.0.1'] }], handle: [{ handler: 'reverse_proxy', upstreams: [{ dial: '127.0.0.1:3001' }] }], terminal: true }],
            },
          },
        },
      },
    };
    const cfg = testConfig({ DEPLOY_ACCESS_LOG: 'off', DEPLOY_HEADERS: 'none', DEPLOY_COMPRESSION: 'none' });
    const refusing = fakeCaddy(old, { refuse: /^PATCH \/id\/skiff-hello-staging$/ });
    expect(await caddy(cfg).current(refusing)).toBe(3001);
    await expect(caddy(cfg, fakeClock()).switchTo(refusing, 3002)).rejects.toThrow(/Caddy refused to update the route skiff-hello-staging/);
    expect(refusing.flags).toEqual(['second', 'first']);
    expect(await caddy(cfg).current(refusing)).toBe(3001);
    const host = fakeCaddy(old);
    await caddy(cfg, fakeClock()).switchTo(host, 3002);
    expect(host.changes).toEqual(['PATCH /id/skiff-hello-staging']);
    expect(host.flags).toEqual(['second']);
    expect(await caddy(cfg).current(host)).toBe(3002);
    // From then on: the flag alone, both ways.
    host.changes.length = 0;
    await caddy(cfg, fakeClock()).switchTo(host, 3001);
    expect(host.changes).toEqual([]);
    expect(await caddy(cfg).current(host)).toBe(3001);
  });

  it("Caddy refusing a change (a certificate file it cannot load): its reason in the message, and nothing after it is sent", async () => {
    const host = fakeCaddy(ADMIN_ONLY, { refuse: /load_files/ });
    await expect(caddy(testConfig(FILES), fakeClock()).switchTo(host, 3001)).rejects.toThrow(
      'Caddy refused to load the certificate /etc/ssl/app.pem with the key /etc/ssl/app.key (HTTP 400): loading new config: bad',
    );
    expect(host.changes).toEqual(['PUT /config/apps/tls/certificates/load_files']);
  });
});

describe('the commands it runs', () => {
  const args = (c: Cmd) => words(render(c)).slice(4);
  it('quotes every value', () => {
    expect(args(tlsAnswers("a'b.example", 443, '127.0.0.1', 5))).toEqual(["a'b.example", '443', '127.0.0.1', '5']);
    expect(args(acmeDirectory('https://h/dir?$(x)', undefined, 10))).toEqual(['https://h/dir?$(x)', '10', '']);
  });
});

describe('several envs on one host: routes by path prefix', () => {
  const env = (name: string, url: string, extra: Record<string, string> = {}) =>
    testConfig({ DEPLOY_PROXY: 'caddy', ...extra, DEPLOY_PUBLIC_URL: url, DEPLOY_HEALTH_PATH: `${new URL(url).pathname.replace(/\/$/, '')}/health` }, name);
  const routes = (host: FakeCaddy): Json[] => (at(host.root.config, 'apps', 'http', 'servers', 'skiff_80', 'routes') as Json[] | undefined) ?? [];
  /** The @id of the first terminal route Caddy would take for a request: matchers as Caddy 2.6 reads host and path. */
  const routeFor = (host: FakeCaddy, name: string, path: string): unknown => {
    const hit = (m: Json) =>
      (m.host as string[]).includes(name) &&
      (m.path === undefined || (m.path as string[]).some((p) => (p.endsWith('/*') ? path.startsWith(p.slice(0, -1)) : path === p)));
    return routes(host).find((r) => r.terminal === true && (r.match as Json[]).some(hit))?.['@id'];
  };
  const deploy = async (host: FakeCaddy, cfg: ReturnType<typeof env>, port = 3001) => {
    const driver = caddy(cfg, fakeClock());
    await driver.check(host);
    await driver.switchTo(host, port);
  };

  it('a route with a prefix matches the prefix and all below it; no logger of its own', () => {
    const cfg = env('api', 'http://example.com/api');
    expect(caddyRoute(cfg, 3001)).toMatchObject({ match: [{ host: ['example.com'], path: ['/api', '/api/*'] }] });
    expect(caddyHandlersRoute(cfg)).toMatchObject({ match: [{ host: ['example.com'], path: ['/api', '/api/*'] }] });
    expect(caddyLogger(cfg)).toBeUndefined();
    expect(caddyRoute(env('front', 'http://example.com'), 3001)).toMatchObject({ match: [{ host: ['example.com'] }] });
  });

  it.each([
    ['root first', ['front', 'api', 'v1', 'docs']],
    ['root last', ['v1', 'api', 'docs', 'front']],
    ['mixed', ['api', 'front', 'v1', 'docs']],
  ])('the most specific prefix wins whatever the order of the first deploys (%s)', async (_, order) => {
    const cfgs: Record<string, ReturnType<typeof env>> = {
      front: env('front', 'http://example.com'),
      api: env('api', 'http://example.com/api'),
      v1: env('v1', 'http://example.com/api/v1'),
      docs: env('docs', 'http://example.com/docs'),
    };
    const host = fakeCaddy(ADMIN_ONLY);
    for (const name of order) await deploy(host, cfgs[name] as ReturnType<typeof env>);
    expect(routeFor(host, 'example.com', '/')).toBe('skiff-hello-front');
    expect(routeFor(host, 'example.com', '/apix')).toBe('skiff-hello-front');
    expect(routeFor(host, 'example.com', '/api')).toBe('skiff-hello-api');
    expect(routeFor(host, 'example.com', '/api/notes')).toBe('skiff-hello-api');
    expect(routeFor(host, 'example.com', '/api/v1')).toBe('skiff-hello-v1');
    expect(routeFor(host, 'example.com', '/api/v1/x')).toBe('skiff-hello-v1');
    expect(routeFor(host, 'example.com', '/docs/a')).toBe('skiff-hello-docs');
    // Each env's handlers' route sits right before its route.
    const ids = routes(host).map((r) => r['@id'] as string);
    for (const [i, id] of ids.entries()) if (id.endsWith('-handlers')) expect(ids[i + 1]).toBe(id.replace(/-handlers$/, ''));
    // A switch of one env is one PATCH of its own upstream, nothing of the others'.
    host.changes.length = 0;
    await deploy(host, cfgs.api as ReturnType<typeof env>, 3002);
    expect(host.changes).toEqual([]);
  });

  it("an env's maintenance route is its own: no conflict with itself, and another env goes before all of it", async () => {
    const host = fakeCaddy(ADMIN_ONLY);
    const front = env('front', 'http://example.com');
    await deploy(host, front);
    const list = routes(host);
    const at0 = list.findIndex((r) => r['@id'] === 'skiff-hello-front');
    list.splice(at0, 0, { '@id': 'skiff-hello-front-maintenance', match: list[at0]?.match, handle: [{ handler: 'static_response', status_code: 503 }], terminal: true });
    expect(caddyConflict(host.root.config, front)).toBeUndefined();
    await deploy(host, front, 3002);
    await deploy(host, env('api', 'http://example.com/api'));
    expect(routes(host).map((r) => r['@id'])).toEqual(['skiff-hello-api-handlers', 'skiff-hello-api', 'skiff-hello-front-handlers', 'skiff-hello-front-maintenance', 'skiff-hello-front']);
  });

  it('a changed prefix moves the route to the place of its new prefix', async () => {
    const host = fakeCaddy(ADMIN_ONLY);
    await deploy(host, env('front', 'http://example.com'));
    await deploy(host, env('api', 'http://example.com/api'));
    host.changes.length = 0;
    await deploy(host, env('api', 'http://example.com/v2'));
    expect(host.changes).toEqual(['DELETE /id/skiff-hello-api', 'DELETE /id/skiff-hello-api-handlers', 'PUT /config/apps/http/servers/skiff_80/routes/0', 'PUT /config/apps/http/servers/skiff_80/routes/0']);
    expect(routeFor(host, 'example.com', '/v2/x')).toBe('skiff-hello-api');
    expect(routeFor(host, 'example.com', '/api/x')).toBe('skiff-hello-front');
  });

  it.each([
    ['the same prefix', env('other', 'http://example.com/api'), "the path prefix /api of example.com is served by skiff's route skiff-hello-api already"],
    ['the root', env('other', 'http://example.com'), "the root of example.com is served by skiff's route skiff-hello-front already"],
    ['https on the port of http envs', env('other', 'https://example.com:80/x', FILES), 'the TLS settings for example.com differ from those of skiff-hello-api, skiff-hello-front on it'],
  ])('refused before any change (exit 2): %s', async (_, cfg, message) => {
    const host = fakeCaddy(ADMIN_ONLY);
    await deploy(host, env('front', 'http://example.com'));
    await deploy(host, env('api', 'http://example.com/api'));
    const before = JSON.stringify(host.root.config);
    const error = await caddy(cfg, fakeClock()).check(host).then(
      () => undefined,
      (e: unknown) => e as Error & { exitCode: number },
    );
    expect(error?.message).toContain(`fake: ${message}`);
    expect(error?.message).toMatch(/; nothing was changed$/);
    expect(error?.exitCode).toBe(2);
    await expect(caddy(cfg, fakeClock()).switchTo(host, 3001)).rejects.toThrow(message);
    expect(JSON.stringify(host.root.config)).toBe(before);
  });

  it('another port of the host is another server: its routes are its own', async () => {
    const host = fakeCaddy(ADMIN_ONLY);
    await deploy(host, env('front', 'http://example.com'));
    await deploy(host, env('api', 'http://example.com/api'));
    await deploy(host, env('other', 'http://example.com:8080/api'));
    expect(at(host.root.config, 'apps', 'http', 'servers', 'skiff_8080', 'routes', 1, '@id')).toBe('skiff-hello-other');
  });

  it('https: the second env on the host relies on the first one\'s policy (Caddy takes one a host); other TLS settings are refused', async () => {
    const host = fakeCaddy(ADMIN_ONLY);
    await deploy(host, env('front', 'https://example.com', ACME));
    await deploy(host, env('api', 'https://example.com/api', ACME));
    const policies = at(host.root.config, 'apps', 'tls', 'automation', 'policies') as Json[];
    expect(policies.map((p) => p['@id'])).toEqual(['skiff-hello-front-tls']);
    const listed = at(host.root.config, 'apps', 'http', 'servers', 'skiff_443', 'routes') as Json[];
    expect(listed.map((r) => r['@id'])).toEqual(['skiff-hello-api-handlers', 'skiff-hello-api', 'skiff-hello-front-handlers', 'skiff-hello-front']);
    for (const [values, name] of [
      [{ ...ACME, DEPLOY_ACME_EMAIL: 'other@example.com' }, 'another ACME email'],
      [FILES, 'certificate files beside ACME'],
      [HTTPS, 'another ACME directory'],
    ] as const) {
      const error = await caddy(env('docs', 'https://example.com/docs', values), fakeClock()).check(host).then(
        () => undefined,
        (e: unknown) => e as Error & { exitCode: number },
      );
      expect(error?.message, name).toMatch(/^fake: the TLS settings for example\.com differ from those of skiff-hello-api, skiff-hello-front on it .*: envs on one host must agree on them; nothing was changed$/);
      expect(error?.exitCode).toBe(2);
    }
    // The owner of the policy may not change it under the others either.
    await expect(caddy(env('front', 'https://example.com', { ...ACME, DEPLOY_ACME_EMAIL: 'new@example.com' }), fakeClock()).check(host)).rejects.toThrow(/TLS settings for example\.com differ/);
  });

  it("an env with a prefix leaves the host's logger names alone: its requests are in the root env's log", async () => {
    const host = fakeCaddy(ADMIN_ONLY);
    await deploy(host, env('front', 'http://example.com'));
    await deploy(host, env('api', 'http://example.com/api'));
    expect(at(host.root.config, 'apps', 'http', 'servers', 'skiff_80', 'logs', 'logger_names')).toEqual({ 'example.com': 'skiff_hello_front', 'example.com:80': 'skiff_hello_front' });
    expect(Object.keys(at(host.root.config, 'logging', 'logs') as Json)).toEqual(['skiff_hello_front', 'default']);
  });
});
