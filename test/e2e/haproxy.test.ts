/**
 * Blue-green deploys on this machine behind a real HAProxy (Debian's 2.6), started by the test in
 * master-worker mode on loopback ports of its own (18820-18827). Switches go through its runtime
 * API: no client connection is closed, not even a kept-alive one.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haproxyUnderTest, startKeptAliveProbe } from '../support/haproxy.ts';
import { startProbe } from '../support/probe.ts';
import { get, localEnv, makeSandbox, type Sandbox } from '../support/sandbox.ts';

const ha = haproxyUnderTest(18820);
const url = `http://127.0.0.1:${ha.publicPort}`;

/** A GET that keeps its response headers (fetch would decode gzip and hide how it came). */
const raw = (target: string, headers: Record<string, string> = {}, opts: { ca?: Buffer; timeoutMs?: number } = {}) =>
  new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer; ms: number }>((resolve, reject) => {
    const t0 = Date.now();
    const client = target.startsWith('https:') ? https : http;
    const req = client.get(target, { headers, agent: false, timeout: opts.timeoutMs ?? 5000, ...(opts.ca ? { ca: opts.ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), ms: Date.now() - t0 }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });

const waitUntil = async (check: () => boolean, what: string) => {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 100));
  if (!check()) throw new Error(`${what} did not come up within 10 s`);
};

/** The access log lines HAProxy printed (one JSON object each). */
const accessLog = () =>
  ha
    .log()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('blue-green behind HAProxy', () => {
  let s: Sandbox;
  const env = (extra = '') =>
    localEnv(s, ha.slots[0], [`DEPLOY_PORTS=${ha.slots.join(',')}`, `DEPLOY_PUBLIC_URL=${url}`, 'DEPLOY_DRAIN_SECONDS=3', ha.keys(s.dir), extra].join('\n'));
  const state = () => JSON.parse(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')) as { live: string };
  const confFile = () => join(s.dir, 'haproxy/conf.d/skiff-hello-t.cfg');
  const version = async () => (await get(url)).text.trim();

  beforeAll(async () => {
    s = makeSandbox('haproxy');
    await ha.start(s.dir);
    s.writeEnv('t.env', env());
  });
  afterAll(async () => {
    await ha.stop();
    // cleanup() stops what runs for the sandbox's DEPLOY_PATH; the other envs have paths of their own.
    for (const path of [join(s.dir, 'srv-v'), join(s.dir, 'srv-w')]) {
      for (const pid of s.slotPids(path)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    s.cleanup();
  });

  it("the first deploy writes skiff's file, reloads HAProxy and serves through it, with headers, gzip and a JSON access log", async () => {
    const before = ha.workerPid();
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('HAProxy will be reloaded to load');
    expect(await version()).toBe('hello 1.0.0 (t)');
    expect(state().live).toBe('blue');
    expect(ha.workerPid()).not.toBe(before);
    const text = readFileSync(confFile(), 'utf8');
    expect(text).toContain(`server blue 127.0.0.1:${ha.slots[0]}\n    server green 127.0.0.1:${ha.slots[1]} disabled\n`);

    const res = await raw(`${url}/`, { 'accept-encoding': 'gzip', 'user-agent': 'skiff "e2e" \\ test' });
    expect(res.status).toBe(200);
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(execFileSync('gzip', ['-dc'], { input: res.body }).toString()).toBe('hello 1.0.0 (t)\n');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(res.headers['referrer-policy']).toBe('strict-origin-when-cross-origin');
    expect(res.headers['strict-transport-security']).toBeUndefined(); // http: no HSTS
    expect((await raw(`${url}/`)).headers['content-encoding']).toBeUndefined(); // only when asked for

    await new Promise((r) => setTimeout(r, 200));
    const line = accessLog().find((l) => l.ua === 'skiff "e2e" \\ test');
    expect(line).toMatchObject({ method: 'GET', uri: '/', status: 200, backend: 'skiff-hello-t', server: 'blue', host: `127.0.0.1:${ha.publicPort}` });
    expect(typeof line?.time).toBe('number');
  });

  it('10 deploys and a rollback: no failed request on ONE kept-alive connection that never resends, no reload, and each next request on it reaches the new release', async () => {
    const worker = ha.workerPid();
    const probe = startKeptAliveProbe(`${url}/api/health`);
    const seen: string[] = [];
    for (let i = 1; i <= 10; i++) {
      s.setVersion(`1.1.${i}`);
      const r = await s.run('deploy-vps', ['t']);
      expect(r.code, r.stderr).toBe(0);
      const after = probe.requests();
      while (probe.requests() < after + 2) await new Promise((resolve) => setTimeout(resolve, 5));
      seen.push((JSON.parse(probe.lastBody()) as { version: string }).version);
    }
    const rb = await s.run('rollback', ['t']);
    const result = await probe.stop();
    expect(rb.code, rb.stderr).toBe(0);
    expect(result.failures, `failed requests: ${result.firstErrors.join('; ')}`).toBe(0);
    expect(result.requests).toBeGreaterThan(500);
    expect(result.connections).toBe(1); // HAProxy closed nothing
    expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => `1.1.${i + 1}`));
    expect(ha.workerPid()).toBe(worker); // switches through the runtime API: no reload
    expect(await version()).toBe('hello 1.1.9 (t)');
    expect(state().live).toBe('green');
    expect(readFileSync(confFile(), 'utf8')).toContain(`server blue 127.0.0.1:${ha.slots[0]} disabled\n    server green 127.0.0.1:${ha.slots[1]}\n`);
  }, 300_000);

  it('a request of 20 s that started before a switch finishes on the old slot, while new requests go to the new one', async () => {
    s.writeEnv('t.env', env('SLOW_MS=20000\nSHUTDOWN_TIMEOUT_MS=40000\nDEPLOY_DRAIN_SECONDS=40'));
    s.setVersion('1.2.0');
    expect((await s.run('deploy-vps', ['t'])).code).toBe(0); // a release that has the slow endpoint at 20 s
    const old = state().live;
    const slow = raw(`${url}/slow`, { 'user-agent': 'slow one' }, { timeoutMs: 60_000 });
    let slowDone = false;
    void slow.then(() => (slowDone = true));
    await new Promise((r) => setTimeout(r, 1000));
    s.setVersion('1.2.1');
    const deploy = s.run('deploy-vps', ['t']);
    const until = Date.now() + 60_000;
    while ((await version()) !== 'hello 1.2.1 (t)' && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(slowDone).toBe(false); // switched, with the slow request still on its way
    const res = await slow;
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('slow done\n');
    expect(res.ms).toBeGreaterThan(19_000);
    const r = await deploy;
    s.writeEnv('t.env', env());
    expect(r.code, r.stderr).toBe(0);
    expect(state().live).not.toBe(old);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(accessLog().find((l) => l.ua === 'slow one')).toMatchObject({ uri: '/slow', status: 200, server: old });
  }, 120_000);

  it('a restart of HAProxy keeps the live server, from the file skiff rewrote at the switch', async () => {
    expect(state().live).toBe('green'); // the second server: a file that kept the first would show
    await ha.restart();
    s.writeEnv('t.env', env()); // the reload command names the new master
    expect(await version()).toBe('hello 1.2.1 (t)');
    const status = await s.run('status', ['t']);
    expect(status.stdout).toMatch(new RegExp(`proxy +haproxy -> port ${ha.slots[1]}\n`));
    // And the next deploy switches at run time again.
    const worker = ha.workerPid();
    s.setVersion('1.2.2');
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain('will be reloaded');
    expect(ha.workerPid()).toBe(worker);
    expect(await version()).toBe('hello 1.2.2 (t)');
  });

  it('a missing runtime API socket: refused with one clear line, exit 2, nothing changed', async () => {
    const stateBefore = readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8');
    const fileBefore = readFileSync(confFile(), 'utf8');
    const pids = s.slotPids().sort();
    const missing = join(s.dir, 'haproxy/missing.sock');
    s.writeEnv('t.env', env(`DEPLOY_HAPROXY_SOCKET=${missing}`));
    s.setVersion('1.2.3');
    const r = await s.run('deploy-vps', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(
      `error: local: HAProxy's runtime API socket ${missing} is missing: add \`stats socket ${missing} level admin\` to the global section of haproxy.cfg and restart HAProxy, or set DEPLOY_HAPROXY_SOCKET to the socket it has`,
    );
    expect(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')).toBe(stateBefore);
    expect(readFileSync(confFile(), 'utf8')).toBe(fileBefore);
    expect(s.slotPids().sort()).toEqual(pids);
    expect(await version()).toBe('hello 1.2.2 (t)');
  });

  it("another env at the root of the same host and port is refused before anything changes (exit 2): that route is t's", async () => {
    s.writeEnv('v.env', env().replace(`DEPLOY_PATH=${s.deployPath}`, `DEPLOY_PATH=${s.dir}/srv-v`).replace(/DEPLOY_PORTS=.*/g, 'DEPLOY_PORTS=18823,18824'));
    const r = await s.run('deploy-vps', ['v']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(
      `error: local: the root of 127.0.0.1:${ha.publicPort} is served by skiff's route skiff-hello-t already: give DEPLOY_PUBLIC_URL another path, or deploy to another host name; nothing was changed`,
    );
    expect(existsSync(join(s.dir, 'haproxy/conf.d/skiff-hello-v.cfg'))).toBe(false);
    expect((await get('http://127.0.0.1:18823/')).status).toBe(0);
    expect(await version()).toBe('hello 1.2.2 (t)');
    // A host name binds every address of the port: another frontend than 127.0.0.1's, on the same port.
    s.writeEnv('v.env', readFileSync(join(s.envDir, 'v.env'), 'utf8').replace(`DEPLOY_PUBLIC_URL=${url}`, `DEPLOY_PUBLIC_URL=http://localhost:${ha.publicPort}`));
    const named = await s.run('deploy-vps', ['v']);
    expect(named.code).toBe(2);
    expect(named.stderr.trim().split('\n').at(-1)).toBe(
      `error: local: port ${ha.publicPort} of http://localhost:${ha.publicPort} is bound by ${join(s.dir, 'haproxy/conf.d')}/skiff-front-127.0.0.1-${ha.publicPort}.cfg already, for another address: the envs of one port share one address (give DEPLOY_PUBLIC_URL that address, or another port); nothing was changed`,
    );
    expect(existsSync(join(s.dir, 'haproxy/conf.d/skiff-hello-v.cfg'))).toBe(false);
  });

  it('https with a self-signed certificate and a separate key file: TLS, HSTS, and the first env untouched', async () => {
    const cert = join(s.dir, 'tls.crt');
    const key = join(s.dir, 'tls.key');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const httpsUrl = 'https://127.0.0.1:18825';
    s.writeEnv(
      'w.env',
      env()
        .replace(`DEPLOY_PATH=${s.deployPath}`, `DEPLOY_PATH=${s.dir}/srv-w`)
        .replace(/DEPLOY_PORTS=.*/g, 'DEPLOY_PORTS=18826,18827')
        .replace(`DEPLOY_PUBLIC_URL=${url}`, `DEPLOY_PUBLIC_URL=${httpsUrl}\nDEPLOY_TLS_CERT=${cert}\nDEPLOY_TLS_KEY=${key}`),
    );
    // The check through the proxy runs curl on the host (with the sandbox's HOME): it trusts this certificate.
    writeFileSync(join(s.home, '.curlrc'), `cacert = "${cert}"\n`);
    const r = await s.run('deploy-vps', ['w']);
    expect(r.code, r.stderr).toBe(0);
    const ca = readFileSync(cert);
    const res = await raw(`${httpsUrl}/`, { 'accept-encoding': 'gzip' }, { ca });
    expect(res.status).toBe(200);
    expect(execFileSync('gzip', ['-dc'], { input: res.body }).toString()).toBe('hello 1.2.3 (w)\n');
    expect(res.headers['strict-transport-security']).toBe('max-age=31536000');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    const again = await s.run('deploy-vps', ['w']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).not.toContain('will be reloaded');
    expect(await version()).toBe('hello 1.2.2 (t)');
  });

  it("a host with the previous layout (the env's own frontend on the port) moves to the shared frontend at the next deploy: one reload, no failed request", async () => {
    // Put t back into the layout of the previous version: a frontend of its own in its file, no shared one.
    const dir = join(s.dir, 'haproxy/conf.d');
    const front = join(dir, `skiff-front-127.0.0.1-${ha.publicPort}`);
    const backend = readFileSync(confFile(), 'utf8').split('\n').filter((l) => !l.startsWith('#')).join('\n');
    const previous = [
      '# Written by skiff for hello t; rewritten at every switch (edits here do not last).',
      'frontend skiff-hello-t-in',
      '    mode http',
      `    bind 127.0.0.1:${ha.publicPort}`,
      '    option forwardfor',
      '    http-request set-header X-Forwarded-Proto http',
      '    no log',
      '    default_backend skiff-hello-t',
      '',
      backend,
    ].join('\n');
    writeFileSync(confFile(), previous);
    rmSync(`${front}.cfg`);
    writeFileSync(`${front}.map`, '');
    const worker = ha.workerPid();
    ha.reload();
    await waitUntil(() => ha.workerPid() !== worker && /skiff-hello-t-in/.test(ha.api('show stat')), 'HAProxy with the previous layout');
    expect(await version()).toBe('hello 1.2.2 (t)');

    const p = startProbe(`${url}/api/health`, { headers: { connection: 'close' }, timeoutMs: 5000 });
    s.setVersion('1.3.0');
    const before = ha.workerPid();
    const r = await s.run('deploy-vps', ['t']);
    const result = await p.stop();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('its frontend moves to the one its address and port share');
    expect(result.failures, `failed requests: ${result.firstErrors.join('; ')}`).toBe(0);
    expect(result.requests).toBeGreaterThan(20);
    expect(ha.workerPid()).not.toBe(before);
    expect(readFileSync(confFile(), 'utf8')).not.toMatch(/^frontend /m);
    expect(readFileSync(`${front}.cfg`, 'utf8')).toMatch(/^frontend skiff-front-127\.0\.0\.1-18820$/m);
    expect(ha.api('show stat')).not.toMatch(/skiff-hello-t-in/);
    expect(await version()).toBe('hello 1.3.0 (t)');
    // And the next deploy is a runtime switch again.
    const worker2 = ha.workerPid();
    s.setVersion('1.3.1');
    const again = await s.run('deploy-vps', ['t']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).not.toContain('will be reloaded');
    expect(ha.workerPid()).toBe(worker2);
  });
});
