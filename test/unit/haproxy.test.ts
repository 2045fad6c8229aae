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

describe("skiff's HAProxy file", () => {
  it('an http URL: a frontend on its address and port, both slots in one backend, the idle one disabled', () => {
    expect(haproxyConfig(cfgWith(), 'blue')).toBe(
      [
        '# Written by skiff for hello staging; rewritten at every switch (edits here do not last).',
        "# The live slot is the server without `disabled`: a switch changes the servers' states through the",
        '# runtime API, with no reload, then writes this file to match, so a restart keeps the live server.',
        'frontend skiff-hello-staging-in',
        '    mode http',
        '    bind 127.0.0.1:8080',
        '    option forwardfor',
        '    http-request set-header X-Forwarded-Proto http',
        '    http-request capture req.hdr(host) len 256',
        '    http-request capture req.hdr(user-agent) len 256',
        '    log global',
        `    log-format '{"time":%Ts.%ms,"client":"%ci","method":"%HM","uri":"%[capture.req.uri,json(utf8s)]","host":"%[capture.req.hdr(0),json(utf8s)]","status":%ST,"bytes":%B,"ms":%Ta,"backend":"%b","server":"%s","termination":"%ts","ua":"%[capture.req.hdr(1),json(utf8s)]"}'`,
        ...MAINTENANCE_RULES,
        '    default_backend skiff-hello-staging',
        '',
        'backend skiff-hello-staging',
        '    mode http',
        '    default-server pool-purge-delay 200ms',
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
  });

  it('green live: blue is the disabled one', () => {
    const text = haproxyConfig(cfgWith(), 'green');
    expect(text).toContain('    server blue 127.0.0.1:3001 disabled\n    server green 127.0.0.1:3002\n');
    expect(livePortInFile(text)).toBe(3002);
    expect(livePortInFile(haproxyConfig(cfgWith(), 'blue'))).toBe(3001);
  });

  it('https on 443: TLS with the linked certificate, HSTS, and port 80 redirected to the URL', () => {
    const cfg = cfgWith({ DEPLOY_PUBLIC_URL: 'https://app.example.com', DEPLOY_TLS_CERT: '/etc/letsencrypt/live/a/fullchain.pem', DEPLOY_TLS_KEY: '/etc/letsencrypt/live/a/privkey.pem' });
    const text = haproxyConfig(cfg, 'blue');
    expect(text).toContain(
      [
        '    bind :443 ssl crt /etc/haproxy/conf.d/skiff-hello-staging.pem alpn h2,http/1.1',
        '    bind :80',
        '    http-request redirect prefix https://app.example.com code 301 unless { ssl_fc }',
        '    option forwardfor',
        '    http-request set-header X-Forwarded-Proto https',
      ].join('\n'),
    );
    expect(text).toContain('    http-response set-header Strict-Transport-Security "max-age=31536000"\n');
    expect(boundPorts(cfg)).toEqual([443, 80]);
  });

  it('https on another port: no redirect, nothing bound on 80', () => {
    const cfg = cfgWith({ DEPLOY_PUBLIC_URL: 'https://127.0.0.1:8443', DEPLOY_TLS_CERT: '/c.pem', DEPLOY_TLS_KEY: '/c.key' });
    const text = haproxyConfig(cfg, 'blue');
    expect(text).toContain('    bind 127.0.0.1:8443 ssl crt /etc/haproxy/conf.d/skiff-hello-staging.pem alpn h2,http/1.1\n    option forwardfor');
    expect(text).not.toContain('redirect');
    expect(boundPorts(cfg)).toEqual([8443]);
  });

  it.each([
    ['http://[::1]:8080', '    bind [::1]:8080\n'],
    ['http://app.example.com:8080', '    bind :8080\n'],
    ['http://app.example.com', '    bind :80\n'],
  ])('%s binds %j', (url, line) => {
    expect(haproxyConfig(cfgWith({ DEPLOY_PUBLIC_URL: url }), 'blue')).toContain(line);
  });

  it('no headers, no compression, no access log: none of their lines', () => {
    const text = haproxyConfig(cfgWith({ DEPLOY_HEADERS: 'none', DEPLOY_COMPRESSION: 'none', DEPLOY_ACCESS_LOG: 'off' }), 'blue');
    expect(text).not.toMatch(/http-response|compression|capture|log-format/);
    expect(text).toContain('    no log\n');
  });

  it('zstd alone compresses nothing (HAProxy 2.6 has no zstd)', () => {
    expect(haproxyConfig(cfgWith({ DEPLOY_COMPRESSION: 'zstd' }), 'blue')).not.toContain('compression');
  });

  it('its shape ignores which slot is live, and sees every other change', () => {
    expect(shapeOf(haproxyConfig(cfgWith(), 'blue'))).toBe(shapeOf(haproxyConfig(cfgWith(), 'green')));
    expect(shapeOf(haproxyConfig(cfgWith({ DEPLOY_HEADERS: 'nosniff' }), 'blue'))).not.toBe(shapeOf(haproxyConfig(cfgWith(), 'blue')));
    expect(shapeOf(haproxyConfig(cfgWith({ DEPLOY_PORTS: '3001,3003' }), 'blue'))).not.toBe(shapeOf(haproxyConfig(cfgWith(), 'blue')));
  });

  it('a file with both servers enabled, or none, names no live port', () => {
    expect(livePortInFile('server blue 127.0.0.1:1\nserver green 127.0.0.1:2\n')).toBeUndefined();
    expect(livePortInFile('server blue 127.0.0.1:1 disabled\nserver green 127.0.0.1:2 disabled\n')).toBeUndefined();
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
const haproxyHost = (answers: { state?: string; servers: string[]; process?: string; check?: number; rules?: Rule[] }) => {
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

  it("check refuses a first deploy on a port that another env's file binds", async () => {
    const host = haproxyHost({ servers: [NO_BACKEND], rules: [when('grep -Eq', ok('/etc/haproxy/conf.d/skiff-other-prod.cfg\n'))] });
    const error = (await haproxyProxy(cfgWith(), fakeClock()).check(host).catch((e: unknown) => e)) as SkiffError;
    expect(error.message).toBe(
      'fake: port 8080 of http://127.0.0.1:8080 is bound by /etc/haproxy/conf.d/skiff-other-prod.cfg already: each env behind HAProxy needs a public port of its own (docs/haproxy.md)',
    );
    expect(error.exitCode).toBe(EXIT.usage);
  });

  it('check runs haproxy -c before a first deploy, and passes a runtime switch without one', async () => {
    const first = haproxyHost({ servers: [NO_BACKEND], check: 1 });
    await expect(haproxyProxy(cfgWith(), fakeClock()).check(first)).rejects.toThrow(
      "fake: HAProxy's config check fails before any change: config : Parsing [x.cfg:3]: unknown keyword 'x'; fix the HAProxy config first",
    );
    const later = haproxyHost({ servers: [BLUE_LIVE] });
    later.files.set(FILE, { content: Buffer.from(haproxyConfig(cfgWith(), 'blue')), mode: 0o644 });
    await haproxyProxy(cfgWith(), fakeClock()).check(later);
    expect(later.commands.some((c) => c.includes(' -c -f '))).toBe(false);
  });

  it('a switch: the new server ready, the old one in maint, verified, then the file; no reload', async () => {
    const host = haproxyHost({ servers: [BLUE_LIVE, GREEN_LIVE] });
    host.files.set(FILE, { content: Buffer.from(haproxyConfig(cfgWith(), 'blue')), mode: 0o644 });
    await haproxyProxy(cfgWith(), fakeClock()).switchTo(host, 3002);
    const api = host.commands.filter((c) => c.includes('socat -t')).map((c) => words(c)[5]);
    expect(api).toEqual(['show servers state skiff-hello-staging', 'set server skiff-hello-staging/green state ready; set server skiff-hello-staging/blue state maint', 'show servers state skiff-hello-staging']);
    expect(host.commands.some((c) => c.includes('reload'))).toBe(false);
    expect(host.puts.map((p) => p.path)).toEqual([FILE]);
    expect(livePortInFile(host.files.get(FILE)?.content.toString() ?? '')).toBe(3002);
  });

  it('a switch that HAProxy does not take is an error, and the file stays', async () => {
    const host = haproxyHost({ servers: [BLUE_LIVE, BLUE_LIVE] });
    host.files.set(FILE, { content: Buffer.from(haproxyConfig(cfgWith(), 'blue')), mode: 0o644 });
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
    expect(order).toEqual([`put ${FILE}`, 'check', 'reload', 'poll', 'poll', 'poll']);
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
