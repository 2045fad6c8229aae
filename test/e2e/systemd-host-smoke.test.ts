/**
 * The systemd host the deploy tests use (test/support/systemd-host.ts): a Debian 12 container with
 * systemd as PID 1, reached over real OpenSSH at 127.0.0.1:2290. Checks that it boots clean, has
 * what deploys need (Node, Caddy's admin API, a journal per user), and comes back after a reboot.
 * Without root or Docker the tests are skipped, unless CI is set: then they fail.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listening } from '../support/sandbox.ts';
import { startSystemdHost, systemdHostEnv, systemdHostSkip, type HostUser, type SystemdHost } from '../support/systemd-host.ts';

const NAME = 'skiff-systemd-smoke';
const PORT = 2290;

const skip = systemdHostSkip();
if (skip) console.warn(`skipping the systemd host tests: ${skip} (with CI set they fail instead)`);

describe.skipIf(skip)('a systemd host over SSH', () => {
  let dir: string;
  let host: SystemdHost;
  /** Runs a command over SSH and returns its stdout, failing the test on a non-zero exit. */
  const ok = async (command: string, user: HostUser = 'root'): Promise<string> => {
    const r = await host.ssh(command, user);
    expect(r, `${user}: ${command}`).toMatchObject({ code: 0 });
    return r.stdout.trim();
  };
  const failedUnits = async () => (await ok('systemctl --failed --plain --no-legend')).split('\n').filter(Boolean);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'skiff-systemd-host-'));
    host = await startSystemdHost({ name: NAME, port: PORT, dir });
  });
  afterAll(async () => {
    await host?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('boots systemd to running with no failed unit', async () => {
    expect(await ok('cat /proc/1/comm')).toBe('systemd');
    expect(await ok('systemctl is-system-running || true')).toMatch(/^(running|degraded)$/);
    expect(await failedUnits()).toEqual([]);
    expect(await ok('hostname')).toBe(NAME);
  });

  it('lets root and deploy in by key only, and deploy without sudo or linger', async () => {
    expect(await ok('id -un')).toBe('root');
    expect(await ok('id -un; id -u; echo $HOME; echo $SHELL', 'deploy')).toBe('deploy\n1001\n/home/deploy\n/bin/bash');
    expect((await host.ssh('sudo -n true', 'deploy')).code).not.toBe(0);
    expect(await ok('loginctl show-user deploy -p Linger --value')).toBe('no');
    expect(await ok('sshd -T | grep -E "^(passwordauthentication|permitrootlogin) " | sort')).toBe('passwordauthentication no\npermitrootlogin without-password');
    // Another key is refused.
    const other = join(dir, 'other');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const r = spawnSync('ssh', ['-F', '/dev/null', '-i', other, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${host.knownHosts}`, '-p', String(PORT), 'root@127.0.0.1', 'true'], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('Permission denied');
  });

  it('runs this machine’s Node for both users', async () => {
    expect(await ok('node --version')).toBe(process.version);
    expect(await ok('command -v node && node -e "console.log(1 + 1)"', 'deploy')).toBe('/usr/bin/node\n2');
  });

  it('serves Caddy on :80 with its admin API on 127.0.0.1:2019, and has nginx installed but disabled', async () => {
    expect(JSON.parse(await ok('curl -sf http://127.0.0.1:2019/config/'))).toHaveProperty('apps.http');
    expect(await ok('curl -s -o /dev/null -w "%{http_code}" http://127.0.0.1/')).toBe('200');
    expect(await ok('systemctl is-enabled nginx || true')).toBe('disabled');
    expect(await ok('nginx -v 2>&1')).toMatch(/^nginx version/);
  });

  it('keeps a journal, and a journal per user that `journalctl --user` reads once linger is on', async () => {
    expect(await ok('journalctl -q --no-pager -n 3 | wc -l')).not.toBe('0');
    await ok('loginctl enable-linger deploy');
    await ok('systemd-run --user --quiet --unit=skiff-smoke-echo sh -c "echo hello from a user unit"', 'deploy');
    await expect.poll(async () => (await host.ssh('journalctl --user -q --no-pager -u skiff-smoke-echo', 'deploy')).stdout, { timeout: 10_000 }).toContain('hello from a user unit');
    expect(await ok('ls /var/log/journal/$(cat /etc/machine-id)')).toMatch(/user-1001\.journal/);
  });

  it('comes back after a reboot with sshd, Caddy and the journal', async () => {
    const before = await ok('cat /proc/1/stat | cut -d" " -f22'); // systemd's start time
    const t0 = Date.now();
    await host.reboot();
    console.log(`rebooted ${NAME} in ${Date.now() - t0} ms`);
    expect(await ok('cat /proc/1/stat | cut -d" " -f22')).not.toBe(before);
    expect(await ok('systemctl is-active ssh caddy')).toBe('active\nactive');
    expect(JSON.parse(await ok('curl -sf http://127.0.0.1:2019/config/'))).toHaveProperty('apps.http');
    expect(await failedUnits()).toEqual([]);
    // The lingering user's manager is started at boot, and the journal of before the reboot is kept.
    expect(await ok('systemctl is-active user@1001')).toBe('active');
    expect(await ok('journalctl --user -q --no-pager -u skiff-smoke-echo', 'deploy')).toContain('hello from a user unit');
  });

  it('gives the env-file lines that point skiff at it', () => {
    expect(systemdHostEnv(host, 'deploy').split('\n')).toEqual([
      `DEPLOY_HOSTS=deploy@127.0.0.1:${PORT}`,
      `DEPLOY_SSH_KEY=${join(dir, 'id_ed25519')}`,
      `DEPLOY_KNOWN_HOSTS=${join(dir, 'known_hosts')}`,
    ]);
    expect(host.env()).toContain(`DEPLOY_HOSTS=root@127.0.0.1:${PORT}`);
  });

  it('stops: the container is gone and nothing listens on its port', async () => {
    await host.stop();
    expect(spawnSync('docker', ['inspect', NAME], { stdio: 'ignore' }).status).not.toBe(0);
    expect(listening(PORT)).toBe(false);
  });
});
