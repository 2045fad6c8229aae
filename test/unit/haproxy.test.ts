/** The HAProxy driver: its file, runtime API commands as strings, what it reads back, and its steps against a recording host. */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { render, type Cmd } from '../../lib/core/cmd.ts';
import { EXIT, SkiffError } from '../../lib/core/errors.ts';
import {
  filesBindingPort,
  folderState,
  haproxyApi,
  haproxyCheck,
  haproxyProcess,
  linkFile,
  setServerState,
  showServersState,
  socatUnix,
  socketState,
  userCommand,
} from '../../lib/commands/haproxy.ts';
import {
  certLinkIn,
  frontConfig,
  frontOf,
  hasOwnFrontend,
  otherRoutes,
  parseRouteMap,
  readRouteRecord,
  routeKeys,
  routeMapText,
  routeOwner,
  withRoute,
} from '../../lib/proxy/haproxy-front.ts';
import {
  boundPorts,
  checkProblem,
  haproxyConfig,
  haproxyProxy,
  livePortInFile,
  loadsFolder,
  parseLoaded,
  parseServersState,
  pidIn,
  serving,
  shapeOf,
} from '../../lib/proxy/haproxy.ts';
import { proxyFor } from '../../lib/proxy/proxy.ts';
import { fakeClock, testConfig } from '../support/flow-ctx.ts';
import { anything, failed, ok, RecordingHost, when, type Rule } from '../support/recording-host.ts';
import { words } from './shell-words.ts';

const scriptArgs = (c: Cmd): string[] => {
  if (c.kind !== 'script') throw new Error(`not a script: ${c.kind}`);
  const w = words(render(c));
  expect(w.slice(0, 4)).toEqual(['sh', '-c', c.text, 'sh']);
  return w.slice(4);
};

const HA = {
  DEPLOY_PROXY: 'haproxy',
  DEPLOY_PORTS: '3001,3002',
  DEPLOY_PUBLIC_URL: 'http://127.0.0.1:8080',
  DEPLOY_HAPROXY_SOCKET: '/run/haproxy/admin.sock',
  DEPLOY_HAPROXY_CONF_DIR: '/etc/haproxy/conf.d',
  DEPLOY_HAPROXY_RELOAD: 'systemctl reload haproxy',
};
const cfgWith = (values: Record<string, string> = {}) => testConfig({ ...HA, ...values });

const FILE = '/etc/haproxy/conf.d/skiff-hello-staging.cfg';
const MAP = '/etc/haproxy/conf.d/skiff-hello-staging.maintenance.map';
/** The maintenance rule every frontend of skiff's carries (lib/proxy/maintenance-page.ts). */
const MAINTENANCE_RULES = [
  '    # the maintenance page (scripts/maintenance.ts), on while the map below has `page`: changed through the runtime API',
  `    http-request return status 503 content-type "text/html; charset=utf-8" lf-string "%[str(page),map(${MAP}),b64dec]" hdr Retry-After "%[str(retry),map(${MAP})]" hdr Cache-Control no-store if { str(page),map(${MAP}) -m found }`,
];

const ROUTE_FRONT = '/etc/haproxy/conf.d/skiff-front-127.0.0.1-8080';
const RECORD = '# skiff-route {"front":"skiff-front-127.0.0.1-8080","host":"127.0.0.1","keys":["127.0.0.1/","127.0.0.1:8080/"]}';

describe("skiff's HAProxy files: the env's backend", () => {
  it('an http URL: both slots in one backend, the idle one disabled, with what is the env own; a record of its route', () => {
    expect(haproxyConfig(cfgWith(), 'blue')).toBe(
      [
        '# Written by skiff for hello staging; rewritten at every switch (edits here do not last).',
        RECORD,
        `# Its route is in ${ROUTE_FRONT}.map, served by the frontend of ${ROUTE_FRONT}.cfg. The live slot is the server`,
        "# without `disabled`: a switch changes the servers' states through the runtime API, with no reload,",
        '# then writes this file to match, so a restart keeps the live server.',
        'backend skiff-hello-staging',
        '    mode http',
        '    default-server pool-purge-delay 200ms',
        ...MAINTENANCE_RULES,
        '    http-response set-header X-Content-Type-Options nosniff',
        '    http-response set-header X-Frame-Options SAMEORIGIN',
        '    http-response set-header Referrer-Policy strict-origin-when-cross-origin',
        '    compression algo gzip',
        '    compression type text/html text/plain text/css text/javascript application/javascript application/json application/xml image/svg+xml',
        '    server blue 127.0.0.1:3001',
        '    server green 127.0.0.1:3002 disabled',
        '',
      ].join('\n'),
    );
    expect(hasOwnFrontend(haproxyConfig(cfgWith(), 'blue'))).toBe(false);
    expect(readRouteRecord(haproxyConfig(cfgWith(), 'blue'))).toEqual({ front: 'skiff-front-127.0.0.1-8080', host: '127.0.0.1', keys: ['127.0.0.1/', '127.0.0.1:8080/'] });
  });

  it('green live: blue is the disabled one', () => {
    const text = haproxyConfig(cfgWith(), 'green');
    expect(text).toContain('    server blue 127.0.0.1:3001 disabled\n    server green 127.0.0.1:3002\n');
    expect(livePortInFile(text)).toBe(3002);
    expect(livePortInFile(haproxyConfig(cfgWith(), 'blue'))).toBe(3001);
  });

  it('https: HSTS in the backend', () => {
    const cfg = cfgWith({ DEPLOY_PUBLIC_URL: 'https://app.example.com', DEPLOY_TLS_CERT: '/etc/letsencrypt/live/a/fullchain.pem', DEPLOY_TLS_KEY: '/etc/letsencrypt/live/a/privkey.pem' });
    expect(haproxyConfig(cfg, 'blue')).toContain('    http-response set-header Strict-Transport-Security "max-age=31536000"\n');
    expect(haproxyConfig(cfgWith(), 'blue')).not.toContain('Strict-Transport-Security');
  });

  it('no headers, no compression, no access log: none of their lines, and its requests silenced in the log', () => {
    const text = haproxyConfig(cfgWith({ DEPLOY_HEADERS: 'none', DEPLOY_COMPRESSION: 'none', DEPLOY_ACCESS_LOG: 'off' }), 'blue');
    expect(text).not.toMatch(/http-response|compression|capture|log-format/);
    expect(text).toContain('    http-request set-log-level silent\n');
  });

  it('zstd alone compresses nothing (HAProxy 2.6 has no zstd)', () => {
    expect(haproxyConfig(cfgWith({ DEPLOY_COMPRESSION: 'zstd' }), 'blue')).not.toContain('compression');
  });

  it('its shape ignores which slot is live, and sees every other change', () => {
    expect(shapeOf(haproxyConfig(cfgWith(), 'blue'))).toBe(shapeOf(haproxyConfig(cfgWith(), 'green')));
    expect(shapeOf(haproxyConfig(cfgWith({ DEPLOY_HEADERS: 'nosniff' }), 'blue'))).not.toBe(shapeOf(haproxyConfig(cfgWith(), 'blue')));
    expect(shapeOf(haproxyConfig(cfgWith({ DEPLOY_PORTS: '3001,3003' }), 'blue'))).not.toBe(shapeOf(haproxyConfig(cfgWith(), 'blue')));
    expect(shapeOf(haproxyConfig(cfgWith({ DEPLOY_PUBLIC_URL: 'http://127.0.0.1:8080/api', DEPLOY_HEALTH_PATH: '/api/health' }), 'blue'))).not.toBe(shapeOf(haproxyConfig(cfgWith(), 'blue')));
  });

  it('a file with both servers enabled, or none, names no live port', () => {
    expect(livePortInFile('server blue 127.0.0.1:1\nserver green 127.0.0.1:2\n')).toBeUndefined();
    expect(livePortInFile('server blue 127.0.0.1:1 disabled\nserver green 127.0.0.1:2 disabled\n')).toBeUndefined();
  });

  it('a route record that is damaged, or names a path rather than a frontend, is none', () => {
    expect(readRouteRecord('# skiff-route {"front":"../../etc/x","host":"a","keys":[]}\n')).toBeUndefined();
    expect(readRouteRecord('# skiff-route {not json\n')).toBeUndefined();
    expect(readRouteRecord('# skiff-route {"front":"skiff-front-all-443","host":"a","keys":["a b"]}\n')).toBeUndefined();
    expect(readRouteRecord('frontend skiff-hello-staging-in\n')).toBeUndefined();
    expect(hasOwnFrontend('# x\nfrontend skiff-hello-staging-in\n    bind :8080\n')).toBe(true);
  });
});

describe("skiff's HAProxy files: the frontend an address and port share, and its route map", () => {
  it('an http URL: the frontend binds its address and port, logs JSON, and picks the backend from the map by host and path', () => {
    const front = frontOf(cfgWith());
    expect(front).toMatchObject({ name: 'skiff-front-127.0.0.1-8080', file: `${ROUTE_FRONT}.cfg`, map: `${ROUTE_FRONT}.map`, https: false, port: 8080, binds: ['127.0.0.1:8080'] });
    expect(frontConfig(front)).toBe(
      [
        "# Written by skiff for the envs behind HAProxy on 127.0.0.1:8080: each env's backend is in its skiff-<app>-<env>.cfg,",
        `# its route in ${ROUTE_FRONT}.map (\`<host><prefix>/ <backend>\`, the longest prefix wins). Edits here do not last.`,
        'frontend skiff-front-127.0.0.1-8080',
        '    mode http',
        '    bind 127.0.0.1:8080',
        '    option forwardfor',
        '    http-request set-header X-Forwarded-Proto http',
        '    http-request capture req.hdr(host) len 256',
        '    http-request capture req.hdr(user-agent) len 256',
        '    log global',
        `    log-format '{"time":%Ts.%ms,"client":"%ci","method":"%HM","uri":"%[capture.req.uri,json(utf8s)]","host":"%[capture.req.hdr(0),json(utf8s)]","status":%ST,"bytes":%B,"ms":%Ta,"backend":"%b","server":"%s","termination":"%ts","ua":"%[capture.req.hdr(1),json(utf8s)]"}'`,
        '    http-request set-var-fmt(txn.skiff_route) "%[req.hdr(host),lower]%[path]/"',
        `    http-request set-var(txn.skiff_backend) var(txn.skiff_route),map_beg(${ROUTE_FRONT}.map)`,
        '    use_backend %[var(txn.skiff_backend)] if { var(txn.skiff_backend) -m found }',
        '',
      ].join('\n'),
    );
  });

  it('https on 443: every certificate of its folder (SNI), port 80 redirected to https on the same host', () => {
    const cfg = cfgWith({ DEPLOY_PUBLIC_URL: 'https://app.example.com', DEPLOY_TLS_CERT: '/etc/letsencrypt/live/a/fullchain.pem', DEPLOY_TLS_KEY: '/etc/letsencrypt/live/a/privkey.pem' });
    const front = frontOf(cfg);
    expect(front.name).toBe('skiff-front-all-443');
    expect(frontConfig(front)).toContain(
      [
        '    bind :443 ssl crt /etc/haproxy/conf.d/skiff-front-all-443.certs/ alpn h2,http/1.1',
        '    bind :80',
        '    http-request redirect scheme https code 301 unless { ssl_fc }',
        '    option forwardfor',
        '    http-request set-header X-Forwarded-Proto https',
      ].join('\n'),
    );
    expect(certLinkIn(front, cfg)).toBe('/etc/haproxy/conf.d/skiff-front-all-443.certs/app.example.com.pem');
    expect(boundPorts(cfg)).toEqual([443, 80]);
  });

  it('https on another port: no redirect, nothing bound on 80', () => {
    const cfg = cfgWith({ DEPLOY_PUBLIC_URL: 'https://127.0.0.1:8443', DEPLOY_TLS_CERT: '/c.pem', DEPLOY_TLS_KEY: '/c.key' });
    const text = frontConfig(frontOf(cfg));
    expect(text).toContain('    bind 127.0.0.1:8443 ssl crt /etc/haproxy/conf.d/skiff-front-127.0.0.1-8443.certs/ alpn h2,http/1.1\n    option forwardfor');
    expect(text).not.toContain('redirect');
    expect(boundPorts(cfg)).toEqual([8443]);
  });

  it.each([
    ['http://[::1]:8080', 'skiff-front-__1-8080', '    bind [::1]:8080\n', ['[::1]/', '[::1]:8080/']],
    ['http://app.example.com:8080/api', 'skiff-front-all-8080', '    bind :8080\n', ['app.example.com/api/', 'app.example.com:8080/api/']],
    ['http://App.Example.com', 'skiff-front-all-80', '    bind :80\n', ['app.example.com/', 'app.example.com:80/']],
    ['https://example.com/api/v1', 'skiff-front-all-443', '    bind :443 ssl', ['example.com/api/v1/', 'example.com:443/api/v1/']],
  ])('%s: frontend %s binds %j, route keys %j', (url, name, line, keys) => {
    const tls: Record<string, string> = url.startsWith('https') ? { DEPLOY_TLS_CERT: '/c.pem', DEPLOY_TLS_KEY: '/c.key' } : {};
    const cfg = cfgWith({ DEPLOY_PUBLIC_URL: url, DEPLOY_HEALTH_PATH: `${new URL(url).pathname.replace(/\/$/, '')}/health`, ...tls });
    expect(frontOf(cfg).name).toBe(name);
    expect(frontConfig(frontOf(cfg))).toContain(line);
    expect(routeKeys(cfg)).toEqual(keys);
  });

  it("the map: the env's lines replace only its own, the longest keys first; a key of another env's is its owner's", () => {
    const map = 'example.com/ skiff-front-prod\nexample.com:443/ skiff-front-prod\n';
    const withApi = withRoute(map, 'skiff-api-prod', ['example.com/api/', 'example.com:443/api/']);
    expect(withApi).toBe('example.com:443/api/ skiff-api-prod\nexample.com/api/ skiff-api-prod\nexample.com:443/ skiff-front-prod\nexample.com/ skiff-front-prod\n');
    expect(withRoute(withApi, 'skiff-api-prod', ['example.com/v2/'])).toBe('example.com:443/ skiff-front-prod\nexample.com/v2/ skiff-api-prod\nexample.com/ skiff-front-prod\n');
    expect(withRoute(withApi, 'skiff-api-prod', [])).toBe('example.com:443/ skiff-front-prod\nexample.com/ skiff-front-prod\n');
    expect(withRoute('', 'skiff-api-prod', [])).toBe('');
    expect(routeOwner(withApi, 'skiff-other-prod', ['example.com/api/', 'example.com:443/api/'])).toBe('skiff-api-prod');
    expect(routeOwner(withApi, 'skiff-api-prod', ['example.com/api/'])).toBeUndefined();
    expect(routeOwner(withApi, 'skiff-other-prod', ['example.com/api/v1/'])).toBeUndefined(); // nested: the longest wins
    expect(otherRoutes(withApi, 'skiff-api-prod')).toEqual(['skiff-front-prod']);
    expect(parseRouteMap('# a comment\n\nbad line here\nk v\n')).toEqual([['k', 'v']]);
    expect(routeMapText([['b/', 'x'], ['a/', 'y']])).toBe('a/ y\nb/ x\n');
  });
});

describe('runtime API commands as strings', () => {
  it('set and show server states', () => {
    expect(setServerState('skiff-hello-t', 'green', 'ready')).toBe('set server skiff-hello-t/green state ready');
    expect(setServerState('skiff-hello-t', 'blue', 'maint')).toBe('set server skiff-hello-t/blue state maint');
    expect(showServersState('skiff-hello-t')).toBe('show servers state skiff-hello-t');
  });

  it.each(['a b', 'a;b', 'a/b', '', 'a\nb'])('refuses the name %j (the API splits on spaces and ;)', (name) => {
    expect(() => setServerState(name, 'blue', 'ready')).toThrow(RangeError);
    expect(() => showServersState(name)).toThrow(RangeError);
  });

  it('a socat address escapes what socat would read as its own syntax', () => {
    expect(socatUnix('/run/haproxy/admin.sock')).toBe('UNIX-CONNECT:/run/haproxy/admin.sock');
    expect(socatUnix(`/tmp/a b,c:d!e'f"g(h)i{j}k[l]m\\n`)).toBe(`UNIX-CONNECT:/tmp/a b\\,c\\:d\\!e\\'f\\"g\\(h\\)i\\{j\\}k\\[l\\]m\\\\n`);
  });

  it('one line of commands through socat, with a time limit', () => {
    const c = haproxyApi('/run/h a.sock', ['set server b/green state ready', 'set server b/blue state maint']);
    expect(render(c)).toBe(
      `sh -c 'printf "%s\\n" "$2" | socat -t "$3" -T "$3" stdio "$1"' sh 'UNIX-CONNECT:/run/h a.sock' 'set server b/green state ready; set server b/blue state maint' 5`,
    );
  });

  it('a line of show commands is a read that a dry run runs; one that sets a state is not', () => {
    expect(haproxyApi('/run/h.sock', ['show info', 'show servers state b']).reads).toBe(true);
    expect(haproxyApi('/run/h.sock', ['show info', 'set server b/blue state drain']).reads).toBeUndefined();
    expect(haproxyApi('/run/h.sock', []).reads).toBeUndefined();
  });

  it.each<[string, Cmd, string[]]>([
    ['socketState', socketState(`/run/a b/$(id)'.sock`), [`/run/a b/$(id)'.sock`]],
    ['haproxyProcess', haproxyProcess('/run/h.sock'), ['UNIX-CONNECT:/run/h.sock', '5']],
    ['userCommand', userCommand('sudo systemctl reload haproxy'), ['sudo systemctl reload haproxy']],
    ['haproxyCheck', haproxyCheck('sudo haproxy', ['/etc/haproxy/haproxy.cfg', '/etc/h a/conf.d']), ['sudo haproxy', '-c', '-f', '/etc/haproxy/haproxy.cfg', '-f', '/etc/h a/conf.d']],
    ['haproxyCheck -C', haproxyCheck('haproxy', ['/a.cfg'], '/srv/h'), ['haproxy', '-c', '-C', '/srv/h', '-f', '/a.cfg']],
    ['filesBindingPort', filesBindingPort('/etc/h a', '/etc/h a/skiff-x-y.cfg', 443), ['/etc/h a', '/etc/h a/skiff-x-y.cfg', '443']],
    ['linkFile', linkFile('/etc/le/fullchain.pem', '/etc/h/skiff-x.pem'), ['/etc/le/fullchain.pem', '/etc/h/skiff-x.pem']],
    ['folderState', folderState('/etc/h a'), ['/etc/h a']],
  ])('%s: every value is one quoted word', (_name, c, expected) => {
    expect(scriptArgs(c)).toEqual(expected);
  });

  it('user commands are split into words, never evaluated (as DEPLOY_NGINX_CMD)', () => {
    const c = userCommand('kill -USR2 123');
    if (c.kind !== 'script') throw new Error('not a script');
    expect(c.text).toBe('set -f; cmd=$1; shift; $cmd "$@" 2>&1');
  });
});

describe('builders run in a real shell', () => {
  const dir = mkdtempSync(join(tmpdir(), "skiff-ha $x'"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const run = (c: Cmd) => {
    if (c.kind !== 'script') throw new Error('not a script');
    return spawnSync('sh', ['-c', c.text, 'sh', ...c.args.map(String)], { encoding: 'utf8' }).stdout;
  };

  it("finds skiff's other files that bind the port, not its own, not another port", () => {
    const conf = join(dir, 'conf *');
    mkdirSync(conf);
    writeFileSync(join(conf, 'skiff-a-t.cfg'), 'frontend a\n    bind 127.0.0.1:8080\n');
    writeFileSync(join(conf, 'skiff-b-t.cfg'), 'frontend b\n    bind :80800\n');
    writeFileSync(join(conf, 'skiff-c-t.cfg'), 'frontend c\n    bind :8080 ssl crt /x.pem\n');
    writeFileSync(join(conf, 'other.cfg'), 'frontend d\n    bind :8080\n');
    expect(run(filesBindingPort(conf, join(conf, 'skiff-a-t.cfg'), 8080))).toBe(`${join(conf, 'skiff-c-t.cfg')}\n`);
    expect(run(filesBindingPort(join(dir, 'none'), join(dir, 'none/x.cfg'), 8080))).toBe('');
  });

  it('says whether the folder is there', () => {
    expect(run(folderState(dir))).toBe('ok\n');
    expect(run(folderState(join(dir, 'nope')))).toBe('missing\n');
  });

  it('says a missing socket is missing', () => {
    expect(['missing\n', 'no-socat\n']).toContain(run(socketState(join(dir, 'admin.sock'))));
  });
});

describe('what HAProxy answers, read', () => {
  const STATE = [
    '1',
    '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port',
    '3 skiff-hello-t 1 blue 127.0.0.1 0 1 1 1 0 1 0 0 0 0 0 0 - 3001 - 0 0 - - 0',
    '3 skiff-hello-t 2 green 127.0.0.1 2 4 1 1 0 1 0 0 8 0 0 0 - 3002 - 0 0 - - 0',
    '',
    '',
  ].join('\n');

  it('show servers state: names, ports and states by the header', () => {
    expect(parseServersState(STATE)).toEqual([
      { name: 'blue', addr: '127.0.0.1', port: 3001, op: 0, admin: 1 },
      { name: 'green', addr: '127.0.0.1', port: 3002, op: 2, admin: 4 },
    ]);
    expect(parseServersState("Can't find backend.\n\n")).toBeUndefined();
  });

  it.each([
    ['ready', 2, 0, true],
    ['enabled at runtime after `disabled` in the file (CMAINT stays set)', 2, 4, true],
    ['starting', 1, 0, true],
    ['maint', 0, 1, false],
    ['maint from the file', 0, 5, false],
    ['drain', 2, 8, false],
    ['down', 0, 0, false],
  ])('a server %s serves: %s', (_what, op, admin, expected) => {
    expect(serving([{ name: 'x', addr: '127.0.0.1', port: 1, op: op as number, admin: admin as number }]).length === 1).toBe(expected);
  });

  it('show info: the pid', () => {
    expect(pidIn('Name: HAProxy\nVersion: 2.6.12\nPid: 863\nUptime_sec: 5\n')).toBe(863);
    expect(pidIn('')).toBeUndefined();
  });

  it.each([
    [
      'absolute files and folders',
      'pid 7\ncwd /\narg /usr/sbin/haproxy\narg -Ws\narg -f\narg /etc/haproxy/haproxy.cfg\narg -f\narg /etc/haproxy/conf.d\narg -p\narg /run/haproxy.pid\n',
      { pid: 7, files: ['/etc/haproxy/haproxy.cfg', '/etc/haproxy/conf.d'], chdir: undefined },
    ],
    ['relative to the working folder', 'pid 8\ncwd /tmp/h\narg haproxy\narg -sf\narg 7\narg -x\narg sockpair@3\narg -W\narg -f\narg base.cfg\narg -f\narg conf.d\n', { pid: 8, files: ['/tmp/h/base.cfg', '/tmp/h/conf.d'], chdir: undefined }],
    ['relative to -C', 'pid 9\ncwd /\narg haproxy\narg -C\narg /srv/h\narg -f\narg a.cfg\n', { pid: 9, files: ['/srv/h/a.cfg'], chdir: '/srv/h' }],
    ['every word after --', 'pid 9\narg haproxy\narg -f\narg /a.cfg\narg --\narg /b.cfg\narg /c.d\n', { pid: 9, files: ['/a.cfg', '/b.cfg', '/c.d'], chdir: undefined }],
    ['relative without a readable working folder: unknown', 'pid 9\narg haproxy\narg -f\narg a.cfg\n', { pid: 9, files: undefined, chdir: undefined }],
    ['a command line that cannot be read: unknown', 'pid 9\n', { pid: 9, files: undefined, chdir: undefined }],
    ['no answer', '', { pid: undefined, files: undefined, chdir: undefined }],
  ])('the running command line: %s', (_what, answer, expected) => {
    expect(parseLoaded(answer)).toEqual(expected);
  });

  it('loads the folder: by its name (a trailing slash or not), or skiff file by its own', () => {
    expect(loadsFolder(['/etc/haproxy/haproxy.cfg', '/etc/haproxy/conf.d/'], '/etc/haproxy/conf.d', FILE)).toBe(true);
    expect(loadsFolder(['/etc/haproxy/haproxy.cfg', FILE], '/etc/haproxy/conf.d', FILE)).toBe(true);
    expect(loadsFolder(['/etc/haproxy/haproxy.cfg'], '/etc/haproxy/conf.d', FILE)).toBe(false);
  });

  it("haproxy -c: the last alert that says what is wrong", () => {
    const out = [
      '[NOTICE]   (1170) : haproxy version is 2.6.12-1+deb12u4',
      "[ALERT]    (1170) : config : Parsing [conf.d/x.cfg:7]: unknown keyword 'bindd' in 'frontend' section",
      '[ALERT]    (1170) : config : Fatal errors found in configuration.',
    ].join('\n');
    expect(checkProblem(out)).toBe("config : Parsing [conf.d/x.cfg:7]: unknown keyword 'bindd' in 'frontend' section");
    expect(checkProblem('')).toBe('haproxy -c failed');
  });
});

const SERVERS = (blue: [number, number], green: [number, number], ports = [3001, 3002]) =>
  [
    '1',
    '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port',
    `3 skiff-hello-staging 1 blue 127.0.0.1 ${blue[0]} ${blue[1]} 1 1 0 1 0 0 0 0 0 0 - ${ports[0]} - 0 0 - - 0`,
    `3 skiff-hello-staging 2 green 127.0.0.1 ${green[0]} ${green[1]} 1 1 0 1 0 0 8 0 0 0 - ${ports[1]} - 0 0 - - 0`,
    '',
    '',
  ].join('\n');
const BLUE_LIVE = SERVERS([2, 0], [0, 5]);
const GREEN_LIVE = SERVERS([0, 1], [2, 4]);
const NO_BACKEND = "Can't find backend.\n\n";
const PROCESS = 'pid 41\ncwd /\narg haproxy\narg -Ws\narg -f\narg /etc/haproxy/haproxy.cfg\narg -f\narg /etc/haproxy/conf.d\n';

/** A recording host with a running HAProxy: the socket, the API's answers in turn, the command line. */
/** The files of a host where the env is deployed with `live` (its backend, the shared frontend, the route map). */
const deployed = (host: RecordingHost, live: 'blue' | 'green' = 'blue', cfg = cfgWith()) => {
  const front = frontOf(cfg);
  host.files.set(FILE, { content: Buffer.from(haproxyConfig(cfg, live)), mode: 0o644 });
  host.files.set(front.file, { content: Buffer.from(frontConfig(front)), mode: 0o644 });
  host.files.set(front.map, { content: Buffer.from(withRoute('', 'skiff-hello-staging', routeKeys(cfg))), mode: 0o644 });
  return host;
};

const haproxyHost = (answers: { state?: string; servers: string[]; process?: string; check?: number; rules?: Rule[]; routed?: boolean; link?: string }) => {
  let n = 0;
  const serversRule: Rule = (r) => {
    if (!r.includes("'show servers state skiff-hello-staging'")) return undefined;
    const answer = answers.servers[Math.min(n, answers.servers.length - 1)] as string;
    n++;
    return ok(answer);
  };
  return new RecordingHost([
    ...(answers.rules ?? []),
    when('echo no-socat', ok(`${answers.state ?? 'ok'}\n`)),
    when("'show cli level'", ok('admin\n\n')),
    when('echo not-writable; else echo ok', ok('ok\n')),
    when('/proc/$pid/cmdline', ok(answers.process ?? PROCESS)),
    serversRule,
    when('show info; show servers state', ok('Pid: 42\n')),
    // The running route map holds the env's lines (after a reload too).
    when("'show map /etc/haproxy/conf.d/skiff-front-", ok(answers.routed === false ? '' : '0x55a1 127.0.0.1:8080/ skiff-hello-staging\n0x55a2 127.0.0.1/ skiff-hello-staging\n\n')),
    when('readlink', ok(answers.link ?? '')),
    when('mkdir -p', ok()),
    when('set server', ok('\n\n')),
    when(' -c -f ', answers.check ? { code: answers.check, stdout: "[ALERT]    (5) : config : Parsing [x.cfg:3]: unknown keyword 'x'\n", stderr: '' } : ok('Configuration file is valid\n')),
    when("'systemctl reload haproxy'", ok()),
    when('echo in-use', ok('free\n')),
    when('grep -Eq', ok('')),
    when('rm -f', ok()),
    when(': >> "$1"', ok()),
  ]);
};

describe('the driver against a recording host', () => {
  it('is what DEPLOY_PROXY=haproxy picks', () => {
    expect(proxyFor(cfgWith())?.kind).toBe('haproxy');
  });

  it.each([
    ['missing', "fake: HAProxy's runtime API socket /run/haproxy/admin.sock is missing: add `stats socket /run/haproxy/admin.sock level admin` to the global section of haproxy.cfg and restart HAProxy, or set DEPLOY_HAPROXY_SOCKET to the socket it has"],
    ['not-writable', "fake: HAProxy's runtime API socket /run/haproxy/admin.sock is not writable by this user: give it to the deploy user's group (`stats socket /run/haproxy/admin.sock mode 660 group <group> level admin`), or deploy as root"],
    ['no-socat', 'fake: skiff drives HAProxy through socat, which this host lacks: apt-get install socat'],
  ])('check refuses a socket that is %s: one line, exit 2, nothing else run', async (state, message) => {
    const host = haproxyHost({ state, servers: [BLUE_LIVE] });
    const error = await haproxyProxy(cfgWith(), fakeClock()).check(host).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SkiffError);
    expect((error as SkiffError).message).toBe(message);
    expect((error as SkiffError).exitCode).toBe(EXIT.usage);
    expect(host.commands).toHaveLength(1);
    expect(host.puts).toHaveLength(0);
  });

  it('a dry run (every command answers nothing, files are read) passes the check', async () => {
    await haproxyProxy(cfgWith(), fakeClock()).check(new RecordingHost([anything]));
  });

  it('check refuses a socket below level admin', async () => {
    const host = haproxyHost({ servers: [BLUE_LIVE], rules: [when("'show cli level'", ok('operator\n\n'))] });
    await expect(haproxyProxy(cfgWith(), fakeClock()).check(host)).rejects.toThrow(/is at level operator: skiff changes server states, which needs `level admin`/);
  });

  it('check refuses an HAProxy that does not load the folder', async () => {
    const host = haproxyHost({ servers: [BLUE_LIVE], process: 'pid 41\ncwd /\narg haproxy\narg -f\narg /etc/haproxy/haproxy.cfg\n' });
    const error = (await haproxyProxy(cfgWith(), fakeClock()).check(host).catch((e: unknown) => e)) as SkiffError;
    expect(error.message).toBe(
      'fake: HAProxy (pid 41) does not load /etc/haproxy/conf.d: add `-f /etc/haproxy/conf.d` to its command line (Debian: EXTRAOPTS="-S /run/haproxy-master.sock -f /etc/haproxy/conf.d" in /etc/default/haproxy) and restart it',
    );
    expect(error.exitCode).toBe(EXIT.usage);
  });

  it("check refuses a first deploy on a port that another env's file of the previous layout binds (its own frontend), or another address's frontend", async () => {
    const host = haproxyHost({ servers: [NO_BACKEND], rules: [when('grep -Eq', ok('/etc/haproxy/conf.d/skiff-other-prod.cfg\n'))] });
    const error = (await haproxyProxy(cfgWith(), fakeClock()).check(host).catch((e: unknown) => e)) as SkiffError;
    expect(error.message).toBe(
      "fake: port 8080 of http://127.0.0.1:8080 is bound by /etc/haproxy/conf.d/skiff-other-prod.cfg, an env's frontend of an earlier skiff version: deploy that env once (it moves to the frontend its address and port share), then this one; nothing was changed",
    );
    expect(error.exitCode).toBe(EXIT.usage);
    expect(host.puts).toHaveLength(0);
    const any = haproxyHost({ servers: [NO_BACKEND], rules: [when('grep -Eq', ok('/etc/haproxy/conf.d/skiff-front-all-8080.cfg\n'))] });
    await expect(haproxyProxy(cfgWith(), fakeClock()).check(any)).rejects.toThrow(
      'fake: port 8080 of http://127.0.0.1:8080 is bound by /etc/haproxy/conf.d/skiff-front-all-8080.cfg already, for another address: the envs of one port share one address (give DEPLOY_PUBLIC_URL that address, or another port); nothing was changed',
    );
    const redirect = haproxyHost({ servers: [NO_BACKEND], rules: [when('grep -Eq', ok('/etc/haproxy/conf.d/skiff-front-all-443.cfg\n'))] });
    await expect(haproxyProxy(cfgWith({ DEPLOY_PUBLIC_URL: 'http://example.com' }), fakeClock()).check(redirect)).rejects.toThrow(
      'fake: port 80 of http://example.com is bound by /etc/haproxy/conf.d/skiff-front-all-443.cfg, which redirects it to https for its envs on port 443: give this env an https:// URL too, or another port; nothing was changed',
    );
    const on80: Rule = (r) => (r.includes('grep -Eq') ? ok(r.endsWith(' 80') ? '/etc/haproxy/conf.d/skiff-front-all-80.cfg\n' : '') : undefined);
    const plain = haproxyHost({ servers: [NO_BACKEND], rules: [on80] });
    const https = cfgWith({ DEPLOY_PUBLIC_URL: 'https://example.com', DEPLOY_TLS_CERT: '/c.pem', DEPLOY_TLS_KEY: '/c.key' });
    await expect(haproxyProxy(https, fakeClock()).check(plain)).rejects.toThrow(
      'fake: port 80, which an https URL on 443 redirects, is bound by /etc/haproxy/conf.d/skiff-front-all-80.cfg for http envs: give those envs https:// URLs first, or this env another port; nothing was changed',
    );
    // Its own frontend's file is no other's.
    const own = haproxyHost({ servers: [NO_BACKEND], rules: [when('grep -Eq', ok(`${ROUTE_FRONT}.cfg\n`))] });
    await haproxyProxy(cfgWith(), fakeClock()).check(own);
  });

  it.each([
    ['the root another env owns', 'http://127.0.0.1:8080', '127.0.0.1/ skiff-front-prod\n', "fake: the root of 127.0.0.1:8080 is served by skiff's route skiff-front-prod already: give DEPLOY_PUBLIC_URL another path, or deploy to another host name; nothing was changed"],
    ['a prefix another env owns', 'http://127.0.0.1:8080/api', '127.0.0.1:8080/api/ skiff-api-prod\n', "fake: the path prefix /api of 127.0.0.1:8080 is served by skiff's route skiff-api-prod already: give DEPLOY_PUBLIC_URL another path, or deploy to another host name; nothing was changed"],
  ])('check refuses %s: exit 2, nothing written', async (_, url, map, message) => {
    const cfg = cfgWith({ DEPLOY_PUBLIC_URL: url, DEPLOY_HEALTH_PATH: `${new URL(url).pathname.replace(/\/$/, '')}/health` });
    const host = haproxyHost({ servers: [NO_BACKEND], routed: false });
    host.files.set(frontOf(cfg).map, { content: Buffer.from(map), mode: 0o644 });
    const owner = map.trim().split(' ')[1] as string;
    host.files.set(`/etc/haproxy/conf.d/${owner}.cfg`, { content: Buffer.from(`backend ${owner}\n`), mode: 0o644 });
    const error = (await haproxyProxy(cfg, fakeClock()).check(host).catch((e: unknown) => e)) as SkiffError;
    expect(error.message).toBe(message);
    expect(error.exitCode).toBe(EXIT.usage);
    expect(host.puts).toHaveLength(0);
    // The switch refuses it too (a deploy that skipped the check never overwrites another env's route).
    await expect(haproxyProxy(cfg, fakeClock()).switchTo(host, 3001)).rejects.toThrow(message);
    expect(host.puts).toHaveLength(0);
    // An env whose file is gone owns nothing: its lines are stale, and dropped at the next reload.
    host.files.delete(`/etc/haproxy/conf.d/${owner}.cfg`);
    await haproxyProxy(cfg, fakeClock()).check(host);
  });

  it('check refuses an https env on a port whose envs are http, and a certificate other than the one of the envs on its host', async () => {
    const tls = { DEPLOY_PUBLIC_URL: 'https://127.0.0.1:8080/web', DEPLOY_HEALTH_PATH: '/web/health', DEPLOY_TLS_CERT: '/etc/ssl/b.pem', DEPLOY_TLS_KEY: '/etc/ssl/b.key' };
    const web = when("'show servers state skiff-web-staging'", ok(NO_BACKEND));
    const http = haproxyHost({ servers: [NO_BACKEND], routed: false, rules: [web] });
    deployed(http, 'blue', cfgWith());
    await expect(haproxyProxy(cfgWith({ ...tls, APP_NAME: 'web' }), fakeClock()).check(http)).rejects.toThrow(
      `fake: the TLS settings for 127.0.0.1:8080 differ from those of skiff-hello-staging on it (http on 127.0.0.1:8080, ${ROUTE_FRONT}.cfg): the envs of one address and port share the URL's scheme; nothing was changed`,
    );
    const first = cfgWith({ ...tls, DEPLOY_PUBLIC_URL: 'https://127.0.0.1:8080', DEPLOY_HEALTH_PATH: '/health', DEPLOY_TLS_CERT: '/etc/ssl/a.pem' });
    const other = { ...tls, APP_NAME: 'web' };
    const host = haproxyHost({ servers: [NO_BACKEND], routed: false, link: '/etc/ssl/a.pem\n', rules: [web] });
    deployed(host, 'blue', first);
    const error = (await haproxyProxy(cfgWith(other), fakeClock()).check(host).catch((e: unknown) => e)) as SkiffError;
    expect(error.message).toMatch(/^fake: the TLS settings for 127\.0\.0\.1:8080 differ from those of skiff-hello-staging on it \(\/etc\/ssl\/a\.pem, .*\): envs on one host must agree on DEPLOY_TLS_CERT and DEPLOY_TLS_KEY; nothing was changed$/);
    expect(error.exitCode).toBe(EXIT.usage);
  });

  it('check runs haproxy -c before a first deploy, and passes a runtime switch without one', async () => {
    const first = haproxyHost({ servers: [NO_BACKEND], check: 1 });
    await expect(haproxyProxy(cfgWith(), fakeClock()).check(first)).rejects.toThrow(
      "fake: HAProxy's config check fails before any change: config : Parsing [x.cfg:3]: unknown keyword 'x'; fix the HAProxy config first",
    );
    const later = deployed(haproxyHost({ servers: [BLUE_LIVE] }));
    await haproxyProxy(cfgWith(), fakeClock()).check(later);
    expect(later.commands.some((c) => c.includes(' -c -f '))).toBe(false);
  });

  it('a switch: the new server ready, the old one in maint, verified, then the file; no reload', async () => {
    const host = deployed(haproxyHost({ servers: [BLUE_LIVE, GREEN_LIVE] }));
    await haproxyProxy(cfgWith(), fakeClock()).switchTo(host, 3002);
    const api = host.commands.filter((c) => c.includes('socat -t')).map((c) => words(c)[5]);
    expect(api).toEqual(['show servers state skiff-hello-staging', `show map ${ROUTE_FRONT}.map`, 'set server skiff-hello-staging/green state ready; set server skiff-hello-staging/blue state maint', 'show servers state skiff-hello-staging']);
    expect(host.commands.some((c) => c.includes('reload'))).toBe(false);
    expect(host.puts.map((p) => p.path)).toEqual([FILE]);
    expect(livePortInFile(host.files.get(FILE)?.content.toString() ?? '')).toBe(3002);
  });

  it('a switch that HAProxy does not take is an error, and the file stays', async () => {
    const host = deployed(haproxyHost({ servers: [BLUE_LIVE, BLUE_LIVE] }));
    await expect(haproxyProxy(cfgWith(), fakeClock()).switchTo(host, 3002)).rejects.toThrow(
      "fake: after the switch HAProxy's skiff-hello-staging sends new requests to port 3001, not 3002",
    );
    expect(host.puts).toHaveLength(0);
  });

  it('the first deploy: the file, haproxy -c, the reload, then waits until a new process shows the backend', async () => {
    const clock = fakeClock();
    const host = haproxyHost({
      servers: [NO_BACKEND],
      rules: [
        // The old process answers for a while, then the new one with skiff's backend.
        ((): Rule => {
          let polls = 0;
          return (r) => (r.includes('show info; show servers state') ? ok(++polls < 3 ? `Pid: 41\n${NO_BACKEND}` : `Pid: 42\n${BLUE_LIVE}`) : undefined);
        })(),
      ],
    });
    await haproxyProxy(cfgWith(), clock).switchTo(host, 3001);
    const order = host.events.filter((e) => /put | -c -f |systemctl reload|show info; show servers/.test(e)).map((e) => (e.startsWith('put') ? e : e.includes(' -c -f ') ? 'check' : e.includes('reload') ? 'reload' : 'poll'));
    expect(order).toEqual([`put ${FILE}`, `put ${ROUTE_FRONT}.map`, `put ${ROUTE_FRONT}.cfg`, 'check', 'reload', 'poll', 'poll', 'poll']);
    expect(host.commands.find((c) => c.includes(' -c -f '))).toContain("haproxy -c -f /etc/haproxy/haproxy.cfg -f /etc/haproxy/conf.d");
    expect(clock.elapsed()).toBe(200);
  });

  it('a config check that fails after the change puts the old file back and reloads nothing', async () => {
    const host = haproxyHost({ servers: [NO_BACKEND], check: 1 });
    await expect(haproxyProxy(cfgWith(), fakeClock()).switchTo(host, 3001)).rejects.toThrow(
      "fake: HAProxy's config check fails with skiff's /etc/haproxy/conf.d/skiff-hello-staging.cfg: config : Parsing [x.cfg:3]: unknown keyword 'x'; the old config is in place",
    );
    expect(host.commands.some((c) => c.includes('reload'))).toBe(false);
    expect(host.commands.at(-1)).toContain(`rm -f "$1"' sh ${FILE}`);
  });

  it('a reload that never shows the backend: the old file back, and a line that says where to look', async () => {
    const clock = fakeClock();
    const host = haproxyHost({ servers: [NO_BACKEND], rules: [when('show info; show servers state', ok(`Pid: 41\n${NO_BACKEND}`))] });
    await expect(haproxyProxy(cfgWith(), clock).switchTo(host, 3001)).rejects.toThrow(
      "fake: HAProxy did not show skiff's backend skiff-hello-staging within 20s of `systemctl reload haproxy`: check that HAProxy loads /etc/haproxy/conf.d (-f) and what its log says; the old file is back in place",
    );
    expect(clock.elapsed()).toBe(20_000);
  });

  it("an env's file of the previous layout (its own frontend): one reload writes it without, the map and the shared frontend, then drops the old certificate links", async () => {
    const previous = `frontend skiff-hello-staging-in\n    mode http\n    bind 127.0.0.1:8080\n    default_backend skiff-hello-staging\n\n${haproxyConfig(cfgWith(), 'blue').replace(/^# skiff-route .*\n/m, '')}`;
    const host = haproxyHost({ servers: [BLUE_LIVE], rules: [when('show info; show servers state', ok(`Pid: 42\n${BLUE_LIVE}`))] });
    host.files.set(FILE, { content: Buffer.from(previous), mode: 0o644 });
    await haproxyProxy(cfgWith(), fakeClock()).check(host); // its own port: no "in use", no other file
    expect(await haproxyProxy(cfgWith(), fakeClock()).switchRisk(host)).toMatch(/\(its frontend moves to the one its address and port share\)/);
    await haproxyProxy(cfgWith(), fakeClock()).switchTo(host, 3001);
    expect(host.puts.map((p) => p.path)).toEqual([FILE, `${ROUTE_FRONT}.map`, `${ROUTE_FRONT}.cfg`]);
    expect(hasOwnFrontend(host.files.get(FILE)?.content.toString() ?? '')).toBe(false);
    expect(host.files.get(`${ROUTE_FRONT}.map`)?.content.toString()).toBe('127.0.0.1:8080/ skiff-hello-staging\n127.0.0.1/ skiff-hello-staging\n');
    expect(host.commands.at(-1)).toContain(`rm -f "$@"' sh /etc/haproxy/conf.d/skiff-hello-staging.pem /etc/haproxy/conf.d/skiff-hello-staging.pem.key`);
  });

  it("https: the host's certificate and key linked into the frontend's folder before the reload", async () => {
    const cfg = cfgWith({ DEPLOY_PUBLIC_URL: 'https://app.example.com/api', DEPLOY_HEALTH_PATH: '/api/health', DEPLOY_TLS_CERT: '/etc/ssl/a b.pem', DEPLOY_TLS_KEY: '/etc/ssl/a.key' });
    const host = haproxyHost({ servers: [NO_BACKEND], rules: [
        when('show info; show servers state', ok(`Pid: 42\n${BLUE_LIVE}`)),
        when('ln -sfn', ok()),
        when("'show map /etc/haproxy/conf.d/skiff-front-all-443.map'", ok('0x1 app.example.com:443/api/ skiff-hello-staging\n0x2 app.example.com/api/ skiff-hello-staging\n\n')),
      ],
    });
    await haproxyProxy(cfg, fakeClock()).switchTo(host, 3001);
    const dir = '/etc/haproxy/conf.d/skiff-front-all-443.certs';
    const tls = host.commands.filter((c) => c.includes('mkdir -p') || c.includes('ln -sfn')).map((c) => words(c).slice(4));
    expect(tls).toEqual([[dir], ['/etc/ssl/a.key', `${dir}/app.example.com.pem.key`], ['/etc/ssl/a b.pem', `${dir}/app.example.com.pem`]]);
    expect(host.files.get('/etc/haproxy/conf.d/skiff-front-all-443.map')?.content.toString()).toBe('app.example.com:443/api/ skiff-hello-staging\napp.example.com/api/ skiff-hello-staging\n');
  });

  it('changed settings reload too, with the live server as asked', async () => {
    const host = haproxyHost({ servers: [BLUE_LIVE], rules: [when('show info; show servers state', ok(`Pid: 42\n${GREEN_LIVE}`))] });
    host.files.set(FILE, { content: Buffer.from(haproxyConfig(cfgWith({ DEPLOY_HEADERS: 'none' }), 'blue')), mode: 0o644 });
    expect(await haproxyProxy(cfgWith(), fakeClock()).switchRisk(host)).toMatch(/^fake: HAProxy will be reloaded to load .* \(its settings changed\): idle kept-alive client connections/);
    await haproxyProxy(cfgWith(), fakeClock()).switchTo(host, 3002);
    expect(host.commands.some((c) => c.includes('systemctl reload haproxy'))).toBe(true);
    expect(host.commands.some((c) => c.includes('set server'))).toBe(false);
    expect(livePortInFile(host.files.get(FILE)?.content.toString() ?? '')).toBe(3002);
  });

  it('current: the serving server from the runtime API; the file when the API does not answer; nothing without the backend', async () => {
    const proxy = haproxyProxy(cfgWith(), fakeClock());
    expect(await proxy.current(haproxyHost({ servers: [GREEN_LIVE] }))).toBe(3002);
    expect(await proxy.current(haproxyHost({ servers: [NO_BACKEND] }))).toBeUndefined();
    const down = new RecordingHost([when('socat', failed(1, 'E connect(): Connection refused'))]);
    down.files.set(FILE, { content: Buffer.from(haproxyConfig(cfgWith(), 'green')), mode: 0o644 });
    expect(await proxy.current(down)).toBe(3002);
    // Both serving (a switch cut between its two commands): the file says which one skiff meant.
    const both = haproxyHost({ servers: [SERVERS([2, 0], [2, 4])] });
    both.files.set(FILE, { content: Buffer.from(haproxyConfig(cfgWith(), 'blue')), mode: 0o644 });
    expect(await proxy.current(both)).toBe(3001);
  });

  it('a port that is neither slot is refused before anything runs', async () => {
    const host = haproxyHost({ servers: [BLUE_LIVE] });
    await expect(haproxyProxy(cfgWith(), fakeClock()).switchTo(host, 4000)).rejects.toThrow('port 4000 is neither slot port of DEPLOY_PORTS (3001, 3002)');
    expect(host.commands).toHaveLength(0);
  });
});
