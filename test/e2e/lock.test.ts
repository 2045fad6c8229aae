/**
 * The deploy lock against real hosts (this machine, and a real sshd on loopback): many contenders
 * breaking the same stale lock at once, never two holders; a kill -9 of a deploy or rollback at
 * several moments, after which a plain deploy breaks the dead run's lock by itself; what is judged
 * stale and what is not (a skewed clock, another machine with this hostname, no holder.json).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LockHeldError } from '../../lib/core/errors.ts';
import { layout } from '../../lib/core/paths.ts';
import type { Host } from '../../lib/host/host.ts';
import { LocalHost } from '../../lib/host/local.ts';
import { connectSsh } from '../../lib/host/ssh.ts';
import { machineId, withLock } from '../../lib/state/lock.ts';
import { get, localEnv, makeSandbox, ROOT, type Sandbox } from '../support/sandbox.ts';

// Fails (rather than skips) when sshd or Caddy cannot be had: CI installs them with test/infra/up.sh.
const SSH = { ip: '127.0.0.13', port: 2233 };
const PUBLIC = 18670;
const SLOTS = [18671, 18672] as const;
const ADMIN = '127.0.0.1:18679';

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('the deploy lock on real hosts', () => {
  let s: Sandbox;
  let sshDir: string;
  let caddy: ChildProcess | undefined;
  const ssh: Host[] = [];
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
        `DEPLOY_CADDY_ADMIN=${ADMIN}`,
        `DEPLOY_PUBLIC_URL=${url}`,
        'DEPLOY_DRAIN_SECONDS=3',
      ].join('\n'),
    );
  const served = async () => (await get(url)).text.trim();
  const lockDir = () => join(s.deployPath, '.skiff/lock');
  const holderFile = () => join(lockDir(), 'holder.json');

  const deploy = async (version: string) => {
    s.setVersion(version);
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await served()).toBe(`hello ${version} (t)`);
    return r;
  };

  /**
   * Starts a run, waits until its output shows `marker`, then kill -9s `which`: the process the
   * shell started (tsx) or the holder in holder.json (the node process tsx runs the script in).
   * Does not wait for anything else, as a shell would not.
   */
  const killAt = async (marker: string | RegExp, which: 'started' | 'holder', script = 'deploy-vps', args = ['t']) => {
    const run = s.start(script, args);
    const seen = () => (typeof marker === 'string' ? run.output().includes(marker) : marker.test(run.output()));
    for (let i = 0; i < 1200 && !seen(); i++) await pause(25);
    expect(seen(), `never saw ${marker}: ${run.output()}`).toBe(true);
    const pid = which === 'started' ? (run.child.pid as number) : (JSON.parse(readFileSync(holderFile(), 'utf8')) as { pid: number }).pid;
    process.kill(pid, 'SIGKILL');
    return run;
  };

  beforeAll(async () => {
    s = makeSandbox('lock');
    sshDir = join(s.dir, 'sshd');
    execFileSync('bash', [join(ROOT, 'test/infra/sshd.sh'), sshDir, SSH.ip, String(SSH.port)], { stdio: 'ignore' });
    writeFileSync(join(s.dir, 'caddy.json'), JSON.stringify({ admin: { listen: ADMIN } }));
    caddy = spawn('caddy', ['run', '--config', join(s.dir, 'caddy.json')], { stdio: 'ignore', env: { ...process.env, HOME: s.dir } });
    for (let i = 0; i < 100 && (await get(`http://${ADMIN}/config/`)).status !== 200; i++) await pause(100);
    // One connection per contender, opened one after another (sshd drops parallel unauthenticated ones).
    for (let i = 0; i < 10; i++) {
      ssh.push(await connectSsh({ user: userInfo().username, host: SSH.ip, port: SSH.port }, { keyFile: join(sshDir, 'id_ed25519'), knownHostsFile: join(sshDir, 'known_hosts') }));
    }
    s.writeEnv('t.env', env());
    await deploy('1.0.0');
  }, 120_000);
  afterAll(async () => {
    await Promise.all(ssh.map((h) => h.close()));
    caddy?.kill('SIGKILL');
    const pid = join(sshDir, 'sshd.pid');
    if (existsSync(pid)) process.kill(Number(readFileSync(pid, 'utf8')), 'SIGTERM');
    s.cleanup();
  });

  describe.each([
    ['this machine (local)', () => Array.from({ length: 10 }, () => new LocalHost())],
    ['the sshd host', () => ssh],
  ])('contenders breaking the same dead lock at once on %s', (_, hosts) => {
    it.each([
      [2, 12],
      [5, 8],
      [10, 5],
    ])('%i contenders, %i rounds: never more than one holder, and each gets the lock in turn', async (n, rounds) => {
      const l = layout(join(s.dir, `contend-${n}-${hosts().length}-${hosts()[0]?.name}`));
      let inside = 0;
      let most = 0;
      let held = 0;
      for (let round = 0; round < rounds; round++) {
        // A lock left by a run of this machine that died: every contender may break it by itself.
        mkdirSync(l.lock, { recursive: true });
        const dead = { user: 'x', host: hostname(), pid: 999_999, command: 'deploy', version: '', started_at: 'x', heartbeat_at: 'x', token: `dead${round}`, machine: machineId() };
        writeFileSync(l.holder, JSON.stringify(dead, null, 2));
        const opts = { command: 'contend', version: '', now: () => new Date(), waitSeconds: 60, sleep: () => pause(10 + Math.random() * 30) };
        await Promise.all(
          hosts()
            .slice(0, n)
            .map((h) =>
              withLock(h, l, opts, async () => {
                inside++;
                held++;
                most = Math.max(most, inside);
                await pause(20 + Math.random() * 60);
                inside--;
              }),
            ),
        );
      }
      expect(most).toBe(1);
      expect(held).toBe(n * rounds);
      expect(existsSync(l.lock)).toBe(false);
    }, 180_000);
  });

  it.each([
    ['the started process (tsx)', 'while shipping', 'Ship the release', 'started', '1.1.0'],
    ['the started process (tsx)', 'right after the switch', 'caddy sends', 'started', '1.2.0'],
    ['the holder (node)', 'while shipping', 'Ship the release', 'holder', '1.3.0'],
    ['the holder (node)', 'right after the switch', 'caddy sends', 'holder', '1.4.0'],
  ] as const)('kill -9 of %s %s: a plain deploy right after breaks its lock by itself and succeeds', async (_, _when, marker, which, version) => {
    s.setVersion(version);
    const killed = await killAt(marker, which);
    const r = await deploy(version);
    expect(r.stdout).toMatch(/breaking a stale lock on .* is no longer running/);
    expect((await killed.result).code).not.toBe(0);
    expect(killed.output()).not.toContain(`deployed ${version}`); // the run did not go on by itself
  }, 120_000);

  it('kill -9 at random moments up to the switch, 6 times: every next deploy succeeds with exit 0 and serves', async () => {
    const moments: number[] = [];
    for (let i = 0; i < 6; i++) {
      const version = `2.0.${i}`;
      s.setVersion(version);
      const run = s.start('deploy-vps', ['t']);
      const at = 300 + Math.floor(Math.random() * 3500);
      for (const end = Date.now() + at; Date.now() < end && !run.output().includes('caddy sends'); ) await pause(10);
      // After the switch is the marked test's (above): a kill later than that, while the old slot
      // stops, leaves the proxy and state.json apart, which the deploy's own check refuses.
      if (run.output().includes('caddy sends')) {
        await run.result;
        continue;
      }
      moments.push(at);
      process.kill(run.child.pid as number, 'SIGKILL');
      const r = await s.run('deploy-vps', ['t']);
      expect(r.stderr, `killed after ${at} ms`).toBe('');
      expect(r.code, `killed after ${at} ms`).toBe(0);
      expect(await served()).toBe(`hello ${version} (t)`);
      await run.result;
    }
    expect(moments.length).toBeGreaterThan(0);
    console.log(`killed after ${moments.join(', ')} ms`);
  }, 300_000);

  it('kill -9 of a rollback once its release started: the next rollback breaks the lock by itself', async () => {
    await deploy('2.9.0'); // an earlier good release to go back to
    const killed = await killAt('started pid', 'started', 'rollback', ['t', '--yes']);
    const r = await s.run('rollback', ['t', '--yes']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/breaking a stale lock on .* is no longer running/);
    expect(await served()).toMatch(/^hello \d+\.\d+\.\d+ \(t\)$/);
    await killed.result;
    await deploy('3.0.0');
  }, 120_000);

  it('kill -9 of the holder around its heartbeat (10 s after it took the lock): the next deploy succeeds', async () => {
    s.writeEnv('t.env', `${env()}\nDEPLOY_BUILD=sleep 14`);
    const run = s.start('deploy-vps', ['t']);
    for (let i = 0; i < 400 && !existsSync(holderFile()); i++) await pause(25);
    const taken = Date.now();
    const { pid } = JSON.parse(readFileSync(holderFile(), 'utf8')) as { pid: number };
    await pause(10_000 - (Date.now() - taken) + Math.random() * 60);
    process.kill(pid, 'SIGKILL');
    s.writeEnv('t.env', env());
    expect(JSON.parse(readFileSync(holderFile(), 'utf8'))).toMatchObject({ pid }); // whole, whenever it was cut
    await deploy('2.8.0');
    await run.result;
  }, 120_000);

  it('removes the .partial folders a killed run left, while holding the lock', async () => {
    const partial = join(s.deployPath, 'backups/20261203-000000-before-deploy.partial');
    mkdirSync(join(partial, 'data'), { recursive: true });
    writeFileSync(join(partial, 'data/app.db'), 'half');
    mkdirSync(lockDir());
    const dead = { user: 'x', host: hostname(), pid: 999_999, command: 'backup', version: '', started_at: 'x', heartbeat_at: 'x', token: 'dead', machine: machineId() };
    writeFileSync(holderFile(), JSON.stringify(dead, null, 2));
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('removed 1 half-written .partial folder the stopped run left on');
    expect(existsSync(partial)).toBe(false);
    expect(existsSync(join(s.deployPath, 'backups'))).toBe(true);
  }, 60_000);

  describe('what is judged stale', () => {
    const plant = (holder: object | string, ageSeconds: number) => {
      mkdirSync(lockDir(), { recursive: true });
      writeFileSync(holderFile(), typeof holder === 'string' ? holder : JSON.stringify(holder, null, 2));
      const t = new Date(Date.now() - ageSeconds * 1000);
      utimesSync(holderFile(), t, t);
    };
    const someone = (over: object) => ({ user: 'ci', host: 'elsewhere', pid: 4242, command: 'deploy', version: '9.9.9', started_at: 'x', token: 'other', ...over });
    const lastLine = (text: string) => text.trim().split('\n').at(-1);

    it('a live holder whose machine clock is 10 minutes behind is not broken, even with --force-unlock', async () => {
      plant(someone({ heartbeat_at: new Date(Date.now() - 600_000).toISOString() }), 3);
      const r = await s.run('deploy-vps', ['t', '--force-unlock']);
      expect(r.code).toBe(3);
      expect(lastLine(r.stderr)).toMatch(/^error: .* is locked by ci@elsewhere pid 4242 \(deploy 9\.9\.9, since x\): wait for it to finish, or pass --lock-wait SECONDS$/);
      expect(existsSync(holderFile())).toBe(true);
    });

    it('a dead holder whose machine clock is 10 minutes ahead is stale after a minute by the host clock', async () => {
      plant(someone({ heartbeat_at: new Date(Date.now() + 600_000).toISOString() }), 120);
      const refused = await s.run('deploy-vps', ['t']);
      expect(refused.code).toBe(3);
      expect(lastLine(refused.stderr)).toMatch(/; it looks stale \(ci@elsewhere pid 4242 .* has not updated it for 1[12]\ds\): pass --force-unlock to break it$/);
      const forced = await s.run('deploy-vps', ['t', '--force-unlock']);
      expect(forced.code).toBe(0);
      expect(forced.stdout).toContain('breaking a stale lock on');
      expect(existsSync(lockDir())).toBe(false);
    });

    it('a fresh lock of another machine with this hostname and a pid dead here is not broken', async () => {
      plant(someone({ host: hostname(), pid: 999_999, machine: 'another-machine', heartbeat_at: new Date().toISOString() }), 0);
      for (const args of [['t'], ['t', '--force-unlock']]) {
        const r = await s.run('deploy-vps', args);
        expect(r.code).toBe(3);
        expect(lastLine(r.stderr)).toMatch(/pid 999999 .*: wait for it to finish, or pass --lock-wait SECONDS$/);
      }
      rmSync(lockDir(), { recursive: true });
    });

    it.each([
      ['no holder.json', '', 'has no holder.json'],
      ['a garbled holder.json', '{"pid": 12', 'has a holder.json that is not a holder'],
    ])('a lock folder with %s is reported, and broken with --force-unlock', async (_, text, why) => {
      mkdirSync(lockDir(), { recursive: true });
      if (text) writeFileSync(holderFile(), text);
      const refused = await s.run('deploy-vps', ['t']);
      expect(refused.code).toBe(3);
      expect(lastLine(refused.stderr), refused.stderr).toBe(
        `error: ${userInfo().username}@${SSH.ip}:${SSH.port} is locked by another run; its lock folder ${why}: if no skiff command runs on this host, pass --force-unlock to break it`,
      );
      const forced = await s.run('deploy-vps', ['t', '--force-unlock']);
      expect(forced.code).toBe(0);
      expect(forced.stdout).toContain(`breaking a stale lock on ${userInfo().username}@${SSH.ip}:${SSH.port}: its lock folder ${why}`);
      expect(existsSync(lockDir())).toBe(false);
    });
  });

  it('a host without flock: one line naming the fix (exit 1), the host as it was', async () => {
    const l = layout(join(s.dir, 'noflock'));
    const host = new LocalHost();
    const noFlock: Host = { ...host, name: 'bare', exec: (c, o) => host.exec({ kind: 'script', text: `flock() { return 1; }; command() { return 1; }\n${c.kind === 'script' ? c.text : ''}`, args: c.kind === 'script' ? c.args : [] }, o), put: host.put, get: host.get, close: host.close };
    const e = await withLock(noFlock, l, { command: 'x', version: '', now: () => new Date() }, async () => 'ran').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(Error);
    expect(e).not.toBeInstanceOf(LockHeldError);
    expect((e as Error).message).toBe('bare has no flock command, which the deploy lock needs: install util-linux (apt-get install util-linux)');
    expect(existsSync(l.lock)).toBe(false);
  });
});
