/**
 * Several hosts: two "servers" on this machine, each in its own network, process and mount
 * namespaces (test/infra/nshost.sh) with its own sshd, its own Caddy and its own /srv, deployed to
 * in parallel through the real scripts. A deploy is all or nothing: when one host fails, the other
 * ends where it was.
 */
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localEnv, makeSandbox, ROOT, type Sandbox } from '../support/sandbox.ts';

const NSHOST = join(ROOT, 'test/infra/nshost.sh');
const PUBLIC = 18620;
const SLOTS = [18621, 18622] as const;
const ADMIN = '127.0.0.1:2019'; // each host has its own loopback, so both use Caddy's default

interface TestHost {
  readonly name: string;
  readonly dir: string;
  readonly ip: string;
  readonly port: number;
  /** Runs a command inside the host's namespaces. */
  sh(command: string): string;
  /** DEPLOY_PATH as this machine sees it. */
  readonly root: string;
}

const testHost = (dir: string, ip: string, port: number): TestHost => {
  const pid = () => readFileSync(join(dir, 'ns.pid'), 'utf8').trim();
  return {
    name: `root@${ip}:${port}`,
    dir,
    ip,
    port,
    root: join(dir, 'fs/hello'),
    sh: (command) => execFileSync('nsenter', ['-t', pid(), '-n', '-m', '-p', 'sh', '-c', command], { encoding: 'utf8', timeout: 15_000 }),
  };
};

describe('deploy to two hosts', () => {
  let s: Sandbox;
  let hosts: TestHost[];
  const env = (extra = '') =>
    localEnv(
      s,
      SLOTS[0],
      [
        `DEPLOY_HOSTS=${hosts.map((h) => h.name).join(',')}`,
        'DEPLOY_PATH=/srv/skiff-hosts/hello',
        `DEPLOY_SSH_KEY=${join(s.dir, 'id_ed25519')}`,
        `DEPLOY_KNOWN_HOSTS=${join(s.dir, 'known_hosts')}`,
        `DEPLOY_PORTS=${SLOTS.join(',')}`,
        'DEPLOY_PROXY=caddy',
        `DEPLOY_CADDY_ADMIN=${ADMIN}`,
        `DEPLOY_PUBLIC_URL=http://127.0.0.1:${PUBLIC}`,
        'DEPLOY_DRAIN_SECONDS=2',
        // Each host's own switch flag: /srv/skiff-hosts is the one folder the test hosts do not share.
        'DEPLOY_SWITCH_DIR=/srv/skiff-hosts/switch',
        extra,
      ].join('\n'),
    );
  /** What the host's proxy answers, asked from inside the host. */
  const served = (h: TestHost) => h.sh(`curl -s -m 3 http://127.0.0.1:${PUBLIC}/ || true`).trim();
  const history = (h: TestHost) =>
    readFileSync(join(h.root, '.skiff/releases.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { id: string; version?: string; status: string; reason?: string });
  const caddyRoutes = (h: TestHost, method: string, path: string, body?: unknown) =>
    h.sh(`curl -s -X ${method} -H 'Content-Type: application/json' ${body ? `-d '${JSON.stringify(body)}'` : ''} http://${ADMIN}${path}`);

  beforeAll(async () => {
    s = makeSandbox('hosts');
    // One deploy key for both hosts, as a user's key would be authorized on each server.
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(s.dir, 'id_ed25519')]);
    hosts = [testHost(join(s.dir, 'host1'), '127.0.0.7', 2227), testHost(join(s.dir, 'host2'), '127.0.0.8', 2228)];
    for (const h of hosts) {
      mkdirSync(join(h.dir, 'sshd'), { recursive: true });
      for (const f of ['id_ed25519', 'id_ed25519.pub']) copyFileSync(join(s.dir, f), join(h.dir, 'sshd', f));
      // Fails (rather than skips) when a part is missing: CI installs them with test/infra/up.sh.
      execFileSync('bash', [NSHOST, 'up', h.dir, h.ip, String(h.port)], { stdio: 'pipe' });
      writeFileSync(join(h.dir, 'caddy.json'), JSON.stringify({ admin: { listen: ADMIN } }));
      const pid = readFileSync(join(h.dir, 'ns.pid'), 'utf8').trim();
      spawn('nsenter', ['-t', pid, '-n', '-m', '-p', 'caddy', 'run', '--config', join(h.dir, 'caddy.json')], {
        stdio: 'ignore',
        detached: true,
        env: { ...process.env, HOME: h.dir },
      }).unref();
    }
    writeFileSync(join(s.dir, 'known_hosts'), hosts.map((h) => readFileSync(join(h.dir, 'known_hosts'), 'utf8')).join(''));
    for (const h of hosts) {
      for (let i = 0; i < 100 && !caddyRoutes(h, 'GET', '/config/').startsWith('null'); i++) await new Promise((r) => setTimeout(r, 100));
    }
    s.writeEnv('t.env', env());
  });
  afterAll(() => {
    // The namespace's first process takes everything inside with it (sshd, Caddy, the app).
    for (const h of hosts ?? []) execFileSync('bash', [NSHOST, 'down', h.dir]);
    s.cleanup();
  });

  it('deploys to both hosts in parallel', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('deployed 1.0.0');
    expect(r.stdout).toContain('(2 hosts)');
    // The last lines say what each host was seen to serve, not what the run assumes.
    for (const h of hosts) expect(r.stdout).toMatch(new RegExp(`${h.name} serves 1\\.0\\.0 \\(release \\S+\\), healthy through`));
    for (const h of hosts) {
      expect(served(h)).toBe('hello 1.0.0 (t)');
      expect(history(h).at(-1)?.status).toBe('live');
    }
    // One release id on every host.
    expect(history(hosts[0] as TestHost).at(-1)?.id).toBe(history(hosts[1] as TestHost).at(-1)?.id);
    const status = await s.run('status', ['t']);
    expect(status.code).toBe(0);
    for (const h of hosts) expect(status.stdout).toContain(`hello t on ${h.name}`);
  });

  it('when the second host fails its health check, the first one stops its new release too (exit 1)', async () => {
    const [one, two] = hosts as [TestHost, TestHost];
    // The second host's data breaks: a new process there cannot open its database.
    const db = join(two.root, 'shared/data/app.db');
    renameSync(db, `${db}.aside`);
    mkdirSync(db);
    s.setVersion('1.0.1');
    s.writeEnv('t.env', env('DEPLOY_HEALTH_TIMEOUT=3'));
    const r = await s.run('deploy-vps', ['t']);
    rmSync(db, { recursive: true });
    renameSync(`${db}.aside`, db);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(two.name);
    expect(r.stderr).toContain(`undone on ${one.name}`);
    expect(r.stderr).not.toContain('every host serves the release it served before');
    for (const h of hosts) expect(r.stderr).toMatch(new RegExp(`${h.name} serves 1\\.0\\.0 \\(release \\S+\\), healthy through`));
    for (const h of hosts) {
      expect(served(h)).toBe('hello 1.0.0 (t)');
      expect(history(h).at(-1)).toMatchObject({ version: '1.0.1', status: 'failed' });
    }
    expect(history(one).at(-1)?.reason).toContain(`${two.name} failed`);
    // Only the old slot runs on each host.
    for (const h of hosts) expect(h.sh(`ps ax -o args | grep -c '^node server.js' || true`).trim()).toBe('1');
  });

  it('when the second host fails through its proxy after the switch, the first one switches back (exit 1)', async () => {
    const [one, two] = hosts as [TestHost, TestHost];
    // A route in front of skiff's on the second host answers 503: its new release passes the direct
    // health check, then fails the check through the proxy.
    caddyRoutes(two, 'PUT', `/config/apps/http/servers/skiff_${PUBLIC}/routes/0`, { handle: [{ handler: 'static_response', status_code: 503 }] });
    s.writeEnv('t.env', env());
    const r = await s.run('deploy-vps', ['t']);
    caddyRoutes(two, 'DELETE', `/config/apps/http/servers/skiff_${PUBLIC}/routes/0`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('through the proxy');
    for (const h of hosts) {
      expect(served(h)).toBe('hello 1.0.0 (t)');
      expect(history(h).at(-1)).toMatchObject({ version: '1.0.1', status: 'rolled-back' });
    }
    expect(history(one).at(-1)?.reason).toContain(`${two.name} failed`);
  });

  it('the next deploy succeeds on both, and a rollback goes back on both', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code).toBe(0);
    for (const h of hosts) expect(served(h)).toBe('hello 1.0.1 (t)');
    const back = await s.run('rollback', ['t']);
    expect(back.stderr).toBe('');
    expect(back.code).toBe(0);
    for (const h of hosts) {
      expect(served(h)).toBe('hello 1.0.0 (t)');
      expect(history(h).at(-1)?.status).toBe('bad');
    }
  });

  it('a host that is down stops the deploy before anything changes (exit 1)', async () => {
    const [one, two] = hosts as [TestHost, TestHost];
    const before = readFileSync(join(one.root, '.skiff/releases.jsonl'), 'utf8');
    process.kill(Number(readFileSync(join(two.dir, 'socat.pid'), 'utf8')), 'SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    const r = await s.run('deploy-vps', ['t']);
    execFileSync('bash', [NSHOST, 'up', two.dir, two.ip, String(two.port)], { stdio: 'pipe' });
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`${two.ip}`);
    expect(readFileSync(join(one.root, '.skiff/releases.jsonl'), 'utf8')).toBe(before);
    expect(existsSync(join(one.root, '.skiff/lock'))).toBe(false);
  });
});
