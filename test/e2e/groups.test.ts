/**
 * A group of two services on this machine behind a real Caddy, on one host name and port: `web`
 * at `/` and `api` at `/api` (env/shop.group: web, then api). Deployed together twice; then api
 * fails its health check (nothing switched: web keeps its release, exit 1 naming api); then api
 * fails only through the proxy, after web switched (web switches back to its earlier release); then
 * the group rolls back together. Bad groups are refused with one line, exit 2, nothing changed.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProbe } from '../support/probe.ts';
import { caddyUnderTest } from '../support/proxies.ts';
import { get, localEnv, makeSandbox, pidsWithMarker, type Sandbox } from '../support/sandbox.ts';

// Ports 19200-19209: Caddy's public port, web's slots +1 +2, api's +3 +4, a spare env's +5 +6, admin +9.
const caddy = caddyUnderTest(19200);
const origin = `http://127.0.0.1:${caddy.publicPort}`;

describe('a group of two services behind one Caddy', () => {
  let s: Sandbox;
  const apiPath = () => join(s.dir, 'srv-api');
  const web = (extra = '') =>
    localEnv(s, 0, [`DEPLOY_PORTS=${caddy.slots.join(',')}`, `DEPLOY_PUBLIC_URL=${origin}`, 'DEPLOY_HEALTH_PATH=/', 'DEPLOY_DRAIN_SECONDS=1', caddy.keys(s.dir), extra].join('\n')).replace(/^DEPLOY_PORTS=0$/m, '');
  const api = (extra = '', url = `${origin}/api`, path = apiPath(), ports = [caddy.publicPort + 3, caddy.publicPort + 4]) =>
    localEnv(s, 0, [`DEPLOY_PORTS=${ports.join(',')}`, `DEPLOY_PUBLIC_URL=${url}`, 'DEPLOY_DRAIN_SECONDS=1', caddy.keys(s.dir), extra].join('\n'))
      .replace(/^DEPLOY_PORTS=0$/m, '')
      .replace(`DEPLOY_PATH=${s.deployPath}`, `DEPLOY_PATH=${path}`);
  /** The error the one handler printed: from its `error:` line to the end. */
  const errorOf = (stderr: string) => {
    const lines = stderr.trim().split('\n');
    return lines.slice(lines.findIndex((l) => l.startsWith('error: '))).join('\n');
  };
  const webText = async () => (await get(`${origin}/`)).text.trim();
  const apiVersion = async () => {
    const r = await get(`${origin}/api/health`);
    return r.status === 200 ? (JSON.parse(r.text) as { environment: string; version: string }).version : `HTTP ${r.status}`;
  };
  /** What skiff keeps on the hosts and in the proxy: it must not change when a group is refused. */
  const everything = async () => {
    const read = (f: string) => {
      try {
        return readFileSync(f, 'utf8');
      } catch {
        return '(none)';
      }
    };
    const files = [s.deployPath, apiPath()].flatMap((p) => ['state.json', 'releases.jsonl', 'group.json'].map((f) => read(join(p, '.skiff', f))));
    return [...files, (await get(`http://${caddy.admin}/config/`)).text].join('\n');
  };

  beforeAll(async () => {
    s = makeSandbox('groups');
    await caddy.start(s.dir);
    s.writeEnv('web.env', web());
    s.writeEnv('api.env', api());
    s.writeEnv('shop.group', 'web\napi  # switched in this order\n');
  });
  afterAll(() => {
    caddy.stop();
    for (const pid of pidsWithMarker(apiPath())) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    s.cleanup();
  });

  it('deploys both, web then api, on one domain; again with a new version', async () => {
    const r = await s.run('deploy-group', ['shop', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await webText()).toBe('hello 1.0.0 (web)');
    expect(await apiVersion()).toBe('1.0.0');
    const json = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '') as { action: string; services: { env: string; version: string }[] };
    expect(json).toMatchObject({ action: 'deploy-group', group: 'shop', services: [{ env: 'web', version: '1.0.0' }, { env: 'api', version: '1.0.0' }], dryRun: false });

    s.setVersion('1.0.1');
    const again = await s.run('deploy-group', ['shop']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/deployed web 1\.0\.1 \(release \S+\) with group shop: /);
    expect(again.stdout).toMatch(/deployed api 1\.0\.1 \(release \S+\) with group shop: http:\/\/127\.0\.0\.1:19200\/api/);
    expect(await webText()).toBe('hello 1.0.1 (web)');
    expect(await apiVersion()).toBe('1.0.1');
  });

  it('api fails its health check: exit 1 naming api, nothing switched, and web still serves 1.0.1 (no failed request on either)', async () => {
    s.setVersion('1.0.2');
    s.writeEnv('api.env', api('HEALTH_FAIL=1\nDEPLOY_HEALTH_TIMEOUT=2'));
    const probeApi = startProbe(`${origin}/api/health`, { headers: { connection: 'close' }, timeoutMs: 5000 });
    const probeWeb = startProbe(`${origin}/`, { headers: { connection: 'close' }, timeoutMs: 5000 });
    const r = await s.run('deploy-group', ['shop']);
    const [pa, pw] = [await probeApi.stop(), await probeWeb.stop()];
    s.writeEnv('api.env', api());
    expect(r.code).toBe(1);
    const error = errorOf(r.stderr);
    expect(error).toMatch(/^error: api: /);
    expect(error).toContain('undone on web');
    expect(error.trim().split('\n').at(-1)?.trim()).toBe('every service of the group is back on the release it served before');
    expect(error).toMatch(/web serves 1\.0\.1 \(release \S+\), healthy through caddy/);
    expect(await webText()).toBe('hello 1.0.1 (web)');
    expect(await apiVersion()).toBe('1.0.1');
    expect(pa.failures, pa.firstErrors.join('; ')).toBe(0);
    expect(pw.failures, pw.firstErrors.join('; ')).toBe(0);
  });

  it('api fails through the proxy after web switched: web switches back to 1.0.1, exit 1 naming api', async () => {
    s.setVersion('1.0.3');
    // Healthy when asked directly, 503 through Caddy: it fails only once it has the traffic.
    s.writeEnv('api.env', api('HEALTH_FAIL_PROXIED=1'));
    const probeWeb = startProbe(`${origin}/`, { headers: { connection: 'close' }, timeoutMs: 5000 });
    const r = await s.run('deploy-group', ['shop']);
    const pw = await probeWeb.stop();
    s.writeEnv('api.env', api());
    expect(r.code).toBe(1);
    const error = errorOf(r.stderr);
    expect(error).toMatch(/^error: api: .*through the proxy; switched back/);
    expect(error).toContain('undone on web');
    expect(error.trim().split('\n').at(-1)?.trim()).toBe('every service of the group is back on the release it served before');
    expect(error).toMatch(/web serves 1\.0\.1 \(release \S+\), healthy through caddy/);
    expect(await webText()).toBe('hello 1.0.1 (web)');
    expect(await apiVersion()).toBe('1.0.1');
    // web's new release served for a moment and its old one never stopped: no request of web failed.
    expect(pw.failures, pw.firstErrors.join('; ')).toBe(0);
    const history = readFileSync(join(s.deployPath, '.skiff/releases.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { version: string; status: string; reason?: string });
    expect(history.at(-1)).toMatchObject({ version: '1.0.3', status: 'rolled-back' });
    expect(history.at(-1)?.reason).toMatch(/^api failed: /);
  });

  it('--rollback takes both back to what they served before the group\'s last deploy; a second one is refused', async () => {
    const r = await s.run('deploy-group', ['shop', '--rollback', '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(await webText()).toBe('hello 1.0.0 (web)');
    expect(await apiVersion()).toBe('1.0.0');
    const before = await everything();
    const again = await s.run('deploy-group', ['shop', '--rollback', '--yes']);
    expect(again.code).toBe(2);
    expect(again.stderr.trim()).toMatch(/^error: the last deploy of shop \(\S+\) was rolled back already, at \S+: deploy it again, or roll back each service/);
    expect(await everything()).toBe(before);
  });

  it("a service's lock held by another deploy: exit 3 naming the holder, nothing changed, no lock left on the other", async () => {
    const lock = join(s.deployPath, '.skiff/lock');
    mkdirSync(lock);
    const at = new Date().toISOString();
    writeFileSync(join(lock, 'holder.json'), JSON.stringify({ user: 'ana', host: hostname(), pid: process.pid, command: 'deploy', version: '9.9.9', started_at: at, heartbeat_at: at, token: 'held-by-the-test' }));
    try {
      const before = await everything();
      const r = await s.run('deploy-group', ['shop', '--yes']);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toContain('ana@');
      expect(await everything()).toBe(before);
      expect(existsSync(join(apiPath(), '.skiff/lock'))).toBe(false);
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  });

  it.each<[string, () => void, RegExp]>([
    ['an env named twice', () => s.writeEnv('bad.group', 'api\nweb\napi\n'), /^error: env\/bad\.group names api twice: each service deploys once, name it once$/],
    ['an env that does not exist', () => s.writeEnv('bad.group', 'api\nfront\n'), /^error: env\/bad\.group names front, which has no env file \(env\/front\.env\): create it or take front out of the group$/],
    ['an empty group', () => s.writeEnv('bad.group', '# later\n'), /^error: env\/bad\.group names no env: /],
    ['the group itself', () => s.writeEnv('bad.group', 'api\nbad\n'), /^error: env\/bad\.group names the group itself \(bad\)/],
    ['another group', () => s.writeEnv('bad.group', 'shop\n'), /^error: env\/bad\.group names shop, which is a group \(env\/shop\.group\): groups do not nest/],
    [
      'two services on one route',
      () => {
        s.writeEnv('api2.env', api('', origin, join(s.dir, 'srv-api2'), [caddy.publicPort + 5, caddy.publicPort + 6]).replace('DEPLOY_HEALTH_PATH', '#'));
        s.writeEnv('bad.group', 'api2\nweb\n');
      },
      /^error: env\/bad\.group: api2 and web have the same route \(http:\/\/127\.0\.0\.1:19200\): give one another path prefix in DEPLOY_PUBLIC_URL/,
    ],
    [
      'two services in one DEPLOY_PATH',
      () => {
        s.writeEnv('api2.env', api('', `${origin}/v2`, s.deployPath, [caddy.publicPort + 5, caddy.publicPort + 6]).replace(/^DEPLOY_PUBLIC_URL=.*$/m, `DEPLOY_PUBLIC_URL=${origin}/v2\nDEPLOY_HEALTH_PATH=/v2/health`));
        s.writeEnv('bad.group', 'api2\nweb\n');
      },
      /^error: env\/bad\.group: api2 and web have the same DEPLOY_PATH \(.*\) on local: give each service its own$/,
    ],
    ['no such group (an env of that name)', () => undefined, /^error: unknown group "web": no env\/web\.group; web is an env: deploy it with `npx tsx scripts\/deploy-vps\.ts web`$/],
  ])('refuses %s: one line, exit 2, nothing changed', async (name, write, message) => {
    write();
    const before = await everything();
    const r = await s.run('deploy-group', [name.startsWith('no such group') ? 'web' : 'bad', '--yes']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr.trim()).toMatch(message);
    expect(await everything()).toBe(before);
  });
});
