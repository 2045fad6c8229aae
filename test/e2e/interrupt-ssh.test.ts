/**
 * Interrupted deploys over SSH behind a real Caddy: kill -9 of the deploy at several points, and
 * SIGTERM. After each, the host serves a healthy version, and the next deploy succeeds.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProbe } from '../support/probe.ts';
import { get, localEnv, makeSandbox, ROOT, type Sandbox } from '../support/sandbox.ts';

const SSH = { ip: '127.0.0.9', port: 2229 };
const PUBLIC = 18650;
const SLOTS = [18651, 18652] as const;
const ADMIN = '127.0.0.1:18659';

describe('interrupted deploys over SSH', () => {
  let s: Sandbox;
  let sshDir: string;
  let caddy: ChildProcess | undefined;
  const url = `http://127.0.0.1:${PUBLIC}`;
  const env = (extra = '') =>
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
        extra,
      ].join('\n'),
    );
  const served = async () => (await get(url)).text.trim();
  const lockFile = () => join(s.deployPath, '.skiff/lock/holder.json');

  /** Starts a deploy, waits until its output shows `marker`, then kill -9s the deploy process itself. */
  const killDeployAt = async (marker: string | RegExp, script = 'deploy-vps', args: string[] = ['t']) => {
    const run = s.start(script, args);
    const seen = () => (typeof marker === 'string' ? run.output().includes(marker) : marker.test(run.output()));
    for (let i = 0; i < 600 && !seen(); i++) await new Promise((r) => setTimeout(r, 25));
    expect(seen(), `never saw ${marker}: ${run.output()}`).toBe(true);
    // The lock's holder is the deploy itself (tsx runs it in a child of the process started here).
    const { pid } = JSON.parse(readFileSync(lockFile(), 'utf8')) as { pid: number };
    process.kill(pid, 'SIGKILL');
    await run.result;
    expect(existsSync(lockFile())).toBe(true); // a kill -9 leaves its lock behind
  };

  const deployCleanly = async (version: string) => {
    s.setVersion(version);
    s.writeEnv('t.env', env());
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await served()).toBe(`hello ${version} (t)`);
    return r;
  };

  beforeAll(async () => {
    s = makeSandbox('interrupt');
    sshDir = join(s.dir, 'sshd');
    // Fails (rather than skips) when sshd or Caddy cannot be had: CI installs them with test/infra/up.sh.
    execFileSync('bash', [join(ROOT, 'test/infra/sshd.sh'), sshDir, SSH.ip, String(SSH.port)], { stdio: 'ignore' });
    writeFileSync(join(s.dir, 'caddy.json'), JSON.stringify({ admin: { listen: ADMIN } }));
    caddy = spawn('caddy', ['run', '--config', join(s.dir, 'caddy.json')], { stdio: 'ignore', env: { ...process.env, HOME: s.dir } });
    for (let i = 0; i < 100 && (await get(`http://${ADMIN}/config/`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 100));
    s.writeEnv('t.env', env());
    await deployCleanly('1.0.0');
  });
  afterAll(() => {
    caddy?.kill('SIGKILL');
    const pid = join(sshDir, 'sshd.pid');
    if (existsSync(pid)) process.kill(Number(readFileSync(pid, 'utf8')), 'SIGTERM');
    s.cleanup();
  });

  it('kill -9 while shipping: the old release serves, the next deploy breaks the dead lock', async () => {
    s.setVersion('1.1.0');
    s.writeEnv('t.env', env());
    await killDeployAt('Ship the release');
    expect(await served()).toBe('hello 1.0.0 (t)');
    const r = await deployCleanly('1.1.0');
    expect(r.stdout).toMatch(/breaking a stale lock on .* is no longer running/);
  });

  it('kill -9 during the health check: the old release serves, the next deploy stops the leftover process', async () => {
    s.setVersion('1.2.0');
    s.writeEnv('t.env', env('HEALTH_FAIL=1\nDEPLOY_HEALTH_TIMEOUT=60'));
    const probe = startProbe(`${url}/api/health`, { timeoutMs: 5000 });
    await killDeployAt('started pid');
    expect(await served()).toBe('hello 1.1.0 (t)');
    const r = await deployCleanly('1.2.0');
    const result = await probe.stop();
    expect(result.failures, `failed requests: ${result.firstErrors.join('; ')}`).toBe(0);
    expect(r.stdout).toMatch(/stopped a leftover process in (blue|green)/);
  });

  it('kill -9 after the switch, while the old slot drains: the new release serves, the next deploy puts the proxy back on the recorded live slot first', async () => {
    s.setVersion('1.3.0');
    s.writeEnv('t.env', env());
    const probe = startProbe(`${url}/api/health`, { timeoutMs: 5000 });
    await killDeployAt('caddy sends');
    expect(await served()).toMatch(/^hello 1\.[23]\.0 \(t\)$/);
    const status = await s.run('status', ['t']);
    expect(status.stdout).toMatch(/proxy +caddy -> port \d+, not the live slot's/);
    const r = await deployCleanly('1.3.0');
    const result = await probe.stop();
    expect(result.failures, `failed requests: ${result.firstErrors.join('; ')}`).toBe(0);
    expect(r.stdout).toMatch(/an interrupted run had left caddy on slot (blue|green): switched back to the live slot/);
  });

  it('kill -9 of a rollback once its release started: a healthy release serves, and the rollback works next time', async () => {
    s.writeEnv('t.env', env());
    await killDeployAt('started pid', 'rollback', ['t', '--yes']);
    expect(await served()).toMatch(/^hello 1\.[23]\.0 \(t\)$/);
    const r = await s.run('rollback', ['t', '--yes']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await served()).toBe('hello 1.2.0 (t)');
  });

  it('SIGTERM during the health check undoes the step and releases the lock (exit 1)', async () => {
    s.setVersion('1.4.0');
    s.writeEnv('t.env', env('HEALTH_FAIL=1\nDEPLOY_HEALTH_TIMEOUT=60'));
    const run = s.start('deploy-vps', ['t']);
    for (let i = 0; i < 400 && !run.output().includes('started pid'); i++) await new Promise((r) => setTimeout(r, 25));
    run.child.kill('SIGTERM');
    const r = await run.result;
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toBe('error: stopped by SIGTERM');
    expect(existsSync(lockFile())).toBe(false);
    expect(await served()).toBe('hello 1.2.0 (t)');
    const history = readFileSync(join(s.deployPath, '.skiff/releases.jsonl'), 'utf8').trim().split('\n');
    expect(JSON.parse(history.at(-1) as string)).toMatchObject({ version: '1.4.0', status: 'failed' });
    await deployCleanly('1.4.0');
  });
});
