/**
 * Maintenance mode: the checks of its user text, the page and what each proxy's config carries (as
 * strings), the record on the host, and the flow against the recording host (order, undo, refusals).
 */
import { describe, expect, it } from 'vitest';
import { render } from '../../lib/core/cmd.ts';
import { parseProbeAnswer, probeHeaders } from '../../lib/commands/maintenance.ts';
import { maintenancePreflight, maintenanceLine, turnOff, turnOn, type MaintenanceFacts } from '../../lib/flows/maintenance.ts';
import {
  caddyMaintenanceRoute,
  checkMessage,
  checkRetryAfter,
  DEFAULT_MESSAGE,
  escapeHtml,
  haproxyMaintenanceEntries,
  haproxyMaintenanceMapFile,
  haproxyMaintenanceProblem,
  haproxyMaintenanceRules,
  haproxyMapCommands,
  maintenancePage,
  nginxMaintenanceInclude,
  nginxMaintenanceProblem,
  nginxMaintenanceSnippet,
  parseMapEntries,
  UNSAFE_IN_PAGE,
} from '../../lib/proxy/maintenance-page.ts';
import { keepingMaintenance, maintenanceFor } from '../../lib/proxy/maintenance.ts';
import { nginxLocations, nginxNames } from '../../lib/proxy/nginx.ts';
import { parseMaintenance } from '../../lib/state/maintenance.ts';
import { EXIT } from '../../lib/core/errors.ts';
import { auditAppended, fakeProxy, flowSession, hostState, rejection, slot, testConfig, thrown } from '../support/flow-ctx.ts';
import { ok, when, type RecordingHost, type Rule } from '../support/recording-host.ts';

const RECORD = '/srv/hello/.skiff/maintenance.json';
const SNIPPET = '/etc/nginx/conf.d/hello-staging.maintenance';

describe('the text of the page', () => {
  it('takes one line of at most 500 characters, trimmed; the default without --message', () => {
    expect(checkMessage(undefined)).toBe(DEFAULT_MESSAGE);
    expect(checkMessage('  Back at 14:00 ☕ ')).toBe('Back at 14:00 ☕');
    expect(checkMessage('é'.repeat(500))).toHaveLength(500);
  });

  it.each([
    ['a newline', 'a\nb', 'holds a control character (U+000A, at character 2)'],
    ['a tab', '\tx', 'holds a control character (U+0009, at character 1)'],
    ['an escape', 'x\u001b[31m', 'holds a control character (U+001B, at character 2)'],
    ['DEL', 'x\u007f', 'holds a control character (U+007F'],
    ['a C1 control', 'x\u0085', 'holds a control character (U+0085'],
    ['a line separator', 'x\u2028y', 'holds a control character (U+2028'],
    ['501 characters', 'x'.repeat(501), 'is 501 characters long: at most 500'],
    ['10 kB', 'x'.repeat(10_240), 'is 10240 characters long: at most 500'],
    ['only blanks', '   ', 'is empty: leave --message out for the default text'],
  ])('refuses %s (exit 2)', (_, message, problem) => {
    const e = thrown(() => checkMessage(message));
    expect(e.message).toContain(`--message ${problem}`);
    expect((e as { exitCode?: number }).exitCode).toBe(EXIT.usage);
  });

  it('Retry-After: whole seconds from 1 to 86400, 120 by default', () => {
    expect(checkRetryAfter(undefined)).toBe(120);
    expect(checkRetryAfter('1')).toBe(1);
    expect(checkRetryAfter('86400')).toBe(86400);
    for (const bad of ['0', '-1', '1.5', '1e3', '0x10', 'abc', '', ' 5', '86401', '9999999']) {
      expect(thrown(() => checkRetryAfter(bad)).message).toBe(`--retry-after takes whole seconds from 1 to 86400 (a day), not ${JSON.stringify(bad)}`);
    }
  });

  it('is escaped for HTML, and the page holds nothing a config language reads as syntax', () => {
    expect(escapeHtml(`<a href="x">'&'</a> {x} $y \\ 100%; \``)).toBe(
      '&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62; &#123;x&#125; &#36;y &#92; 100&#37;&#59; &#96;',
    );
    const hostile = `"'\\$\`{}%;<>& {http.request.header.Cookie} \${HOME} %[src] $host ☕`;
    const page = maintenancePage(hostile);
    expect(page).not.toMatch(UNSAFE_IN_PAGE);
    expect(page).not.toContain("'&");
    expect(page).toContain('<title>Down for maintenance</title>');
    expect(page).toMatch(/^<!doctype html>.*<p>.*☕<\/p><\/body><\/html>$/);
  });
});

describe("what each proxy's config carries", () => {
  const cfg = testConfig();
  it('Caddy: a terminal static_response route with its own @id and the matcher of skiff\'s route', () => {
    const match = [{ host: ['127.0.0.1'] }];
    expect(caddyMaintenanceRoute(cfg, match, 'Back soon', 900)).toEqual({
      '@id': 'skiff-hello-staging-maintenance',
      match,
      handle: [
        {
          handler: 'static_response',
          status_code: 503,
          headers: { 'Content-Type': ['text/html; charset=utf-8'], 'Retry-After': ['900'], 'Cache-Control': ['no-store'] },
          body: maintenancePage('Back soon'),
        },
      ],
      terminal: true,
    });
  });

  it("nginx: the include (a glob that matches nothing while off) in the env's location, and the snippet", () => {
    const n = testConfig({ DEPLOY_PROXY: 'nginx' });
    expect(nginxMaintenanceInclude(n)).toEqual(['    include "/etc/nginx/conf.d/hello-staging.maintenanc[e]";']);
    expect(nginxLocations(n)).toContain('location / {\n    include "/etc/nginx/conf.d/hello-staging.maintenanc[e]";\n');
    expect(nginxMaintenanceSnippet(n, 'Back "soon" $x', 60)).toBe(
      [
        '# written by skiff: the maintenance page of hello staging; `npx tsx scripts/maintenance.ts staging off` removes it',
        'add_header Retry-After "60" always;',
        'add_header Cache-Control "no-store" always;',
        'default_type "text/html; charset=utf-8";',
        `return 503 "${maintenancePage('Back "soon" $x')}";`,
        '',
      ].join('\n'),
    );
    expect(nginxMaintenanceSnippet(n, 'Back "soon" $x', 60)).toContain('Back &#34;soon&#34; &#36;x');
    const odd = testConfig({ DEPLOY_PROXY: 'nginx', DEPLOY_NGINX_CONF_DIR: '/etc/nginx/conf[1]' });
    expect(nginxMaintenanceInclude(odd)).toEqual([]);
    expect(nginxMaintenanceProblem(odd)).toContain('DEPLOY_NGINX_CONF_DIR /etc/nginx/conf[1] holds one of');
  });

  it('HAProxy: the rule reads the map, the page travels base64; on, change and off are runtime API lines', () => {
    const h = testConfig({ DEPLOY_PROXY: 'haproxy' });
    const map = '/etc/haproxy/conf.d/skiff-hello-staging.maintenance.map';
    expect(haproxyMaintenanceRules(h)[1]).toBe(
      `    http-request return status 503 content-type "text/html; charset=utf-8" lf-string "%[str(page),map(${map}),b64dec]" hdr Retry-After "%[str(retry),map(${map})]" hdr Cache-Control no-store if { str(page),map(${map}) -m found }`,
    );
    const entries = haproxyMaintenanceEntries('a b; c\\d', 30);
    expect(entries[0]).toEqual(['retry', '30']);
    expect(Buffer.from(entries[1]?.[1] ?? '', 'base64').toString()).toBe(maintenancePage('a b; c\\d'));
    expect(entries[1]?.[1]).toMatch(/^[A-Za-z0-9+/=]+$/);
    expect(haproxyMaintenanceMapFile(entries)).toBe(`retry 30\npage ${entries[1]?.[1]}\n`);
    expect(haproxyMapCommands(h, entries, false)).toEqual([`clear map ${map}`, `add map ${map} retry 30`, `add map ${map} page ${entries[1]?.[1]}`]);
    expect(haproxyMapCommands(h, entries, true)).toEqual([`set map ${map} retry 30`, `set map ${map} page ${entries[1]?.[1]}`]);
    expect(haproxyMapCommands(h, [], true)).toEqual([`clear map ${map}`]);
    expect(parseMapEntries('0x55f933e6f810 retry 60\n0x55f933e6f8f0 page PGI+\n\n')).toEqual(new Map([['retry', '60'], ['page', 'PGI+']]));
    const odd = testConfig({ DEPLOY_PROXY: 'haproxy', DEPLOY_HAPROXY_CONF_DIR: '/etc/haproxy/my conf' });
    expect(haproxyMaintenanceRules(odd)).toEqual([]);
    expect(haproxyMaintenanceProblem(odd)).toContain('DEPLOY_HAPROXY_CONF_DIR /etc/haproxy/my conf holds characters');
  });

  it('the probe through the proxy prints the status line and headers; its answer is read', () => {
    expect(render(probeHeaders("http://a b/'x", 5))).toBe(
      `sh -c 'h=$(curl -g -s -D - -o /dev/null -m "$2" "$1") || { echo 000; exit 0; }; printf "%s\\n" "$h"' sh 'http://a b/'\\''x' 5`,
    );
    expect(parseProbeAnswer('HTTP/1.1 503 Service Unavailable\r\nretry-after: 900\r\ncontent-type: text/html\r\n\r\n')).toEqual({ status: '503', retryAfter: '900' });
    expect(parseProbeAnswer('HTTP/2 200\nx: y\n')).toEqual({ status: '200', retryAfter: undefined });
    expect(parseProbeAnswer('000\n')).toEqual({ status: '000', retryAfter: undefined });
  });
});

describe('the record on the host', () => {
  const good = { message: 'Back soon', retryAfter: 60, since: '2026-12-01T10:00:00.000Z', by: 'me@here' };
  it('is read back as written; absent means off', () => {
    expect(parseMaintenance(JSON.stringify(good), 'x')).toEqual(good);
    expect(parseMaintenance(undefined, 'x')).toBeUndefined();
  });
  it.each([
    ['cut short', '{"message": "Ba'],
    ['a message with a newline', JSON.stringify({ ...good, message: 'a\nb' })],
    ['a message of 10 kB', JSON.stringify({ ...good, message: 'x'.repeat(10_240) })],
    ['Retry-After 0', JSON.stringify({ ...good, retryAfter: 0 })],
  ])('a damaged one (%s) is refused, never sent to a proxy', (_, text) => {
    expect(thrown(() => parseMaintenance(text, 'web1: /srv/hello/.skiff/maintenance.json')).message).toMatch(
      /^web1: \/srv\/hello\/\.skiff\/maintenance\.json is damaged \(.*\): turn maintenance on or off again \(scripts\/maintenance\.ts\), which rewrites it$/,
    );
  });
});

/** nginx's workers: new ones at every look, as after a reload that took. */
const newWorkers = (): Rule => {
  let pid = 10;
  return (c) => (c.includes('pgrep') ? ok(`${++pid}\n`) : undefined);
};

/** A session behind nginx with 1.0.0 live in blue, skiff's conf written by this version, and `rules` first. */
const nginxSession = (rules: readonly Rule[] = [], files: Record<string, string> = {}) => {
  const cfg = testConfig({ DEPLOY_PROXY: 'nginx' });
  const fs = flowSession({
    cfg,
    state: hostState('blue', { blue: slot('20261130-090000-1.0.0', 3001) }),
    files: { [nginxNames(cfg).routeFile]: nginxLocations(cfg), ...files },
    rules: [...rules, when('curl -g -s -D -', ok('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 120\r\n\r\n')), newWorkers()],
  });
  // rm -f of a file removes it from the recording host, as on a real one.
  fs.host.rules.unshift((c) => {
    const m = /^sh -c 'rm -f "\$1"' sh (\S+)$/.exec(c);
    if (m) fs.host.files.delete(m[1] as string);
    return m ? ok() : undefined;
  });
  return fs;
};

const events = (host: RecordingHost) =>
  host.events.filter((e) => /^put |nginx -t|-s reload|curl -g -s -D|rm -f/.test(e)).map((e) => e.replace(/^exec sh -c .*(nginx -t|-s reload).*$/, '$1').replace(/^exec .*curl -g -s -D.*$/, 'probe page').replace(/^exec .*rm -f.* (\S+)$/, 'rm $1'));

describe('maintenance on a host (nginx, against the recording host)', () => {
  const page = { message: 'Back soon', retryAfter: 120 };

  it('on: the record first, then the snippet, nginx -t, the reload, the page checked through the proxy, an audit line', async () => {
    const { session, host } = nginxSession();
    const facts = await maintenancePreflight(session);
    expect(facts.before).toBeUndefined();
    expect(await turnOn(session, facts, page)).toBe(
      'maintenance on: http://127.0.0.1:8080 answers 503 with Retry-After 120; 20261130-090000-1.0.0 stays in slot blue, checked by skiff directly',
    );
    expect(events(host)).toEqual([`put ${RECORD}`, `put ${SNIPPET}`, 'nginx -t', '-s reload', 'probe page']);
    expect(JSON.parse(host.files.get(RECORD)?.content.toString() ?? '')).toEqual({ ...page, since: '2026-12-01T10:00:00.000Z', by: 'me@here' });
    expect(host.files.get(RECORD)?.mode).toBe(0o600);
    expect(host.files.get(SNIPPET)?.content.toString()).toBe(nginxMaintenanceSnippet(session.cfg, 'Back soon', 120));
    expect(auditAppended(host)).toEqual(['maintenance on (Retry-After 120): Back soon']);
  });

  it('on, when the page does not answer through the proxy: the snippet and the record go again (exit 1)', async () => {
    const { session, host } = nginxSession([when('curl -g -s -D -', ok('HTTP/1.1 200 OK\r\n\r\n'))]);
    const e = await rejection(turnOn(session, await maintenancePreflight(session), page));
    expect(e.message).toBe(
      'web1: http://127.0.0.1:8080/api/health answers HTTP 200 without Retry-After through caddy, not the maintenance page (503 with Retry-After 120): another site or route of the proxy may answer first; maintenance stays off',
    );
    expect(host.files.has(SNIPPET)).toBe(false);
    expect(host.files.has(RECORD)).toBe(false);
    expect(auditAppended(host)).toEqual([]);
  });

  it('on, when nginx -t fails: the old config is back, and so is the record', async () => {
    const { session, host } = nginxSession([when("' sh nginx -t", { code: 1, stdout: 'nginx: [emerg] unknown directive "x" in /etc/nginx/conf.d/hello-staging.maintenance:2\nnginx: configuration file test failed\n', stderr: '' })]);
    const e = await rejection(turnOn(session, await maintenancePreflight(session), page));
    expect(e.message).toContain('nginx -t fails with the maintenance page: nginx: [emerg] unknown directive');
    expect(e.message).toMatch(/; maintenance stays off$/);
    expect(host.files.has(SNIPPET)).toBe(false);
    expect(host.files.has(RECORD)).toBe(false);
    expect(events(host).filter((x) => x === '-s reload')).toEqual([]);
  });

  it('off: only once the live release answers directly; then the snippet goes, the app answers through the proxy, the record goes', async () => {
    const record = JSON.stringify({ ...page, since: '2026-12-01T09:00:00.000Z', by: 'ops@there' });
    const { session, host } = nginxSession([], { [RECORD]: record, [SNIPPET]: 'old' });
    const facts: MaintenanceFacts = await maintenancePreflight(session);
    expect(facts.before?.by).toBe('ops@there');
    expect(await turnOff(session, facts)).toBe('maintenance off: http://127.0.0.1:8080 serves 1.0.0 (release 20261130-090000-1.0.0) again');
    expect(events(host)).toEqual([`rm ${SNIPPET}`, 'nginx -t', '-s reload', `rm ${RECORD}`]);
    expect(auditAppended(host)).toEqual(['maintenance off']);
  });

  it('a damaged record is mended by off (removed) and by on (written anew), not refused by them', async () => {
    const off = nginxSession([], { [RECORD]: '{"message": "cut sh', [SNIPPET]: 'old' });
    const facts = await maintenancePreflight(off.session);
    expect(facts).toMatchObject({ before: undefined, damaged: true });
    expect(await turnOff(off.session, facts)).toMatch(/^maintenance off: /);
    expect(off.host.files.has(RECORD)).toBe(false);
    expect(off.host.files.has(SNIPPET)).toBe(false);
    const on = nginxSession([], { [RECORD]: 'not json' });
    await turnOn(on.session, await maintenancePreflight(on.session), page);
    expect(JSON.parse(on.host.files.get(RECORD)?.content.toString() ?? '{}')).toMatchObject({ message: 'Back soon', retryAfter: 120 });
  });

  it('off refuses while the live release does not answer: nothing changes, maintenance stays on', async () => {
    const record = JSON.stringify({ ...page, since: '2026-12-01T09:00:00.000Z', by: 'ops@there' });
    const { session, host } = nginxSession([when('url="http://127.0.0.1:$1$2"', ok('000'))], { [RECORD]: record, [SNIPPET]: 'old' });
    const e = await rejection(turnOff(session, await maintenancePreflight(session)));
    expect(e.message).toBe(
      'web1: the live release 20261130-090000-1.0.0 does not answer its health check on port 3001 (no answer): start it (`npx tsx scripts/start.ts staging`) before turning maintenance off; maintenance stays on',
    );
    expect(events(host)).toEqual([]);
    expect(host.files.has(RECORD)).toBe(true);
  });

  it('off, when the app does not answer through the proxy after: the page is put back up (exit 1)', async () => {
    const record = JSON.stringify({ ...page, since: '2026-12-01T09:00:00.000Z', by: 'ops@there' });
    const { session, host } = nginxSession([when('-m "$2" "$1") || c=000', ok('502'))], { [RECORD]: record, [SNIPPET]: 'old' });
    const e = await rejection(turnOff(session, await maintenancePreflight(session)));
    expect(e.message).toBe('web1: with the page gone http://127.0.0.1:8080/api/health answers HTTP 502 through caddy; the maintenance page is back up');
    expect(host.files.get(SNIPPET)?.content.toString()).toBe(nginxMaintenanceSnippet(session.cfg, 'Back soon', 120));
    expect(host.files.has(RECORD)).toBe(true);
  });

  it('refuses with proxy none and before the first deploy (exit 2, nothing read beyond the state)', async () => {
    const none = flowSession({ cfg: testConfig({ DEPLOY_PROXY: 'none', DEPLOY_PORTS: '3001' }) });
    const e = await rejection(maintenancePreflight(none.session));
    expect(e.message).toMatch(/^staging has DEPLOY_PROXY=none: nothing stands in front of the app to answer 503/);
    expect((e as { exitCode?: number }).exitCode).toBe(EXIT.usage);
    expect(none.host.commands).toEqual([]);
    const fresh = flowSession({ cfg: testConfig({ DEPLOY_PROXY: 'nginx' }) });
    const e2 = await rejection(maintenancePreflight(fresh.session));
    expect(e2.message).toBe('nothing deployed to staging on web1 yet: run `npx tsx scripts/deploy-vps.ts staging` first');
    expect((e2 as { exitCode?: number }).exitCode).toBe(EXIT.usage);
  });

  it('a switch while the record says on puts the page back where the switch lost it', async () => {
    const record = JSON.stringify({ ...page, since: '2026-12-01T09:00:00.000Z', by: 'ops@there' });
    const { session, host } = nginxSession([], { [RECORD]: record });
    const inner = fakeProxy(host, { at: 3001 });
    const wrapped = keepingMaintenance(inner, session.cfg, session.clock);
    await wrapped.switchTo(host, 3002);
    expect(inner.switches).toEqual([3002]);
    expect(host.files.get(SNIPPET)?.content.toString()).toBe(nginxMaintenanceSnippet(session.cfg, 'Back soon', 120));
    // Without a record a switch is only the switch.
    const quiet = nginxSession();
    await keepingMaintenance(fakeProxy(quiet.host, { at: 3001 }), quiet.session.cfg, quiet.session.clock).switchTo(quiet.host, 3002);
    expect(quiet.host.files.has(SNIPPET)).toBe(false);
  });
});

describe('maintenance through HAProxy (against the recording host)', () => {
  const cfg = testConfig({ DEPLOY_PROXY: 'haproxy' });
  const map = '/etc/haproxy/conf.d/skiff-hello-staging.maintenance.map';
  const hostWith = (entries: string) =>
    flowSession({
      cfg,
      rules: [when("'show map'", ok(`# id (file) description\n0 (${map}) pattern loaded from file\n\n`)), when(`'show map ${map}'`, ok(entries)), when(' map ', ok('\n'))],
    });

  it('on: the map file first, then its entries through the runtime API, `page` last; no reload', async () => {
    const { session, host } = hostWith('\n');
    const driver = maintenanceFor(cfg, session.proxy, session.clock);
    await driver?.apply(host, { message: 'Back soon', retryAfter: 60 });
    const [retry, b64] = haproxyMaintenanceEntries('Back soon', 60);
    expect(host.files.get(map)?.content.toString()).toBe(`retry 60\npage ${b64?.[1]}\n`);
    const api = host.commands.filter((c) => c.includes('socat')).map((c) => /' sh \S+ '([^']*)'/.exec(c)?.[1]);
    expect(api).toEqual(['show map', `show map ${map}`, `clear map ${map}; add map ${map} retry ${retry?.[1]}; add map ${map} page ${b64?.[1]}`]);
    expect(host.commands.some((c) => c.includes('reload'))).toBe(false);
  });

  it('on with the same page loaded changes nothing; off clears the map and empties its file', async () => {
    const [retry, b64] = haproxyMaintenanceEntries('Back soon', 60);
    const { session, host } = hostWith(`0x1 retry ${retry?.[1]}\n0x2 page ${b64?.[1]}\n\n`);
    const driver = maintenanceFor(cfg, session.proxy, session.clock);
    await driver?.apply(host, { message: 'Back soon', retryAfter: 60 });
    expect(host.commands.filter((c) => /(add|set|clear) map/.test(c))).toEqual([]);
    expect(await driver?.serving(host)).toBe(true);
    await driver?.remove(host);
    expect(host.files.get(map)?.content.toString()).toBe('');
    expect(host.commands.filter((c) => /clear map/.test(c))).toHaveLength(1);
  });
});

describe('the status line', () => {
  it('says since when, by whom, what the page says, and how to end it', () => {
    const m = { on: true, message: 'Back soon', retryAfter: 60, since: '2026-12-01T09:00:00.000Z', by: 'ops@there' };
    expect(maintenanceLine(m, 'staging', 'nginx')).toBe(
      'on since 2026-12-01T09:00:00.000Z by ops@there: 503 with Retry-After 60, "Back soon"; `npx tsx scripts/maintenance.ts staging off` gives the app back',
    );
    expect(maintenanceLine({ ...m, served: false }, 'staging', 'caddy')).toMatch(/; but caddy does not serve the page now: run `npx tsx scripts\/maintenance\.ts staging on` again$/);
    expect(maintenanceLine({ on: false, served: true }, 'staging', 'haproxy')).toBe('off, but haproxy still serves the maintenance page: run `npx tsx scripts/maintenance.ts staging off`');
  });
});
