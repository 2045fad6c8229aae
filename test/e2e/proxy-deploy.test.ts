/**
 * Blue-green deploys on this machine behind a real Caddy and a real nginx, each started by the test
 * on loopback ports of its own.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProbe } from '../support/probe.ts';
import { caddyUnderTest, nginxUnderTest } from '../support/proxies.ts';
import { get, localEnv, makeSandbox, type Sandbox } from '../support/sandbox.ts';

/**
 * One kept-alive client connection, a request every 100 ms, never sent again: how many connections
 * it needed and how many requests failed. A proxy that reloads closes it (docs/proxies.md).
 */
const keptAlive = (port: number) => {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const sockets = new Set<Socket>();
  let failures = 0;
  let ok = 0;
  let stopped = false;
  const one = () =>
    new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/api/health', agent, timeout: 5000 }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) ok += 1;
          else failures += 1;
          resolve();
        });
      });
      req.on('socket', (socket: Socket) => sockets.add(socket));
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => {
        failures += 1;
        resolve();
      });
      req.end();
    });
  const loop = (async () => {
    while (!stopped) {
      await one();
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      agent.destroy();
      return { connections: sockets.size, failures, ok };
    },
  };
};

describe.each([caddyUnderTest(), nginxUnderTest()])('blue-green behind $name', (proxy) => {
  let s: Sandbox;
  const url = `http://127.0.0.1:${proxy.publicPort}`;
  const env = (extra = '') =>
    localEnv(
      s,
      proxy.slots[0],
      [`DEPLOY_PORTS=${proxy.slots.join(',')}`, `DEPLOY_PUBLIC_URL=${url}`, 'DEPLOY_DRAIN_SECONDS=3', proxy.keys(s.dir), extra].join('\n'),
    );
  const versionThroughProxy = async () => (await get(url)).text.trim();
  const state = () => JSON.parse(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')) as { live: string };

  beforeAll(async () => {
    s = makeSandbox(proxy.name);
    await proxy.start(s.dir);
    s.writeEnv('t.env', env());
  });
  afterAll(() => {
    proxy.stop();
    s.cleanup();
  });

  it('the first deploy creates what skiff owns and serves through the proxy', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`deployed 1.0.0`);
    expect(await versionThroughProxy()).toBe('hello 1.0.0 (t)');
    expect(state().live).toBe('blue');
  });

  /** What the proxy runs: Caddy's config as its admin API gives it, or nginx's config files. */
  const proxyConfig = async (): Promise<string> => {
    if (proxy.name === 'caddy') return (await get(`http://127.0.0.1:${proxy.publicPort + 9}/config/`)).text;
    return execFileSync('sh', ['-c', `cd '${join(s.dir, 'nginx')}' && find . -name '*.conf' | sort | xargs cat`]).toString();
  };

  it('a dry run reads the proxy for real, says what it would do, and changes nothing', async () => {
    const config = await proxyConfig();
    const files = ['.skiff/state.json', '.skiff/releases.jsonl'].map((f) => readFileSync(join(s.deployPath, f), 'utf8'));
    s.setVersion('1.0.1');
    const r = await s.run('deploy-vps', ['t', '--dry-run']);
    s.setVersion('1.0.0');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/would ship [\d.]+ (B|KB) for a [\d.]+ MB release: \d+ of \d+ files sent/);
    expect(r.stdout).toContain('dry run: nothing was changed (would deploy 1.0.1');
    expect(r.stdout).not.toMatch(/\bshipped\b|warning/i);
    expect(await proxyConfig()).toBe(config);
    expect(['.skiff/state.json', '.skiff/releases.jsonl'].map((f) => readFileSync(join(s.deployPath, f), 'utf8'))).toEqual(files);
    expect(await versionThroughProxy()).toBe('hello 1.0.0 (t)');
  });

  /** nginx's accepting workers: the same pids after a deploy when it did not reload. */
  const workers = () => {
    const master = readFileSync(join(s.dir, 'nginx/nginx.pid'), 'utf8').trim();
    return execFileSync('sh', ['-c', `pgrep -P ${master} -f '^nginx: worker process$' || true`]).toString().trim().split('\n').sort();
  };

  it('a redeploy goes to the other slot without one failed request, reloading nothing, and stops the old one', async () => {
    // New connection per request, and one kept-alive connection: a switch with unchanged settings
    // renames the flag file only, so the proxy loads no config and closes no connection.
    const probe = startProbe(`${url}/api/health`, { headers: { connection: 'close' }, timeoutMs: 5000 });
    const client = keptAlive(proxy.publicPort);
    const before = proxy.name === 'nginx' ? workers() : [];
    s.setVersion('1.0.1');
    const r = await s.run('deploy-vps', ['t']);
    const result = await probe.stop();
    const kept = await client.stop();
    expect(r.code).toBe(0);
    expect(kept.failures).toBe(0);
    expect(kept.ok).toBeGreaterThan(5);
    expect(kept.connections, 'the kept-alive connection was closed: the proxy reloaded').toBe(1);
    if (proxy.name === 'nginx') expect(workers()).toEqual(before);
    expect(result.requests).toBeGreaterThan(50);
    expect(result.failures, `failed requests: ${result.firstErrors.join('; ')}`).toBe(0);
    expect(await versionThroughProxy()).toBe('hello 1.0.1 (t)');
    expect(state().live).toBe('green');
    expect((await get(`http://127.0.0.1:${proxy.slots[0]}/`)).status).toBe(0); // the old slot is stopped
  });

  it('a release that fails its direct health check never gets traffic (exit 1, recorded failed)', async () => {
    s.setVersion('1.0.2');
    s.writeEnv('t.env', env('HEALTH_FAIL=1\nDEPLOY_HEALTH_TIMEOUT=2'));
    const r = await s.run('deploy-vps', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no healthy answer');
    expect(await versionThroughProxy()).toBe('hello 1.0.1 (t)');
    expect(state().live).toBe('green');
    const last = readFileSync(join(s.deployPath, '.skiff/releases.jsonl'), 'utf8').trim().split('\n').at(-1) as string;
    expect(JSON.parse(last)).toMatchObject({ version: '1.0.2', status: 'failed' });
  });

  it('a release that passes directly but fails through the proxy is switched back (exit 1)', async () => {
    s.setVersion('1.0.3');
    s.writeEnv('t.env', env('HEALTH_FAIL_PROXIED=1'));
    const r = await s.run('deploy-vps', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('passed its direct health check but');
    expect(r.stderr).toContain('switched back');
    expect(await versionThroughProxy()).toBe('hello 1.0.1 (t)');
    const last = readFileSync(join(s.deployPath, '.skiff/releases.jsonl'), 'utf8').trim().split('\n').at(-1) as string;
    expect(JSON.parse(last)).toMatchObject({ version: '1.0.3', status: 'rolled-back' });
  });

  it('the next good deploy works after those failures', async () => {
    s.setVersion('1.0.4');
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code).toBe(0);
    expect(await versionThroughProxy()).toBe('hello 1.0.4 (t)');
    expect(state().live).toBe('blue');
  });

  it('rollback with no argument goes to the previous good release with no failed request, and marks the live one bad', async () => {
    const probe = startProbe(`${url}/api/health`, { headers: { connection: 'close' }, timeoutMs: 5000 });
    const r = await s.run('rollback', ['t']);
    const result = await probe.stop();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/rolled t back to \d{8}-\d{6}-1\.0\.1 \(version 1\.0\.1\)/);
    expect(result.failures, `failed requests: ${result.firstErrors.join('; ')}`).toBe(0);
    expect(await versionThroughProxy()).toBe('hello 1.0.1 (t)');
    const list = await s.run('rollback', ['t', '--list']);
    expect(list.stdout).toMatch(/^\* \d{8}-\d{6}-1\.0\.1 +1\.0\.1 +live /m);
    expect(list.stdout).toMatch(/^  \d{8}-\d{6}-1\.0\.4 +1\.0\.4 +bad /m);
    expect(list.stdout).toMatch(/^  \d{8}-\d{6}-1\.0\.2 +1\.0\.2 +failed .*\(pruned\)$/m);
  });

  it('rollback to a release id goes there, even one marked bad', async () => {
    const list = (await s.run('rollback', ['t', '--list'])).stdout;
    const id = /(\d{8}-\d{6}-1\.0\.4)/.exec(list)?.[1] as string;
    const r = await s.run('rollback', ['t', id]);
    expect(r.code).toBe(0);
    expect(await versionThroughProxy()).toBe('hello 1.0.4 (t)');
  });

  it.each([
    ['a release id with shell characters', ['t', '20261122-000000-1.0.0;touch x'], /is not a release id/],
    ['a release that is not on the host', ['t', '20200101-000000-0.0.1'], /release 20200101-000000-0\.0\.1 is not on the host/],
  ])('rollback refuses %s (exit 2, nothing changed)', async (_, args, message) => {
    const before = readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8');
    const r = await s.run('rollback', args);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(message);
    expect(r.stderr.trim().split('\n').length).toBe(1);
    expect(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')).toBe(before);
  });

  if (proxy.name === 'caddy') {
    it('Caddy admin API down: exit 1, nothing changed', async () => {
      const before = readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8');
      s.writeEnv('t.env', env('DEPLOY_CADDY_ADMIN=127.0.0.1:18699'));
      const r = await s.run('deploy-vps', ['t']);
      s.writeEnv('t.env', env());
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^error: local: Caddy's admin API at 127\.0\.0\.1:18699 does not answer: start Caddy, or fix DEPLOY_CADDY_ADMIN/);
      expect(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')).toBe(before);
      expect(await versionThroughProxy()).toBe('hello 1.0.4 (t)');
    });
  } else {
    it("a switch flag folder nginx's workers cannot search: refused before any change (exit 2)", async () => {
      const before = readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8');
      const closed = join(s.dir, 'closed');
      mkdirSync(closed, { mode: 0o700 });
      s.writeEnv('t.env', env(`DEPLOY_SWITCH_DIR=${closed}/flags`));
      s.setVersion('1.0.5');
      const r = await s.run('deploy-vps', ['t']);
      s.writeEnv('t.env', env());
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n').at(-1)).toBe(
        `error: local: nginx runs as nobody, which cannot search ${closed} (mode 700), so it could not see the switch flag in ${closed}/flags/hello-t: let it in (chmod o+x ${closed}), or choose another DEPLOY_SWITCH_DIR; nothing was changed`,
      );
      expect(existsSync(join(closed, 'flags'))).toBe(false);
      expect(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')).toBe(before);
      expect(await versionThroughProxy()).toBe('hello 1.0.4 (t)');
    });

    it('an nginx config test that fails after the change leaves the old config in place (exit 1)', async () => {
      // A config of someone else's that breaks once skiff's conf of the env exists: the glob matches
      // nothing before the first deploy of this env, and includes its upstreams a second time after it.
      const confDir = join(s.dir, 'nginx/conf.d');
      writeFileSync(join(confDir, 'zz-other.conf'), `include ${confDir}/hello-u.con[f];\n`);
      s.writeEnv('u.env', env().replace(`DEPLOY_PATH=${s.deployPath}`, `DEPLOY_PATH=${s.dir}/srv-u`).replace(/DEPLOY_PORTS=.*/g, 'DEPLOY_PORTS=18613,18614').replace(`DEPLOY_PUBLIC_URL=${url}`, 'DEPLOY_PUBLIC_URL=http://127.0.0.1:18615'));
      const r = await s.run('deploy-vps', ['u']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/nginx -t fails with the new config: .*duplicate upstream.*; the old config is in place/);
      expect(existsSync(join(confDir, 'hello-u.slot/live-second'))).toBe(false);
      expect(existsSync(join(confDir, 'hello-u.conf'))).toBe(false);
      expect(await versionThroughProxy()).toBe('hello 1.0.4 (t)');
      expect((await get('http://127.0.0.1:18613/')).status).toBe(0); // the new slot was stopped
    });
  }
});
