/** The nginx driver: `<app>-<env>.conf` and an upstream file in DEPLOY_NGINX_CONF_DIR, `nginx -t` before every reload. */
import { isIP } from 'node:net';
import { script } from '../core/cmd.ts';
import { COMPRESS_MIN_BYTES, nginx, nginxMaster, nginxWorkers, RESPONSE_HEADERS } from '../commands/proxy.ts';
import type { Config } from '../config/config.ts';
import type { Clock } from '../core/clock.ts';
import { EXIT, SkiffError } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import type { Proxy } from './proxy.ts';
import { publicHost, publicPort } from './route.ts';
import { nginxMaintenanceInclude } from './maintenance-page.ts';

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

/** The files skiff owns for an app and env, and the names it gives nginx. */
export const nginxNames = (cfg: Config) => {
  const base = `${cfg.nginxConfDir}/${cfg.app.name}-${cfg.env}`;
  const name = `skiff_${cfg.app.name}_${cfg.env}`.replace(/-/g, '_');
  return {
    confFile: `${base}.conf`,
    upstreamFile: `${base}.upstream`,
    upstream: name,
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
    ['DEPLOY_NGINX_CONF_DIR', n.upstreamFile],
    ...(cfg.http.accessLog === 'json' ? [['DEPLOY_ACCESS_LOG_DIR', n.accessLog] as [string, string]] : []),
    ...(isHttps(cfg) && cfg.tls.cert && cfg.tls.key ? [['DEPLOY_TLS_CERT', cfg.tls.cert] as [string, string], ['DEPLOY_TLS_KEY', cfg.tls.key] as [string, string]] : []),
  ];
};

/** The upstream file: the live slot. */
export const nginxUpstream = (cfg: Config, port: number): string => `# written by skiff: the live slot of ${cfg.app.name} ${cfg.env}\nserver 127.0.0.1:${port};\n`;

/**
 * skiff's conf file (nginx includes it in its http block): the upstream, the JSON log format, the
 * server of DEPLOY_PUBLIC_URL with TLS, headers and gzip as the settings say, and for an https URL a
 * server on port 80 that redirects to it (keeping a port other than 443) and answers ACME challenges.
 */
export const nginxConf = (cfg: Config): string => {
  const n = nginxNames(cfg);
  const https = isHttps(cfg);
  const host = publicHost(cfg);
  const port = publicPort(cfg);
  const json = cfg.http.accessLog === 'json';
  const headers = cfg.http.headers.filter((h) => h !== 'hsts' || https).map((h) => RESPONSE_HEADERS[h]);
  const gzip = cfg.http.compression.includes('gzip');
  const accessLog = json ? [`    access_log ${quoted(n.accessLog)} ${n.logFormat};`] : [];
  const redirect = https && port !== 80;
  return [
    `# written by skiff for ${cfg.app.name} ${cfg.env}; the upstream lives in ${n.upstreamFile}`,
    `upstream ${n.upstream} {`,
    `    include ${quoted(n.upstreamFile)};`,
    '    keepalive 16;',
    '}',
    ...(json ? [`log_format ${n.logFormat} escape=json '${JSON_LOG}';`] : []),
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
    ...accessLog,
    // `always`: on error answers too. The app's own values are hidden below, so these replace them.
    ...headers.map(([name, value]) => `    add_header ${name} "${value}" always;`),
    ...(gzip
      ? ['    gzip on;', '    gzip_vary on;', '    gzip_proxied any;', `    gzip_min_length ${COMPRESS_MIN_BYTES};`, `    gzip_types ${GZIP_TYPES.join(' ')};`]
      : []),
    // The maintenance page while it is on (lib/proxy/maintenance-page.ts): nothing while it is off.
    ...nginxMaintenanceInclude(cfg),
    '    location / {',
    `        proxy_pass http://${n.upstream};`,
    ...headers.map(([name]) => `        proxy_hide_header ${name};`),
    '        proxy_http_version 1.1;',
    '        proxy_set_header Connection "";',
    '        proxy_set_header Host $host;',
    '        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '        proxy_set_header X-Forwarded-Proto $scheme;',
    '    }',
    '}',
    ...(redirect
      ? [
          'server {',
          `    listen ${listenOn(cfg, 80)};`,
          `    server_name ${host};`,
          ...accessLog,
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
  script('if [ -e "$1" ]; then echo yes; exit; fi; d=$(dirname "$1"); while [ ! -e "$d" ]; do d=$(dirname "$d"); done; if [ -x "$d" ]; then echo no; else echo unknown; fi', path);

export const nginxProxy = (cfg: Config, clock: Clock): Proxy => {
  const { confFile, upstreamFile } = nginxNames(cfg);
  const serverBlock = nginxConf(cfg);
  // Set once nginx -t refused the new conf file: the switch back of the same run writes the upstream
  // only, leaving the conf that nginx runs in place.
  let keepConf = false;

  /** Why `nginx -t` fails: skiff's TLS files in plain words, else nginx's own last line; undefined when it passes. */
  const test = async (host: Host): Promise<{ tls: boolean; text: string } | undefined> => {
    const r = await host.exec(nginx(cfg.nginxCmd, '-t'), { check: false });
    if (r.code === 0) return undefined;
    const tls = tlsProblem(cfg, r.stdout);
    if (tls) return { tls: true, text: tls };
    return { tls: false, text: bare(r.stdout.trim().split('\n').filter((l) => !/test failed/.test(l)).at(-1) ?? 'nginx -t failed') };
  };

  return {
    kind: 'nginx',
    async check(host) {
      const bad = writtenPaths(cfg).find(([, path]) => UNQUOTABLE.test(path));
      if (bad) throw new SkiffError(`${bad[0]}: ${bad[1]} holds " \\ or $, which nginx would read as syntax: use a path without them`, EXIT.usage);
      if (cfg.tls.certbot && cfg.tls.cert !== undefined && (await host.exec(certThere(cfg.tls.cert))).stdout.trim() === 'no') {
        throw new SkiffError(`${host.name}: no certificate for ${publicHost(cfg)} yet (${cfg.tls.cert}): run scripts/setup.ts ${cfg.env}, which obtains it with certbot (docs/proxies.md#nginx-with-certbot); nothing was changed`);
      }
      const problem = await test(host);
      if (problem?.tls) {
        throw new SkiffError(`${host.name}: nginx -t fails before any change: ${problem.text} (${tlsOrigin(cfg)}): fix the files; nginx still serves what it loaded before`);
      }
      if (problem) throw new SkiffError(`${host.name}: nginx -t fails before any change: ${problem.text}; fix the nginx config first`);
    },
    // nginx keeps its listening socket across reloads: new workers take over from the same queue.
    switchRisk: () => Promise.resolve(undefined),
    async current(host) {
      const text = (await host.get(upstreamFile))?.toString();
      const m = text ? /server 127\.0\.0\.1:(\d+);/.exec(text) : null;
      return m ? Number(m[1]) : undefined;
    },
    async switchTo(host, port) {
      const oldUpstream = await host.get(upstreamFile);
      const oldConf = await host.get(confFile);
      await host.put(upstreamFile, nginxUpstream(cfg, port));
      const newConf = !keepConf && oldConf?.toString() !== serverBlock;
      if (newConf) await host.put(confFile, serverBlock);
      const problem = await test(host);
      if (problem) {
        if (newConf) keepConf = true;
        // Put back exactly what was there, so the running nginx and its files agree again.
        await restore(host, upstreamFile, oldUpstream);
        await restore(host, confFile, oldConf);
        throw new SkiffError(
          problem.tls
            ? `${host.name}: nginx refuses the TLS files: ${problem.text} (${tlsOrigin(cfg)}); the old config is in place`
            : `${host.name}: nginx -t fails with the new upstream: ${problem.text}; the old config is in place`,
        );
      }
      const master = (await host.exec(nginxMaster(cfg.nginxCmd))).stdout.trim();
      const before = new Set((await host.exec(nginxWorkers(master))).stdout.split('\n').filter(Boolean));
      const reload = await host.exec(nginx(cfg.nginxCmd, '-s', 'reload'), { check: false });
      if (reload.code !== 0) throw new SkiffError(`${host.name}: nginx -s reload failed: ${reload.stdout.trim().split('\n').at(-1)}`);
      // A reload is asynchronous: wait until every worker accepting connections is a new one.
      const deadline = clock.now() + 10_000;
      while (clock.now() < deadline) {
        const workers = (await host.exec(nginxWorkers(master))).stdout.split('\n').filter(Boolean);
        if (workers.length > 0 && workers.every((w) => !before.has(w))) return;
        await clock.sleep(50);
      }
      // nginx keeps its old config when the new one cannot be applied (a port it cannot bind, say):
      // the files go back to what it runs, so the next reload does not pick up a half-applied change.
      await restore(host, upstreamFile, oldUpstream);
      await restore(host, confFile, oldConf);
      throw new SkiffError(`${host.name}: nginx did not start new workers within 10s of the reload, so it kept its old config (its error log says why, e.g. a port it cannot bind); the old files are back`);
    },
  };
};

const restore = async (host: Host, path: string, content: Buffer | undefined): Promise<void> => {
  if (content) await host.put(path, content);
  else await host.exec(script('rm -f "$1"', path));
};
