/**
 * Deadlines end to end: a health endpoint that trickles a byte a second, and a Caddy admin API that
 * accepts a request and never answers it. Each deploy must fail (exit 1) in bounded time, undo its
 * step, release the lock, and leave the old release serving. Fails rather than skips when sshd,
 * Caddy or wget are missing: CI installs them with test/infra/up.sh.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/proxies.ts';
import { get, listening, localEnv, makeSandbox, ROOT, type Sandbox } from '../support/sandbox.ts';

const LOCAL_PORT = 18765;
const SSH = { ip: '127.0.0.31', port: 2251 };
const PUBLIC = 18760;
const SLOTS = [18761, 18762] as const;
const RELAY = 18768; // what skiff is told is Caddy's admin API
const ADMIN = 18769; // Caddy's real admin API

/** A release whose health endpoint answers 200 at once, then sends its body a byte a second, for ever. */
const TRICKLE = `
import { createServer } from 'node:http';
createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100000' });
  const t = setInterval(() => res.write('.'), 1000);
  res.on('close', () => clearInterval(t));
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

/** A folder of every program on PATH but those left out: a host without curl (and without timeout). */
const pathWithout = (dir: string, left: readonly string[]): string => {
  mkdirSync(dir, { recursive: true });
  for (const from of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (!existsSync(from)) continue;
    for (const name of readdirSync(from)) {
      if (left.includes(name) || existsSync(join(dir, name))) continue;
      symlinkSync(join(from, name), join(dir, name));
    }
  }
  return dir;
};

const lockHeld = (deployPath: string) => existsSync(join(deployPath, '.skiff/lock'));

describe('a health probe cannot be held by an endpoint that trickles', () => {
  let s: Sandbox;
  const url = `http://127.0.0.1:${LOCAL_PORT}`;
  const env = (start: string) => localEnv(s, LOCAL_PORT, [`DEPLOY_START=${start}`, 'DEPLOY_HEALTH_TIMEOUT=6'].join('\n'));

  beforeAll(async () => {
    expect(existsSync('/usr/bin/wget'), 'wget is needed (apt-get install wget)').toBe(true);
    s = makeSandbox('deadlines-local');
    writeFileSync(join(s.appDir, 'trickle.mjs'), TRICKLE);
    s.writeEnv('t.env', env('node server.js'));
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
  afterAll(() => s?.cleanup());

  it.each([
    // wget's -T limits each read only: under `timeout` the probe ends at its limit, and the gate at its own.
    ['wget under timeout', ['curl'], /error: local: port 18765: no healthy answer from http:\/\/127\.0\.0\.1:18765\/api\/health within 6s \(last: no answer\)/],
    // No timeout either: the probe command's deadline (its limit plus 10 s) stops it.
    [
      'wget alone',
      ['curl', 'timeout'],
      /\nerror: local: stopped a command still running after 15s, its deadline: sh -c 'url="http:\/\/127\.0\.0\.1:\$1\$2" if command -v curl …' sh 18765 \/api\/health 5; check what it waits for on the host \(an app, the proxy, a database, the network\), then run again\n$/,
    ],
  ])('%s on the host: exit 1 in bounded time, lock released, the old release serves', async (_name, missing, message) => {
    const before = (await get(`${url}/api/health`)).text;
    expect(before).toContain('"ok":true');
    const path = pathWithout(join(s.dir, `bin-${missing.join('-')}`), missing);
    s.writeEnv('t.env', env('node trickle.mjs'));
    const t0 = Date.now();
    const r = await s.run('deploy-vps', ['t'], { env: { PATH: path } });
    const took = Date.now() - t0;
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(took).toBeLessThan(45_000);
    expect(lockHeld(s.deployPath)).toBe(false);
    const after = await get(`${url}/api/health`);
    expect(after.status).toBe(200);
    expect(after.text).toContain('"ok":true'); // server.js again, not the trickling release
    s.writeEnv('t.env', env('node server.js'));
  });
});

describe('a Caddy admin API that never answers a switch', () => {
  let s: Sandbox;
  let sshDir: string;
  let caddy: ChildProcess | undefined;
  let relay: Server;
  let hangNextPatch = false;
  const hung: Socket[] = [];
  const url = `http://127.0.0.1:${PUBLIC}`;
  const env = () =>
    localEnv(
      s,
      SLOTS[0],
      [
        `DEPLOY_HOSTS=${userInfo().username}@${SSH.ip}:${SSH.port}`,
        `DEPLOY_SSH_KEY=${join(sshDir, 'id_ed25519')}`,
        `DEPLOY_KNOWN_HOSTS=${join(sshDir, 'known_hosts')}`,
        `DEPLOY_PORTS=${SLOTS.join(',')}`,
        'DEPLOY_PROXY=caddy',
        `DEPLOY_CADDY_ADMIN=127.0.0.1:${RELAY}`,
        `DEPLOY_PUBLIC_URL=${url}`,
        'DEPLOY_DRAIN_SECONDS=1',
        `DEPLOY_SWITCH_DIR=${join(s.dir, 'switch')}`,
      ].join('\n'),
    );
  /** The slot port skiff's route sends to: the second while the switch flag is there (lib/proxy/switch-flag.ts). */
  const upstream = () => `127.0.0.1:${existsSync(join(s.dir, 'switch/hello-t/live-second')) ? SLOTS[1] : SLOTS[0]}`;

  beforeAll(async () => {
    s = makeSandbox('deadlines-caddy');
    sshDir = join(s.dir, 'sshd');
    execFileSync('bash', [join(ROOT, 'test/infra/sshd.sh'), sshDir, SSH.ip, String(SSH.port)], { stdio: 'ignore' });
    writeFileSync(join(s.dir, 'caddy.json'), JSON.stringify({ admin: { listen: `127.0.0.1:${ADMIN}` } }));
    caddy = spawn('caddy', ['run', '--config', join(s.dir, 'caddy.json')], { stdio: 'ignore', env: { ...process.env, HOME: s.dir } });
    await waitFor(async () => (await get(`http://127.0.0.1:${ADMIN}/config/`)).status === 200, 'caddy');
    // In front of the admin API: passes every request on, except that it swallows the first PATCH
    // after hangNextPatch is set, holding that connection open without a byte of answer.
    relay = createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', (first: Buffer) => {
        if (hangNextPatch && first.toString('latin1').startsWith('PATCH ')) {
          hangNextPatch = false;
          hung.push(socket);
          return;
        }
        const up = connect(ADMIN, '127.0.0.1', () => {
          // Caddy answers only requests addressed to its own listen address.
          up.write(first.toString('latin1').replace(`Host: 127.0.0.1:${RELAY}`, `Host: 127.0.0.1:${ADMIN}`), 'latin1');
          socket.pipe(up).pipe(socket);
        });
        up.on('error', () => socket.destroy());
      });
    });
    await new Promise<void>((resolve) => relay.listen(RELAY, '127.0.0.1', resolve));
    s.writeEnv('t.env', env());
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(upstream()).toBe(`127.0.0.1:${SLOTS[0]}`);
  });
  afterAll(() => {
    for (const socket of hung) socket.destroy();
    relay?.close();
    caddy?.kill('SIGKILL');
    const pid = join(sshDir, 'sshd.pid');
    if (existsSync(pid)) process.kill(Number(readFileSync(pid, 'utf8')), 'SIGTERM');
    s?.cleanup();
  });

  it('the switch fails at curl\'s limit, traffic stays on the old slot, the new one stops, the lock goes: exit 1', async () => {
    const before = (await get(url)).text;
    expect(before).toMatch(/^hello 1\.0\.0/);
    s.setVersion('1.0.1');
    // A changed setting: the switch changes the route's handlers through the admin API (a switch
    // with unchanged settings only renames the flag file, and sends Caddy nothing).
    s.writeEnv('t.env', `${env()}\nDEPLOY_HEADERS=nosniff`);
    hangNextPatch = true;
    const t0 = Date.now();
    const r = await s.run('deploy-vps', ['t']);
    const took = Date.now() - t0;
    expect(r.code, r.stderr).toBe(1);
    expect(hung).toHaveLength(1); // the switch's PATCH was the one held
    const last = r.stderr.trim().split('\n').filter((l) => l.startsWith('error: '));
    expect(last[0]).toMatch(
      new RegExp(`^error: ${userInfo().username}@${SSH.ip.replace(/\./g, '\\.')}:${SSH.port}: Caddy's admin API at 127\\.0\\.0\\.1:${RELAY} did not answer PATCH /id/skiff-hello-t-handlers within 15s: check that Caddy is not stuck`),
    );
    expect(took).toBeGreaterThanOrEqual(15_000);
    expect(took).toBeLessThan(60_000);
    expect(lockHeld(s.deployPath)).toBe(false);
    expect(upstream()).toBe(`127.0.0.1:${SLOTS[0]}`);
    expect((await get(url)).text).toBe(before);
    expect(listening(SLOTS[1])).toBe(false); // the new release's slot was stopped
    const history = readFileSync(join(s.deployPath, '.skiff/releases.jsonl'), 'utf8').trim().split('\n');
    expect(JSON.parse(history.at(-1) ?? '{}')).toMatchObject({ version: expect.stringMatching(/^1\.0\.1/), status: 'rolled-back' });
  });

  it('the next deploy, with an admin API that answers, goes through', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code, r.stderr).toBe(0);
    expect((await get(url)).text).toMatch(/^hello 1\.0\.1/);
    expect(upstream()).toBe(`127.0.0.1:${SLOTS[1]}`);
  });
});
