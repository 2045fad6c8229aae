/**
 * A real ACME server for end-to-end tests: Debian's `pebble` (Let's Encrypt's test server) on
 * loopback, with the HTTPS certificate of its own listeners made here by openssl (a CA of its own
 * signs it: clients trust `caFile` to talk to the directory). `PEBBLE_VA_ALWAYS_VALID=1` passes every
 * challenge, so no DNS is needed; without it, challenges for names that do not resolve fail, and
 * pebble refuses to issue. The root of the certificates it issues is new at each start: `root()`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { waitFor } from './proxies.ts';

export interface Pebble {
  /** The ACME directory URL. */
  readonly directory: string;
  /** The CA of the directory's own HTTPS certificate (what DEPLOY_ACME_CA_ROOT names). */
  readonly caFile: string;
  start(): Promise<void>;
  /** The root CA of the certificates it issues (PEM); valid until it is started again. */
  root(): Promise<string>;
  stop(): void;
  log(): string;
}

const fetchText = (url: string, ca: Buffer): Promise<{ status: number; text: string }> =>
  new Promise((resolve) => {
    const req = https.get(url, { ca, agent: false, timeout: 3000 }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', () => resolve({ status: 0, text: '' }));
  });

/** A pebble with its ACME API on `port` and its management API (roots) on `port + 1`; challenges go to `port + 2` and `port + 3`. */
export const pebbleUnderTest = (dir: string, port: number, opts: { alwaysValid?: boolean } = {}): Pebble => {
  const home = join(dir, `pebble-${port}`);
  const caFile = join(home, 'ca.pem');
  let child: ChildProcess | undefined;
  let output = '';
  return {
    directory: `https://127.0.0.1:${port}/dir`,
    caFile,
    async start() {
      mkdirSync(home, { recursive: true });
      const run = (...args: string[]) => execFileSync('openssl', args, { cwd: home, stdio: 'pipe' });
      run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=skiff test ACME listener CA');
      run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'listener.key', '-out', 'listener.csr', '-subj', '/CN=127.0.0.1');
      writeFileSync(join(home, 'ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
      run('x509', '-req', '-in', 'listener.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'listener.pem', '-days', '2', '-extfile', 'ext');
      writeFileSync(
        join(home, 'pebble.json'),
        JSON.stringify({
          pebble: {
            listenAddress: `127.0.0.1:${port}`,
            managementListenAddress: `127.0.0.1:${port + 1}`,
            certificate: join(home, 'listener.pem'),
            privateKey: join(home, 'listener.key'),
            httpPort: port + 2,
            tlsPort: port + 3,
            ocspResponderURL: '',
            externalAccountBindingRequired: false,
          },
        }),
      );
      output = '';
      const env = { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', ...(opts.alwaysValid === false ? {} : { PEBBLE_VA_ALWAYS_VALID: '1' }) };
      child = spawn('pebble', ['-config', join(home, 'pebble.json')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout?.on('data', (b: Buffer) => (output += b.toString()));
      child.stderr?.on('data', (b: Buffer) => (output += b.toString()));
      const ca = readFileSync(caFile);
      await waitFor(async () => (await fetchText(`https://127.0.0.1:${port}/dir`, ca)).text.includes('newOrder'), 'pebble');
    },
    async root() {
      const r = await fetchText(`https://127.0.0.1:${port + 1}/roots/0`, readFileSync(caFile));
      if (!r.text.includes('BEGIN CERTIFICATE')) throw new Error(`pebble gave no root (HTTP ${r.status})`);
      return r.text;
    },
    stop() {
      child?.kill('SIGKILL');
      child = undefined;
    },
    log: () => output,
  };
};
