/**
 * HTTPS on this machine: the example app deployed behind a real Caddy that gets its certificate
 * from a real ACME server (pebble), and behind a real nginx with certificate files made by openssl.
 * Checked from outside as a browser would: the certificate and who issued it, HTTP/2, the security
 * headers, compression, the redirect from plain HTTP, and the JSON access log; then what happens
 * when the ACME server is gone, refuses, or the certificate does not match its key.
 *
 * The deploy's own check through the proxy runs curl on the host, with the sandbox's HOME: its
 * ~/.curlrc trusts the test's CAs and resolves the test names to 127.0.0.1.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pebbleUnderTest, type Pebble } from '../support/pebble.ts';
import { caddyUnderTest, nginxUnderTest } from '../support/proxies.ts';
import { get, listening, localEnv, makeSandbox, type Sandbox } from '../support/sandbox.ts';

const HOST = 'app.skiff.test';

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  readonly cert: tls.PeerCertificate | undefined;
}

/** One request to 127.0.0.1:port with `name` as SNI and Host; the certificate is checked against `ca` for that name. */
const ask = (
  port: number,
  path: string,
  opts: { ca?: string | Buffer; name?: string; headers?: Record<string, string>; method?: string; body?: string; plain?: boolean } = {},
): Promise<Answer> =>
  new Promise((resolve, reject) => {
    const name = opts.name ?? HOST;
    const headers = { host: `${name}:${port}`, ...opts.headers };
    const done = (res: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks),
          cert: res.socket instanceof tls.TLSSocket ? res.socket.getPeerCertificate() : undefined,
        }),
      );
    };
    const common = { host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers, agent: false, timeout: 5000 };
    const req = opts.plain ? http.request(common, done) : https.request({ ...common, servername: name, ...(opts.ca ? { ca: opts.ca } : {}) }, done);
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });

/** The protocol the server picks when a client offers h2 and http/1.1 (ALPN). */
const alpn = (port: number, ca: string | Buffer, name = HOST): Promise<string | false> =>
  new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: name, ca, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
      resolve(socket.alpnProtocol ?? false);
      socket.end();
    });
    socket.on('error', reject);
  });

/** Whether something listens on a UDP port of this machine (HTTP/3 is QUIC over UDP). */
const udpListening = (port: number): boolean => {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return ['/proc/net/udp', '/proc/net/udp6'].some((f) => existsSync(f) && readFileSync(f, 'utf8').split('\n').some((l) => l.trim().split(/\s+/)[1]?.endsWith(`:${hex}`)));
};

/** A self-signed certificate (and its key) for `name`, made by openssl. */
const selfSigned = (dir: string, base: string, name: string): { cert: string; key: string } => {
  const cert = join(dir, `${base}.pem`);
  const key = join(dir, `${base}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`], {
    stdio: 'ignore',
  });
  return { cert, key };
};

const logLines = (file: string): Record<string, unknown>[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>)
    : [];

/** The log lines that pass `keep`, once there are `n` (the proxy writes its line after the answer has gone out). */
const linesOf = async (file: string, keep: (l: Record<string, unknown>) => boolean, n: number): Promise<Record<string, unknown>[]> => {
  let lines = logLines(file).filter(keep);
  for (let i = 0; i < 50 && lines.length < n; i++) {
    await new Promise((r) => setTimeout(r, 100));
    lines = logLines(file).filter(keep);
  }
  return lines;
};

const state = (s: Sandbox, path = s.deployPath) => JSON.parse(readFileSync(join(path, '.skiff/state.json'), 'utf8')) as { live: string };

/** A body over 512 bytes (the size below which neither proxy compresses): a few notes, as JSON. */
const addNotes = async (port: number, ca: string | Buffer) => {
  for (let i = 0; i < 3; i++) {
    const r = await ask(port, '/api/notes', { ca, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ body: `note ${i} `.repeat(40) }) });
    expect(r.status).toBe(201);
  }
};

describe('https behind Caddy, with a certificate from an ACME server (pebble)', () => {
  const caddy = caddyUnderTest(18840, { httpPort: 18843 });
  const url = `https://${HOST}:18840`;
  let s: Sandbox;
  let pebble: Pebble;
  let root = '';
  const logDir = () => join(s.dir, 'logs');
  const env = (extra = '') =>
    localEnv(
      s,
      caddy.slots[0],
      [
        `DEPLOY_PORTS=${caddy.slots.join(',')}`,
        `DEPLOY_PUBLIC_URL=${url}`,
        'DEPLOY_DRAIN_SECONDS=3',
        caddy.keys(s.dir),
        `DEPLOY_ACME_CA=${pebble.directory}`,
        `DEPLOY_ACME_CA_ROOT=${pebble.caFile}`,
        'DEPLOY_ACME_EMAIL=ops@skiff.test',
        `DEPLOY_ACCESS_LOG_DIR=${logDir()}`,
        extra,
      ].join('\n'),
    );
  /** The env `u`: another app's route on the same Caddy server, for another host. */
  const otherEnv = () =>
    env()
      .replace(`DEPLOY_PATH=${s.deployPath}`, `DEPLOY_PATH=${s.dir}/srv-u`)
      .replace(/DEPLOY_PORTS=.*/g, 'DEPLOY_PORTS=18844,18845')
      .replace(`DEPLOY_PUBLIC_URL=${url}`, 'DEPLOY_PUBLIC_URL=https://other.skiff.test:18840');
  const route = async (id: string) => (await get(`http://${caddy.admin}/id/${id}`)).text;
  /** The host's curl (the deploy's check through the proxy) trusts these CAs and finds the test names. */
  const curlrc = (cas: readonly string[]) => {
    writeFileSync(join(s.dir, 'trusted.pem'), cas.join('\n'));
    writeFileSync(
      join(s.home, '.curlrc'),
      [`cacert = "${join(s.dir, 'trusted.pem')}"`, `resolve = "${HOST}:18840:127.0.0.1"`, 'resolve = "other.skiff.test:18840:127.0.0.1"', ''].join('\n'),
    );
  };
  let firstSerial = '';

  beforeAll(async () => {
    s = makeSandbox('tls-caddy');
    mkdirSync(logDir());
    pebble = pebbleUnderTest(s.dir, 18862);
    await pebble.start();
    root = await pebble.root();
    curlrc([root]);
    await caddy.start(s.dir);
    s.writeEnv('t.env', env());
    s.writeEnv('u.env', otherEnv());
  });
  afterAll(() => {
    caddy.stop();
    pebble.stop();
    for (const pid of s.slotPids(`${s.dir}/srv-u`)) process.kill(pid, 'SIGKILL');
    s.cleanup();
  });

  it('the first deploy gets a certificate from pebble for the URL host and serves the app over HTTPS with HTTP/2', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code, r.stderr).toBe(0);
    const res = await ask(18840, '/', { ca: root });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('hello 1.0.0 (t)\n');
    // Checked against pebble's root for app.skiff.test (Node refuses it otherwise).
    expect(res.cert?.subjectaltname).toBe(`DNS:${HOST}`);
    expect(res.cert?.issuer.CN).toMatch(/^Pebble Intermediate CA/);
    firstSerial = res.cert?.serialNumber ?? '';
    expect(await alpn(18840, root)).toBe('h2');
    // Not trusted without pebble's root: a real certificate chain, not Caddy's internal CA.
    await expect(ask(18840, '/')).rejects.toThrow(/certificate/);
  });

  it('adds HSTS, nosniff, X-Frame-Options and Referrer-Policy', async () => {
    const res = await ask(18840, '/api/health', { ca: root });
    expect(res.headers['strict-transport-security']).toBe('max-age=31536000');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(res.headers['referrer-policy']).toBe('strict-origin-when-cross-origin');
  });

  it('compresses with zstd or gzip, as the client asks, answers of 512 bytes and more', async () => {
    await addNotes(18840, root);
    const identity = await ask(18840, '/api/notes', { ca: root });
    expect(identity.headers['content-encoding']).toBeUndefined();
    expect(identity.body.length).toBeGreaterThan(512);
    const zstd = await ask(18840, '/api/notes', { ca: root, headers: { 'accept-encoding': 'zstd' } });
    expect(zstd.headers['content-encoding']).toBe('zstd');
    expect(zstd.body.subarray(0, 4).toString('hex')).toBe('28b52ffd'); // the zstd frame's magic number
    expect(zstd.body.length).toBeLessThan(identity.body.length);
    const gzip = await ask(18840, '/api/notes', { ca: root, headers: { 'accept-encoding': 'gzip' } });
    expect(gzip.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gzip.body).toString()).toBe(identity.body.toString());
    expect((await ask(18840, '/', { ca: root, headers: { 'accept-encoding': 'zstd, gzip' } })).headers['content-encoding']).toBeUndefined(); // 16 bytes
  });

  it("redirects plain HTTP from Caddy's http_port to the https URL, its port kept", async () => {
    const res = await ask(18843, '/x?y=1', { plain: true });
    expect(res.status).toBe(308);
    expect(res.headers.location).toBe(`https://${HOST}:18840/x?y=1`);
  });

  it("writes one JSON line per request to the env's access log, none to Caddy's own log", async () => {
    const file = join(logDir(), 'hello-t.access.log');
    const tag = `/count-${Date.now()}`;
    for (let i = 0; i < 5; i++) await ask(18840, `${tag}?i=${i}`, { ca: root });
    const mine = await linesOf(file, (l) => String((l.request as { uri?: string } | undefined)?.uri).startsWith(tag), 5);
    expect(mine).toHaveLength(5);
    expect(mine[0]).toMatchObject({ logger: 'http.log.access.skiff_hello_t', status: 404, request: { host: `${HOST}:18840`, method: 'GET', proto: 'HTTP/1.1' } });
    expect(readFileSync(join(s.dir, 'caddy.log'), 'utf8')).not.toContain(tag);
  });

  it('offers HTTP/3: Alt-Svc names h3 on the URL port, and Caddy listens on that UDP port', async () => {
    const res = await ask(18840, '/', { ca: root });
    expect(res.headers['alt-svc']).toMatch(/h3=":18840"/);
    expect(udpListening(18840)).toBe(true);
  });

  it("another env's route for another host on the same server gets its own certificate", async () => {
    const r = await s.run('deploy-vps', ['u']);
    expect(r.code, r.stderr).toBe(0);
    const res = await ask(18840, '/', { ca: root, name: 'other.skiff.test' });
    expect(res.body.toString()).toBe('hello 1.0.0 (u)\n');
    expect(res.cert?.subjectaltname).toBe('DNS:other.skiff.test');
  });

  it('a blue-green redeploy serves over TLS again, with the same certificate, without asking for another', async () => {
    s.setVersion('1.0.1');
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code, r.stderr).toBe(0);
    expect(state(s).live).toBe('green');
    const res = await ask(18840, '/', { ca: root });
    expect(res.body.toString()).toBe('hello 1.0.1 (t)\n');
    expect(res.cert?.serialNumber).toBe(firstSerial);
  });

  it("changed headers rewrite the env's handlers; the other env's routes are untouched", async () => {
    const other = [await route('skiff-hello-u'), await route('skiff-hello-u-handlers')];
    expect(other[1]).toContain('SAMEORIGIN');
    s.writeEnv('t.env', env('DEPLOY_HEADERS=nosniff'));
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code, r.stderr).toBe(0);
    const res = await ask(18840, '/', { ca: root });
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBeUndefined();
    expect(res.headers['strict-transport-security']).toBeUndefined();
    expect([await route('skiff-hello-u'), await route('skiff-hello-u-handlers')]).toEqual(other);
    s.writeEnv('t.env', env());
    const back = await s.run('deploy-vps', ['t']);
    expect(back.code, back.stderr).toBe(0);
    expect((await ask(18840, '/', { ca: root })).headers['x-frame-options']).toBe('SAMEORIGIN');
  });

  it('with the ACME server gone, a deploy with the same settings still switches and serves the certificate Caddy has', async () => {
    pebble.stop();
    s.setVersion('1.0.2');
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code, r.stderr).toBe(0);
    const res = await ask(18840, '/', { ca: root });
    expect(res.body.toString()).toBe('hello 1.0.2 (t)\n');
    expect(res.cert?.serialNumber).toBe(firstSerial);
  });

  it('an ACME directory that does not answer: exit 1 before any change, the old certificate and release serve', async () => {
    const before = readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8');
    const policy = await get(`http://${caddy.admin}/id/skiff-hello-t-tls`);
    s.setVersion('1.0.3');
    s.writeEnv('t.env', env('DEPLOY_ACME_CA=https://127.0.0.1:18859/dir'));
    const r = await s.run('deploy-vps', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(
      /^error: local: the ACME directory https:\/\/127\.0\.0\.1:18859\/dir does not answer from the host \(curl: \(7\) Failed to connect .*\), so Caddy could not get a certificate for app\.skiff\.test from it: fix DEPLOY_ACME_CA or DEPLOY_ACME_CA_ROOT \(docs\/proxies\.md#tls\); nothing was changed$/,
    );
    expect(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')).toBe(before);
    expect((await get(`http://${caddy.admin}/id/skiff-hello-t-tls`)).text).toBe(policy.text);
    const res = await ask(18840, '/', { ca: root });
    expect(res.body.toString()).toBe('hello 1.0.2 (t)\n');
    expect(res.cert?.serialNumber).toBe(firstSerial);
  });

  it('an ACME server that answers but refuses to issue: the old policy is put back, the old certificate and release serve (exit 1)', async () => {
    // A second pebble that checks challenges for real: app.skiff.test resolves nowhere, so every order fails.
    const refusing = pebbleUnderTest(s.dir, 18866, { alwaysValid: false });
    await refusing.start();
    try {
      const before = readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8');
      const policy = (await get(`http://${caddy.admin}/id/skiff-hello-t-tls`)).text;
      s.setVersion('1.0.4');
      s.writeEnv('t.env', env(`DEPLOY_ACME_CA=${refusing.directory}\nDEPLOY_ACME_CA_ROOT=${refusing.caFile}`));
      const started = Date.now();
      const r = await s.run('deploy-vps', ['t']);
      s.writeEnv('t.env', env());
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        `local: Caddy got no certificate for app.skiff.test from ${refusing.directory} within 60s (Caddy's log says why, e.g. journalctl -u caddy); the TLS settings that served before are back`,
      );
      expect(Date.now() - started).toBeGreaterThan(60_000);
      expect(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')).toBe(before);
      expect((await get(`http://${caddy.admin}/id/skiff-hello-t-tls`)).text).toBe(policy);
      expect(refusing.log()).toMatch(/authz|challenge|order/i);
      const res = await ask(18840, '/', { ca: root });
      expect(res.body.toString()).toBe('hello 1.0.2 (t)\n');
      expect(res.cert?.serialNumber).toBe(firstSerial);
      const last = readFileSync(join(s.deployPath, '.skiff/releases.jsonl'), 'utf8').trim().split('\n').at(-1) as string;
      expect(JSON.parse(last)).toMatchObject({ version: '1.0.4', status: 'rolled-back' });
    } finally {
      refusing.stop();
    }
  }, 180_000);

  it("given certificate files: Caddy loads them instead of ACME, and skiff's policy goes", async () => {
    const files = selfSigned(s.dir, 'app', HOST);
    curlrc([root, readFileSync(files.cert, 'utf8')]);
    s.setVersion('1.0.5');
    s.writeEnv('t.env', env(`DEPLOY_TLS_CERT=${files.cert}\nDEPLOY_TLS_KEY=${files.key}`));
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code, r.stderr).toBe(0);
    const res = await ask(18840, '/', { ca: readFileSync(files.cert) });
    expect(res.body.toString()).toBe('hello 1.0.5 (t)\n');
    expect(res.cert?.issuer.CN).toBe(HOST);
    expect((await get(`http://${caddy.admin}/id/skiff-hello-t-tls`)).status).toBe(404);
    expect((await ask(18843, '/', { plain: true })).headers.location).toBe(`https://${HOST}:18840/`);
  });
});

describe('https behind nginx, with certificate files', () => {
  const nginx = nginxUnderTest(18850);
  const url = `https://${HOST}:18850`;
  let s: Sandbox;
  let files: { cert: string; key: string };
  let other: { cert: string; key: string };
  let ca: Buffer;
  const logDir = () => join(s.dir, 'logs');
  const env = (extra = '') =>
    localEnv(
      s,
      nginx.slots[0],
      [
        `DEPLOY_PORTS=${nginx.slots.join(',')}`,
        `DEPLOY_PUBLIC_URL=${url}`,
        'DEPLOY_DRAIN_SECONDS=3',
        nginx.keys(s.dir),
        `DEPLOY_TLS_CERT=${files.cert}`,
        `DEPLOY_TLS_KEY=${files.key}`,
        `DEPLOY_ACCESS_LOG_DIR=${logDir()}`,
        extra,
      ].join('\n'),
    );

  beforeAll(async () => {
    // The redirect server listens on port 80, as on a real host.
    if (listening(80)) throw new Error('port 80 is in use on this machine: the nginx redirect test needs it');
    s = makeSandbox('tls-nginx');
    mkdirSync(logDir());
    files = selfSigned(s.dir, 'app', HOST);
    other = selfSigned(s.dir, 'other', HOST);
    ca = readFileSync(files.cert);
    writeFileSync(join(s.home, '.curlrc'), `cacert = "${files.cert}"\nresolve = "${HOST}:18850:127.0.0.1"\n`);
    await nginx.start(s.dir);
    s.writeEnv('t.env', env());
  });
  afterAll(() => {
    nginx.stop();
    s.cleanup();
  });

  it('serves HTTPS with the given certificate, HTTP/2, the headers, gzip and a JSON access log', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code, r.stderr).toBe(0);
    const res = await ask(18850, '/', { ca });
    expect(res.body.toString()).toBe('hello 1.0.0 (t)\n');
    expect(res.cert?.fingerprint256).toBe(new crypto.X509Certificate(ca).fingerprint256);
    expect(await alpn(18850, ca)).toBe('h2');
    expect(res.headers['strict-transport-security']).toBe('max-age=31536000');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(res.headers['referrer-policy']).toBe('strict-origin-when-cross-origin');

    await addNotes(18850, ca);
    const identity = await ask(18850, '/api/notes', { ca });
    const gzip = await ask(18850, '/api/notes', { ca, headers: { 'accept-encoding': 'zstd, gzip' } });
    expect(gzip.headers['content-encoding']).toBe('gzip'); // nginx in Debian has no zstd
    expect(gunzipSync(gzip.body).toString()).toBe(identity.body.toString());

    const tag = `/count-${Date.now()}`;
    for (let i = 0; i < 4; i++) await ask(18850, `${tag}?i=${i}`, { ca });
    const mine = await linesOf(join(logDir(), 'hello-t.access.log'), (l) => String(l.uri).startsWith(tag), 4);
    expect(mine).toHaveLength(4);
    expect(mine[0]).toMatchObject({ method: 'GET', host: HOST, status: 404, protocol: 'HTTP/1.1', tls: 'TLSv1.3', upstream: `127.0.0.1:${nginx.slots[0]}` });
  });

  it('redirects plain HTTP on port 80 to the https URL, its port kept', async () => {
    const res = await ask(80, '/x?y=1', { plain: true, headers: { host: HOST } });
    expect(res.status).toBe(308);
    expect(res.headers.location).toBe(`https://${HOST}:18850/x?y=1`);
  });

  it('a blue-green redeploy serves over TLS again', async () => {
    s.setVersion('1.0.1');
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code, r.stderr).toBe(0);
    expect(state(s).live).toBe('green');
    expect((await ask(18850, '/', { ca })).body.toString()).toBe('hello 1.0.1 (t)\n');
  });

  it('a key that does not match the certificate: exit 1 with a line that says so, the old config serves', async () => {
    const before = readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8');
    // The certificate and key are in the site file of the host and port.
    const site = join(s.dir, `nginx/conf.d/skiff-site-${HOST}-18850.conf`);
    const conf = readFileSync(site, 'utf8');
    s.setVersion('1.0.2');
    s.writeEnv('t.env', env(`DEPLOY_TLS_KEY=${other.key}`));
    const r = await s.run('deploy-vps', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `local: nginx refuses the TLS files: the certificate ${files.cert} does not match the key ${other.key} (DEPLOY_TLS_CERT, DEPLOY_TLS_KEY); the old config is in place`,
    );
    expect(r.stderr).not.toContain('could not switch');
    expect(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')).toBe(before);
    expect(readFileSync(site, 'utf8')).toBe(conf);
    const res = await ask(18850, '/', { ca });
    expect(res.body.toString()).toBe('hello 1.0.1 (t)\n');
    expect((await get(`http://127.0.0.1:${nginx.slots[0]}/`)).status).toBe(0); // the new slot was stopped
  });

  it('certificate files that went bad on the host under a running nginx: exit 1 before any change, nginx serves what it loaded', async () => {
    const good = readFileSync(files.key);
    writeFileSync(files.key, readFileSync(other.key));
    try {
      const before = readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8');
      const r = await s.run('deploy-vps', ['t']);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n').at(-1)).toBe(
        `error: local: nginx -t fails before any change: the certificate ${files.cert} does not match the key ${files.key} (DEPLOY_TLS_CERT, DEPLOY_TLS_KEY): fix the files; nginx still serves what it loaded before`,
      );
      expect(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')).toBe(before);
      expect((await ask(18850, '/', { ca })).body.toString()).toBe('hello 1.0.1 (t)\n');
    } finally {
      writeFileSync(files.key, good);
    }
    const again = await s.run('deploy-vps', ['t']);
    expect(again.code, again.stderr).toBe(0);
    expect((await ask(18850, '/', { ca })).body.toString()).toBe('hello 1.0.2 (t)\n');
  });
});
