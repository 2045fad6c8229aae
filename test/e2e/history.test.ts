/**
 * History and state over a real OpenSSH server on 127.0.0.23: which release a rollback goes back
 * to after a rollback by id and a new deploy, and what retention keeps then.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, localEnv, makeSandbox, ROOT, type Sandbox } from '../support/sandbox.ts';

const PORT = 18923;
const SSH = { ip: '127.0.0.23', port: 2243 };

describe('history and state over SSH', () => {
  let s: Sandbox;
  let sshDir: string;
  const env = (extra = '') =>
    localEnv(
      s,
      PORT,
      [
        `DEPLOY_HOSTS=${userInfo().username}@${SSH.ip}:${SSH.port}`,
        `DEPLOY_SSH_KEY=${join(sshDir, 'id_ed25519')}`,
        `DEPLOY_KNOWN_HOSTS=${join(sshDir, 'known_hosts')}`,
        extra,
      ].join('\n'),
    );
  const stateFile = () => join(s.deployPath, '.skiff/state.json');
  const liveId = () => {
    const state = JSON.parse(readFileSync(stateFile(), 'utf8')) as { live: string; slots: Record<string, { release: string }> };
    return state.slots[state.live]?.release as string;
  };
  const releases = () => readdirSync(join(s.deployPath, 'releases')).sort();
  const served = async () => (await get(`http://127.0.0.1:${PORT}/`)).text;
  const deploy = async (version: string) => {
    s.setVersion(version);
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await served()).toBe(`hello ${version} (t)\n`);
    return liveId();
  };

  beforeAll(() => {
    s = makeSandbox('history');
    sshDir = join(s.dir, 'sshd');
    // Fails (rather than skips) when sshd cannot be had: CI installs it with test/infra/up.sh.
    execFileSync('bash', [join(ROOT, 'test/infra/sshd.sh'), sshDir, SSH.ip, String(SSH.port)], { stdio: 'ignore' });
    s.writeEnv('t.env', env('DEPLOY_KEEP_RELEASES=3'));
  });
  afterAll(() => {
    const pid = join(sshDir, 'sshd.pid');
    if (existsSync(pid)) process.kill(Number(readFileSync(pid, 'utf8')), 'SIGTERM');
    s.cleanup();
  });

  it('after `rollback A` and a deploy of D, a rollback goes back to A, and retention never removes A', async () => {
    const a = await deploy('1.0.0');
    const b = await deploy('1.1.0');
    const c = await deploy('1.2.0');
    expect(releases()).toEqual([a, b, c]);

    const toA = await s.run('rollback', ['t', a]);
    expect(toA.code).toBe(0);
    expect(await served()).toBe('hello 1.0.0 (t)\n');

    // Keep one: the live release and the one it replaced (A) stay, the newer B and C go.
    s.writeEnv('t.env', env('DEPLOY_KEEP_RELEASES=1'));
    const d = await deploy('1.3.0');
    expect(releases()).toEqual([a, d]);

    const list = await s.run('rollback', ['t', '--list']);
    expect(list.stdout.split('\n').slice(1, 3).map((line) => line.slice(2, 2 + a.length))).toEqual([d, a]);

    const back = await s.run('rollback', ['t']);
    expect(back.stderr).toBe('');
    expect(back.code).toBe(0);
    expect(back.stdout).toContain(`rolled t back to ${a}`);
    expect(liveId()).toBe(a);
    expect(await served()).toBe('hello 1.0.0 (t)\n');
  });

  it('an emptied state.json: status says so and shows what runs, stop refuses, a deploy rebuilds and rewrites it', async () => {
    const a = liveId();
    writeFileSync(stateFile(), '');
    const status = await s.run('status', ['t']);
    expect(status.stderr).toBe('');
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`state     ${s.deployPath}/.skiff/state.json is damaged (empty): rebuilt from releases.jsonl and the running slots (${a} live in slot blue); the next deploy or rollback rewrites it`);
    expect(status.stdout).toContain(`release   ${a} (version 1.0.0)`);
    expect(status.stdout).toMatch(/process   running \(pid \d+\)/);
    expect(status.stdout).toMatch(/health +ok/);
    expect(readFileSync(stateFile(), 'utf8')).toBe(''); // status only reads

    const stop = await s.run('stop', ['t']);
    expect(stop.code).toBe(1);
    expect(stop.stderr.trim().split('\n')).toHaveLength(1);
    expect(stop.stderr).toContain('state.json is damaged (empty); nothing was changed');
    expect(await served()).toBe('hello 1.0.0 (t)\n');

    // Cut short mid-write, as a crash leaves a file whose data had not all reached the disk.
    const d = await deploy('1.4.0'); // the deploy above of 1.3.0 was rolled back from
    writeFileSync(stateFile(), readFileSync(stateFile(), 'utf8').slice(0, 50));
    s.setVersion('1.5.0');
    const processes = s.slotPids().length;
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`state.json is damaged (not JSON, 50 bytes: cut short?): rebuilt from releases.jsonl and the running slots (${d} live in slot blue), and rewritten`);
    expect(await served()).toBe('hello 1.5.0 (t)\n');
    expect(s.slotPids()).toHaveLength(processes); // the release it replaced was stopped, not left running
    expect(JSON.parse(readFileSync(stateFile(), 'utf8'))).toMatchObject({ live: 'blue', slots: { blue: { version: '1.5.0', port: PORT } } });
    const back = await s.run('rollback', ['t']);
    expect(back.code).toBe(0);
    expect(liveId()).toBe(d);
    expect(await served()).toBe('hello 1.4.0 (t)\n');
    const audit = readFileSync(join(s.deployPath, '.skiff/audit.log'), 'utf8');
    expect(audit).toContain('repair: ');
  });

  it('a file edited in the live release on the host does not survive a redeploy: by size, or by sha256 with --verify', async () => {
    const original = readFileSync(join(s.appDir, 'README.md'), 'utf8');
    const liveFile = () => join(s.deployPath, 'releases', liveId(), 'README.md');
    const redeploy = async (args: readonly string[]) => {
      const before = liveId();
      const r = await s.run('deploy-vps', ['t', ...args]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(liveId()).not.toBe(before);
      return r.stdout;
    };

    writeFileSync(liveFile(), 'edited by hand\n'); // another size
    const bySize = await redeploy([]);
    expect(bySize).toContain('1 file(s) of the live release differ on the host from its manifest (size), sent again: README.md');
    // README.md, and package.json (the live release is 1.4.0 after the rollback above).
    expect(bySize).toMatch(/: 2 of \d+ files sent/);
    expect(readFileSync(liveFile(), 'utf8')).toBe(original);

    const sameSize = original.replace(/[a-z]/, (c) => (c === 'x' ? 'y' : 'x'));
    expect(sameSize).not.toBe(original);
    writeFileSync(liveFile(), sameSize);
    const verified = await redeploy(['--verify']);
    expect(verified).toContain('1 file(s) of the live release differ on the host from its manifest (sha256), sent again: README.md');
    expect(readFileSync(liveFile(), 'utf8')).toBe(original);
    expect(await served()).toBe('hello 1.5.0 (t)\n');
  });
});
