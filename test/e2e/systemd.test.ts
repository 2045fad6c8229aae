/**
 * The systemd supervisor on a real systemd host (test/support/systemd-host.ts: Debian 12 with systemd
 * as PID 1, Caddy under its packaged unit, reached over real OpenSSH): setup, a deploy whose live slot
 * starts at boot, a crash that systemd repairs, blue-green and rollback with no failed request, a
 * reboot that brings the app back behind Caddy with no skiff command, a Caddy restart and reload, and
 * a non-root deploy user with user units. Without root or Docker the tests are skipped, unless CI is
 * set: then they fail.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localEnv, makeSandbox, type Sandbox } from '../support/sandbox.ts';
import { startSystemdHost, systemdHostSkip, type SystemdHost } from '../support/systemd-host.ts';

const NAME = 'skiff-systemd-e2e';
const SSH_PORT = 2291;
const PUBLIC = 8080;
const SLOTS = [3001, 3002] as const;

const skip = systemdHostSkip();
if (skip) console.warn(`skipping the systemd deploy tests: ${skip} (with CI set they fail instead)`);

/**
 * A client that never sends a request again: sequential GETs, each on a new connection, run inside
 * the host. (Kept-alive connections through a reloading Caddy are docs/deploy-vps.md#proxies' matter.)
 */
const PROBE = `
const http = require('http');
const agent = new http.Agent({ keepAlive: false });
let ok = 0, failed = 0; const errors = [];
const stopAt = Date.now() + Number(process.argv[2]) * 1000;
const one = () => new Promise((resolve) => {
  const req = http.get({ host: '127.0.0.1', port: ${PUBLIC}, path: '/', agent }, (res) => {
    res.resume(); res.on('end', () => { if (res.statusCode === 200) ok++; else { failed++; errors.push(String(res.statusCode)); } resolve(); });
  });
  req.on('error', (e) => { failed++; errors.push(e.code || e.message); resolve(); });
  req.setTimeout(5000, () => req.destroy(new Error('timeout')));
});
(async () => { while (Date.now() < stopAt && !require('fs').existsSync('/tmp/probe.stop')) await one(); console.log(JSON.stringify({ ok, failed, errors: errors.slice(0, 5) })); })();
`;

describe.skipIf(skip)('the systemd supervisor on a systemd host', () => {
  let s: Sandbox;
  let host: SystemdHost;
  const unit = (slot: string, env = 't') => `skiff-hello-${env}-${slot}.service`;
  /** What Caddy answers inside the host. */
  const served = async (port = PUBLIC) => (await host.exec(`curl -s -m 3 http://127.0.0.1:${port}/ || true`)).stdout.trim();
  const waitServed = async (text: string, port = PUBLIC, seconds = 30): Promise<number> => {
    const start = Date.now();
    while (Date.now() - start < seconds * 1000) {
      if ((await served(port)) === text) return Date.now() - start;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${text} not served on ${port} within ${seconds}s (serves: ${await served(port)})`);
  };
  const sc = async (command: string) => (await host.exec(`systemctl ${command}`)).stdout.trim();
  /** Writes env/<name>.env for this host; `values` override the defaults (same keys replaced, not repeated). */
  const env = (name: string, values: Record<string, string>, user: 'root' | 'deploy' = 'root') => {
    const all: Record<string, string> = {
      APP_NAME: 'hello',
      APP_DIR: s.appDir,
      DEPLOY_PATH: '/srv/hello',
      DEPLOY_PORTS: SLOTS.join(','),
      DEPLOY_START: 'node server.js',
      DEPLOY_PROXY: 'caddy',
      DEPLOY_PUBLIC_URL: `http://127.0.0.1:${PUBLIC}`,
      DEPLOY_SUPERVISOR: 'systemd',
      DEPLOY_HEALTH_TIMEOUT: '20',
      DEPLOY_DRAIN_SECONDS: '3',
      ...values,
    };
    s.writeEnv(`${name}.env`, [host.env(user), ...Object.entries(all).map(([k, v]) => `${k}=${v}`)].join('\n'));
  };
  /** Runs the probe inside the host while `during` runs; returns what it counted. */
  const probed = async (during: () => Promise<void>): Promise<{ ok: number; failed: number; errors: string[] }> => {
    await host.exec('rm -f /tmp/probe.stop');
    const run = host.exec('node /tmp/probe.js 120', { timeoutMs: 150_000 });
    await new Promise((r) => setTimeout(r, 500));
    await during();
    await new Promise((r) => setTimeout(r, 500));
    await host.exec('touch /tmp/probe.stop');
    return JSON.parse((await run).stdout) as { ok: number; failed: number; errors: string[] };
  };

  beforeAll(async () => {
    s = makeSandbox('systemd');
    host = await startSystemdHost({ name: NAME, port: SSH_PORT, dir: join(s.dir, 'host') });
    writeFileSync(join(s.dir, 'probe.js'), PROBE);
    await host.exec('true');
    const { execFileSync } = await import('node:child_process');
    execFileSync('docker', ['cp', join(s.dir, 'probe.js'), `${NAME}:/tmp/probe.js`]);
    env('t', {});
  }, 300_000);
  afterAll(async () => {
    await host?.stop();
    s?.cleanup();
  });

  it('setup --dry-run lists what it would change and changes nothing', async () => {
    const r = await s.run('setup', ['t', '--dry-run']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('would change 4 things (dry run: nothing was changed)');
    expect(r.stdout).toContain('would    switch: create /var/lib/skiff/hello-t for the flag that picks the live slot');
    expect(r.stdout).toContain('would    DEPLOY_PATH: create /srv/hello (owner root, mode 750)');
    expect((await host.exec('test -e /srv/hello; echo $?; test -e /var/lib/skiff/hello-t; echo $?')).stdout.trim()).toBe('1\n1');
  });

  it('setup prepares the host, and a second run changes nothing', async () => {
    const first = await s.run('setup', ['t']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('changed 4 things');
    expect(first.stdout).toContain('changed  switch: create /var/lib/skiff/hello-t');
    expect(first.stdout).toContain('changed  kernel: set net.ipv4.tcp_migrate_req = 1');
    expect((await host.exec('stat -c "%U %a" /srv/hello; cat /proc/sys/net/ipv4/tcp_migrate_req')).stdout.trim()).toBe('root 750\n1');
    const second = await s.run('setup', ['t']);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('nothing to change: all was in place');
    expect(second.stdout).not.toMatch(/changed {2}/);
  });

  it('deploys into a unit that systemd runs and starts at boot', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await served()).toBe('hello 1.0.0 (t)');
    expect(await sc(`is-enabled ${unit('blue')}`)).toBe('enabled');
    expect(await sc(`is-active ${unit('blue')}`)).toBe('active');
    const status = await s.run('status', ['t']);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/process {3}running \(pid \d+, unit skiff-hello-t-blue\.service, starts at boot\)/);
    const logs = await s.run('logs', ['t']);
    expect(logs.code).toBe(0);
    expect(logs.stdout).toContain('listening on');
  });

  it('systemd restarts the app after kill -9, and status shows the restart', async () => {
    const pid = await sc(`show -p MainPID --value ${unit('blue')}`);
    const killedAt = Date.now();
    await host.exec(`kill -9 ${pid}`);
    await new Promise((r) => setTimeout(r, 200));
    const ms = await waitServed('hello 1.0.0 (t)');
    console.log(`kill -9 to the first 2xx again: ${Date.now() - killedAt} ms (${ms} ms of polling)`);
    expect(await sc(`show -p MainPID --value ${unit('blue')}`)).not.toBe(pid);
    const status = await s.run('status', ['t']);
    expect(status.stdout).toContain('restarted 1 time after crashes');
  });

  it('switches blue-green and back with no failed request for a client that never resends', async () => {
    s.setVersion('1.0.1');
    const deploy = await probed(async () => {
      const r = await s.run('deploy-vps', ['t']);
      expect(r.code, r.stderr).toBe(0);
    });
    expect(deploy.failed, JSON.stringify(deploy)).toBe(0);
    expect(deploy.ok).toBeGreaterThan(50);
    expect(await served()).toBe('hello 1.0.1 (t)');
    expect(await sc(`is-enabled ${unit('green')}`)).toBe('enabled');
    expect((await host.exec(`systemctl is-enabled ${unit('blue')}`)).stdout.trim()).toBe('disabled');
    expect((await host.exec(`systemctl is-active ${unit('blue')}`)).stdout.trim()).toBe('inactive');

    const back = await probed(async () => {
      const r = await s.run('rollback', ['t']);
      expect(r.code, r.stderr).toBe(0);
    });
    expect(back.failed, JSON.stringify(back)).toBe(0);
    expect(await served()).toBe('hello 1.0.0 (t)');
    expect(await sc(`is-enabled ${unit('blue')}`)).toBe('enabled');
    expect((await host.exec(`systemctl is-enabled ${unit('green')}`)).stdout.trim()).toBe('disabled');
  });

  it('after a reboot the live release serves again behind Caddy, with no skiff command', async () => {
    const rebootAt = Date.now();
    await host.reboot();
    const ms = await waitServed('hello 1.0.0 (t)');
    console.log(`reboot to the first 2xx through Caddy: ${Date.now() - rebootAt} ms (${ms} ms after sshd answered)`);
    expect((await host.exec(`systemctl is-active ${unit('green')}`)).stdout.trim()).toBe('inactive');
    const status = await s.run('status', ['t']);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/process {3}running \(pid \d+, unit skiff-hello-t-blue\.service, starts at boot\)/);
    expect(status.stdout).toContain(`proxy     caddy -> port ${SLOTS[0]}`);
    expect(status.stdout).not.toContain('reboot ');
  });

  it('Caddy keeps the route across its restart; a reload from the Caddyfile loses it, and start puts it back', async () => {
    await host.exec('systemctl restart caddy');
    await waitServed('hello 1.0.0 (t)');
    await host.exec('systemctl reload caddy');
    expect(await served()).not.toBe('hello 1.0.0 (t)');
    const status = await s.run('status', ['t']);
    expect(status.stdout).toContain('caddy: has no route of this app (the proxy restarted or reloaded without it): run start to put it back');
    const start = await s.run('start', ['t']);
    expect(start.stderr).toBe('');
    expect(start.code).toBe(0);
    expect(start.stdout).toContain('caddy had lost the route: it sends traffic to port 3001 again');
    expect(await served()).toBe('hello 1.0.0 (t)');
  });

  it('stop disables the live unit, so it stays stopped after a reboot; start enables it again', async () => {
    expect((await s.run('stop', ['t'])).code).toBe(0);
    expect((await host.exec(`systemctl is-enabled ${unit('blue')}`)).stdout.trim()).toBe('disabled');
    await host.reboot();
    await new Promise((r) => setTimeout(r, 1500));
    expect((await host.exec(`systemctl is-active ${unit('blue')}`)).stdout.trim()).toBe('inactive');
    const start = await s.run('start', ['t']);
    expect(start.code, start.stderr).toBe(0);
    expect(await sc(`is-enabled ${unit('blue')}`)).toBe('enabled');
    await waitServed('hello 1.0.0 (t)');
  });

  it('refuses a unit of the same name that skiff did not write (exit 2, nothing changed)', async () => {
    await host.exec(`printf '[Service]\\nExecStart=/bin/true\\n' > /etc/systemd/system/${unit('blue', 'u2')} && systemctl daemon-reload`);
    env('u2', { DEPLOY_PATH: '/srv/hello-u2', DEPLOY_PORTS: '3011,3012', DEPLOY_PUBLIC_URL: 'http://127.0.0.1:8082' });
    const r = await s.run('deploy-vps', ['u2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`a unit ${unit('blue', 'u2')} exists that skiff did not write (/etc/systemd/system/${unit('blue', 'u2')})`);
    expect((await host.exec('test -e /srv/hello-u2/releases; echo $?')).stdout.trim()).toBe('1');
    expect((await host.exec(`head -n 1 /etc/systemd/system/${unit('blue', 'u2')}`)).stdout.trim()).toBe('[Service]');
  });

  it('refuses a masked unit, and a slot of an earlier setting that still runs (exit 2, nothing changed)', async () => {
    await host.exec(`systemctl mask ${unit('blue', 'm')}`);
    env('m', { DEPLOY_PATH: '/srv/hello-m', DEPLOY_PORTS: '3051,3052', DEPLOY_PUBLIC_URL: 'http://127.0.0.1:8085' });
    const masked = await s.run('deploy-vps', ['m']);
    expect(masked.code).toBe(2);
    expect(masked.stderr).toContain(`the unit ${unit('blue', 'm')} is masked, so skiff will not start it: \`systemctl unmask ${unit('blue', 'm')}\` if it may run`);
    expect((await host.exec(`readlink /etc/systemd/system/${unit('blue', 'm')}`)).stdout.trim()).toBe('/dev/null');
    await host.exec(`systemctl unmask ${unit('blue', 'm')}`);

    // Two deploys: green serves. Then one slot (proxy none): green would run on beside it.
    expect((await s.run('deploy-vps', ['m'])).code).toBe(0);
    expect((await s.run('deploy-vps', ['m'])).code).toBe(0);
    expect(await sc(`is-active ${unit('green', 'm')}`)).toBe('active');
    env('m', { DEPLOY_PATH: '/srv/hello-m', DEPLOY_PROXY: 'none', DEPLOY_PORTS: '3053' });
    const stale = await s.run('deploy-vps', ['m']);
    expect(stale.code).toBe(2);
    expect(stale.stderr).toContain(`${unit('green', 'm')} is a slot of an earlier setting and still runs: stop it first (systemctl disable --now ${unit('green', 'm')}), then deploy`);
    expect(await sc(`is-active ${unit('green', 'm')}`)).toBe('active');
    await host.exec(`systemctl disable --now ${unit('green', 'm')}`);
    const r = await s.run('deploy-vps', ['m']);
    expect(r.code, r.stderr).toBe(0);
    expect((await host.exec(`test -e /etc/systemd/system/${unit('green', 'm')}; echo $?`)).stdout.trim()).toBe('1');
    // Back to pidfile while a unit serves: refused, with the command that stops it.
    env('m', { DEPLOY_PATH: '/srv/hello-m', DEPLOY_PROXY: 'none', DEPLOY_PORTS: '3053', DEPLOY_SUPERVISOR: 'pidfile' });
    const back = await s.run('deploy-vps', ['m']);
    expect(back.code).toBe(2);
    expect(back.stderr).toContain(`${unit('blue', 'm')} (DEPLOY_SUPERVISOR=systemd) still serves this env`);
  });

  it('runs a DEPLOY_PATH and a start command with spaces, quotes, $ and % exactly as written, within its limits', async () => {
    // Every character systemd or sh would read (a backslash too: Node itself cannot load ESM from such a folder).
    const path = "/srv/odd dir $HOME %n 'q' \"d\"";
    env('odd', {
      DEPLOY_PATH: path,
      DEPLOY_PROXY: 'none',
      DEPLOY_PORTS: '3041',
      DEPLOY_START: `echo "100% \\"started\\" \${PORT}" && exec node server.js`,
      DEPLOY_MEMORY_LIMIT: '256M',
      DEPLOY_CPU_LIMIT: '0.5',
    });
    const r = await s.run('deploy-vps', ['odd']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((await host.exec('curl -s -m 3 http://127.0.0.1:3041/')).stdout.trim()).toMatch(/^hello 1\.0\.\d \(odd\)$/);
    const u = unit('blue', 'odd');
    expect(await sc(`show -p MemoryMax --value ${u}`)).toBe(String(256 * 1024 * 1024));
    expect(await sc(`show -p CPUQuotaPerSecUSec --value ${u}`)).toBe('500ms');
    const logs = await s.run('logs', ['odd']);
    expect(logs.stdout).toContain('100% "started" 3041');
    const pid = await sc(`show -p MainPID --value ${u}`);
    expect((await host.exec(`readlink /proc/${pid}/cwd`)).stdout.trim()).toMatch(/^\/srv\/odd dir \$HOME %n 'q' "d"\/releases\//);
    expect((await s.run('stop', ['odd'])).code).toBe(0);
  });

  it('a non-root user: refused without lingering, setup needs root, then user units that come back after a reboot', async () => {
    env('d', { DEPLOY_PATH: '/home/deploy/hello', DEPLOY_PORTS: '3021,3022', DEPLOY_PUBLIC_URL: 'http://127.0.0.1:8083' }, 'deploy');
    const refused = await s.run('deploy-vps', ['d']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('deploy has no lingering, so its systemd units would stop at logout and not start at boot: run `npx tsx scripts/setup.ts d`');
    // The lock was taken (DEPLOY_PATH/.skiff), nothing else.
    expect((await host.exec('ls -A /home/deploy/hello')).stdout.trim()).toBe('.skiff');
    await host.exec('rm -rf /home/deploy/hello');

    const noRoot = await s.run('setup', ['d']);
    expect(noRoot.code).toBe(1);
    expect(noRoot.stdout).toContain('needs root: give deploy password-less sudo for setup, or have root do it on the host (docs/setup.md#without-root)');
    expect(noRoot.stdout).toContain('not ready; nothing was changed');
    expect((await host.exec('test -e /home/deploy/hello; echo $?')).stdout.trim()).toBe('1');

    await host.exec(`echo 'deploy ALL=(root) NOPASSWD: ALL' > /etc/sudoers.d/deploy && chmod 440 /etc/sudoers.d/deploy`);
    const setup = await s.run('setup', ['d']);
    expect(setup.code, setup.stdout).toBe(0);
    expect(setup.stdout).toContain('changed  supervisor: enable lingering for deploy');
    expect((await s.run('setup', ['d'])).stdout).toContain('nothing to change');
    await host.exec('rm /etc/sudoers.d/deploy');

    const r = await s.run('deploy-vps', ['d']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const d = await served(8083);
    expect(d).toMatch(/^hello 1\.0\.\d \(d\)$/);
    expect((await host.ssh(`systemctl --user is-enabled ${unit('blue', 'd')}`, 'deploy')).stdout.trim()).toBe('enabled');
    const logs = await s.run('logs', ['d']);
    expect(logs.stdout).toContain('listening on');

    await host.reboot();
    await waitServed(d, 8083);
    await waitServed('hello 1.0.0 (t)');
  });

  it('the pidfile supervisor: status says the host rebooted and how to bring the app back', async () => {
    env('p', { DEPLOY_SUPERVISOR: 'pidfile', DEPLOY_PATH: '/srv/hello-p', DEPLOY_PORTS: '3031,3032', DEPLOY_PUBLIC_URL: 'http://127.0.0.1:8084' });
    const setup = await s.run('setup', ['p']);
    expect(setup.code, setup.stdout + setup.stderr).toBe(0);
    const deploy = await s.run('deploy-vps', ['p']);
    expect(deploy.code, deploy.stderr).toBe(0);
    await host.reboot();
    const status = await s.run('status', ['p']);
    expect(status.stdout).toMatch(/reboot {4}the host booted at \S+, after this release started, and the pidfile supervisor does not start it at boot: run `npx tsx scripts\/start\.ts p`/);
    expect((await s.run('start', ['p'])).code).toBe(0);
    expect(await served(8084)).toMatch(/^hello 1\.0\.\d \(p\)$/);
  });

  it('workers: a unit each, restarted by systemd, back after a reboot, replaced on deploy with SIGTERM and their grace, gone with stop', async () => {
    // A worker that counts its jobs into DATA_DIR and notes a SIGTERM before it exits.
    writeFileSync(
      join(s.appDir, 'worker.cjs'),
      [
        "const fs = require('fs');",
        "const dir = process.env.DATA_DIR;",
        "console.log('worker up', process.env.APP_VERSION, 'port', process.env.PORT || 'none');",
        "setInterval(() => fs.writeFileSync(dir + '/ticks-' + process.env.APP_VERSION, String(Date.now())), 200);",
        "process.on('SIGTERM', () => { fs.appendFileSync(dir + '/terms', process.env.APP_VERSION + '\\n'); process.exit(0); });",
      ].join('\n'),
    );
    env('w', { DEPLOY_PATH: '/srv/hello-w', DEPLOY_PORTS: '3041', DEPLOY_PROXY: 'none', DEPLOY_WORKERS: 'tick:2=node worker.cjs', DEPLOY_WORKER_UP_SECONDS: '1', DEPLOY_WORKER_GRACE_SECONDS: '5' });
    /** The worker units of env w: `name active` per line. */
    const units = async () =>
      (await host.exec("systemctl list-units --all --plain --no-legend 'skiff-hello-w-worker-*' | awk '{ print $1, $3 }'")).stdout.trim().split('\n').filter(Boolean).sort();
    const mainPid = async (u: string) => (await host.exec(`systemctl show -p MainPID --value ${u}`)).stdout.trim();

    s.setVersion('2.0.0');
    const first = await s.run('deploy-vps', ['w']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('started 2 worker processes (tick.1, tick.2), up after 1s');
    const release = (JSON.parse((await host.exec('cat /srv/hello-w/.skiff/state.json')).stdout) as { slots: { blue: { release: string } } }).slots.blue.release;
    const tick1 = `skiff-hello-w-worker-tick.1-${release}.service`;
    expect(await units()).toEqual([`${tick1} active`, `skiff-hello-w-worker-tick.2-${release}.service active`]);
    expect(await sc(`is-enabled ${tick1}`)).toBe('enabled');
    expect((await host.exec(`journalctl -u ${tick1} -o cat --no-pager`)).stdout).toContain('worker up 2.0.0 port none');
    const status = await s.run('status', ['w']);
    expect(status.stdout).toMatch(/workers +tick\.1 running \(pid \d+\), tick\.2 running \(pid \d+\)/);

    // A crash: systemd starts it again within a few seconds, and status sees it running.
    const before = await mainPid(tick1);
    await host.exec(`kill -9 ${before}`);
    const t0 = Date.now();
    while (Date.now() - t0 < 15_000 && ((await mainPid(tick1)) === before || (await mainPid(tick1)) === '0')) await new Promise((r) => setTimeout(r, 100));
    expect(await mainPid(tick1)).not.toBe(before);
    expect(await sc(`is-active ${tick1}`)).toBe('active');

    // A reboot: the live release's workers start with no skiff command.
    await host.reboot();
    const t1 = Date.now();
    while (Date.now() - t1 < 30_000 && (await units()).some((u) => !u.endsWith(' active'))) await new Promise((r) => setTimeout(r, 200));
    expect(await units()).toEqual([`${tick1} active`, `skiff-hello-w-worker-tick.2-${release}.service active`]);

    // A deploy: new units for the new release; the old ones got SIGTERM, finished, and are gone.
    await host.exec('rm -f /srv/hello-w/shared/data/terms');
    s.setVersion('2.0.1');
    const second = await s.run('deploy-vps', ['w']);
    expect(second.stderr).toBe('');
    expect(second.code).toBe(0);
    expect(second.stdout).toContain(`old workers: stopped 2 worker processes of ${release}`);
    const next = (JSON.parse((await host.exec('cat /srv/hello-w/.skiff/state.json')).stdout) as { slots: { blue: { release: string } } }).slots.blue.release;
    expect(await units()).toEqual([`skiff-hello-w-worker-tick.1-${next}.service active`, `skiff-hello-w-worker-tick.2-${next}.service active`]);
    expect((await host.exec('cat /srv/hello-w/shared/data/terms')).stdout.trim().split('\n')).toEqual(['2.0.0', '2.0.0']);
    expect((await host.exec(`test -e /etc/systemd/system/${tick1}; echo $?`)).stdout.trim()).toBe('1');

    // stop removes them, so they stay down after a reboot; start writes them again.
    const stop = await s.run('stop', ['w', '--yes']);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toContain(`stopped 2 worker processes of ${next}`);
    expect(await units()).toEqual([]);
    const start = await s.run('start', ['w']);
    expect(start.code, start.stderr).toBe(0);
    expect(await units()).toEqual([`skiff-hello-w-worker-tick.1-${next}.service active`, `skiff-hello-w-worker-tick.2-${next}.service active`]);
    s.setVersion('1.0.1');
  });
});

describe('the systemd supervisor on a host without systemd', () => {
  let s: Sandbox;
  beforeAll(() => {
    s = makeSandbox('no-systemd');
    s.writeEnv('t.env', localEnv(s, 18697, 'DEPLOY_SUPERVISOR=systemd'));
  });
  afterAll(() => s.cleanup());

  it('is refused in preflight with the reason (exit 2), before anything is written', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('local does not run systemd (its init is something else), so DEPLOY_SUPERVISOR=systemd cannot work there: use DEPLOY_SUPERVISOR=pidfile');
    const { existsSync } = await import('node:fs');
    expect(existsSync(join(s.deployPath, 'releases'))).toBe(false);
  });
});
