/**
 * The Caddy driver: skiff's route (with `@id`) and the route of its handlers before it, its TLS
 * policy or certificate files and its access log, set through Caddy's admin API. skiff's route holds
 * both slots and picks one for each request by the env's flag file (lib/proxy/switch-flag.ts): a
 * switch with unchanged settings renames or removes the flag and loads no config.
 */
import {
  acmeDirectory,
  CADDY_ANSWER_SECONDS,
  caddyRequest,
  COMPRESS_MIN_BYTES,
  RESPONSE_HEADERS,
  tcpMigrateReq,
  tlsAnswers,
} from '../commands/proxy.ts';
import type { Config } from '../config/config.ts';
import { realClock, type Clock } from '../core/clock.ts';
import { reads } from '../core/cmd.ts';
import { EXIT, SkiffError } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import type { Proxy } from './proxy.ts';
import { publicHost, publicPort, publicPrefix, routeId } from './route.ts';
import { FLAG } from '../commands/switch-flag.ts';
import { checkFlagReach, flagBack, flagDir, flagNow, flagTo, slotPair } from './switch-flag.ts';

/** Seconds a new certificate may take by ACME before the switch gives up (Let's Encrypt: usually 5-20 s). */
export const CADDY_CERT_SECONDS = 60;
/** The ACME directory of an issuer with no `ca`: Let's Encrypt's. */
export const LETS_ENCRYPT = 'https://acme-v02.api.letsencrypt.org/directory';
/** Where Caddy's access logs go without DEPLOY_ACCESS_LOG_DIR: the folder Debian's package makes for the caddy user. */
export const CADDY_LOG_DIR = '/var/log/caddy';

type Obj = Record<string, unknown>;

/** One change through the admin API, and what it does (for the message when Caddy refuses it). */
export interface CaddyOp {
  readonly method: 'PUT' | 'PATCH' | 'POST' | 'DELETE';
  readonly path: string;
  readonly body?: unknown;
  readonly what: string;
}

/** The changes a switch makes, and whether a certificate must be waited for afterwards. */
export interface CaddyPlan {
  readonly ops: readonly CaddyOp[];
  /** The route is new (or moved), or its TLS policy changed: Caddy gets a certificate by ACME now. */
  readonly awaitCertificate: boolean;
  /** Where the server with skiff's route listens: the address the certificate is asked from. */
  readonly address: string;
  /** What puts the TLS settings back as they were, if the certificate does not come. */
  readonly undoTls: readonly CaddyOp[];
}

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const at = (v: unknown, ...keys: readonly string[]): unknown => keys.reduce<unknown>((o, k) => (isObj(o) ? o[k] : undefined), v);
/** JSON with object keys sorted: Caddy gives back what it was sent, with its keys in another order. */
const canon = (v: unknown): string =>
  Array.isArray(v) ? `[${v.map(canon).join(',')}]` : isObj(v) ? `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canon(v[k])}`).join(',')}}` : JSON.stringify(v);
const same = (a: unknown, b: unknown): boolean => canon(a) === canon(b);
const configPath = (keys: readonly string[]): string => `/config/${keys.map(encodeURIComponent).join('/')}`;
const isHttps = (cfg: Config): boolean => cfg.publicUrl?.startsWith('https:') === true;
const usesAcme = (cfg: Config): boolean => isHttps(cfg) && cfg.tls.cert === undefined;

/** The @ids of what skiff owns in Caddy's config for an app and env. */
export const caddyIds = (cfg: Config) => {
  const route = routeId(cfg);
  return { route, handlers: `${route}-handlers`, policy: `${route}-tls`, cert: `${route}-cert` };
};

/** The name of the logger of skiff's route: its access log entries come from `http.log.access.<name>`. */
export const caddyLoggerName = (cfg: Config): string => routeId(cfg).replace(/-/g, '_');

/** The JSON access log of an app and env on the host. */
export const caddyAccessLogFile = (cfg: Config): string => `${cfg.http.accessLogDir ?? CADDY_LOG_DIR}/${cfg.app.name}-${cfg.env}.access.log`;

/** The handlers before the proxy: response headers (set, replacing the app's), then compression. */
export const caddyHandlers = (cfg: Config): Obj[] => {
  const headers = cfg.http.headers.filter((h) => h !== 'hsts' || isHttps(cfg)).map((h) => RESPONSE_HEADERS[h]);
  const { compression } = cfg.http;
  return [
    // deferred: applied when the answer is written, so they replace what the app sent instead of adding to it.
    ...(headers.length > 0 ? [{ handler: 'headers', response: { set: Object.fromEntries(headers.map(([name, value]) => [name, [value]])), deferred: true } }] : []),
    ...(compression.length > 0
      ? [{ handler: 'encode', encodings: Object.fromEntries(compression.map((c) => [c, {}])), prefer: [...compression], minimum_length: COMPRESS_MIN_BYTES }]
      : []),
  ];
};

/**
 * What skiff's routes of an env match: the public host, and with a path prefix the prefix itself and
 * everything below it (`/api`, `/api/*`; not `/apix`). The path reaches the app unchanged.
 */
export const caddyMatch = (cfg: Config): Obj[] => {
  const prefix = publicPrefix(cfg);
  return [{ host: [publicHost(cfg)], ...(prefix === '' ? {} : { path: [prefix, `${prefix}/*`] }) }];
};

const proxyTo = (port: number): Obj => ({ handler: 'reverse_proxy', upstreams: [{ dial: `127.0.0.1:${port}` }] });

/**
 * skiff's route: the public host (and path prefix) to both slots of `slotPair(cfg, port)`. Its
 * subroute sends a request to the second slot while the flag file exists (a `file` matcher: a stat
 * per request), else to the first; a switch changes the flag, not the route.
 */
export const caddyRoute = (cfg: Config, port: number): Obj => {
  const [first, second] = slotPair(cfg, port);
  return {
    '@id': caddyIds(cfg).route,
    match: caddyMatch(cfg),
    handle: [
      {
        handler: 'subroute',
        routes: [
          { match: [{ file: { root: flagDir(cfg), try_files: [`/${FLAG}`] } }], handle: [proxyTo(second)], terminal: true },
          { handle: [proxyTo(first)] },
        ],
      },
    ],
    terminal: true,
  };
};

/** What a route of skiff's sends to: both slots and the flag folder, or the one port of a route of skiff before the flag switch. */
export const routeSlots = (route: unknown): { first: number; second: number; dir: string } | { port: number } | undefined => {
  const portOf = (h: unknown): number | undefined => {
    const dial = at(h, 'upstreams');
    const first = Array.isArray(dial) ? at(dial[0], 'dial') : undefined;
    const port = typeof first === 'string' ? Number(first.split(':').at(-1)) : NaN;
    return Number.isInteger(port) && port > 0 ? port : undefined;
  };
  const handle = isObj(route) && Array.isArray(route.handle) ? (route.handle[0] as unknown) : undefined;
  if (at(handle, 'handler') === 'reverse_proxy') {
    const port = portOf(handle);
    return port === undefined ? undefined : { port };
  }
  const routes = at(handle, 'routes');
  if (at(handle, 'handler') !== 'subroute' || !Array.isArray(routes)) return undefined;
  const [flagged, other] = routes as unknown[];
  const handlerOf = (r: unknown): unknown => (isObj(r) && Array.isArray(r.handle) ? (r.handle[0] as unknown) : undefined);
  const second = portOf(handlerOf(flagged));
  const first = portOf(handlerOf(other));
  const dir = at(firstMatch(flagged), 'file', 'root');
  return first !== undefined && second !== undefined && typeof dir === 'string' ? { first, second, dir } : undefined;
};

/**
 * The route of the handlers, right before skiff's route and for the same host, not terminal: Caddy
 * chains the handlers of every matching route, so these wrap the proxy of the next one (as the
 * Caddyfile does with `header` and `encode`), and the route a switch patches stays as it was.
 * Undefined when the settings ask for no header and no compression.
 */
export const caddyHandlersRoute = (cfg: Config): Obj | undefined => {
  const handle = caddyHandlers(cfg);
  return handle.length > 0 ? { '@id': caddyIds(cfg).handlers, match: caddyMatch(cfg), handle } : undefined;
};

/** The routes skiff puts in a server, in order. */
export const caddyRoutes = (cfg: Config, port: number): Obj[] => [...[caddyHandlersRoute(cfg)].filter((r): r is Obj => r !== undefined), caddyRoute(cfg, port)];

/**
 * The automation policy of an https URL without certificate files: an ACME issuer for the URL's host,
 * from DEPLOY_ACME_CA (Let's Encrypt when unset), trusting DEPLOY_ACME_CA_ROOT for its HTTPS.
 */
export const caddyPolicy = (cfg: Config): Obj | undefined =>
  usesAcme(cfg)
    ? {
        '@id': caddyIds(cfg).policy,
        subjects: [publicHost(cfg)],
        issuers: [
          {
            module: 'acme',
            ...(cfg.tls.acmeCa ? { ca: cfg.tls.acmeCa } : {}),
            ...(cfg.tls.acmeEmail ? { email: cfg.tls.acmeEmail } : {}),
            ...(cfg.tls.acmeCaRoot ? { trusted_roots_pem_files: [cfg.tls.acmeCaRoot] } : {}),
          },
        ],
      }
    : undefined;

/** Given certificate files, loaded instead of ACME (Caddy manages no certificate for a name it has one loaded for). */
export const caddyCertFiles = (cfg: Config): Obj | undefined =>
  isHttps(cfg) && cfg.tls.cert !== undefined && cfg.tls.key !== undefined
    ? { '@id': caddyIds(cfg).cert, certificate: cfg.tls.cert, key: cfg.tls.key }
    : undefined;

/**
 * The logger that writes the route's access log entries as JSON to their own file (Caddy rolls it at
 * 100 MB). None for a route with a path prefix: Caddy 2.6 names a request's logger by its host alone
 * (`logger_names`), so that host's requests go to the log of the env at its root (docs/proxies.md).
 */
export const caddyLogger = (cfg: Config): Obj | undefined =>
  cfg.http.accessLog === 'json' && publicPrefix(cfg) === ''
    ? {
        writer: { output: 'file', filename: caddyAccessLogFile(cfg) },
        encoder: { format: 'json' },
        include: [`http.log.access.${caddyLoggerName(cfg)}`],
      }
    : undefined;

/**
 * The server's `logger_names` entries of the route: the host, and the host with the port (Caddy 2.6
 * logs a request only when its Host header, port and all, is a key once unmapped hosts are skipped).
 */
export const caddyLoggerNames = (cfg: Config): Record<string, string> => {
  const host = publicHost(cfg).includes(':') ? `[${publicHost(cfg)}]` : publicHost(cfg);
  return { [host]: caddyLoggerName(cfg), [`${host}:${publicPort(cfg)}`]: caddyLoggerName(cfg) };
};

/** A server of skiff's own on the public port, when Caddy has none there (HTTP/3 on UDP too, with https). */
export const caddyServer = (cfg: Config, port: number): Obj => ({
  listen: [`:${publicPort(cfg)}`],
  routes: caddyRoutes(cfg, port),
  ...(isHttps(cfg) ? { protocols: ['h1', 'h2', 'h3'] } : { automatic_https: { disable: true } }),
  ...(caddyLogger(cfg) ? { logs: { logger_names: caddyLoggerNames(cfg), skip_unmapped_hosts: true } } : {}),
});

interface Found {
  readonly server: string;
  readonly listen: readonly string[];
  readonly route: Obj;
  /** Its index among the server's routes. */
  readonly index: number;
}

const servers = (config: unknown): [string, Obj][] => Object.entries((at(config, 'apps', 'http', 'servers') ?? {}) as Obj).filter((e): e is [string, Obj] => isObj(e[1]));
const listenOf = (server: Obj): string[] => (Array.isArray(server.listen) ? server.listen.filter((l): l is string => typeof l === 'string') : []);
const routesOf = (server: Obj): Obj[] => (Array.isArray(server.routes) ? server.routes.filter(isObj) : []);
const withId = (list: unknown, id: string): Obj | undefined => (Array.isArray(list) ? list.find((o): o is Obj => isObj(o) && o['@id'] === id) : undefined);

/** A route of skiff's by its @id, and the server that holds it. */
const findRoute = (config: unknown, id: string): Found | undefined => {
  for (const [server, s] of servers(config)) {
    const routes = Array.isArray(s.routes) ? s.routes : [];
    const index = routes.findIndex((r) => isObj(r) && r['@id'] === id);
    if (index >= 0) return { server, listen: listenOf(s), route: routes[index] as Obj, index };
  }
  return undefined;
};
/** The first matcher set of a route (skiff's routes have one). */
const firstMatch = (route: unknown): unknown => (isObj(route) && Array.isArray(route.match) ? (route.match[0] as unknown) : undefined);
const hostsOf = (route: unknown): string[] => {
  const list = at(firstMatch(route), 'host');
  return Array.isArray(list) ? list.filter((h): h is string => typeof h === 'string') : [];
};
/** The path prefix a route of skiff's matches: '' when it matches the whole host. */
export const prefixOfRoute = (route: unknown): string => {
  const paths = at(firstMatch(route), 'path');
  return Array.isArray(paths) && typeof paths[0] === 'string' ? paths[0] : '';
};
/** The routes that go right before an env's route and belong to it: its handlers and its maintenance page. */
const COMPANIONS = ['-handlers', '-maintenance'] as const;
/** skiff's route of an env (not its handlers' or maintenance page's route), by its @id. */
const isSkiffRoute = (route: unknown): route is Obj =>
  isObj(route) && typeof route['@id'] === 'string' && route['@id'].startsWith('skiff-') && !COMPANIONS.some((c) => String(route['@id']).endsWith(c));

/** The route of another env of skiff's on the same host: its @id, prefix and the ports its server listens on. */
interface Neighbour {
  readonly id: string;
  readonly prefix: string;
  readonly listen: readonly string[];
}

/** skiff's routes of other apps and envs for the host of `cfg`, in every server. */
export const caddyNeighbours = (config: unknown, cfg: Config): Neighbour[] => {
  const own = caddyIds(cfg).route;
  const host = publicHost(cfg);
  return servers(config).flatMap(([, s]) =>
    routesOf(s)
      .filter((r): r is Obj => isSkiffRoute(r) && r['@id'] !== own && hostsOf(r).includes(host))
      .map((r) => ({ id: String(r['@id']), prefix: prefixOfRoute(r), listen: listenOf(s) })),
  );
};

const withoutId = (o: Obj | undefined): unknown => (o === undefined ? undefined : { ...o, '@id': undefined });

/** skiff's TLS policy (of any env) that covers a host, other than `own`: Caddy takes one policy per host. */
const hostPolicy = (config: unknown, host: string, own: string): Obj | undefined => {
  const list = at(config, 'apps', 'tls', 'automation', 'policies');
  return Array.isArray(list)
    ? list.find((p): p is Obj => isObj(p) && typeof p['@id'] === 'string' && p['@id'].startsWith('skiff-') && p['@id'] !== own && Array.isArray(p.subjects) && p.subjects.includes(host))
    : undefined;
};

/**
 * Why the env cannot have its route beside the other envs on its host; undefined when it can. Envs
 * on one host and port share its scheme and TLS settings (one server, one certificate), envs on
 * other ports of the host with https its TLS settings, and each owns a path prefix of its own.
 */
export const caddyConflict = (config: unknown, cfg: Config): string | undefined => {
  const host = publicHost(cfg);
  const prefix = publicPrefix(cfg);
  const listen = `:${publicPort(cfg)}`;
  const all = caddyNeighbours(config, cfg);
  // Routes on another port are in another server: they share the host's certificate, not its paths.
  const onPort = all.filter((n) => n.listen.some((l) => l.endsWith(listen)));
  const taken = onPort.find((n) => n.prefix === prefix);
  if (taken) return `${prefix === '' ? 'the root' : `the path prefix ${prefix}`} of ${host} is served by skiff's route ${taken.id} already: give DEPLOY_PUBLIC_URL another path, or deploy to another host name`;
  const ids = caddyIds(cfg);
  const policies = at(config, 'apps', 'tls', 'automation', 'policies');
  const loadFiles = at(config, 'apps', 'tls', 'certificates', 'load_files');
  const certOf = (n: Neighbour) => withId(loadFiles, `${n.id}-cert`);
  // The host's policy: another env's, or this env's own when the others rely on it (Caddy takes one a host).
  const policy = hostPolicy(config, host, ids.policy) ?? withId(policies, ids.policy);
  // Who must agree: the envs on this port (one server: one scheme), and with https those on other ports with TLS of their own.
  const tlsElsewhere = isHttps(cfg) ? all.filter((n) => !onPort.includes(n) && (policy !== undefined || certOf(n) !== undefined)) : [];
  const others = [...onPort, ...tlsElsewhere];
  if (others.length === 0) return undefined;
  const cert = others.map(certOf).find((c) => c !== undefined);
  if (!same(withoutId(policy), withoutId(caddyPolicy(cfg))) || !same(withoutId(cert), withoutId(caddyCertFiles(cfg)))) {
    return `the TLS settings for ${host} differ from those of ${others.map((n) => n.id).join(', ')} on it (the URL's scheme, DEPLOY_TLS_CERT and DEPLOY_TLS_KEY, DEPLOY_ACME_*): envs on one host must agree on them`;
  }
  return undefined;
};

/**
 * Where skiff's routes of the env go in a server's routes: before the first route of another env on
 * the same host with a shorter prefix (and its handlers' route), else after the last one with a
 * longer prefix, else first. Caddy tries routes in order, so the most specific prefix wins.
 */
export const insertionIndex = (routes: readonly unknown[], cfg: Config): number => {
  const host = publicHost(cfg);
  const mine = publicPrefix(cfg).length;
  let after = 0;
  for (const [i, r] of routes.entries()) {
    if (!isSkiffRoute(r) || r['@id'] === caddyIds(cfg).route || !hostsOf(r).includes(host)) continue;
    // Before the env's companions too: its headers and its maintenance page stay with its route.
    const companions = new Set(COMPANIONS.map((c) => `${String(r['@id'])}${c}`));
    let start = i;
    while (start > 0 && isObj(routes[start - 1]) && companions.has(String(at(routes[start - 1], '@id')))) start -= 1;
    if (prefixOfRoute(r).length < mine) return start;
    after = i + 1;
  }
  return after;
};

/** Sets a key of an object: PATCH when it is there, else PUT (which makes the missing objects on the way). */
const setKey = (config: unknown, keys: readonly string[], body: unknown, what: string): CaddyOp => ({
  method: at(config, ...keys) === undefined ? 'PUT' : 'PATCH',
  path: configPath(keys),
  body,
  what,
});

/** Puts a value first in a list (`first`, before a catch-all), or last; makes the list when there is none. */
const addTo = (config: unknown, keys: readonly string[], body: unknown, what: string, first: boolean): CaddyOp => {
  const list = at(config, ...keys);
  if (!Array.isArray(list)) return { method: 'PUT', path: configPath(keys), body: [body], what };
  return first && list.length > 0 ? { method: 'PUT', path: `${configPath(keys)}/0`, body, what } : { method: 'POST', path: configPath(keys), body, what };
};

/**
 * The changes that make Caddy's config (as GET /config/ returned it) serve the app and env on `port`
 * with the settings of `cfg`. Each touches only what skiff owns: its route and its handlers' route,
 * its policy, certificate entry and logger, and its own keys in a server's `logger_names`. TLS comes first, so that no config Caddy
 * loads on the way has the route's host without its policy (Caddy would start ACME with its defaults);
 * removals come last. With `keepTls` the TLS settings stay as they are (a switch back after a
 * certificate did not come).
 */
export const planCaddy = (config: unknown, cfg: Config, port: number, opts: { keepTls?: boolean } = {}): CaddyPlan => {
  const ids = caddyIds(cfg);
  const ops: CaddyOp[] = [];
  const policies = ['apps', 'tls', 'automation', 'policies'];
  const loadFiles = ['apps', 'tls', 'certificates', 'load_files'];
  const havePolicy = withId(at(config, ...policies), ids.policy);
  const haveCert = withId(at(config, ...loadFiles), ids.cert);
  // Caddy takes one policy a host: an env whose host has another env's policy (with the same settings,
  // or caddyConflict refused it) adds none of its own.
  const sharedPolicy = havePolicy === undefined ? hostPolicy(config, publicHost(cfg), ids.policy) : undefined;
  const wantPolicy = opts.keepTls ? havePolicy : sharedPolicy ? undefined : caddyPolicy(cfg);
  const wantCert = opts.keepTls ? haveCert : caddyCertFiles(cfg);

  const policyWhat = `set the TLS policy ${ids.policy} (ACME for ${publicHost(cfg)})`;
  const certWhat = `load the certificate ${cfg.tls.cert} with the key ${cfg.tls.key}`;
  if (wantPolicy && !havePolicy) ops.push(addTo(config, policies, wantPolicy, policyWhat, true));
  if (wantPolicy && havePolicy && !same(wantPolicy, havePolicy)) ops.push({ method: 'PATCH', path: `/id/${ids.policy}`, body: wantPolicy, what: policyWhat });
  if (wantCert && !haveCert) ops.push(addTo(config, loadFiles, wantCert, certWhat, false));
  if (wantCert && haveCert && !same(wantCert, haveCert)) ops.push({ method: 'PATCH', path: `/id/${ids.cert}`, body: wantCert, what: certWhat });

  const name = caddyLoggerName(cfg);
  const loggerKeys = ['logging', 'logs', name];
  const wantLogger = caddyLogger(cfg);
  const haveLogger = at(config, ...loggerKeys);
  const logWhat = `set the access log ${caddyAccessLogFile(cfg)}`;
  if (wantLogger && !same(wantLogger, haveLogger)) ops.push(setKey(config, loggerKeys, wantLogger, logWhat));
  // Caddy's default log (stderr, the journal) would get every entry too: the route's entries go to its file only.
  const exclude = at(config, 'logging', 'logs', 'default', 'exclude');
  const token = `http.log.access.${name}`;
  const excluded = Array.isArray(exclude) ? exclude.indexOf(token) : -1;
  if (wantLogger && excluded < 0) {
    ops.push(Array.isArray(exclude) ? { method: 'POST', path: configPath(['logging', 'logs', 'default', 'exclude']), body: token, what: logWhat } : setKey(config, ['logging', 'logs', 'default', 'exclude'], [token], logWhat));
  }

  const found = findRoute(config, ids.route);
  const foundHandlers = findRoute(config, ids.handlers);
  const listen = `:${publicPort(cfg)}`;
  const onPort = (l: readonly string[]) => l.some((a) => a.endsWith(listen));
  const wanted = caddyRoute(cfg, port);
  const wantHandlers = caddyHandlersRoute(cfg);
  const handlersWhat = `set the headers and compression of ${ids.route}`;
  let server: { name: string; listen: readonly string[]; existing: boolean };
  let created = false;
  if (found && onPort(found.listen) && prefixOfRoute(found.route) === publicPrefix(cfg)) {
    const routes = ['apps', 'http', 'servers', found.server, 'routes'];
    // The handlers' route first, so that it already wraps the proxy when the upstream changes.
    if (foundHandlers && (!wantHandlers || foundHandlers.server !== found.server)) {
      ops.push({ method: 'DELETE', path: `/id/${ids.handlers}`, what: handlersWhat });
    }
    if (wantHandlers && foundHandlers?.server === found.server) {
      if (!same(foundHandlers.route, wantHandlers)) ops.push({ method: 'PATCH', path: `/id/${ids.handlers}`, body: wantHandlers, what: handlersWhat });
    } else if (wantHandlers) {
      // Right before skiff's route (PUT at an index inserts there); a handlers' route that sat in
      // another server was deleted first, which moves no route of this one.
      ops.push({ method: 'PUT', path: `${configPath(routes)}/${found.index}`, body: wantHandlers, what: handlersWhat });
    }
    if (same(found.route, wanted)) {
      // Already there (every switch with unchanged settings: the flag does it): no config load.
    } else {
      // A route of skiff before the flag switch, other slot ports, another host, or a route someone
      // edited: the whole route, and only it, is replaced (one config load).
      ops.push({ method: 'PATCH', path: `/id/${ids.route}`, body: wanted, what: `update the route ${ids.route}` });
    }
    server = { name: found.server, listen: found.listen, existing: true };
  } else {
    // No route yet, or one on a server of another port or with another prefix (the URL changed): it
    // goes where the URL is now, in the place of its prefix.
    if (found) ops.push({ method: 'DELETE', path: `/id/${ids.route}`, what: `move the route ${ids.route} to ${cfg.publicUrl ?? ''}` });
    if (foundHandlers) ops.push({ method: 'DELETE', path: `/id/${ids.handlers}`, what: handlersWhat });
    created = true;
    const existing = servers(config).find(([, s]) => onPort(listenOf(s)));
    if (existing) {
      const routes = ['apps', 'http', 'servers', existing[0], 'routes'];
      const given = at(config, ...routes);
      // The list as it is once this env's own routes are deleted (above): the indices the next ops see.
      const list = Array.isArray(given) ? given.filter((r) => !(isObj(r) && (r['@id'] === ids.route || r['@id'] === ids.handlers))) : undefined;
      const ours = caddyRoutes(cfg, port);
      const what = `add the route ${ids.route}`;
      // Before any catch-all and in the place of their prefix, in their order: into an empty list at
      // once, at the end one after the other, else each at the index, the last first.
      const index = list === undefined ? 0 : insertionIndex(list, cfg);
      if (list === undefined) ops.push({ method: 'PUT', path: configPath(routes), body: ours, what });
      else if (list.length === 0) ops.push({ method: 'POST', path: `${configPath(routes)}/...`, body: ours, what });
      else if (index >= list.length) for (const r of ours) ops.push({ method: 'POST', path: configPath(routes), body: r, what });
      else for (const r of [...ours].reverse()) ops.push({ method: 'PUT', path: `${configPath(routes)}/${index}`, body: r, what });
      server = { name: existing[0], listen: listenOf(existing[1]), existing: true };
    } else {
      const own = `skiff_${publicPort(cfg)}`;
      ops.push({ method: 'PUT', path: configPath(['apps', 'http', 'servers', own]), body: caddyServer(cfg, port), what: `add the route ${ids.route}` });
      server = { name: own, listen: [listen], existing: false };
    }
  }

  if (server.existing) {
    const serverKeys = ['apps', 'http', 'servers', server.name];
    const names = at(config, ...serverKeys, 'logs', 'logger_names');
    const entries = Object.entries(caddyLoggerNames(cfg));
    if (wantLogger && at(config, ...serverKeys, 'logs') === undefined) {
      // The server logged nothing: it logs only skiff's host now, so others' sites stay as they were.
      ops.push({ method: 'PUT', path: configPath([...serverKeys, 'logs']), body: { logger_names: Object.fromEntries(entries), skip_unmapped_hosts: true }, what: logWhat });
    } else if (wantLogger) {
      for (const [key, value] of entries) if (at(names, key) !== value) ops.push(setKey(config, [...serverKeys, 'logs', 'logger_names', key], value, logWhat));
    } else {
      for (const [key, value] of entries) if (at(names, key) === value) ops.push({ method: 'DELETE', path: configPath([...serverKeys, 'logs', 'logger_names', key]), what: 'remove the access log' });
    }
  }

  if (!wantCert && haveCert) ops.push({ method: 'DELETE', path: `/id/${ids.cert}`, what: `stop loading the certificate ${String(haveCert.certificate)}` });
  if (!wantPolicy && havePolicy) ops.push({ method: 'DELETE', path: `/id/${ids.policy}`, what: `remove the TLS policy ${ids.policy}` });
  if (!wantLogger && haveLogger !== undefined) ops.push({ method: 'DELETE', path: configPath(loggerKeys), what: 'remove the access log' });
  if (!wantLogger && excluded >= 0) ops.push({ method: 'DELETE', path: configPath(['logging', 'logs', 'default', 'exclude', String(excluded)]), what: 'remove the access log' });

  const policyChanged = wantPolicy !== undefined && !same(wantPolicy, havePolicy);
  // Back to the TLS settings that served before: the old policy, or the certificate files (and no policy).
  const undoTls: CaddyOp[] = [];
  if (policyChanged && (havePolicy || haveCert)) {
    if (haveCert && !wantCert) undoTls.push(addTo(config, loadFiles, haveCert, `load the certificate ${String(haveCert.certificate)} again`, false));
    undoTls.push(
      havePolicy
        ? { method: 'PATCH', path: `/id/${ids.policy}`, body: havePolicy, what: `put the TLS policy ${ids.policy} back` }
        : { method: 'DELETE', path: `/id/${ids.policy}`, what: `remove the TLS policy ${ids.policy}` },
    );
  }
  const host = server.listen.map((l) => l.replace(/^[a-z0-9]+\//, '')).find((l) => l.endsWith(listen))?.slice(0, -listen.length) ?? '';
  return {
    ops,
    awaitCertificate: usesAcme(cfg) && !opts.keepTls && (policyChanged || created),
    address: host === '' || host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host,
    undoTls,
  };
};

/** One request to Caddy's admin API from the host: its status and body; throws when the API does not answer. */
export const caddyApi = async (host: Host, cfg: Config, method: CaddyOp['method'] | 'GET', path: string, body?: unknown) => {
  const request = caddyRequest(cfg.caddyAdmin, method, path, CADDY_ANSWER_SECONDS);
  // A GET changes nothing: a dry run asks Caddy for real.
  const r = await host.exec(method === 'GET' ? reads(request) : request, {
    check: false,
    // curl gives up first (--max-time); this is for a host where curl itself does not come back.
    timeoutMs: (CADDY_ANSWER_SECONDS + 15) * 1000,
    ...(body === undefined ? {} : { stdin: JSON.stringify(body) }),
  });
  const lines = r.stdout.split('\n');
  const status = Number(lines.pop());
  const why = r.stderr.trim().split('\n').at(-1) ?? '';
  // curl's 28: connected (or tried to) but no whole answer within its limits.
  if (r.code === 28) {
    throw new SkiffError(
      `${host.name}: Caddy's admin API at ${cfg.caddyAdmin} did not answer ${method} ${path} within ${CADDY_ANSWER_SECONDS}s: check that Caddy is not stuck (its log) and that DEPLOY_CADDY_ADMIN is its admin address (${why})`,
    );
  }
  if (r.code !== 0 || !status) {
    throw new SkiffError(`${host.name}: Caddy's admin API at ${cfg.caddyAdmin} does not answer: start Caddy, or fix DEPLOY_CADDY_ADMIN (${why})`);
  }
  return { status, body: lines.join('\n') };
};

export const caddy = (cfg: Config, clock: Clock = realClock): Proxy => {
  const ids = caddyIds(cfg);
  const fail = (what: string, r: { status: number; body: string }) =>
    new SkiffError(`Caddy refused to ${what} (HTTP ${r.status}): ${r.body.trim().slice(0, 300)}`);
  // Set once a certificate did not come and the TLS settings were put back: the switch back of the
  // same run must not try them again.
  let keepTls = false;

  const readConfig = async (host: Host): Promise<unknown> => {
    const r = await caddyApi(host, cfg, 'GET', '/config/');
    if (r.status !== 200) throw fail('show its config', r);
    return JSON.parse(r.body || 'null') as unknown;
  };
  const apply = async (host: Host, ops: readonly CaddyOp[]) => {
    for (const op of ops) {
      const r = await caddyApi(host, cfg, op.method, op.path, op.body);
      if (r.status !== 200) throw fail(op.what, r);
    }
  };
  const ca = cfg.tls.acmeCa ?? LETS_ENCRYPT;

  /** Polls until Caddy completes a TLS handshake for the host (it has its certificate), at most CADDY_CERT_SECONDS. */
  const certificateArrives = async (host: Host, address: string): Promise<boolean> => {
    const deadline = clock.now() + CADDY_CERT_SECONDS * 1000;
    for (;;) {
      const r = await host.exec(tlsAnswers(publicHost(cfg), publicPort(cfg), address, 5), { check: false, timeoutMs: 20_000 });
      if (/exit=0\s*$/.test(r.stdout)) return true;
      if (clock.now() >= deadline) return false;
      await clock.sleep(500);
    }
  };

  return {
    kind: 'caddy',
    async check(host) {
      const config = await readConfig(host);
      const clash = caddyConflict(config, cfg);
      if (clash) throw new SkiffError(`${host.name}: ${clash}; nothing was changed`, EXIT.usage);
      // Caddy stats the flag for every request: a folder it cannot search would fail them all.
      await checkFlagReach(host, cfg, 'caddy');
      // A new or changed ACME directory is asked first, from the host: a policy Caddy cannot use would
      // leave the host without a certificate once applied (Caddy serves the old one no longer).
      const want = keepTls ? undefined : caddyPolicy(cfg);
      if (want && !same(want, withId(at(config, 'apps', 'tls', 'automation', 'policies'), ids.policy))) {
        const r = await host.exec(acmeDirectory(ca, cfg.tls.acmeCaRoot, 10), { check: false, timeoutMs: 30_000 });
        if (r.code !== 0 || !r.stdout.includes('"newOrder"')) {
          const why = r.code === 0 ? 'its answer is not an ACME directory' : r.stderr.trim().split('\n').at(-1) ?? `curl exit ${r.code}`;
          throw new SkiffError(
            `${host.name}: the ACME directory ${ca} does not answer from the host (${why}), so Caddy could not get a certificate for ${publicHost(cfg)} from it: ` +
              `fix DEPLOY_ACME_CA${cfg.tls.acmeCaRoot ? ' or DEPLOY_ACME_CA_ROOT' : ''} (docs/proxies.md#tls); nothing was changed`,
          );
        }
      }
    },
    async switchRisk(host) {
      // Every admin API change is a config reload (a switch makes none unless settings changed):
      // Caddy opens a new SO_REUSEPORT listener and closes
      // the old one, and Linux resets the connections still queued on the old one unless it moves
      // them (net.ipv4.tcp_migrate_req, Linux 5.14+). No Caddy setting avoids it; measured on Caddy
      // 2.6.2: about one new connection in four switches reset with 0, none in 500 with 1.
      const migrate = (await host.exec(tcpMigrateReq(), { check: false })).stdout.trim();
      return migrate === '0'
        ? `${host.name}: net.ipv4.tcp_migrate_req is 0, so Caddy may reset a new connection when it loads a new config (the first deploy, a change of settings): ` +
            `set it to 1 for switches without a failed request: \`npx tsx scripts/setup.ts ${cfg.env}\` does (or sysctl -w net.ipv4.tcp_migrate_req=1, and a file in /etc/sysctl.d)`
        : undefined;
    },
    async current(host) {
      const r = await caddyApi(host, cfg, 'GET', `/id/${ids.route}`);
      if (r.status !== 200) return undefined;
      const slots = routeSlots(JSON.parse(r.body || 'null') as unknown);
      if (slots === undefined) return undefined;
      if ('port' in slots) return slots.port;
      // The flag where the loaded route looks for it.
      return (await flagNow(host, slots.dir)) === 'second' ? slots.second : slots.first;
    },
    async switchTo(host, port) {
      // With unchanged settings the plan is empty and the flag is the switch (no config load);
      // changed settings rewrite skiff's route, policy and logger, nothing else.
      const config = await readConfig(host);
      // Another env may have taken the prefix since the check (its own lock is not this env's).
      const clash = caddyConflict(config, cfg);
      if (clash) throw new SkiffError(`${host.name}: ${clash}; nothing was changed`, EXIT.usage);
      const plan = planCaddy(config, cfg, port, { keepTls });
      // The flag first, so that a new route sends to `port` from the moment Caddy loads it.
      const dir = flagDir(cfg);
      const was = await flagNow(host, dir);
      await flagTo(host, dir, slotPair(cfg, port), port);
      try {
        await apply(host, plan.ops);
      } catch (error) {
        // The route Caddy runs may be the flag's already (only its other settings changed).
        await flagBack(host, dir, was);
        throw error;
      }
      if (!plan.awaitCertificate || (await certificateArrives(host, plan.address))) return;
      keepTls = true;
      const left = plan.undoTls.length > 0 ? 'the TLS settings that served before are back' : 'Caddy keeps trying';
      if (plan.undoTls.length > 0) await apply(host, plan.undoTls);
      throw new SkiffError(
        `${host.name}: Caddy got no certificate for ${publicHost(cfg)} from ${ca} within ${CADDY_CERT_SECONDS}s (Caddy's log says why, e.g. journalctl -u caddy); ${left}`,
      );
    },
  };
};
