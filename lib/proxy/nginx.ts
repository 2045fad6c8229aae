/**
 * The nginx driver. In DEPLOY_NGINX_CONF_DIR each env owns `<app>-<env>.conf` (an upstream for each
 * slot, its log format) and its route, `<app>-<env>.locations`, in the folder of its site:
 * `skiff-site-<host>-<port>.d/`. The site file `skiff-site-<host>-<port>.conf` holds the one server
 * block nginx allows for a server_name and port (TLS, the port 80 redirect) and includes every route
 * of the folder, so envs on one host share it and never write each other's files. The route picks
 * the slot for each request by the env's flag file (lib/proxy/switch-flag.ts): a switch with
 * unchanged settings renames or removes the flag, with no reload. `nginx -t` before every reload.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { reads, script } from '../core/cmd.ts';
import { COMPRESS_MIN_BYTES, nginx, nginxMaster, nginxSites, nginxWorkers, RESPONSE_HEADERS } from '../commands/proxy.ts';
import type { Config } from '../config/config.ts';
import type { Clock } from '../core/clock.ts';
import { EXIT, SkiffError } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import type { Proxy } from './proxy.ts';
import { publicHost, publicPort, publicPrefix } from './route.ts';
import { nginxMaintenanceInclude } from './maintenance-page.ts';
import { checkFlagReach, flagBack, flagDir, flagFile, flagNow, flagTo, slotPair } from './switch-flag.ts';

/** Where nginx's access logs go without DEPLOY_ACCESS_LOG_DIR (Debian's folder; the master opens them as root). */
export const NGINX_LOG_DIR = '/var/log/nginx';
/** The folder the port 80 server of an https URL serves ACME challenges from: certbot's `--webroot -w`. */
export const ACME_WEBROOT = '/var/www/html';

/** Types gzip compresses besides text/html (always): what Caddy's encode compresses by default. */
const GZIP_TYPES = [
  'text/plain',
  'text/css',
  'text/javascript',
  'text/xml',
  'text/csv',
  'application/json',
  'application/javascript',
  'application/xml',
  'application/xhtml+xml',
  'application/atom+xml',
  'application/rss+xml',
  'image/svg+xml',
];

/** TLS 1.2 ciphers of Mozilla's "intermediate" profile with forward secrecy (TLS 1.3 has its own). */
const CIPHERS =
  'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305';

/** One JSON object a line; escape=json makes every value a valid JSON string. */
const JSON_LOG =
  '{"time":"$time_iso8601","remote_addr":"$remote_addr","method":"$request_method","host":"$host","uri":"$request_uri",' +
  '"protocol":"$server_protocol","status":$status,"bytes":$body_bytes_sent,"duration":$request_time,' +
  '"upstream":"$upstream_addr","upstream_status":"$upstream_status","upstream_duration":"$upstream_response_time",' +
  '"referer":"$http_referer","user_agent":"$http_user_agent","tls":"$ssl_protocol"}';

const isHttps = (cfg: Config): boolean => cfg.publicUrl?.startsWith('https:') === true;

/** The site file of a host and port, and the folder of its envs' routes. */
export const nginxSiteFiles = (confDir: string, host: string, port: number) => {
  const site = `${confDir}/skiff-site-${host}-${port}`;
  return { siteFile: `${site}.conf`, siteDir: `${site}.d` };
};

/** The files skiff owns for an app and env (and the site it shares), and the names it gives nginx. */
export const nginxNames = (cfg: Config) => {
  const base = `${cfg.nginxConfDir}/${cfg.app.name}-${cfg.env}`;
  const name = `skiff_${cfg.app.name}_${cfg.env}`.replace(/-/g, '_');
  const site = nginxSiteFiles(cfg.nginxConfDir, publicHost(cfg), publicPort(cfg));
  return {
    confFile: `${base}.conf`,
    /** The live slot's upstream of skiff before the flag switch: removed when the env's conf is written now. */
    upstreamFile: `${base}.upstream`,
    /** The digest of the env's files as nginx last loaded them: a switch whose files are the same reloads only when it differs. */
    loadedFile: `${base}.loaded`,
    ...site,
    routeFile: `${site.siteDir}/${cfg.app.name}-${cfg.env}.locations`,
    upstream: name,
    /** The upstreams of the first and second slot, and the variable the route sets to one of them. */
    first: `${name}_first`,
    second: `${name}_second`,
    slotVar: `$${name}_slot`,
    logFormat: `${name}_json`,
    accessLog: `${cfg.http.accessLogDir ?? NGINX_LOG_DIR}/${cfg.app.name}-${cfg.env}.access.log`,
  };
};

/**
 * The address of a `listen`: an IP as given, `localhost` as 127.0.0.1, else the port alone (every
 * address): nginx resolves a name once at start, and fails when it names no address of this host.
 */
const listenOn = (cfg: Config, port: number): string => {
  const host = publicHost(cfg);
  if (isIP(host) === 4) return `${host}:${port}`;
  if (isIP(host) === 6) return `[${host}]:${port}`;
  return host === 'localhost' ? `127.0.0.1:${port}` : String(port);
};

/**
 * A path as an nginx string. Inside double quotes spaces, `;` and braces are plain; `"` and `\` would
 * end or escape it, and `$` starts a variable (ssl_certificate and access_log take variables).
 */
const quoted = (path: string): string => `"${path}"`;
const UNQUOTABLE = /["\\$]/;

/** The paths skiff writes into nginx's config, with the key each comes from. */
const writtenPaths = (cfg: Config): [string, string][] => {
  const n = nginxNames(cfg);
  return [
    ['DEPLOY_NGINX_CONF_DIR', n.confFile],
    [cfg.switchDir === undefined ? 'DEPLOY_NGINX_CONF_DIR' : 'DEPLOY_SWITCH_DIR', flagFile(cfg)],
    ['DEPLOY_NGINX_CONF_DIR', n.routeFile],
    ...(cfg.http.accessLog === 'json' ? [['DEPLOY_ACCESS_LOG_DIR', n.accessLog] as [string, string]] : []),
    ...(isHttps(cfg) && cfg.tls.cert && cfg.tls.key ? [['DEPLOY_TLS_CERT', cfg.tls.cert] as [string, string], ['DEPLOY_TLS_KEY', cfg.tls.key] as [string, string]] : []),
  ];
};

/** The upstream file of skiff before the flag switch: the live slot (still written by a switch back to a conf of then). */
export const nginxUpstream = (cfg: Config, port: number): string => `# written by skiff: the live slot of ${cfg.app.name} ${cfg.env}\nserver 127.0.0.1:${port};\n`;

/** What the second line of the env's conf says, as JSON after `# skiff slots `: its slot ports and the flag its route stats. */
export interface SlotsMeta {
  readonly first: number;
  readonly second: number;
  readonly flag: string;
}

/** The slots of a conf file's text; undefined for a conf of skiff before the flag switch (or none). */
export const parseSlots = (text: string | undefined): SlotsMeta | undefined => {
  const line = text?.split('\n').find((l) => l.startsWith('# skiff slots '));
  const v = line === undefined ? undefined : parseJsonLine(line, '# skiff slots ');
  return isRecord(v) && typeof v.first === 'number' && typeof v.second === 'number' && typeof v.flag === 'string' ? { first: v.first, second: v.second, flag: v.flag } : undefined;
};

/** What envs on one site must agree on: the first line of its file, as JSON after `# skiff site `. */
export interface SiteSettings {
  readonly host: string;
  readonly port: number;
  readonly https: boolean;
  readonly cert: string | null;
  readonly key: string | null;
}
/** What the first line of an env's route file says, as JSON after `# skiff route `. */
export interface RouteMeta {
  readonly app: string;
  readonly env: string;
  readonly prefix: string;
}

export const siteSettings = (cfg: Config): SiteSettings => {
  const https = isHttps(cfg);
  return { host: publicHost(cfg), port: publicPort(cfg), https, cert: https ? (cfg.tls.cert ?? null) : null, key: https ? (cfg.tls.key ?? null) : null };
};

/**
 * The env's conf file (nginx includes it in its http block): an upstream for each slot (the pair of
 * `slotPair(cfg, port)`), and its JSON log format. The server is in the site file, the route (which
 * picks the upstream by the flag) in the locations file.
 */
export const nginxConf = (cfg: Config, port: number = cfg.ports[0] ?? 0): string => {
  const n = nginxNames(cfg);
  const [first, second] = slotPair(cfg, port);
  const slots: SlotsMeta = { first, second, flag: flagFile(cfg) };
  const upstream = (name: string, p: number) => [`upstream ${name} {`, `    server 127.0.0.1:${p};`, '    keepalive 16;', '}'];
  return [
    `# written by skiff for ${cfg.app.name} ${cfg.env}: both slots; ${n.routeFile} sends a request to the second while ${slots.flag} exists, else to the first`,
    `# skiff slots ${JSON.stringify(slots)}`,
    ...upstream(n.first, first),
    ...upstream(n.second, second),
    // A websocket's upgrade goes on to the app; every other request keeps the upstream connection alive.
    `map $http_upgrade $${n.upstream}_connection {`,
    '    default upgrade;',
    "    '' '';",
    '}',
    ...(cfg.http.accessLog === 'json' ? [`log_format ${n.logFormat} escape=json '${JSON_LOG}';`] : []),
    '',
  ].join('\n');
};

/**
 * The site file of DEPLOY_PUBLIC_URL's host and port: the server with TLS as the settings say, which
 * includes the routes of every env on it, and for an https URL a server on port 80 that redirects to
 * it (keeping a port other than 443) and answers ACME challenges. Its text follows from SiteSettings
 * alone, so every env on the site writes the same file.
 */
export const nginxSite = (cfg: Config): string => {
  const n = nginxNames(cfg);
  const settings = siteSettings(cfg);
  const { https, host, port } = settings;
  const redirect = https && port !== 80;
  return [
    `# skiff site ${JSON.stringify(settings)}`,
    `# written by skiff for the envs whose routes are in ${n.siteDir}; each env writes its own route there`,
    'server {',
    https ? `    listen ${listenOn(cfg, port)} ssl http2;` : `    listen ${listenOn(cfg, port)};`,
    `    server_name ${host};`,
    ...(https
      ? [
          `    ssl_certificate ${quoted(cfg.tls.cert ?? '')};`,
          `    ssl_certificate_key ${quoted(cfg.tls.key ?? '')};`,
          '    ssl_protocols TLSv1.2 TLSv1.3;',
          `    ssl_ciphers ${CIPHERS};`,
          '    ssl_prefer_server_ciphers off;',
          // One size for every skiff server: nginx refuses a shared zone declared twice with two sizes.
          '    ssl_session_cache shared:skiff_tls:10m;',
          '    ssl_session_timeout 1d;',
          '    ssl_session_tickets off;',
        ]
      : []),
    `    include ${quoted(`${n.siteDir}/*.locations`)};`,
    '}',
    ...(redirect
      ? [
          'server {',
          `    listen ${listenOn(cfg, 80)};`,
          `    server_name ${host};`,
          // In a location, not at server level, so that a challenge location (this one, or the one
          // certbot's nginx plugin adds while it renews) is matched before the redirect.
          `    location ^~ /.well-known/acme-challenge/ {`,
          `        root ${ACME_WEBROOT};`,
          '    }',
          '    location / {',
          `        return 308 https://$host${port === 443 ? '' : `:${port}`}$request_uri;`,
          '    }',
          '}',
        ]
      : []),
    '',
  ].join('\n');
};

/**
 * The env's route, included in its site's server: `location /` for the whole host, else the prefix
 * itself (`= /api`) and all below it (`^~ /api/`, before any regex location; not `/apix`). nginx
 * takes the longest matching prefix, so the most specific route wins whatever the order of the files.
 * The path reaches the app unchanged (proxy_pass with no URI). Headers, gzip and the log are the env's.
 */
export const nginxLocations = (cfg: Config): string => {
  const n = nginxNames(cfg);
  const prefix = publicPrefix(cfg);
  const headers = cfg.http.headers.filter((h) => h !== 'hsts' || isHttps(cfg)).map((h) => RESPONSE_HEADERS[h]);
  const gzip = cfg.http.compression.includes('gzip');
  const body = [
    // The maintenance page while it is on (lib/proxy/maintenance-page.ts): nothing while it is off.
    ...nginxMaintenanceInclude(cfg),
    ...(cfg.http.accessLog === 'json' ? [`    access_log ${quoted(n.accessLog)} ${n.logFormat};`] : []),
    // `always`: on error answers too. The app's own values are hidden below, so these replace them.
    ...headers.map(([name, value]) => `    add_header ${name} "${value}" always;`),
    ...(gzip
      ? ['    gzip on;', '    gzip_vary on;', '    gzip_proxied any;', `    gzip_min_length ${COMPRESS_MIN_BYTES};`, `    gzip_types ${GZIP_TYPES.join(' ')};`]
      : []),
    // The slot, per request: a stat of the flag (no open_file_cache: a rename or removal counts at once).
    // Only `set` in the `if`, which nginx runs in the rewrite phase; the rest of the location applies as written.
    `    set ${n.slotVar} ${n.first};`,
    `    if (-f ${quoted(flagFile(cfg))}) {`,
    `        set ${n.slotVar} ${n.second};`,
    '    }',
    `    proxy_pass http://${n.slotVar};`,
    ...headers.map(([name]) => `    proxy_hide_header ${name};`),
    '    proxy_http_version 1.1;',
    '    proxy_set_header Upgrade $http_upgrade;',
    `    proxy_set_header Connection $${n.upstream}_connection;`,
    '    proxy_set_header Host $host;',
    '    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '    proxy_set_header X-Forwarded-Proto $scheme;',
  ];
  const meta: RouteMeta = { app: cfg.app.name, env: cfg.env, prefix };
  const location = (match: string) => [`location ${match} {`, ...body, '}'];
  return [
    `# skiff route ${JSON.stringify(meta)}`,
    ...(prefix === '' ? location('/') : [...location(`= ${prefix}`), ...location(`^~ ${prefix}/`)]),
    '',
  ].join('\n');
};

/** A site file and the routes in its folder, as `nginxSites` lists them. */
export interface Site {
  readonly file: string;
  readonly settings: SiteSettings | undefined;
  readonly routes: readonly { readonly file: string; readonly meta: RouteMeta | undefined }[];
}

const parseJsonLine = (line: string, tag: string): unknown => {
  if (!line.startsWith(tag)) return undefined;
  try {
    return JSON.parse(line.slice(tag.length)) as unknown;
  } catch {
    return undefined;
  }
};
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const asSettings = (v: unknown): SiteSettings | undefined =>
  isRecord(v) && typeof v.host === 'string' && typeof v.port === 'number' && typeof v.https === 'boolean'
    ? { host: v.host, port: v.port, https: v.https, cert: typeof v.cert === 'string' ? v.cert : null, key: typeof v.key === 'string' ? v.key : null }
    : undefined;
const asMeta = (v: unknown): RouteMeta | undefined =>
  isRecord(v) && typeof v.app === 'string' && typeof v.env === 'string' && typeof v.prefix === 'string' ? { app: v.app, env: v.env, prefix: v.prefix } : undefined;

/** The answer of `nginxSites`: each site file with its settings (undefined when unreadable) and its routes. */
export const parseSites = (answer: string): Site[] => {
  const sites: { file: string; settings: SiteSettings | undefined; routes: { file: string; meta: RouteMeta | undefined }[] }[] = [];
  for (const line of answer.split('\n')) {
    const [kind, file, first = ''] = line.split('\t');
    if (kind === 'site' && file) sites.push({ file, settings: asSettings(parseJsonLine(first, '# skiff site ')), routes: [] });
    if (kind === 'route' && file) sites.at(-1)?.routes.push({ file, meta: asMeta(parseJsonLine(first, '# skiff route ')) });
  }
  return sites;
};

/** What a switch removes besides writing the env's files, or why the env cannot have its route. */
export type SitePlan = { readonly conflict: string } | { readonly conflict?: undefined; readonly remove: readonly string[] };

/**
 * Where the env's route goes among the sites on the host (from `nginxSites`, before the change).
 * Refused: a prefix another env's route on the site has; a port that another site of the host
 * listens on (an https site listens on port 80 of its host too, to redirect); a site whose TLS
 * settings differ while other envs are on it. The site file is written when missing,
 * or when its text differs and its settings agree (or no other env is on it). This env's route in
 * another site (its URL changed) is removed, with that site's file once no route is left there.
 */
export const planSite = (sites: readonly Site[], cfg: Config): SitePlan => {
  const n = nginxNames(cfg);
  const want = siteSettings(cfg);
  const prefix = publicPrefix(cfg);
  const others = (site: Site) => site.routes.filter((r) => r.file !== n.routeFile && !(r.meta?.app === cfg.app.name && r.meta.env === cfg.env));
  const envName = (r: Site['routes'][number]) => (r.meta ? `${r.meta.app} ${r.meta.env}` : r.file);
  const ours = sites.find((s) => s.file === n.siteFile);
  const mine = ours ? others(ours) : [];
  const taken = mine.find((r) => r.meta?.prefix === prefix);
  if (taken) {
    return { conflict: `${prefix === '' ? 'the root' : `the path prefix ${prefix}`} of ${want.host}:${want.port} is served by ${envName(taken)} already (${taken.file}): give DEPLOY_PUBLIC_URL another path, or deploy to another host name` };
  }
  // The ports a site's servers listen on: its own, and 80 for the redirect of an https site.
  const claims = (s: SiteSettings) => (s.https && s.port !== 80 ? [s.port, 80] : [s.port]);
  for (const site of sites) {
    const s = site.settings;
    if (site.file === n.siteFile || s?.host !== want.host || others(site).length === 0) continue;
    const shared = claims(s).find((p) => claims(want).includes(p));
    if (shared === undefined) continue;
    return {
      conflict: `port ${shared} of ${want.host} is served by ${others(site).map(envName).join(', ')} (${site.file}, ${s.https ? 'https' : 'http'} on ${s.port}): an https site redirects port 80 of its host, so the envs of a host on port 80 share its scheme (DEPLOY_PUBLIC_URL)`,
    };
  }
  if (ours && mine.length > 0 && JSON.stringify(ours.settings) !== JSON.stringify(want)) {
    const s = ours.settings;
    const theirs = s ? `${s.https ? `https, ${s.cert ?? ''}, ${s.key ?? ''}` : 'http'}` : 'unreadable settings';
    return { conflict: `the TLS settings for ${want.host}:${want.port} differ from those of ${mine.map(envName).join(', ')} on it (${theirs}): envs on one host must agree on the URL's scheme, DEPLOY_TLS_CERT and DEPLOY_TLS_KEY` };
  }
  const remove: string[] = [];
  for (const site of sites) {
    if (site.file === n.siteFile) continue;
    const stale = site.routes.filter((r) => !others(site).includes(r));
    if (stale.length === 0) continue;
    remove.push(...stale.map((r) => r.file));
    if (others(site).length === 0) remove.push(site.file);
  }
  return { remove };
};

/** nginx's error line without its timestamp and pid, or `nginx: ` prefix. */
const bare = (line: string): string => line.replace(/^(?:nginx: |\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d )?\[(emerg|alert|crit|error)\] (?:\d+#\d+: )?/, '');

/**
 * What a failing `nginx -t` says about skiff's certificate files, in plain words; undefined when its
 * line is about something else. Seen with nginx 1.22 and OpenSSL 3.
 */
export const tlsProblem = (cfg: Config, output: string): string | undefined => {
  const { cert, key } = cfg.tls;
  if (!isHttps(cfg) || cert === undefined || key === undefined) return undefined;
  const why = (text: string) => (/No such file/.test(text) ? 'no such file' : /Permission denied/.test(text) ? 'permission denied' : undefined);
  for (const line of output.split('\n')) {
    const m = /SSL_CTX_use_PrivateKey\("([^"]*)"\) failed.*key values mismatch/.exec(line);
    if (m && m[1] === key) return `the certificate ${cert} does not match the key ${key}`;
    const k = /cannot load certificate key "([^"]*)": (.*)/.exec(line);
    if (k && k[1] === key) return `the key ${key} cannot be read: ${why(k[2] ?? '') ?? 'it is not a PEM private key'}`;
    const c = /cannot load certificate "([^"]*)": (.*)/.exec(line);
    if (c && c[1] === cert) return `the certificate ${cert} cannot be read: ${why(c[2] ?? '') ?? 'it is not a PEM certificate'}`;
  }
  return undefined;
};

/** Which settings name the TLS files: the user's keys, or certbot's certificate that setup obtains. */
const tlsOrigin = (cfg: Config): string =>
  cfg.tls.certbot ? `certbot's for ${publicHost(cfg)}: run scripts/setup.ts ${cfg.env} to obtain it` : 'DEPLOY_TLS_CERT, DEPLOY_TLS_KEY';

/**
 * `yes` when the file is there, `no` when it is not, `unknown` when the nearest folder of it that
 * exists cannot be looked into (certbot's live folder is root's, mode 700).
 */
export const certThere = (path: string) =>
  reads(script('if [ -e "$1" ]; then echo yes; exit; fi; d=$(dirname "$1"); while [ ! -e "$d" ]; do d=$(dirname "$d"); done; if [ -x "$d" ]; then echo no; else echo unknown; fi', path));

/** How long nginx may take to replace its workers after a reload. */
export const NGINX_RELOAD_MS = 10_000;

/**
 * `nginx -s reload`, then waits until every worker accepting connections is a new one (a reload is
 * asynchronous). Undefined once it has; else why not: the reload command failed, or no new workers
 * came (nginx keeps its old config when the new one cannot be applied, a port it cannot bind, say).
 * The callers put their files back. The drivers' switches and the maintenance page share it.
 */
export const reloadNginx = async (host: Host, cfg: Config, clock: Clock): Promise<string | undefined> => {
  const master = (await host.exec(nginxMaster(cfg.nginxCmd))).stdout.trim();
  const before = new Set((await host.exec(nginxWorkers(master))).stdout.split('\n').filter(Boolean));
  const reload = await host.exec(nginx(cfg.nginxCmd, '-s', 'reload'), { check: false });
  if (reload.code !== 0) return `nginx -s reload failed: ${reload.stdout.trim().split('\n').at(-1) ?? `exit ${reload.code}`}`;
  const deadline = clock.now() + NGINX_RELOAD_MS;
  while (clock.now() < deadline) {
    const workers = (await host.exec(nginxWorkers(master))).stdout.split('\n').filter(Boolean);
    if (workers.length > 0 && workers.every((w) => !before.has(w))) return undefined;
    await clock.sleep(50);
  }
  return `nginx did not start new workers within ${NGINX_RELOAD_MS / 1000}s of the reload, so it kept its old config (its error log says why, e.g. a port it cannot bind)`;
};

export const nginxProxy = (cfg: Config, clock: Clock): Proxy => {
  const { confFile, upstreamFile, siteFile, siteDir, routeFile, loadedFile } = nginxNames(cfg);
  const host_ = publicHost(cfg);
  const dir = flagDir(cfg);
  // Set once nginx -t refused the new files: the switch back of the same run leaves the files that
  // nginx runs in place and switches as they do (their flag, or the upstream file of a conf of before).
  let keepConf = false;

  /** Why `nginx -t` fails: skiff's TLS files in plain words, else nginx's own last line; undefined when it passes. */
  const test = async (host: Host, after: boolean): Promise<{ tls: boolean; text: string } | undefined> => {
    const r = await host.exec(nginx(cfg.nginxCmd, '-t'), { check: false });
    // nginx only warns about a second server for a name and port, and ignores it: the new site would never serve.
    const clash = after ? [...r.stdout.matchAll(/conflicting server name "([^"]*)" on (\S+)/g)].find((m) => m[1] === host_) : undefined;
    if (r.code === 0 && !clash) return undefined;
    const tls = tlsProblem(cfg, r.stdout);
    if (tls) return { tls: true, text: tls };
    if (clash) {
      return {
        tls: false,
        text: `another server block has server_name ${host_} on ${clash[2]} already (yours, or an env deployed by an older skiff, which keeps its server in its own <app>-<env>.conf: deploy that env again first)`,
      };
    }
    return { tls: false, text: bare(r.stdout.trim().split('\n').filter((l) => !/test failed/.test(l)).at(-1) ?? 'nginx -t failed') };
  };

  /** Where the env's route goes among the sites on the host; refuses a conflict (exit 2) before anything changes. */
  const planOn = async (host: Host): Promise<readonly string[]> => {
    const plan = planSite(parseSites((await host.exec(nginxSites(cfg.nginxConfDir))).stdout), cfg);
    if (plan.conflict !== undefined) throw new SkiffError(`${host.name}: ${plan.conflict}; nothing was changed`, EXIT.usage);
    return plan.remove;
  };

  /** Writes `wanted` (undefined: remove), checks it and reloads; on any failure every file is as it was and `undo` has run. */
  const load = async (host: Host, wanted: ReadonlyMap<string, string | undefined>, force: boolean, undo: () => Promise<void>): Promise<void> => {
    // Every file as it was, to put back exactly that when nginx refuses or ignores the change.
    const old = new Map<string, Buffer | undefined>();
    for (const path of wanted.keys()) old.set(path, await host.get(path));
    const changed = [...wanted].filter(([path, text]) => old.get(path)?.toString() !== text);
    if (changed.length === 0 && !force) return;
    if (changed.some(([path]) => path === routeFile)) await host.exec(script('mkdir -p "$1"', siteDir));
    for (const [path, text] of changed) {
      if (text === undefined) await host.exec(script('rm -f "$1"', path));
      else await host.put(path, text);
    }
    const putBack = async () => {
      for (const [path] of changed) await restore(host, path, old.get(path));
      await undo();
    };
    const newConf = changed.some(([path]) => path !== upstreamFile);
    const problem = await test(host, newConf);
    if (problem) {
      if (newConf) keepConf = true;
      await putBack();
      throw new SkiffError(
        problem.tls
          ? `${host.name}: nginx refuses the TLS files: ${problem.text} (${tlsOrigin(cfg)}); the old config is in place`
          : `${host.name}: nginx -t fails with the new ${newConf ? 'config' : 'upstream'}: ${problem.text}; the old config is in place`,
      );
    }
    const failed = await reloadNginx(host, cfg, clock);
    if (failed === undefined) return;
    // The files go back to what nginx runs, so the next reload does not pick up a half-applied change.
    await putBack();
    throw new SkiffError(`${host.name}: ${failed}; the old files are back`);
  };

  return {
    kind: 'nginx',
    async check(host) {
      const bad = writtenPaths(cfg).find(([, path]) => UNQUOTABLE.test(path));
      if (bad) throw new SkiffError(`${bad[0]}: ${bad[1]} holds " \\ or $, which nginx would read as syntax: use a path without them`, EXIT.usage);
      if (cfg.tls.certbot && cfg.tls.cert !== undefined && (await host.exec(certThere(cfg.tls.cert))).stdout.trim() === 'no') {
        throw new SkiffError(`${host.name}: no certificate for ${publicHost(cfg)} yet (${cfg.tls.cert}): run scripts/setup.ts ${cfg.env}, which obtains it with certbot (docs/proxies.md#nginx-with-certbot); nothing was changed`);
      }
      await planOn(host);
      const problem = await test(host, false);
      if (problem?.tls) {
        throw new SkiffError(`${host.name}: nginx -t fails before any change: ${problem.text} (${tlsOrigin(cfg)}): fix the files; nginx still serves what it loaded before`);
      }
      if (problem) throw new SkiffError(`${host.name}: nginx -t fails before any change: ${problem.text}; fix the nginx config first`);
      // Its workers stat the flag for every request: a folder they cannot search would fail them all (500).
      await checkFlagReach(host, cfg, 'nginx', (await host.exec(nginxMaster(cfg.nginxCmd))).stdout.trim());
    },
    // No reload at a switch with unchanged settings; one that changes settings keeps the listening socket.
    switchRisk: () => Promise.resolve(undefined),
    async current(host) {
      const conf = (await host.get(confFile))?.toString();
      const slots = parseSlots(conf);
      if (slots) return (await flagNow(host, slots.flag.replace(/\/[^/]*$/, ''))) === 'second' ? slots.second : slots.first;
      // A conf of skiff before the flag switch: its upstream file names the live slot.
      const text = (await host.get(upstreamFile))?.toString();
      const m = text ? /server 127\.0\.0\.1:(\d+);/.exec(text) : null;
      return m ? Number(m[1]) : undefined;
    },
    async switchTo(host, port) {
      if (keepConf) {
        // nginx refused this run's files, which are back as they were: switch the way those do.
        const slots = parseSlots((await host.get(confFile))?.toString());
        if (slots && (port === slots.first || port === slots.second)) {
          await flagTo(host, slots.flag.replace(/\/[^/]*$/, ''), [slots.first, slots.second], port);
          return;
        }
        await load(host, new Map([[upstreamFile, nginxUpstream(cfg, port)]]), false, () => Promise.resolve());
        return;
      }
      // Another env may have taken the prefix since the check (its lock is not this env's).
      const remove = await planOn(host);
      const pair = slotPair(cfg, port);
      const wanted = new Map<string, string | undefined>([
        [confFile, nginxConf(cfg, port)],
        [siteFile, nginxSite(cfg)],
        [routeFile, nginxLocations(cfg)],
        // The upstream file of skiff before the flag switch: the new conf no longer includes it.
        [upstreamFile, undefined],
      ]);
      for (const file of remove) wanted.set(file, undefined);
      // The flag first: with unchanged files it is the whole switch; with new ones nginx loads them
      // already pointing at `port`. Put back as it was when the new files do not load.
      const was = await flagNow(host, dir);
      await flagTo(host, dir, pair, port);
      // The digest is written once nginx has loaded the files: files written but never loaded (a
      // deploy killed between the two) are loaded now, though they are already as wanted.
      const digest = loadedDigest(wanted);
      const loaded = (await host.get(loadedFile))?.toString().trim() === digest;
      await load(host, wanted, !loaded, () => flagBack(host, dir, was));
      if (!loaded) await host.put(loadedFile, `${digest}\n`);
    },
  };
};

/** sha256 of the files a switch wants, path and text, in order (the `.loaded` file of the env). */
export const loadedDigest = (wanted: ReadonlyMap<string, string | undefined>): string => {
  const hash = createHash('sha256');
  for (const [path, text] of wanted) hash.update(`${path}\0${text ?? '\u0001absent'}\0`);
  return hash.digest('hex');
};

const restore = async (host: Host, path: string, content: Buffer | undefined): Promise<void> => {
  if (content) await host.put(path, content);
  else await host.exec(script('rm -f "$1"', path));
};
