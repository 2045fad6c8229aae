/**
 * nginx with a certificate from certbot: `setup` obtains it from a real ACME server (pebble) with
 * Debian's certbot, the deploy serves it, certbot's renewal reloads nginx through the hook setup
 * left, and an ACME server that is gone fails setup with one line and changes nothing.
 *
 * certbot keeps its files in /etc/letsencrypt, as on a real host: the test's names are deleted
 * there before and after. pebble passes every challenge (no DNS here), so what is checked of
 * HTTP-01 is that nginx serves certbot's webroot for the host on port 80.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pebbleUnderTest, type Pebble } from '../support/pebble.ts';
import { nginxUnderTest } from '../support/proxies.ts';
import { listening, localEnv, makeSandbox, type Sandbox } from '../support/sandbox.ts';

const HOST = 'certbot.skiff.test';
const OTHER = 'gone.skiff.test';
const PORT = 18870;
const WEBROOT = '/var/www/html';

const forget = (name: string) => spawnSync('certbot', ['delete', '--non-interactive', '--cert-name', name], { stdio: 'ignore' });

/** GET over HTTPS from 127.0.0.1 with `HOST` as SNI and Host; the served certificate. */
const ask = (path: string, ca: string): Promise<{ status: number; body: string; cert: tls.PeerCertificate | undefined }> =>
  new Promise((resolve, reject) => {
    const req = https.get(
      { host: '127.0.0.1', port: PORT, path, servername: HOST, headers: { host: `${HOST}:${PORT}` }, ca, agent: false, timeout: 5000 },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, cert: res.socket instanceof tls.TLSSocket ? res.socket.getPeerCertificate() : undefined }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });

const plain = (path: string): Promise<{ status: number; body: string }> =>
  new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: 80, path, headers: { host: HOST }, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });

describe('https behind nginx, with a certificate that setup obtains with certbot (pebble)', () => {
  const nginx = nginxUnderTest(PORT);
  let s: Sandbox;
  let pebble: Pebble;
  let root = '';
  const env = (host: string, extra = '') =>
    localEnv(
      s,
      nginx.slots[0],
      [
        `DEPLOY_PORTS=${nginx.slots.join(',')}`,
        `DEPLOY_PUBLIC_URL=https://${host}:${PORT}`,
        'DEPLOY_DRAIN_SECONDS=2',
        nginx.keys(s.dir),
        `DEPLOY_ACME_CA=${pebble.directory}`,
        `DEPLOY_ACME_CA_ROOT=${pebble.caFile}`,
        'DEPLOY_ACME_EMAIL=ops@skiff.test',
        extra,
      ].join('\n'),
    );
  const certFile = `/etc/letsencrypt/live/${HOST}/fullchain.pem`;

  beforeAll(async () => {
    if (listening(80)) throw new Error('port 80 is in use on this machine: the certbot test needs it for nginx');
    for (const name of [HOST, OTHER]) forget(name);
    // pebble forgets its accounts when it stops: certbot's account from an earlier run would be refused.
    rmSync('/etc/letsencrypt/accounts/127.0.0.1:18880', { recursive: true, force: true });
    mkdirSync(WEBROOT, { recursive: true });
    s = makeSandbox('certbot');
    pebble = pebbleUnderTest(s.dir, 18880);
    await pebble.start();
    root = await pebble.root();
    writeFileSync(join(s.dir, 'trusted.pem'), root);
    writeFileSync(join(s.home, '.curlrc'), `cacert = "${join(s.dir, 'trusted.pem')}"\nresolve = "${HOST}:${PORT}:127.0.0.1"\n`);
    await nginx.start(s.dir);
    s.writeEnv('t.env', env(HOST));
    s.writeEnv('u.env', env(OTHER).replace(`DEPLOY_PATH=${s.deployPath}`, `DEPLOY_PATH=${s.dir}/srv-u`));
  });
  afterAll(() => {
    nginx.stop();
    pebble.stop();
    for (const name of [HOST, OTHER]) forget(name);
    rmSync('/etc/letsencrypt/accounts/127.0.0.1:18880', { recursive: true, force: true });
    s.cleanup();
  });

  it('a deploy before setup: exit 1, says to run setup, nothing written', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(
      `error: local: no certificate for ${HOST} yet (${certFile}): run scripts/setup.ts t, which obtains it with certbot (docs/proxies.md#nginx-with-certbot); nothing was changed`,
    );
    expect(existsSync(join(s.dir, 'nginx/conf.d/hello-t.conf'))).toBe(false);
  });

  it('setup obtains the certificate from the ACME server; a second setup changes nothing', async () => {
    const dry = await s.run('setup', ['t', '--dry-run']);
    expect(dry.code, dry.stdout + dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`would    tls: obtain a certificate for ${HOST} from ${pebble.directory} with certbot`);
    expect(existsSync(certFile)).toBe(false);

    const r = await s.run('setup', ['t']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`changed  tls: obtain a certificate for ${HOST}`);
    const cert = new crypto.X509Certificate(readFileSync(certFile));
    expect(cert.subjectAltName).toBe(`DNS:${HOST}`);
    expect(readFileSync(`/etc/letsencrypt/renewal/${HOST}.conf`, 'utf8')).toMatch(/renew_hook = .* -t -q && .* -s reload/);

    const again = await s.run('setup', ['t']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`ok       tls: certbot's certificate for ${HOST} is there`);
  });

  it('the deploy serves the certificate over HTTPS, and nginx answers HTTP-01 from the webroot on port 80', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code, r.stderr).toBe(0);
    const res = await ask('/', root);
    expect(res.body).toBe('hello 1.0.0 (t)\n');
    expect(res.cert?.fingerprint256).toBe(new crypto.X509Certificate(readFileSync(certFile)).fingerprint256);

    const token = `skiff-probe-${Date.now()}`;
    mkdirSync(join(WEBROOT, '.well-known/acme-challenge'), { recursive: true });
    writeFileSync(join(WEBROOT, '.well-known/acme-challenge', token), 'proof');
    try {
      expect(await plain(`/.well-known/acme-challenge/${token}`)).toEqual({ status: 200, body: 'proof' });
      expect((await plain('/other')).status).toBe(308);
    } finally {
      rmSync(join(WEBROOT, '.well-known/acme-challenge', token));
    }
  });

  it("certbot's renewal runs the hook: nginx serves the new certificate without a deploy", async () => {
    const before = (await ask('/', root)).cert?.serialNumber;
    execFileSync('certbot', ['renew', '--non-interactive', '--no-random-sleep-on-renew', '--force-renewal', '--cert-name', HOST], { env: { ...process.env, REQUESTS_CA_BUNDLE: pebble.caFile }, stdio: 'pipe' });
    let after = before;
    for (let i = 0; i < 50 && after === before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = (await ask('/', root)).cert?.serialNumber;
    }
    expect(after).not.toBe(before);
    expect(after).toBe(new crypto.X509Certificate(readFileSync(certFile)).serialNumber);
  });

  it('an ACME server that does not answer: setup fails with certbot\'s reason (exit 1), no certificate, the other env keeps serving', async () => {
    pebble.stop();
    const r = await s.run('setup', ['u']);
    expect(r.code).toBe(1);
    const line = r.stdout.split('\n').find((l) => l.includes('tls: obtain')) ?? '';
    expect(line).toMatch(new RegExp(`^  failed   tls: obtain a certificate for ${OTHER.replace(/\./g, '\\.')} .*: .+`));
    expect(existsSync(`/etc/letsencrypt/live/${OTHER}`)).toBe(false);
    expect((await ask('/', root)).body).toBe('hello 1.0.0 (t)\n');
  });
});
