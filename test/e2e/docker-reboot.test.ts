/**
 * The docker runtime across a restart of a server's Docker engine, end to end: a real OpenSSH
 * server on 127.0.0.14 whose logins use a Docker engine of their own (test/infra/docker-host.sh),
 * behind a real Caddy. The engine is stopped the way a shutdown stops it (SIGTERM to dockerd, which
 * stops its containers) and started again on the same data root: the live container comes back by
 * its `--restart unless-stopped` alone, with no skiff command; one stopped by `stop` does not.
 * Without root, dockerd, sshd or Caddy the tests are skipped, unless CI is set: then they fail.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caddyUnderTest } from '../support/proxies.ts';
import { get, listening, localEnv, makeSandbox, ROOT, type Sandbox } from '../support/sandbox.ts';

const APP = 'hello-rb';
const SSH = { ip: '127.0.0.14', port: 2296 };
const SIZE = '900m';
const HOST_SCRIPT = join(ROOT, 'test/infra/docker-host.sh');
const CONTAINER = `${APP}-t-blue`;

const has = (command: string) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
const skipReason = (): string | undefined => {
  if (process.env.CI) return undefined;
  if (process.getuid?.() !== 0) return 'the second Docker engine needs root (its tmpfs)';
  if (!has('dockerd')) return 'dockerd is missing (run test/infra/docker.sh)';
  if (!existsSync('/usr/sbin/sshd')) return '/usr/sbin/sshd is missing (apt-get install openssh-server)';
  if (!has('caddy')) return 'caddy is missing (run test/infra/up.sh)';
  return undefined;
};
const skip = skipReason();
if (skip) console.warn(`skipping the docker engine restart tests: ${skip} (with CI set they fail instead)`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether a process is gone (a zombie nobody has reaped yet counts as gone). */
const gone = (pid: number): boolean => {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').startsWith('Z');
  } catch {
    return true;
  }
};

describe.skipIf(skip)('docker containers across a restart of the host engine', () => {
  let s: Sandbox;
  let sshDir: string;
  let dockerDir: string;
  const caddy = caddyUnderTest(18780);
  const url = `http://127.0.0.1:${caddy.publicPort}`;
  const slotUrl = `http://127.0.0.1:${caddy.slots[0]}`;
  const docker2 = (...args: string[]) =>
    execFileSync('docker', args, { encoding: 'utf8', env: { ...process.env, DOCKER_HOST: `unix://${dockerDir}/docker.sock` } }).trim();
  const mounts = () =>
    readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .filter((l) => l.split(' ')[1] === join(dockerDir, 'root'));

  /** SIGTERM to the engine's dockerd, as a shutdown sends it; resolves once it has exited. */
  const stopEngine = async () => {
    const pid = Number(readFileSync(join(dockerDir, 'docker.pid'), 'utf8').trim());
    expect(pid).toBeGreaterThan(1);
    process.kill(pid, 'SIGTERM');
    const t0 = Date.now();
    while (!gone(pid)) {
      if (Date.now() - t0 > 30_000) throw new Error(`dockerd ${pid} still runs 30 s after SIGTERM`);
      await sleep(100);
    }
    return Date.now() - t0;
  };

  /** The same command that made the engine: it finds it down and starts it on the same data root. */
  const startEngine = () =>
    new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const child = spawn('bash', [HOST_SCRIPT, dockerDir, SIZE], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (out += b.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, out }));
    });

  /** Polls a URL until it answers 2xx; the milliseconds since `since`, or undefined after `limitMs`. */
  const first2xx = async (target: string, since: number, limitMs: number) => {
    while (Date.now() - since < limitMs) {
      const r = await get(target);
      if (r.status >= 200 && r.status < 300) return Date.now() - since;
      await sleep(50);
    }
    return undefined;
  };

  const engineLog = () => (existsSync(join(dockerDir, 'dockerd.log')) ? readFileSync(join(dockerDir, 'dockerd.log'), 'utf8').split('\n').slice(-15).join('\n') : '');

  beforeAll(async () => {
    s = makeSandbox('docker-reboot');
    sshDir = join(s.dir, 'sshd');
    dockerDir = join(s.dir, 'docker-host');
    execFileSync('bash', [HOST_SCRIPT, dockerDir, SIZE], { stdio: 'ignore' });
    execFileSync('bash', [join(ROOT, 'test/infra/sshd.sh'), sshDir, SSH.ip, String(SSH.port)], {
      stdio: 'ignore',
      env: { ...process.env, SSHD_EXTRA_CONFIG: `SetEnv DOCKER_HOST=unix://${dockerDir}/docker.sock` },
    });
    await caddy.start(s.dir);
    s.writeEnv(
      't.env',
      localEnv(
        s,
        caddy.slots[0],
        [
          'DEPLOY_RUNTIME=docker',
          'DEPLOY_DOCKER_BUILD_ARGS=BASE=local/node-base:20',
          'DEPLOY_HEALTH_TIMEOUT=15',
          `DEPLOY_HOSTS=${userInfo().username}@${SSH.ip}:${SSH.port}`,
          `DEPLOY_SSH_KEY=${join(sshDir, 'id_ed25519')}`,
          `DEPLOY_KNOWN_HOSTS=${join(sshDir, 'known_hosts')}`,
          `DEPLOY_PORTS=${caddy.slots.join(',')}`,
          `DEPLOY_PUBLIC_URL=${url}`,
          'DEPLOY_DRAIN_SECONDS=2',
          caddy.keys(s.dir),
        ].join('\n'),
      ).replace('APP_NAME=hello', `APP_NAME=${APP}`),
    );
  });
  afterAll(() => {
    caddy.stop();
    const pid = join(sshDir ?? '', 'sshd.pid');
    if (existsSync(pid)) spawnSync('kill', [readFileSync(pid, 'utf8').trim()]);
    spawnSync('bash', ['-c', `docker ps -aq --filter label=skiff.app=${APP} | xargs -r docker rm -f; docker images -q ${APP} | sort -u | xargs -r docker rmi -f`]);
    if (dockerDir) spawnSync('bash', [HOST_SCRIPT, '--stop', dockerDir]);
    s?.cleanup();
  });

  it('deploys with the docker runtime and serves through Caddy', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('deployed 1.0.0');
    expect((await get(url)).text.trim()).toBe('hello 1.0.0 (t)');
    expect((await get(slotUrl)).text.trim()).toBe('hello 1.0.0 (t)');
    expect(docker2('inspect', '--format', '{{.State.Status}} {{.HostConfig.RestartPolicy.Name}}', CONTAINER)).toBe('running unless-stopped');
  });

  it('the engine stopped as a shutdown stops it takes the container down; started again, the container serves with no skiff command', async () => {
    const mountBefore = mounts();
    expect(mountBefore).toHaveLength(1);
    const startedAt = docker2('inspect', '--format', '{{.State.StartedAt}}', CONTAINER);

    const stoppedIn = await stopEngine();
    expect(listening(caddy.slots[0]), 'the slot port still answers with the engine stopped').toBe(false);
    expect((await get(url)).status).not.toBe(200);

    const t0 = Date.now();
    let answered = 0;
    const engine = startEngine().then((r) => ((answered = Date.now() - t0), r));
    const served = await first2xx(`${slotUrl}/api/health`, t0, 30_000);
    const e = await engine;
    expect(e.code, e.out).toBe(0);
    expect(e.out).toContain('docker host ready');
    console.log(
      `engine stopped ${stoppedIn} ms after SIGTERM; started again, it answered after ${answered} ms (docker-host.sh done), ` +
        `and the slot port gave its first 2xx ${served === undefined ? 'never (30 s)' : `after ${served} ms`}`,
    );
    expect(served, `the container did not come back within 30 s:\n${docker2('ps', '-a', '--format', '{{.Names}} {{.Status}}')}\n${engineLog()}`).toBeDefined();

    // The same tmpfs, not a new one: the images and the container survived.
    expect(mounts()).toEqual(mountBefore);
    expect(docker2('inspect', '--format', '{{.State.Status}} {{.RestartCount}}', CONTAINER)).toMatch(/^running /);
    expect(docker2('inspect', '--format', '{{.State.StartedAt}}', CONTAINER)).not.toBe(startedAt);
    expect((await get(url)).text.trim()).toBe('hello 1.0.0 (t)');

    const status = await s.run('status', ['t']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`process +running \\(container ${CONTAINER}, image [0-9a-f]{12}, pid \\d+`));
    expect(status.stdout).toMatch(/health +ok \(HTTP 200\)/);
  });

  it('a container stopped by `stop` stays stopped across an engine restart; `start` brings it back', async () => {
    const stop = await s.run('stop', ['t']);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toContain(`stopped container ${CONTAINER}`);
    expect(listening(caddy.slots[0])).toBe(false);

    await stopEngine();
    const t0 = Date.now();
    const e = await startEngine();
    expect(e.code, e.out).toBe(0);
    // A container docker restarts is running within a second or two of the engine answering (see above).
    const served = await first2xx(`${slotUrl}/api/health`, t0, Date.now() - t0 + 5000);
    expect(served, 'the container stopped by `stop` came back after the engine restart').toBeUndefined();
    expect(docker2('inspect', '--format', '{{.State.Status}}', CONTAINER)).toBe('exited');
    expect(listening(caddy.slots[0])).toBe(false);

    const status = await s.run('status', ['t']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).not.toMatch(/process +running/);

    const start = await s.run('start', ['t']);
    expect(start.code, start.stderr).toBe(0);
    expect((await get(slotUrl)).text.trim()).toBe('hello 1.0.0 (t)');
    expect((await get(url)).text.trim()).toBe('hello 1.0.0 (t)');
    expect(docker2('inspect', '--format', '{{.State.Status}} {{.HostConfig.RestartPolicy.Name}}', CONTAINER)).toBe('running unless-stopped');
  });
});
