/**
 * Two apps behind one proxy on one host and one domain: `front` at `/` and `api` at `/api`
 * (DEPLOY_PUBLIC_URL=http://127.0.0.1:<port>/api), behind a real Caddy, a real nginx and a real
 * HAProxy started by the test. Each is deployed and rolled back while a probe asks the other, which must not see one
 * failed request; a route another env owns is refused with nothing changed; a failed or stopped app
 * leaves the other serving.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProbe } from '../support/probe.ts';
import { haproxyUnderTest } from '../support/haproxy.ts';
import { caddyUnderTest, nginxUnderTest } from '../support/proxies.ts';
import { get, localEnv, makeSandbox, pidsWithMarker, type Sandbox } from '../support/sandbox.ts';

// Ports 18980-18989 (Caddy: public, slots +1..+7, admin +9), 18990-18997 (nginx) and 19140-19147 (HAProxy).
const caddy = caddyUnderTest(18980);
const nginx = nginxUnderTest(18990);
const haproxy = haproxyUnderTest(19140);

interface Under {
  readonly name: 'caddy' | 'nginx' | 'haproxy';
  readonly publicPort: number;
  readonly slots: readonly [number, number];
  start(dir: string): Promise<void>;
  stop(): void | Promise<void>;
  keys(dir: string): string;
}

describe.each([caddy, nginx, haproxy] as Under[])('two apps on one host behind $name', (proxy) => {
  let s: Sandbox;
  const origin = `http://127.0.0.1:${proxy.publicPort}`;
  const apiPath = () => join(s.dir, 'srv-api');
  const front = (extra = '') =>
    localEnv(
      s,
      proxy.slots[0],
      [`DEPLOY_PORTS=${proxy.slots.join(',')}`, `DEPLOY_PUBLIC_URL=${origin}`, 'DEPLOY_HEALTH_PATH=/', 'DEPLOY_DRAIN_SECONDS=2', proxy.keys(s.dir), extra].join('\n'),
    );
  const api = (extra = '', url = `${origin}/api`) =>
    localEnv(s, proxy.publicPort + 3, [`DEPLOY_PORTS=${proxy.publicPort + 3},${proxy.publicPort + 4}`, `DEPLOY_PUBLIC_URL=${url}`, 'DEPLOY_DRAIN_SECONDS=2', proxy.keys(s.dir), extra].join('\n')).replace(
      `DEPLOY_PATH=${s.deployPath}`,
      `DEPLOY_PATH=${apiPath()}`,
    );
  /** Who answers a path through the proxy: the env name the example app reports. */
  const frontText = async () => (await get(`${origin}/`)).text.trim();
  const apiEnv = async () => {
    const r = await get(`${origin}/api/health`);
    return r.status === 200 ? (JSON.parse(r.text) as { environment: string; version: string }) : { environment: `HTTP ${r.status}`, version: '' };
  };
  /** What skiff wrote for front in the proxy: its Caddy routes, or its nginx files. */
  const frontRoute = async (): Promise<string> => {
    if (proxy.name === 'caddy') {
      const admin = `http://${caddy.admin}`;
      return `${(await get(`${admin}/id/skiff-hello-front`)).text}${(await get(`${admin}/id/skiff-hello-front-handlers`)).text}`;
    }
    if (proxy.name === 'haproxy') {
      // Its backend file, and its lines of the shared route map.
      const dir = join(s.dir, 'haproxy/conf.d');
      const map = readFileSync(join(dir, `skiff-front-127.0.0.1-${proxy.publicPort}.map`), 'utf8');
      return `${readFileSync(join(dir, 'skiff-hello-front.cfg'), 'utf8')}\n${map.split('\n').filter((l) => l.endsWith(' skiff-hello-front')).join('\n')}`;
    }
    const dir = join(s.dir, 'nginx/conf.d');
    const site = `skiff-site-127.0.0.1-${proxy.publicPort}`;
    return ['hello-front.conf', 'hello-front.upstream', `${site}.d/hello-front.locations`].map((f) => readFileSync(join(dir, f), 'utf8')).join('\n');
  };
  /** Everything the proxy runs: Caddy's whole config, or every file in nginx's conf.d. */
  const proxyState = async (): Promise<string> => {
    if (proxy.name === 'caddy') return (await get(`http://${caddy.admin}/config/`)).text;
    const dir = join(s.dir, proxy.name === 'haproxy' ? 'haproxy/conf.d' : 'nginx/conf.d');
    const walk = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [`${join(d, e.name)}\n${readFileSync(join(d, e.name), 'utf8')}`]));
    return walk(dir).sort().join('\n');
  };
  const noFailures = (r: { requests: number; failures: number; firstErrors: readonly string[] }) => {
    expect(r.requests).toBeGreaterThan(20);
    expect(r.failures, `failed requests: ${r.firstErrors.join('; ')}`).toBe(0);
  };
  /** A probe of the other app that opens a new connection per request (what a reload does to idle kept-alive ones is bench/'s). */
  const probe = (path: string) => startProbe(`${origin}${path}`, { headers: { connection: 'close' }, timeoutMs: 5000 });

  beforeAll(async () => {
    s = makeSandbox(`paths-${proxy.name}`);
    await proxy.start(s.dir);
    s.writeEnv('front.env', front());
    s.writeEnv('api.env', api());
  });
  afterAll(async () => {
    await proxy.stop();
    for (const pid of [...pidsWithMarker(apiPath()), ...pidsWithMarker(join(s.dir, 'srv-other'))]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    s.cleanup();
  });

  it('each app gets its own route: / to front, /api and below to api, /apix to front', async () => {
    for (const env of ['front', 'api']) {
      const r = await s.run('deploy-vps', [env]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    expect(await frontText()).toBe('hello 1.0.0 (front)');
    expect(await apiEnv()).toMatchObject({ environment: 'api', version: '1.0.0' });
    // The path reaches the app unchanged: the api app answers /api/notes itself.
    expect((await get(`${origin}/api/notes`)).status).toBe(200);
    // Not under the prefix: front's app answers, with its own 404.
    expect((await get(`${origin}/apix`)).text).toContain('no route for GET /apix');
  });

  it('a deploy of front does not fail one request of api, and leaves api\'s route as it was', async () => {
    s.setVersion('1.0.1');
    const p = probe('/api/health');
    const r = await s.run('deploy-vps', ['front']);
    noFailures(await p.stop());
    expect(r.code).toBe(0);
    expect(await frontText()).toBe('hello 1.0.1 (front)');
    expect(await apiEnv()).toMatchObject({ environment: 'api', version: '1.0.0' });
  });

  it('a deploy of api does not fail one request of front, and does not touch what front owns', async () => {
    const before = await frontRoute();
    const p = probe('/');
    const r = await s.run('deploy-vps', ['api']);
    noFailures(await p.stop());
    expect(r.code).toBe(0);
    expect(await apiEnv()).toMatchObject({ environment: 'api', version: '1.0.1' });
    expect(await frontRoute()).toBe(before);
  });

  it('rolling back each does not fail one request of the other', async () => {
    const p1 = probe('/api/health');
    const r1 = await s.run('rollback', ['front']);
    noFailures(await p1.stop());
    expect(r1.code).toBe(0);
    expect(await frontText()).toBe('hello 1.0.0 (front)');

    const before = await frontRoute();
    const p2 = probe('/');
    const r2 = await s.run('rollback', ['api']);
    noFailures(await p2.stop());
    expect(r2.code).toBe(0);
    expect(await apiEnv()).toMatchObject({ version: '1.0.0' });
    expect(await frontRoute()).toBe(before);
  });

  it("the maintenance page of api is api's alone: front keeps serving, without one failed request", async () => {
    const p = probe('/');
    const on = await s.run('maintenance', ['api', 'on']);
    expect(on.code, on.stderr).toBe(0);
    expect((await get(`${origin}/api/health`)).status).toBe(503);
    expect((await get(`${origin}/api/notes`)).status).toBe(503);
    expect(await frontText()).toBe('hello 1.0.0 (front)');
    const off = await s.run('maintenance', ['api', 'off']);
    noFailures(await p.stop());
    expect(off.code, off.stderr).toBe(0);
    expect(await apiEnv()).toMatchObject({ environment: 'api', version: '1.0.0' });
  });

  it.each([
    ['a prefix another env owns', 'other', () => api('', `${origin}/api`), /the path prefix \/api of 127\.0\.0\.1(:\d+)? is served by .*already/],
    ['the root another env owns', 'other', () => api('', origin), /the root of 127\.0\.0\.1(:\d+)? is served by .*already/],
    [
      'TLS settings that differ from those of the envs on the host and port',
      'other',
      () => api('DEPLOY_HEALTH_PATH=/web/health\nDEPLOY_TLS_CERT=/etc/ssl/other.pem\nDEPLOY_TLS_KEY=/etc/ssl/other.key', `https://127.0.0.1:${proxy.publicPort}/web`),
      /the TLS settings for 127\.0\.0\.1(:\d+)? differ from those of .* on it/,
    ],
    ['a trailing-slash variant of an owned prefix', 'other', () => api('', `${origin}/api/`), /DEPLOY_PUBLIC_URL .*without a trailing \/ \(\/api, not \/api\/\)/],
    ['a prefix with ..', 'other', () => api('', `${origin}/x/../api`), /without \. or \.\. segments/],
    ['a prefix with a regex character', 'other', () => api('', `${origin}/api.*`), /letters, digits and - \. _ ~ between slashes/],
    ['a query in the URL', 'other', () => api('', `${origin}/api?v=1`), /without a query or fragment/],
  ])('refused, exit 2 with one line and nothing changed: %s', async (_, env, text, message) => {
    const before = await proxyState();
    s.writeEnv(`${env}.env`, text().replace(`DEPLOY_PATH=${apiPath()}`, `DEPLOY_PATH=${join(s.dir, 'srv-other')}`).replace(/DEPLOY_PORTS=.*/g, `DEPLOY_PORTS=${proxy.publicPort + 6},${proxy.publicPort + 7}`));
    const r = await s.run('deploy-vps', [env]);
    expect(r.code, r.stderr).toBe(2);
    // One line that says it (a config error), or the failed step's line and then that one line.
    const lines = r.stderr.trim().split('\n');
    expect(lines.length).toBeLessThanOrEqual(2);
    if (lines.length === 2) expect(lines[0]).toMatch(/^✖ .*Check local \[FAILED: /);
    expect(lines.at(-1)).toMatch(message);
    expect(await proxyState()).toBe(before);
    expect((await get(`http://127.0.0.1:${proxy.publicPort + 6}/`)).status).toBe(0);
  });

  it('a failed deploy of api (its health check fails) does not fail one request of front', async () => {
    s.setVersion('1.0.2');
    s.writeEnv('api.env', api('HEALTH_FAIL=1\nDEPLOY_HEALTH_TIMEOUT=2'));
    const p = probe('/');
    const r = await s.run('deploy-vps', ['api']);
    noFailures(await p.stop());
    s.writeEnv('api.env', api());
    expect(r.code).toBe(1);
    expect(await apiEnv()).toMatchObject({ version: '1.0.0' });
  });

  it('front stopped: api keeps serving without one failed request', async () => {
    const p = probe('/api/health');
    const r = await s.run('stop', ['front', '--yes']);
    await new Promise((done) => setTimeout(done, 500));
    noFailures(await p.stop());
    expect(r.code).toBe(0);
    expect((await get(`${origin}/`)).status).not.toBe(200);
    expect(await apiEnv()).toMatchObject({ environment: 'api' });
  });
});
