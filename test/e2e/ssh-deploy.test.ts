/**
 * Deploys over SSH: the real scripts deploy the example app to a real OpenSSH server on 127.0.0.3,
 * with host keys checked against a known_hosts file, as a user's VPS would be reached.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, localEnv, makeSandbox, ROOT, type Sandbox } from '../support/sandbox.ts';

const PORT = 18451;
const SSH = { ip: '127.0.0.3', port: 2223 };

describe('deploy over SSH', () => {
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

  beforeAll(() => {
    s = makeSandbox('ssh');
    sshDir = join(s.dir, 'sshd');
    // Fails (rather than skips) when sshd cannot be had: CI installs it with test/infra/up.sh.
    execFileSync('bash', [join(ROOT, 'test/infra/sshd.sh'), sshDir, SSH.ip, String(SSH.port)], { stdio: 'ignore' });
    s.writeEnv('t.env', env());
  });
  afterAll(() => {
    const pid = join(sshDir, 'sshd.pid');
    if (existsSync(pid)) process.kill(Number(readFileSync(pid, 'utf8')), 'SIGTERM');
    s.cleanup();
  });

  it('deploys, serves, and shows its status over SSH', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`deployed 1.0.0`);
    expect((await get(`http://127.0.0.1:${PORT}/`)).text).toBe('hello 1.0.0 (t)\n');
    const status = await s.run('status', ['t']);
    expect(status.stdout).toContain(`hello t on ${userInfo().username}@${SSH.ip}:${SSH.port}`);
    expect(status.stdout).toMatch(/health +ok/);
  });

  it('a release that fails its health check leaves the previous one serving (exit 1)', async () => {
    s.setVersion('1.0.1');
    s.writeEnv('t.env', env('HEALTH_FAIL=1\nDEPLOY_HEALTH_TIMEOUT=2'));
    const r = await s.run('deploy-vps', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no healthy answer');
    expect((await get(`http://127.0.0.1:${PORT}/`)).text).toBe('hello 1.0.0 (t)\n');
  });

  it('redeploys, and rolls back', async () => {
    s.setVersion('1.0.2');
    expect((await s.run('deploy-vps', ['t'])).code).toBe(0);
    expect((await get(`http://127.0.0.1:${PORT}/`)).text).toBe('hello 1.0.2 (t)\n');
    const back = await s.run('rollback', ['t']);
    expect(back.code).toBe(0);
    expect((await get(`http://127.0.0.1:${PORT}/`)).text).toBe('hello 1.0.0 (t)\n');
  });

  it('an unknown host key is refused with its fingerprint, and nothing changes', async () => {
    const empty = join(s.dir, 'empty_known_hosts');
    writeFileSync(empty, '');
    const before = readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8');
    s.writeEnv('t.env', env(`DEPLOY_KNOWN_HOSTS=${empty}`));
    s.setVersion('1.0.3');
    const r = await s.run('deploy-vps', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('SHA256:');
    expect(r.stderr).toContain('ssh-keyscan');
    expect(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')).toBe(before);
  });

  it('a host that is down is one clear line', async () => {
    s.writeEnv('t.env', env(`DEPLOY_HOSTS=${userInfo().username}@${SSH.ip}:2299`));
    const r = await s.run('status', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/connection refused/);
  });
});
