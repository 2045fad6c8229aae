/**
 * The shared side of the HAProxy driver: one frontend per address and port, which every env on it
 * uses. skiff owns `<confDir>/skiff-front-<addr>-<port>.cfg` (bind, TLS, the port 80 redirect, the
 * forwarded headers, the access log format) and its route map `skiff-front-<addr>-<port>.map`: a line
 * per route, `<host><prefix>/ <backend>`, looked up with `map_beg` on the request's host and path
 * plus a `/` (so `/api` takes `/api` and `/api/x`, not `/apix`; HAProxy's `beg` match is a prefix
 * tree: the longest entry wins). Each env owns its lines and its backend file; an env's route
 * therefore never changes another's. With https the bind loads every certificate of a folder
 * `skiff-front-<addr>-<port>.certs/`, one `<host>.pem` (and `<host>.pem.key`) per host, chosen by SNI.
 * Pure: no file, environment or clock is read here.
 */
import { isIP } from 'node:net';
import type { Config } from '../config/config.ts';
import { publicHost, publicPort, publicPrefix, routeId } from './route.ts';

/** The address a frontend binds: an IP literal as given, else every IPv4 address (a name may not resolve when HAProxy starts). */
export const bindAddress = (host: string, port: number): string =>
  isIP(host) === 4 ? `${host}:${port}` : isIP(host) === 6 ? `[${host}]:${port}` : `:${port}`;

/** Whether the URL is https on 443: its frontend also binds port 80, to redirect. */
export const redirectsFrom80 = (cfg: Config): boolean => cfg.publicUrl?.startsWith('https:') === true && publicPort(cfg) === 443;

/** The ports the env's frontend binds. */
export const boundPorts = (cfg: Config): number[] => (redirectsFrom80(cfg) ? [publicPort(cfg), 80] : [publicPort(cfg)]);

/**
 * One JSON object a line. Request headers are gone when HAProxy logs, so Host and User-Agent are
 * captured (captures 0 and 1); the `json` converter escapes what a client sent.
 */
export const JSON_LOG_FORMAT =
  '{"time":%Ts.%ms,"client":"%ci","method":"%HM","uri":"%[capture.req.uri,json(utf8s)]","host":"%[capture.req.hdr(0),json(utf8s)]",' +
  '"status":%ST,"bytes":%B,"ms":%Ta,"backend":"%b","server":"%s","termination":"%ts","ua":"%[capture.req.hdr(1),json(utf8s)]"}';

/** The shared frontend of an env's address and port: its name and the files that go with it. */
export interface Front {
  readonly name: string;
  /** The frontend's config file. */
  readonly file: string;
  /** Its route map: `<host><prefix>/ <backend>` a line. */
  readonly map: string;
  /** The folder of its certificates (https only). */
  readonly certDir: string;
  readonly https: boolean;
  readonly port: number;
  /** What it binds: the URL's address and port, and port 80 to redirect when on 443. */
  readonly binds: readonly string[];
}

/** The frontend the env's URL belongs to: every env on one address and port shares it. */
export const frontOf = (cfg: Config): Front => {
  const host = publicHost(cfg);
  const port = publicPort(cfg);
  // `:` of an IPv6 address would be read as a port by some tools: the name spells it with `_`.
  const addr = isIP(host) === 0 ? 'all' : host.replace(/:/g, '_');
  const name = `skiff-front-${addr}-${port}`;
  const dir = cfg.haproxy.confDir;
  return {
    name,
    file: `${dir}/${name}.cfg`,
    map: `${dir}/${name}.map`,
    certDir: `${dir}/${name}.certs`,
    https: cfg.publicUrl?.startsWith('https:') === true,
    port,
    binds: redirectsFrom80(cfg) ? [bindAddress(host, port), bindAddress(host, 80)] : [bindAddress(host, port)],
  };
};

/** The certificate of the env's host in its frontend's folder (the key beside it, as `<crt>.key`). */
export const certLinkIn = (front: Front, cfg: Config): string => `${front.certDir}/${publicHost(cfg).replace(/:/g, '_')}.pem`;

/** The shared frontend's file: the same text for every env on its address and port. */
export const frontConfig = (front: Front): string =>
  [
    `# Written by skiff for the envs behind HAProxy on ${front.binds[0]}: each env's backend is in its skiff-<app>-<env>.cfg,`,
    `# its route in ${front.map} (\`<host><prefix>/ <backend>\`, the longest prefix wins). Edits here do not last.`,
    `frontend ${front.name}`,
    '    mode http',
    front.https ? `    bind ${front.binds[0]} ssl crt ${front.certDir}/ alpn h2,http/1.1` : `    bind ${front.binds[0]}`,
    ...(front.binds.length > 1 ? [`    bind ${front.binds[1]}`, '    http-request redirect scheme https code 301 unless { ssl_fc }'] : []),
    '    option forwardfor',
    `    http-request set-header X-Forwarded-Proto ${front.https ? 'https' : 'http'}`,
    // Every request is logged here; an env with DEPLOY_ACCESS_LOG=off silences its own in its backend.
    '    http-request capture req.hdr(host) len 256',
    '    http-request capture req.hdr(user-agent) len 256',
    '    log global',
    `    log-format '${JSON_LOG_FORMAT}'`,
    // The route: the host (lower case, with its port if the client sent one) and the path, plus `/`.
    '    http-request set-var-fmt(txn.skiff_route) "%[req.hdr(host),lower]%[path]/"',
    `    http-request set-var(txn.skiff_backend) var(txn.skiff_route),map_beg(${front.map})`,
    // No default backend: a path no env owns gets HAProxy's 503.
    '    use_backend %[var(txn.skiff_backend)] if { var(txn.skiff_backend) -m found }',
    '',
  ].join('\n');

/** The map keys of the env's route: its host with and without the port (as clients send Host), its prefix, and `/`. */
export const routeKeys = (cfg: Config): string[] => {
  const host = publicHost(cfg).toLowerCase();
  const name = isIP(host) === 6 ? `[${host}]` : host;
  const tail = `${publicPrefix(cfg)}/`;
  return [`${name}${tail}`, `${name}:${publicPort(cfg)}${tail}`];
};

/** The lines of a route map: `[key, backend]`; lines that are not two words are left out. */
export const parseRouteMap = (text: string): [string, string][] =>
  text
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((w): w is [string, string] => w.length === 2 && !(w[0] as string).startsWith('#'));

/** A route map's text: longest keys first (the most specific route reads first), then by name. */
export const routeMapText = (entries: readonly (readonly [string, string])[]): string =>
  [...entries]
    .sort(([a], [b]) => b.length - a.length || (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k} ${v}\n`)
    .join('');

/** The map with the env's lines as `keys` (none: its route leaves), other envs' lines kept as they are. */
export const withRoute = (text: string, backend: string, keys: readonly string[]): string =>
  routeMapText([...parseRouteMap(text).filter(([, b]) => b !== backend), ...keys.map((k) => [k, backend] as const)]);

/** The map without the lines of `backends` (envs whose file is gone: their routes are stale). */
export const withoutRoutes = (text: string, backends: readonly string[]): string =>
  backends.length === 0 ? text : routeMapText(parseRouteMap(text).filter(([, b]) => !backends.includes(b)));

/** The other env that owns one of `keys` in the map already; undefined when none does. */
export const routeOwner = (text: string, backend: string, keys: readonly string[]): string | undefined =>
  parseRouteMap(text).find(([k, b]) => b !== backend && keys.includes(k))?.[1];

/** The backends in the map other than `backend`. */
export const otherRoutes = (text: string, backend: string): string[] => [...new Set(parseRouteMap(text).map(([, b]) => b).filter((b) => b !== backend))];

/** What an env's file records about its route, on its second line: where it is, so a move can take it out. */
export interface RouteRecord {
  readonly front: string;
  readonly host: string;
  readonly keys: readonly string[];
}

const RECORD = '# skiff-route ';

export const routeRecord = (cfg: Config): RouteRecord => ({ front: frontOf(cfg).name, host: publicHost(cfg), keys: routeKeys(cfg) });

/** The record in an env's file; undefined for a file of an earlier version (with a frontend of its own) or a damaged one. */
export const readRouteRecord = (text: string): RouteRecord | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(RECORD));
  if (!line) return undefined;
  try {
    const v: unknown = JSON.parse(line.slice(RECORD.length));
    if (typeof v !== 'object' || v === null) return undefined;
    const { front, host, keys } = v as Record<string, unknown>;
    // Read from a file on the host: the front must be a name of skiff's, never a path.
    if (typeof front !== 'string' || !/^skiff-front-[A-Za-z0-9._-]+$/.test(front) || typeof host !== 'string') return undefined;
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string' && /^\S+$/.test(k))) return undefined;
    return { front, host, keys: keys as string[] };
  } catch {
    return undefined;
  }
};

/** The record's line for the env's file. */
export const routeRecordLine = (cfg: Config): string => `${RECORD}${JSON.stringify(routeRecord(cfg))}`;

/** Whether a file of skiff's in the folder is an env's file of an earlier version: a frontend of its own. */
export const hasOwnFrontend = (text: string): boolean => /^frontend /m.test(text);

export { routeId };
