/**
 * Maintenance mode on this machine behind a real Caddy, nginx and HAProxy (each on loopback ports of
 * its own, 18930-18962): the 503 page with Retry-After through the proxy, a deploy behind it, a proxy
 * restart, and `off` giving the app back with no failed request after it.
 */
import { mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haproxyUnderTest } from '../support/haproxy.ts';
import { startProbe } from '../support/probe.ts';
import { caddyUnderTest, nginxUnderTest } from '../support/proxies.ts';
import { get, listening, localEnv, makeSandbox, type Sandbox } from '../support/sandbox.ts';

/** A GET with its status, headers and body (any status). */
const raw = (target: string) =>
  new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.get(target, { agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });

const MESSAGE = `Back at 14:00 UTC <b>"soon"</b> & {http.request.uri} $host \\ 100%; 'ok' ☕`;
const ESCAPED = 'Back at 14:00 UTC &#60;b&#62;&#34;soon&#34;&#60;/b&#62; &#38; &#123;http.request.uri&#125; &#36;host &#92; 100&#37;&#59; &#39;ok&#39; ☕';

const caddyProxy = caddyUnderTest(18930);
const nginxProxy = nginxUnderTest(18940);
const haProxy = haproxyUnderTest(18960);

const proxies = [
  { name: 'caddy', publicPort: caddyProxy.publicPort, slots: caddyProxy.slots, start: (d: string) => caddyProxy.start(d), stop: async () => caddyProxy.stop(), keys: (d: string) => caddyProxy.keys(d) },
  { name: 'nginx', publicPort: nginxProxy.publicPort, slots: nginxProxy.slots, start: (d: string) => nginxProxy.start(d), stop: async () => nginxProxy.stop(), keys: (d: string) => nginxProxy.keys(d) },
  { name: 'haproxy', publicPort: haProxy.publicPort, slots: haProxy.slots, start: (d: string) => haProxy.start(d), stop: () => haProxy.stop(), keys: (d: string) => haProxy.keys(d) },
] as const;

describe.each(proxies)('maintenance behind $name', (proxy) => {
  let s: Sandbox;
  const url = `http://127.0.0.1:${proxy.publicPort}`;
  const env = (extra = '') =>
    localEnv(s, proxy.slots[0], [`DEPLOY_PORTS=${proxy.slots.join(',')}`, `DEPLOY_PUBLIC_URL=${url}`, 'DEPLOY_DRAIN_SECONDS=2', proxy.keys(s.dir), extra].join('\n'));
  const state = () => JSON.parse(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')) as { live: string };
  const record = () => join(s.deployPath, '.skiff/maintenance.json');
  const expectPage = async (retryAfter: string) => {
    const res = await raw(`${url}/`);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe(retryAfter);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    return res.body;
  };

  beforeAll(async () => {
    s = makeSandbox(`maint-${proxy.name}`);
    await proxy.start(s.dir);
    s.writeEnv('t.env', env());
  });
  afterAll(async () => {
    await proxy.stop();
    s.cleanup();
  });

  it('refuses before anything is deployed (exit 2, one line)', async () => {
    const r = await s.run('maintenance', ['t', 'on']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n').at(-1)).toBe('error: nothing deployed to t on local yet: run `npx tsx scripts/deploy-vps.ts t` first');
  });

  it('on: every request through the proxy gets the 503 page with Retry-After; the slot still answers directly', async () => {
    const deploy = await s.run('deploy-vps', ['t']);
    expect(deploy.code, deploy.stderr).toBe(0);
    expect((await get(url)).text.trim()).toBe('hello 1.0.0 (t)');
    const r = await s.run('maintenance', ['t', 'on', '--message', MESSAGE, '--retry-after', '900', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`t: maintenance on: ${url} answers 503 with Retry-After 900`);
    expect(JSON.parse(r.stdout.trim().split('\n').at(-1) as string)).toMatchObject({ action: 'maintenance', on: true, message: MESSAGE, retryAfter: 900 });
    const body = await expectPage('900');
    expect(body).toContain(`<p>${ESCAPED}</p>`);
    expect(body).not.toContain('<b>');
    expect((await raw(`${url}/api/health`)).status).toBe(503);
    expect((await get(`http://127.0.0.1:${proxy.slots[0]}/`)).text.trim()).toBe('hello 1.0.0 (t)');
    expect(JSON.parse(readFileSync(record(), 'utf8'))).toMatchObject({ message: MESSAGE, retryAfter: 900 });
    const status = await s.run('status', ['t']);
    expect(status.stdout).toMatch(/^ {2}maint {5}on since \S+ by \S+: 503 with Retry-After 900, ".*"; `npx tsx scripts\/maintenance.ts t off` gives the app back$/m);
  });

  it('on again with another text changes the page; the same page again changes nothing', async () => {
    const r = await s.run('maintenance', ['t', 'on', '--message', 'Upgrading the database', '--retry-after', '60']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('maintenance page changed');
    expect(await expectPage('60')).toContain('<p>Upgrading the database</p>');
    const again = await s.run('maintenance', ['t', 'on', '--message', 'Upgrading the database', '--retry-after', '60']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('maintenance is on already with this page');
  });

  it('a deploy behind the page: the new release is checked directly, the page stays up', async () => {
    s.setVersion('1.0.1');
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('maintenance is on');
    expect(state().live).toBe('green');
    expect(await expectPage('60')).toContain('Upgrading the database');
    expect((await get(`http://127.0.0.1:${proxy.slots[1]}/`)).text.trim()).toBe('hello 1.0.1 (t)');
  });

  it('a restart of the proxy keeps the page (Caddy: start puts back the route and the page)', async () => {
    await proxy.stop();
    for (let i = 0; i < 50 && listening(proxy.publicPort); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    await proxy.start(s.dir);
    s.writeEnv('t.env', env()); // HAProxy's reload command names the new master
    if (proxy.name === 'caddy') {
      expect((await get(url)).status).toBe(0); // Caddy started from its own file: no route, no page, no server on the port
      const r = await s.run('start', ['t']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('had lost the route');
    }
    expect(await expectPage('60')).toContain('Upgrading the database');
    const status = await s.run('status', ['t', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ maintenance: { on: true, served: true, retryAfter: 60 } });
  });

  it('a held lock: exit 3, the page stays as it is', async () => {
    const lock = join(s.deployPath, '.skiff/lock');
    mkdirSync(lock);
    const now = new Date().toISOString();
    writeFileSync(join(lock, 'holder.json'), JSON.stringify({ user: 'ops', host: 'elsewhere', pid: 1, command: 'deploy-vps', version: '9.9.9', started_at: now, heartbeat_at: now, token: 'abc', machine: 'another' }));
    utimesSync(join(lock, 'holder.json'), new Date(), new Date());
    const r = await s.run('maintenance', ['t', 'off']);
    rmSync(lock, { recursive: true });
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^error: local is locked by ops@elsewhere pid 1 \(deploy-vps 9\.9\.9/);
    await expectPage('60');
  });

  it('--dry-run says what off would change and changes nothing', async () => {
    const r = await s.run('maintenance', ['t', 'off', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/dry run: t: would check that \S+-1\.0\.1 answers on port \d+, then .*; nothing was changed/);
    await expectPage('60');
  });

  it('off gives the new release back, and no request fails after it', async () => {
    const r = await s.run('maintenance', ['t', 'off']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('maintenance off');
    const probe = startProbe(`${url}/api/health`, { timeoutMs: 5000 });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const result = await probe.stop();
    expect(result.requests).toBeGreaterThan(20);
    expect(result.failures, `failed requests: ${result.firstErrors.join('; ')}`).toBe(0);
    expect((await get(url)).text.trim()).toBe('hello 1.0.1 (t)');
    expect(() => readFileSync(record())).toThrow();
    expect((await s.run('status', ['t'])).stdout).not.toContain('maint ');
    const again = await s.run('maintenance', ['t', 'off']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('maintenance is off already');
  });

  it('off refuses while the live release does not answer (exit 1, the page stays)', async () => {
    expect((await s.run('maintenance', ['t', 'on'])).code).toBe(0);
    expect((await s.run('stop', ['t'])).code).toBe(0);
    const r = await s.run('maintenance', ['t', 'off']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/does not answer its health check on port \d+ \(no answer\): start it .* before turning maintenance off; maintenance stays on$/);
    expect(await expectPage('120')).toContain('This site is down for maintenance');
    expect((await s.run('start', ['t'])).code).toBe(0);
    expect((await s.run('maintenance', ['t', 'off'])).code).toBe(0);
    expect((await get(url)).text.trim()).toBe('hello 1.0.1 (t)');
  });
});

describe('maintenance refuses bad input (exit 2, one line, nothing changed)', () => {
  let s: Sandbox;
  beforeAll(() => {
    s = makeSandbox('maint-bad');
    s.writeEnv('n.env', localEnv(s, 18959, 'DEPLOY_PROXY=none'));
  });
  afterAll(() => s.cleanup());

  it.each([
    ['an unknown word', ['n', 'maybe'], 'error: maintenance takes on or off, not "maybe": usage: npx tsx scripts/maintenance.ts <env> on|off'],
    ['a message with a control character', ['n', 'on', '--message', 'one\ntwo'], 'error: --message holds a control character (U+000A, at character 4): write it on one line, without tabs or escapes'],
    ['a message of 10 kB', ['n', 'on', '--message', 'x'.repeat(10_240)], 'error: --message is 10240 characters long: at most 500'],
    ['an empty message', ['n', 'on', '--message', ' '], 'error: --message is empty: leave --message out for the default text'],
    ['--retry-after 0', ['n', 'on', '--retry-after', '0'], 'error: --retry-after takes whole seconds from 1 to 86400 (a day), not "0"'],
    ['--retry-after 1.5', ['n', 'on', '--retry-after', '1.5'], 'error: --retry-after takes whole seconds from 1 to 86400 (a day), not "1.5"'],
    ['--retry-after with off', ['n', 'off', '--retry-after', '10'], 'error: --message and --retry-after go with `on` (they set the page): `off` takes neither'],
    ['--yes', ['n', 'on', '--yes'], 'error: maintenance does not offer --yes: it asks nothing'],
    ['DEPLOY_PROXY=none', ['n', 'on'], 'error: n has DEPLOY_PROXY=none: nothing stands in front of the app to answer 503 while it is down'],
  ])('%s', async (_, args, line) => {
    const r = await s.run('maintenance', args);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n').length).toBe(1);
    expect(r.stderr.trim().startsWith(line)).toBe(true);
    expect(() => readFileSync(join(s.deployPath, '.skiff/maintenance.json'))).toThrow();
  });
});
