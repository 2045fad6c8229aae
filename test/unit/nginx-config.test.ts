/** The nginx driver: the conf file it writes, what it makes of a failing `nginx -t`, and its steps against a recording host. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { render } from '../../lib/core/cmd.ts';
import { certThere, loadedDigest, nginxConf, nginxLocations, nginxNames, nginxProxy, nginxSite, nginxUpstream, parseSites, planSite, tlsProblem } from '../../lib/proxy/nginx.ts';
import { fakeClock, testConfig } from '../support/flow-ctx.ts';
import { inTurn, ok, RecordingHost, when } from '../support/recording-host.ts';

const NGINX = { DEPLOY_PROXY: 'nginx', DEPLOY_NGINX_CONF_DIR: '/etc/nginx/conf.d' };
const FILES = { DEPLOY_TLS_CERT: '/etc/ssl/app.pem', DEPLOY_TLS_KEY: '/etc/ssl/app.key' };
const cfgWith = (values: Record<string, string> = {}) => testConfig({ ...NGINX, ...values });
const HTTPS = cfgWith({ DEPLOY_PUBLIC_URL: 'https://app.example.com', ...FILES });

const JSON_FORMAT =
  `log_format skiff_hello_staging_json escape=json '{"time":"$time_iso8601","remote_addr":"$remote_addr","method":"$request_method","host":"$host","uri":"$request_uri",` +
  `"protocol":"$server_protocol","status":$status,"bytes":$body_bytes_sent,"duration":$request_time,` +
  `"upstream":"$upstream_addr","upstream_status":"$upstream_status","upstream_duration":"$upstream_response_time",` +
  `"referer":"$http_referer","user_agent":"$http_user_agent","tls":"$ssl_protocol"}';`;

const PROXY_LINES = [
  '    proxy_http_version 1.1;',
  '    proxy_set_header Upgrade $http_upgrade;',
  '    proxy_set_header Connection $skiff_hello_staging_connection;',
  '    proxy_set_header Host $host;',
  '    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
  '    proxy_set_header X-Forwarded-Proto $scheme;',
];
const GZIP_LINES = [
  '    gzip on;',
  '    gzip_vary on;',
  '    gzip_proxied any;',
  '    gzip_min_length 512;',
  '    gzip_types text/plain text/css text/javascript text/xml text/csv application/json application/javascript application/xml application/xhtml+xml application/atom+xml application/rss+xml image/svg+xml;',
];

const SITE = '/etc/nginx/conf.d/skiff-site-app.example.com-443';
/** The slot of each request: the second while the flag file is there. */
const SLOT_LINES = [
  '    set $skiff_hello_staging_slot skiff_hello_staging_first;',
  '    if (-f "/etc/nginx/conf.d/hello-staging.slot/live-second") {',
  '        set $skiff_hello_staging_slot skiff_hello_staging_second;',
  '    }',
  '    proxy_pass http://$skiff_hello_staging_slot;',
];
/** The server and the env's route as nginx reads them together. */
const served = (cfg: ReturnType<typeof cfgWith>) => `${nginxSite(cfg)}${nginxLocations(cfg)}`;

describe("skiff's nginx files", () => {
  it("https on 443: the env's upstream and log format; the site with TLS, HTTP/2 and port 80 redirecting; the route with headers (HSTS too), gzip, JSON log", () => {
    expect(nginxConf(HTTPS)).toBe(
      [
        `# written by skiff for hello staging: both slots; ${SITE}.d/hello-staging.locations sends a request to the second while /etc/nginx/conf.d/hello-staging.slot/live-second exists, else to the first`,
        '# skiff slots {"first":3001,"second":3002,"flag":"/etc/nginx/conf.d/hello-staging.slot/live-second"}',
        'upstream skiff_hello_staging_first {',
        '    server 127.0.0.1:3001;',
        '    keepalive 16;',
        '}',
        'upstream skiff_hello_staging_second {',
        '    server 127.0.0.1:3002;',
        '    keepalive 16;',
        '}',
        'map $http_upgrade $skiff_hello_staging_connection {',
        '    default upgrade;',
        "    '' '';",
        '}',
        JSON_FORMAT,
        '',
      ].join('\n'),
    );
    expect(nginxSite(HTTPS)).toBe(
      [
        '# skiff site {"host":"app.example.com","port":443,"https":true,"cert":"/etc/ssl/app.pem","key":"/etc/ssl/app.key"}',
        `# written by skiff for the envs whose routes are in ${SITE}.d; each env writes its own route there`,
        'server {',
        '    listen 443 ssl http2;',
        '    server_name app.example.com;',
        '    ssl_certificate "/etc/ssl/app.pem";',
        '    ssl_certificate_key "/etc/ssl/app.key";',
        '    ssl_protocols TLSv1.2 TLSv1.3;',
        '    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;',
        '    ssl_prefer_server_ciphers off;',
        '    ssl_session_cache shared:skiff_tls:10m;',
        '    ssl_session_timeout 1d;',
        '    ssl_session_tickets off;',
        `    include "${SITE}.d/*.locations";`,
        '}',
        'server {',
        '    listen 80;',
        '    server_name app.example.com;',
        '    location ^~ /.well-known/acme-challenge/ {',
        '        root /var/www/html;',
        '    }',
        '    location / {',
        '        return 308 https://$host$request_uri;',
        '    }',
        '}',
        '',
      ].join('\n'),
    );
    expect(nginxLocations(HTTPS)).toBe(
      [
        '# skiff route {"app":"hello","env":"staging","prefix":""}',
        'location / {',
        '    include "/etc/nginx/conf.d/hello-staging.maintenanc[e]";',
        '    access_log "/var/log/nginx/hello-staging.access.log" skiff_hello_staging_json;',
        '    add_header Strict-Transport-Security "max-age=31536000" always;',
        '    add_header X-Content-Type-Options "nosniff" always;',
        '    add_header X-Frame-Options "SAMEORIGIN" always;',
        '    add_header Referrer-Policy "strict-origin-when-cross-origin" always;',
        ...GZIP_LINES,
        '    set $skiff_hello_staging_slot skiff_hello_staging_first;',
        '    if (-f "/etc/nginx/conf.d/hello-staging.slot/live-second") {',
        '        set $skiff_hello_staging_slot skiff_hello_staging_second;',
        '    }',
        '    proxy_pass http://$skiff_hello_staging_slot;',
        '    proxy_hide_header Strict-Transport-Security;',
        '    proxy_hide_header X-Content-Type-Options;',
        '    proxy_hide_header X-Frame-Options;',
        '    proxy_hide_header Referrer-Policy;',
        ...PROXY_LINES,
        '}',
        '',
      ].join('\n'),
    );
  });

  it('a path prefix: the prefix itself and all below it, the path passed on unchanged (proxy_pass with no URI)', () => {
    const cfg = cfgWith({ DEPLOY_PUBLIC_URL: 'http://example.com/api/v1', DEPLOY_HEALTH_PATH: '/api/v1/health', DEPLOY_HEADERS: 'none', DEPLOY_COMPRESSION: 'none', DEPLOY_ACCESS_LOG: 'off' });
    const body = ['    include "/etc/nginx/conf.d/hello-staging.maintenanc[e]";', ...SLOT_LINES, ...PROXY_LINES];
    expect(nginxLocations(cfg)).toBe(
      ['# skiff route {"app":"hello","env":"staging","prefix":"/api/v1"}', 'location = /api/v1 {', ...body, '}', 'location ^~ /api/v1/ {', ...body, '}', ''].join('\n'),
    );
    expect(nginxNames(cfg)).toMatchObject({
      siteFile: '/etc/nginx/conf.d/skiff-site-example.com-80.conf',
      routeFile: '/etc/nginx/conf.d/skiff-site-example.com-80.d/hello-staging.locations',
    });
    // The site does not depend on the env: every env on example.com:80 writes the same file.
    expect(nginxSite(cfg)).toBe(nginxSite(testConfig({ ...NGINX, APP_NAME: 'web', DEPLOY_PUBLIC_URL: 'http://example.com', DEPLOY_HEADERS: 'hsts' }, 'prod')));
  });

  it('http: no TLS, no HSTS, no redirect server', () => {
    const conf = served(cfgWith());
    expect(conf).toContain('    listen 127.0.0.1:8080;\n    server_name 127.0.0.1;\n    include');
    expect(conf).not.toMatch(/listen .*ssl|ssl_certificate|Strict-Transport-Security|return 308/);
    expect(conf).toContain('    add_header X-Content-Type-Options "nosniff" always;');
  });

  it('a port other than 443: the redirect keeps it', () => {
    const conf = nginxSite(cfgWith({ DEPLOY_PUBLIC_URL: 'https://app.example.com:8443', ...FILES }));
    expect(conf).toContain('    listen 8443 ssl http2;');
    expect(conf).toContain('    listen 80;');
    expect(conf).toContain('        return 308 https://$host:8443$request_uri;');
  });

  it('https on port 80 itself: no second server on 80', () => {
    const conf = nginxSite(cfgWith({ DEPLOY_PUBLIC_URL: 'https://app.example.com:80', ...FILES }));
    expect(conf).toContain('    listen 80 ssl http2;');
    expect(conf.match(/listen/g)).toHaveLength(1);
  });

  it.each([
    ['http://127.0.0.1:8080', '127.0.0.1:8080', undefined],
    ['http://[::1]:8080', '[::1]:8080', undefined],
    ['http://localhost:8080', '127.0.0.1:8080', undefined],
    ['http://app.example.com', '80', undefined],
    ['https://203.0.113.7:8443', '203.0.113.7:8443 ssl http2', '203.0.113.7:80'],
  ])('%s listens on %s', (url, listen, redirect) => {
    const conf = nginxSite(cfgWith({ DEPLOY_PUBLIC_URL: url, ...(url.startsWith('https') ? FILES : {}) }));
    const listens = [...conf.matchAll(/^ {4}listen (.*);$/gm)].map((m) => m[1]);
    expect(listens).toEqual(redirect ? [listen, redirect] : [listen]);
  });

  it('the settings chosen: a header or two, no compression, no log', () => {
    const cfg = cfgWith({ DEPLOY_PUBLIC_URL: 'https://app.example.com', ...FILES, DEPLOY_HEADERS: 'hsts', DEPLOY_COMPRESSION: 'zstd', DEPLOY_ACCESS_LOG: 'off' });
    const conf = served(cfg);
    expect(conf.match(/add_header .*/g)).toEqual(['add_header Strict-Transport-Security "max-age=31536000" always;']);
    expect(conf.match(/proxy_hide_header .*/g)).toEqual(['proxy_hide_header Strict-Transport-Security;']);
    // zstd alone: nginx in Debian has no zstd module, so nothing compresses.
    expect(`${conf}${nginxConf(cfg)}`).not.toMatch(/gzip|log_format|access_log/);
    expect(served(cfgWith({ DEPLOY_HEADERS: 'none', DEPLOY_COMPRESSION: 'none' }))).not.toMatch(/add_header|proxy_hide_header|gzip/);
  });

  it('paths with spaces and ; are quoted; names of the upstream and the log format have no -', () => {
    const cfg = cfgWith({ DEPLOY_PUBLIC_URL: 'https://app.example.com', DEPLOY_TLS_CERT: '/etc/my certs/a;b.pem', DEPLOY_TLS_KEY: '/etc/my certs/{k}.key', DEPLOY_ACCESS_LOG_DIR: '/srv/my logs' });
    const conf = served(cfg);
    expect(conf).toContain('    ssl_certificate "/etc/my certs/a;b.pem";');
    expect(conf).toContain('    ssl_certificate_key "/etc/my certs/{k}.key";');
    expect(conf).toContain('    access_log "/srv/my logs/hello-staging.access.log" skiff_hello_staging_json;');
    expect(nginxNames(testConfig({ ...NGINX, APP_NAME: 'my-app' }, 'eu-1'))).toMatchObject({ upstream: 'skiff_my_app_eu_1', logFormat: 'skiff_my_app_eu_1_json' });
  });

  it('the upstream file names the live port', () => {
    expect(nginxUpstream(cfgWith(), 3002)).toBe('# written by skiff: the live slot of hello staging\nserver 127.0.0.1:3002;\n');
  });
});

describe('envs that share a site', () => {
  const DIR = '/etc/nginx/conf.d';
  const http = (app: string, url: string, extra: Record<string, string> = {}) =>
    testConfig({ ...NGINX, APP_NAME: app, DEPLOY_PUBLIC_URL: url, DEPLOY_HEALTH_PATH: new URL(url).pathname.replace(/\/$/, '') + '/health', ...extra }, 'prod');
  /** The answer of nginxSites after these envs deployed. */
  const listing = (...cfgs: ReturnType<typeof http>[]) => {
    const bySite = new Map<string, string[]>();
    for (const c of cfgs) {
      const n = nginxNames(c);
      const lines = bySite.get(n.siteFile) ?? [`site\t${n.siteFile}\t${nginxSite(c).split('\n')[0]}`];
      lines.push(`route\t${n.routeFile}\t${nginxLocations(c).split('\n')[0]}`);
      bySite.set(n.siteFile, lines);
    }
    return [...bySite.values()].flat().join('\n');
  };
  const front = http('front', 'http://example.com');
  const api = http('api', 'http://example.com/api');

  it('the listing is read back as sites with their routes; a file that is not skiff\'s says nothing', () => {
    expect(parseSites(`${listing(front, api)}\nsite\t${DIR}/skiff-site-x-80.conf\tserver {\nroute\t${DIR}/skiff-site-x-80.d/a.locations\t# skiff route {bad json`)).toEqual([
      {
        file: `${DIR}/skiff-site-example.com-80.conf`,
        settings: { host: 'example.com', port: 80, https: false, cert: null, key: null },
        routes: [
          { file: `${DIR}/skiff-site-example.com-80.d/front-prod.locations`, meta: { app: 'front', env: 'prod', prefix: '' } },
          { file: `${DIR}/skiff-site-example.com-80.d/api-prod.locations`, meta: { app: 'api', env: 'prod', prefix: '/api' } },
        ],
      },
      { file: `${DIR}/skiff-site-x-80.conf`, settings: undefined, routes: [{ file: `${DIR}/skiff-site-x-80.d/a.locations`, meta: undefined }] },
    ]);
  });

  it('a second env on the host joins its site; its own route again is no conflict', () => {
    expect(planSite(parseSites(listing(front)), api)).toEqual({ remove: [] });
    expect(planSite(parseSites(listing(front, api)), api)).toEqual({ remove: [] });
    expect(planSite(parseSites(listing(front, api)), http('docs', 'http://example.com/docs'))).toEqual({ remove: [] });
    // Another port of the host is another server.
    expect(planSite(parseSites(listing(front, api)), http('web', 'http://example.com:8080/api'))).toEqual({ remove: [] });
  });

  it.each([
    ['the same prefix', http('api2', 'http://example.com/api'), 'the path prefix /api of example.com:80 is served by api prod already'],
    ['the root', http('web', 'http://example.com'), 'the root of example.com:80 is served by front prod already'],
    ['https beside http on 80 (its redirect listens there)', http('web', 'https://example.com/web', FILES), 'port 80 of example.com is served by front prod, api prod'],
    ['https on the port of http envs', http('web', 'https://example.com:80/web', FILES), 'the TLS settings for example.com:80 differ from those of front prod, api prod on it (http)'],
  ])('refused: %s', (_, cfg, message) => {
    const plan = planSite(parseSites(listing(front, api)), cfg);
    expect(plan.conflict).toContain(message);
  });

  it('refused: TLS settings that differ from those of the envs on the site', () => {
    const a = http('a', 'https://example.com', FILES);
    const b = http('b', 'https://example.com/b', { DEPLOY_TLS_CERT: '/etc/ssl/other.pem', DEPLOY_TLS_KEY: '/etc/ssl/other.key' });
    expect(planSite(parseSites(listing(a)), b).conflict).toBe(
      'the TLS settings for example.com:443 differ from those of a prod on it (https, /etc/ssl/app.pem, /etc/ssl/app.key): envs on one host must agree on the URL\'s scheme, DEPLOY_TLS_CERT and DEPLOY_TLS_KEY',
    );
    // Alone on its site, an env changes its own certificate freely.
    expect(planSite(parseSites(listing(b)), http('b', 'https://example.com/b', FILES))).toEqual({ remove: [] });
  });

  it("an env whose URL changed takes its route out of the old site, and the old site's file once no route is left", () => {
    const moved = http('api', 'http://api.example.com');
    expect(planSite(parseSites(listing(front, api)), moved)).toEqual({ remove: [`${DIR}/skiff-site-example.com-80.d/api-prod.locations`] });
    expect(planSite(parseSites(listing(api)), moved)).toEqual({ remove: [`${DIR}/skiff-site-example.com-80.d/api-prod.locations`, `${DIR}/skiff-site-example.com-80.conf`] });
  });
});

describe("what a failing nginx -t says about skiff's TLS files", () => {
  // Lines as nginx 1.22 with OpenSSL 3 prints them (Debian 12).
  it.each([
    [
      'nginx: [emerg] SSL_CTX_use_PrivateKey("/etc/ssl/app.key") failed (SSL: error:05800074:x509 certificate routines::key values mismatch)',
      'the certificate /etc/ssl/app.pem does not match the key /etc/ssl/app.key',
    ],
    [
      '2026/12/03 19:25:48 [emerg] 13060#13060: cannot load certificate key "/etc/ssl/app.key": BIO_new_file() failed (SSL: error:80000002:system library::No such file or directory:calling fopen(/etc/ssl/app.key, r) error:10000080:BIO routines::no such file)',
      'the key /etc/ssl/app.key cannot be read: no such file',
    ],
    [
      'nginx: [emerg] cannot load certificate "/etc/ssl/app.pem": BIO_new_file() failed (SSL: error:8000000D:system library::Permission denied:calling fopen(/etc/ssl/app.pem, r))',
      'the certificate /etc/ssl/app.pem cannot be read: permission denied',
    ],
    [
      'nginx: [emerg] cannot load certificate "/etc/ssl/app.pem": PEM_read_bio_X509_AUX() failed (SSL: error:0480006C:PEM routines::no start line:Expecting: TRUSTED CERTIFICATE)',
      'the certificate /etc/ssl/app.pem cannot be read: it is not a PEM certificate',
    ],
    ['nginx: [emerg] cannot load certificate key "/etc/ssl/app.key": PEM_read_bio_PrivateKey() failed (SSL: error:1E08010C:DECODER routines::unsupported)', 'the key /etc/ssl/app.key cannot be read: it is not a PEM private key'],
  ])('%s', (line, said) => {
    expect(tlsProblem(HTTPS, `${line}\nnginx: configuration file /etc/nginx/nginx.conf test failed\n`)).toBe(said);
  });

  it("is not about skiff's files when the line names another file, or the URL is http", () => {
    expect(tlsProblem(HTTPS, 'nginx: [emerg] SSL_CTX_use_PrivateKey("/etc/ssl/other.key") failed (SSL: error:05800074:x509 certificate routines::key values mismatch)')).toBeUndefined();
    expect(tlsProblem(cfgWith(), 'nginx: [emerg] SSL_CTX_use_PrivateKey("/etc/ssl/app.key") failed (key values mismatch)')).toBeUndefined();
  });
});

describe('the nginx driver on a host', () => {
  const MISMATCH = 'nginx: [emerg] SSL_CTX_use_PrivateKey("/etc/ssl/app.key") failed (SSL: error:05800074:x509 certificate routines::key values mismatch)\nnginx: configuration file /etc/nginx/nginx.conf test failed';
  const { confFile, upstreamFile, siteFile, routeFile, loadedFile } = nginxNames(HTTPS);
  /** The switch flag of the env, as the host's commands see it; `changes` after each change of it. */
  const flagOf = (start: 'none' | 'first' | 'second' = 'none') => {
    const flag = { now: start, changes: [] as string[] };
    const rule = (rendered: string) => {
      if (rendered.includes('echo second')) return ok(`${flag.now}\n`);
      if (!rendered.includes('live-second')) return undefined;
      flag.now = rendered.includes('mv -f') ? 'second' : 'first';
      flag.changes.push(flag.now);
      return ok();
    };
    return { flag, rule };
  };
  /** No site of skiff's on the host yet; folders made and files removed answer ok; the flag folder is reachable. */
  const siteRules = () => [when('skiff-site-*.conf', ok()), when('ps -o user=', ok('www-data\n')), when('echo ok', ok('ok\n')), when('mkdir -p', ok()), when(/rm -f/, ok())];
  const LEGACY = (host: RecordingHost) => {
    host.files.set(confFile, { content: Buffer.from('old conf'), mode: 0o644 });
    host.files.set(upstreamFile, { content: Buffer.from('server 127.0.0.1:3001;\n'), mode: 0o644 });
  };
  const CURRENT = (host: RecordingHost) => {
    host.files.set(confFile, { content: Buffer.from(nginxConf(HTTPS)), mode: 0o644 });
    host.files.set(siteFile, { content: Buffer.from(nginxSite(HTTPS)), mode: 0o644 });
    host.files.set(routeFile, { content: Buffer.from(nginxLocations(HTTPS)), mode: 0o644 });
    // What the last switch recorded once nginx had loaded them.
    const wanted = new Map<string, string | undefined>([[confFile, nginxConf(HTTPS)], [siteFile, nginxSite(HTTPS)], [routeFile, nginxLocations(HTTPS)], [upstreamFile, undefined]]);
    host.files.set(loadedFile, { content: Buffer.from(`${loadedDigest(wanted)}\n`), mode: 0o644 });
  };
  const reloads = () => [when(/ sh nginx -t$/, ok()), when('awk', ok('100\n')), inTurn('pgrep', [ok('101\n'), ok('102\n')]), when('reload', ok())];

  it('a certificate that does not match its key: the old files and flag back, and a line that says so (exit 1)', async () => {
    const { flag, rule } = flagOf();
    const host = new RecordingHost([rule, ...siteRules(), when(/ sh nginx -t$/, { code: 1, stdout: MISMATCH, stderr: '' }), when('awk', ok('100\n'))]);
    LEGACY(host);
    const error = await nginxProxy(HTTPS, fakeClock()).switchTo(host, 3002).then(
      () => undefined,
      (e: unknown) => e as Error & { exitCode: number },
    );
    expect(error?.message).toBe(
      'fake: nginx refuses the TLS files: the certificate /etc/ssl/app.pem does not match the key /etc/ssl/app.key (DEPLOY_TLS_CERT, DEPLOY_TLS_KEY); the old config is in place',
    );
    expect(error?.exitCode).toBe(1);
    expect(host.files.get(confFile)?.content.toString()).toBe('old conf');
    expect(host.files.get(upstreamFile)?.content.toString()).toBe('server 127.0.0.1:3001;\n');
    expect(host.commands.some((c) => c.includes('reload'))).toBe(false);
    // Set before the files (so that they load pointing at the new slot), then back.
    expect(flag.changes).toEqual(['second', 'first']);
  });

  it('the switch back after a refused conf of before the flag writes its upstream file only, so nginx -t passes with the conf it runs', async () => {
    const { rule } = flagOf();
    const host = new RecordingHost([rule, ...siteRules(), inTurn(/ sh nginx -t$/, [{ code: 1, stdout: MISMATCH, stderr: '' }, ok()]), when('awk', ok('100\n')), inTurn('pgrep', [ok('101\n'), ok('102\n')]), when('reload', ok())]);
    LEGACY(host);
    const driver = nginxProxy(HTTPS, fakeClock());
    await expect(driver.switchTo(host, 3002)).rejects.toThrow(/does not match the key/);
    host.puts.length = 0;
    await driver.switchTo(host, 3001);
    expect(host.puts.map((p) => p.path)).toEqual([upstreamFile]);
    expect(host.files.get(confFile)?.content.toString()).toBe('old conf');
  });

  it('check: files that went bad under a running nginx are named before any change', async () => {
    const host = new RecordingHost([...siteRules(), when(/ sh nginx -t$/, { code: 1, stdout: MISMATCH, stderr: '' })]);
    await expect(nginxProxy(HTTPS, fakeClock()).check(host)).rejects.toThrow(
      'fake: nginx -t fails before any change: the certificate /etc/ssl/app.pem does not match the key /etc/ssl/app.key (DEPLOY_TLS_CERT, DEPLOY_TLS_KEY): fix the files; nginx still serves what it loaded before',
    );
    expect(host.puts).toEqual([]);
  });

  it('check: nginx -t failing on something else shows nginx line without its timestamp', async () => {
    const host = new RecordingHost([...siteRules(), when(/ sh nginx -t$/, { code: 1, stdout: '2026/12/03 19:25:48 [emerg] 1#1: unknown directive "foo" in /etc/nginx/conf.d/x.conf:1\nnginx: configuration file /etc/nginx/nginx.conf test failed', stderr: '' })]);
    await expect(nginxProxy(HTTPS, fakeClock()).check(host)).rejects.toThrow('fake: nginx -t fails before any change: unknown directive "foo" in /etc/nginx/conf.d/x.conf:1; fix the nginx config first');
  });

  it.each([
    ['search www-data /etc/nginx/conf.d 700', 'fake: nginx runs as www-data, which cannot search /etc/nginx/conf.d (mode 700), so it could not see the switch flag in /etc/nginx/conf.d/hello-staging.slot: let it in (chmod o+x /etc/nginx/conf.d), or set DEPLOY_SWITCH_DIR to a folder it can search; nothing was changed'],
    ['write /etc/nginx', 'fake: cannot make the switch folder /etc/nginx/conf.d/hello-staging.slot: /etc/nginx is not writable by the deploying user: run `npx tsx scripts/setup.ts staging`, which makes it for you (or set DEPLOY_SWITCH_DIR to a folder nginx can search); nothing was changed'],
  ])('check: a flag folder nginx cannot reach, or the deploying user cannot make (%s): refused, exit 2', async (said, message) => {
    const host = new RecordingHost([when('skiff-site-*.conf', ok()), when(/ sh nginx -t$/, ok()), when('awk', ok('100\n')), when('ps -o user=', ok('www-data\n')), when('echo ok', ok(`${said}\n`))]);
    const error = await nginxProxy(HTTPS, fakeClock()).check(host).then(
      () => undefined,
      (e: unknown) => e as Error & { exitCode: number },
    );
    expect(error?.message).toBe(message);
    expect(error?.exitCode).toBe(2);
    expect(host.puts).toEqual([]);
  });

  it.each([
    [{ DEPLOY_TLS_CERT: '/etc/ssl/$host.pem' }, 'DEPLOY_TLS_CERT: /etc/ssl/$host.pem holds'],
    [{ DEPLOY_TLS_KEY: '/etc/ssl/a"b.key' }, 'DEPLOY_TLS_KEY: /etc/ssl/a"b.key holds'],
    [{ DEPLOY_ACCESS_LOG_DIR: '/srv/lo\\gs' }, 'DEPLOY_ACCESS_LOG_DIR: /srv/lo\\gs/hello-staging.access.log holds'],
  ])('check refuses a path nginx would read as syntax: %o (exit 2)', async (values, message) => {
    const host = new RecordingHost([...siteRules(), when(/ sh nginx -t$/, ok())]);
    const cfg = cfgWith({ DEPLOY_PUBLIC_URL: 'https://app.example.com', ...FILES, ...values });
    const error = await nginxProxy(cfg, fakeClock()).check(host).then(
      () => undefined,
      (e: unknown) => e as Error & { exitCode: number },
    );
    expect(error?.message).toContain(message);
    expect(error?.exitCode).toBe(2);
    expect(host.commands).toEqual([]);
  });

  it('a reload nginx does not take (no new workers): the old files and flag go back', async () => {
    const { flag, rule } = flagOf('first');
    const host = new RecordingHost([rule, ...siteRules(), when(/ sh nginx -t$/, ok()), when('awk', ok('100\n')), when('pgrep', ok('101\n')), when('reload', ok())]);
    LEGACY(host);
    await expect(nginxProxy(HTTPS, fakeClock()).switchTo(host, 3002)).rejects.toThrow(/did not start new workers within 10s of the reload, so it kept its old config .*; the old files are back/);
    expect(host.files.get(confFile)?.content.toString()).toBe('old conf');
    expect(host.files.get(upstreamFile)?.content.toString()).toBe('server 127.0.0.1:3001;\n');
    expect(host.files.has(loadedFile)).toBe(false);
    expect(flag.changes).toEqual(['second', 'first']);
  });

  it('the first switch from a conf of before the flag: the conf with both slots, the upstream file gone, one reload; current follows', async () => {
    const { flag, rule } = flagOf();
    const host = new RecordingHost([rule, ...siteRules(), ...reloads()]);
    LEGACY(host);
    const driver = nginxProxy(HTTPS, fakeClock());
    expect(await driver.current(host)).toBe(3001);
    await driver.switchTo(host, 3002);
    expect(host.files.get(confFile)?.content.toString()).toBe(nginxConf(HTTPS));
    expect(host.commands).toContain(`sh -c 'rm -f "$1"' sh ${upstreamFile}`);
    expect(host.commands.filter((c) => c.includes('reload'))).toHaveLength(1);
    expect(host.files.has(loadedFile)).toBe(true);
    expect(flag.changes).toEqual(['second']);
    expect(await driver.current(host)).toBe(3002);
  });

  it('a switch with unchanged settings: the flag only, by rename or removal; no file written, no nginx -t, no reload', async () => {
    const { flag, rule } = flagOf('first');
    const host = new RecordingHost([rule, ...siteRules(), ...reloads()]);
    CURRENT(host);
    const driver = nginxProxy(HTTPS, fakeClock());
    expect(await driver.current(host)).toBe(3001);
    await driver.switchTo(host, 3002);
    expect(await driver.current(host)).toBe(3002);
    await driver.switchTo(host, 3001);
    expect(await driver.current(host)).toBe(3001);
    expect(host.puts).toEqual([]);
    expect(host.commands.filter((c) => / nginx -t$|reload/.test(c))).toEqual([]);
    expect(flag.changes).toEqual(['second', 'first']);
    const flagCommands = host.commands.filter((c) => c.includes('live-second') && !c.includes('echo second'));
    expect(flagCommands[0]).toContain(`mkdir -p "$1" && chmod 755 "$1" && : >"$1/.live-second.tmp" && mv -f "$1/.live-second.tmp" "$1/live-second"' sh /etc/nginx/conf.d/hello-staging.slot`);
    expect(flagCommands[1]).toContain(`rm -f "$1/live-second"`);
  });

  it('unchanged files that nginx may never have loaded (no digest of them recorded after a reload): reloaded once, then recorded', async () => {
    const { rule } = flagOf('first');
    const host = new RecordingHost([rule, ...siteRules(), ...reloads()]);
    CURRENT(host);
    const digest = host.files.get(loadedFile)?.content.toString();
    host.files.delete(loadedFile);
    const driver = nginxProxy(HTTPS, fakeClock());
    await driver.switchTo(host, 3002);
    expect(host.puts.map((p) => p.path)).toEqual([loadedFile]);
    expect(host.files.get(loadedFile)?.content.toString()).toBe(digest);
    expect(host.commands.filter((c) => c.includes('reload'))).toHaveLength(1);
    await driver.switchTo(host, 3001);
    expect(host.commands.filter((c) => c.includes('reload'))).toHaveLength(1);
  });
});

describe('certThere', () => {
  const run = (path: string) => execFileSync('sh', ['-c', render(certThere(path))]).toString().trim();
  it('tells a certificate that is there from one that is not, and from one it cannot look for', () => {
    const dir = mkdtempSync(join(tmpdir(), 'skiff-cert-'));
    writeFileSync(join(dir, 'fullchain.pem'), 'x');
    expect(run(join(dir, 'fullchain.pem'))).toBe('yes');
    expect(run(join(dir, 'live/app.example.com/fullchain.pem'))).toBe('no');
    // A folder that cannot be searched: what a non-root user sees of /etc/letsencrypt/live (root has every right).
    if (process.getuid?.() !== 0) {
      mkdirSync(join(dir, 'closed'), { mode: 0o600 });
      expect(run(join(dir, 'closed/app/fullchain.pem'))).toBe('unknown');
    }
    rmSync(dir, { recursive: true });
  });
});
