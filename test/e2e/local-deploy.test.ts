/**
 * End to end on this machine: the real scripts deploy the real example app with the process runtime
 * and the pidfile supervisor, with HOME pointed at a temporary folder.
 */
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { get, listening, localEnv, makeSandbox, pidsWithMarker, type Sandbox } from '../support/sandbox.ts';

const PORT = 18401;
const URL = `http://127.0.0.1:${PORT}`;

interface Health {
  status: string;
  version: string;
  environment: string;
}

/** Session leaders among the slot's processes: one per started slot, whatever the start command forks. */
const sessions = (s: Sandbox): number[] =>
  s.slotPids().filter((pid) => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]) === pid;
  });

const health = async (): Promise<Health | undefined> => {
  const r = await get(`${URL}/api/health`);
  return r.status === 200 ? (JSON.parse(r.text) as Health) : undefined;
};

describe('deploy on the local host', () => {
  let s: Sandbox;
  beforeAll(() => {
    s = makeSandbox('local');
    s.writeEnv('t.env', localEnv(s, PORT));
  });
  afterAll(() => s.cleanup());

  it('says nothing is deployed yet before the first deploy', async () => {
    const status = await s.run('status', ['t']);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/nothing deployed yet: run `npx tsx scripts\/deploy-vps.ts t` first/);
    const start = await s.run('start', ['t']);
    expect(start.code).toBe(2);
    expect(start.stderr.trim()).toMatch(/^error: nothing deployed to t on local yet: run .* first$/);
  });

  it('deploys the example and serves it', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`deployed 1.0.0`);
    expect(r.stdout).toContain(`${URL}/`);
    expect((await get(URL)).text).toContain('hello 1.0.0 (t)');
    expect(await health()).toMatchObject({ status: 'ok', version: '1.0.0', environment: 't' });

    const current = readlinkSync(join(s.deployPath, 'current'));
    expect(current).toMatch(/^releases\/\d{8}-\d{6}-1\.0\.0$/);
    expect(statSync(join(s.deployPath, 'shared/.env')).mode & 0o777).toBe(0o600);
    expect(existsSync(join(s.deployPath, 'shared/data/app.db'))).toBe(true);
    const state = JSON.parse(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')) as { live: string };
    expect(state.live).toBe('blue');
    const history = readFileSync(join(s.deployPath, '.skiff/releases.jsonl'), 'utf8').trim().split('\n');
    expect(JSON.parse(history.at(-1) as string)).toMatchObject({ version: '1.0.0', status: 'live' });
  });

  it('prints plain timestamped lines when not in a terminal', async () => {
    const r = await s.run('status', ['t']);
    expect(r.stdout).toContain('process   running');
    const again = await s.run('deploy-vps', ['t', '--dry-run']);
    expect(again.stdout).toMatch(/^\[\d\d:\d\d:\d\d\] /m);
  });

  it('redeploys a change: the new version serves and the old process is gone', async () => {
    const before = s.slotPids();
    s.setVersion('1.0.1');
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code).toBe(0);
    expect((await get(URL)).text).toContain('hello 1.0.1');
    // The slot's session (the start shell and the app) is new; none of the old processes is left.
    const after = s.slotPids();
    expect(after.length).toBeGreaterThan(0);
    expect(after.filter((p) => before.includes(p))).toEqual([]);
  });

  it('a release that fails its health check leaves the previous version serving and exits 1', async () => {
    s.setVersion('1.0.2');
    s.writeEnv('t.env', localEnv(s, PORT, 'HEALTH_FAIL=1\nDEPLOY_HEALTH_TIMEOUT=3'));
    const r = await s.run('deploy-vps', ['t']);
    s.writeEnv('t.env', localEnv(s, PORT));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no healthy answer .* within 3s \(last: HTTP 503\)/);
    expect(await health()).toMatchObject({ version: '1.0.1' });
    const history = readFileSync(join(s.deployPath, '.skiff/releases.jsonl'), 'utf8').trim().split('\n');
    expect(JSON.parse(history.at(-1) as string)).toMatchObject({ version: '1.0.2', status: 'failed' });
    expect(readlinkSync(join(s.deployPath, 'current'))).toMatch(/1\.0\.1$/);
  });

  it('a release that exits at once fails fast and shows its last log lines', async () => {
    s.writeEnv('t.env', localEnv(s, PORT, 'DEPLOY_START=node -e "console.error(\'boom at start\'); process.exit(3)"'));
    const t0 = Date.now();
    const r = await s.run('deploy-vps', ['t']);
    s.writeEnv('t.env', localEnv(s, PORT));
    expect(r.code).toBe(1);
    expect(Date.now() - t0).toBeLessThan(9000); // well under DEPLOY_HEALTH_TIMEOUT=10 plus the restart
    expect(r.stderr).toContain('the app exited before it answered its health check');
    expect(r.stderr).toContain('boom at start');
    expect(await health()).toMatchObject({ version: '1.0.1' });
  });

  it('Ctrl-C during the health check undoes the step: previous version serves, lock released, exit 1', async () => {
    s.writeEnv('t.env', localEnv(s, PORT, 'HEALTH_FAIL=1\nDEPLOY_HEALTH_TIMEOUT=60'));
    const deploy = s.start('deploy-vps', ['t']);
    for (let i = 0; i < 200 && !deploy.output().includes('started pid'); i++) await new Promise((r) => setTimeout(r, 50));
    deploy.child.kill('SIGINT');
    const r = await deploy.result;
    s.writeEnv('t.env', localEnv(s, PORT));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('SIGINT: stopping at the next safe point (send it again to exit at once)');
    expect(r.stderr.trim().split('\n').at(-1)).toBe('error: stopped by SIGINT');
    expect(r.stdout).toMatch(/previous release .*1\.0\.1 serves again/);
    expect(await health()).toMatchObject({ version: '1.0.1' });
    expect(existsSync(join(s.deployPath, '.skiff/lock'))).toBe(false);
  });

  it('stop, stop again, start, start again', async () => {
    const stop = await s.run('stop', ['t']);
    expect(stop.code).toBe(0);
    expect(stop.stdout).toMatch(/t: stopped pid \d+/);
    expect(s.slotPids()).toEqual([]);
    expect(listening(PORT)).toBe(false);

    const again = await s.run('stop', ['t']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('not running; nothing to stop');

    expect((await s.run('status', ['t'])).stdout).toMatch(/process +stopped/);

    const start = await s.run('start', ['t']);
    expect(start.code).toBe(0);
    expect(start.stdout).toMatch(/started 1\.0\.1 \(pid \d+\) on port 18401/);
    expect(await health()).toMatchObject({ version: '1.0.1' });

    const twice = await s.run('start', ['t']);
    expect(twice.code).toBe(0);
    expect(twice.stdout).toMatch(/already running \(pid \d+\); nothing started/);
    expect(sessions(s).length).toBe(1);
  });

  it('finds the process when its pid file was deleted', async () => {
    const [pid] = sessions(s);
    const { rmSync } = await import('node:fs');
    rmSync(join(s.deployPath, '.skiff/blue.pid'));
    const status = await s.run('status', ['t', '--json']);
    const report = JSON.parse(status.stdout) as { process: { state: string; pid: number; pidFileOk: boolean } };
    expect(report.process).toEqual({ state: 'running', pid, pidFileOk: false });
    const start = await s.run('start', ['t']);
    expect(start.stdout).toContain('already running');
    expect((await s.run('stop', ['t'])).stdout).toContain(`stopped pid ${pid}`);
    expect(s.slotPids()).toEqual([]);
  });

  it('reports a process killed by hand as crashed, and start works', async () => {
    expect((await s.run('start', ['t'])).code).toBe(0);
    for (const pid of s.slotPids()) process.kill(pid, 'SIGKILL');
    const status = await s.run('status', ['t']);
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(/crashed \(pid \d+ from the pid file is gone\)/);
    const start = await s.run('start', ['t']);
    expect(start.code).toBe(0);
    expect(start.stdout).toContain('the previous process');
    expect(await health()).toMatchObject({ status: 'ok' });
  });

  it('works when run from another directory', async () => {
    const r = await s.run('status', ['t'], { cwd: '/' });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('running');
  });

  it('shows the app log, and follows it', async () => {
    const r = await s.run('logs', ['t', '--lines', '50']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/listening on http:\/\/127\.0\.0\.1:18401/);
  });

  it('refuses a second deploy while one holds the lock (exit 3), and breaks a stale lock', async () => {
    const { mkdirSync, writeFileSync, rmSync } = await import('node:fs');
    const { hostname } = await import('node:os');
    const lock = join(s.deployPath, '.skiff/lock');
    mkdirSync(lock);
    const holder = { user: 'ci', host: hostname(), pid: process.pid, command: 'deploy', version: '9.9.9', started_at: 'x', heartbeat_at: 'x', token: 't' };
    writeFileSync(join(lock, 'holder.json'), JSON.stringify(holder));
    const held = await s.run('deploy-vps', ['t']);
    expect(held.code).toBe(3);
    expect(held.stderr.trim()).toMatch(new RegExp(`^error: local is locked by ci@.* pid ${process.pid} \\(deploy 9\\.9\\.9`));

    // A dead pid is proof only for a holder that ran on this machine (the same machine id).
    const { machineId } = await import('../../lib/state/lock.ts');
    writeFileSync(join(lock, 'holder.json'), JSON.stringify({ ...holder, pid: 999_999, machine: machineId() }));
    const stale = await s.run('stop', ['t']);
    expect(stale.code).toBe(0);
    expect(stale.stdout).toContain('breaking a stale lock');
    expect(existsSync(lock)).toBe(false);
    rmSync(lock, { recursive: true, force: true });
    expect((await s.run('start', ['t'])).code).toBe(0);
  });

  it('a lock with a stale heartbeat is reported, and broken only with --force-unlock', async () => {
    const { mkdirSync, writeFileSync } = await import('node:fs');
    const lock = join(s.deployPath, '.skiff/lock');
    mkdirSync(lock);
    const old = new Date(Date.now() - 120_000).toISOString();
    const holder = { user: 'ci', host: 'elsewhere', pid: 4242, command: 'deploy', version: '9.9.9', started_at: old, heartbeat_at: old, token: 't' };
    writeFileSync(join(lock, 'holder.json'), JSON.stringify(holder));
    // The age is holder.json's mtime by the host's clock, not the heartbeat_at it carries.
    const { utimesSync } = await import('node:fs');
    utimesSync(join(lock, 'holder.json'), new Date(old), new Date(old));
    const refused = await s.run('deploy-vps', ['t']);
    expect(refused.code).toBe(3);
    expect(refused.stderr.trim()).toMatch(/has not updated it for 1\d\ds\): pass --force-unlock to break it$/);
    const forced = await s.run('deploy-vps', ['t', '--force-unlock']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain('breaking a stale lock on local: ci@elsewhere pid 4242');
    expect(existsSync(lock)).toBe(false);
  });

  it('--lock-wait queues behind a running deploy, and a second deploy without it exits 3', async () => {
    s.writeEnv('t.env', localEnv(s, PORT, 'DEPLOY_BUILD=sleep 3'));
    const first = s.start('deploy-vps', ['t']);
    const lock = join(s.deployPath, '.skiff/lock/holder.json');
    for (let i = 0; i < 100 && !existsSync(lock); i++) await new Promise((r) => setTimeout(r, 50));
    const second = await s.run('deploy-vps', ['t']);
    expect(second.code).toBe(3);
    expect(second.stderr.trim()).toMatch(/^error: local is locked by .* \(deploy .*\): wait for it to finish, or pass --lock-wait SECONDS$/);
    const queued = await s.run('deploy-vps', ['t', '--lock-wait', '60']);
    expect((await first.result).code).toBe(0);
    expect(queued.code).toBe(0);
    expect(queued.stdout).toContain('waiting up to 60s');
    s.writeEnv('t.env', localEnv(s, PORT));
  });

  it('after kill -9 of a deploy the host still serves, and the next deploy breaks the dead lock', async () => {
    s.writeEnv('t.env', localEnv(s, PORT, 'DEPLOY_BUILD=sleep 5'));
    const victim = s.start('deploy-vps', ['t']);
    const lock = join(s.deployPath, '.skiff/lock/holder.json');
    for (let i = 0; i < 100 && !existsSync(lock); i++) await new Promise((r) => setTimeout(r, 50));
    // The pid in holder.json is the deploy itself (tsx runs it in a child of the process we started).
    const { pid } = JSON.parse(readFileSync(lock, 'utf8')) as { pid: number };
    process.kill(pid, 'SIGKILL');
    await victim.result;
    s.writeEnv('t.env', localEnv(s, PORT));
    expect(existsSync(lock)).toBe(true);
    expect(await health()).toMatchObject({ status: 'ok' });
    const next = await s.run('deploy-vps', ['t']);
    expect(next.code).toBe(0);
    expect(next.stdout).toMatch(/breaking a stale lock on local: .* is no longer running/);
  });

  it('keeps DEPLOY_KEEP_RELEASES releases, never the live one', async () => {
    s.writeEnv('t.env', localEnv(s, PORT, 'DEPLOY_KEEP_RELEASES=2'));
    for (const v of ['1.1.0', '1.1.1']) {
      s.setVersion(v);
      expect((await s.run('deploy-vps', ['t'])).code).toBe(0);
    }
    const releases = readdirSync(join(s.deployPath, 'releases')).sort();
    expect(releases.length).toBe(2);
    expect(releases.at(-1)).toMatch(/1\.1\.1$/);
    expect(releases.at(0)).toMatch(/1\.1\.0$/);
    const envs = readdirSync(join(s.deployPath, '.skiff/env'));
    expect(envs.sort()).toEqual(releases.map((r) => `${r}.env`));
    expect(await health()).toMatchObject({ version: '1.1.1' });
    s.writeEnv('t.env', localEnv(s, PORT));
  });

  it('a dry run changes nothing', async () => {
    const before = readdirSync(join(s.deployPath, 'releases')).sort();
    const pids = s.slotPids();
    s.setVersion('2.0.0');
    const r = await s.run('deploy-vps', ['t', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('[dry-run] local: ');
    expect(r.stdout).toContain('dry run: nothing was changed');
    expect(readdirSync(join(s.deployPath, 'releases')).sort()).toEqual(before);
    expect(s.slotPids()).toEqual(pids);
    expect(await health()).toMatchObject({ version: '1.1.1' });
  });
});

describe('the app receives env values literally', () => {
  let s: Sandbox;
  beforeAll(() => (s = makeSandbox('literal')));
  afterAll(() => s.cleanup());

  it('quotes, newlines, $() and backticks arrive as written, and nothing runs', async () => {
    const marker = join(s.dir, 'ran');
    const value = `it's 'q' $(touch ${marker}) \`touch ${marker}\` ; & | $HOME`;
    s.writeEnv('t.env', localEnv(s, 18402, 'DEPLOY_START=sh -c \'printf %s "$WEIRD" > "$DATA_DIR/weird"; exec node server.js\''));
    // dotenv: inside double quotes \n is a newline and nothing else is special.
    s.writeEnv('t.secrets.env', `WEIRD="${value}\\nline two"\n`, 0o600);
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code).toBe(0);
    expect(readFileSync(join(s.deployPath, 'shared/data/weird'), 'utf8')).toBe(`${value}\nline two`);
    expect(existsSync(marker)).toBe(false);
    // The secret's value is in no output and no world-readable file.
    expect(r.stdout + r.stderr).not.toContain('touch');
    expect(statSync(join(s.deployPath, 'shared/.env')).mode & 0o077).toBe(0);
  });
});

describe('the embedded default beside a dev server', () => {
  let s: Sandbox;
  const dev: Server[] = [];
  beforeAll(async () => {
    s = makeSandbox('default');
    for (const port of [8000, 3000]) {
      const server = createServer((_, res) => res.end(`dev ${port}`));
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
      dev.push(server);
    }
  });
  afterAll(async () => {
    for (const server of dev) server.close();
    for (const pid of pidsWithMarker(join(s.home, '.local/share/skiff/hello/local'))) process.kill(pid, 'SIGKILL');
    s.cleanup();
  });

  it('deploys env/local.env to 8001 without disturbing 8000 and 3000', async () => {
    const repoEnv = { SKIFF_ENV_DIR: '' };
    const r = await s.run('deploy-vps', ['local'], { env: repoEnv });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('http://127.0.0.1:8001/');
    expect((await get('http://127.0.0.1:8001/api/health')).status).toBe(200);
    expect((await get('http://127.0.0.1:8000/')).text).toBe('dev 8000');
    expect((await get('http://127.0.0.1:3000/')).text).toBe('dev 3000');
    const data = join(s.home, '.local/share/skiff/hello/local/shared/data/app.db');
    expect(lstatSync(data).isFile()).toBe(true);
    expect((await s.run('stop', ['local'], { env: repoEnv })).code).toBe(0);
  });
});

describe('bad input: one clear line, exit 2, nothing started or changed', () => {
  let s: Sandbox;
  beforeAll(() => (s = makeSandbox('bad')));
  afterEach(() => {
    expect(existsSync(s.deployPath)).toBe(false);
    expect(s.slotPids()).toEqual([]);
  });
  afterAll(() => s.cleanup());

  const cases: [string, string, readonly string[], RegExp][] = [
    ['unknown env name', '', ['nope'], /unknown environment "nope"/],
    ['env name with /', '', ['../t'], /environment name "\.\.\/t" is invalid/],
    ['env name with ..', '', ['..'], /environment name "\.\." is invalid/],
    ['APP_NAME missing', 'APP_NAME=', ['t'], /APP_NAME is empty, expected a name/],
    ['DEPLOY_PORTS not a number', 'DEPLOY_PORTS=abc', ['t'], /DEPLOY_PORTS is "abc", expected one port/],
    ['DEPLOY_PORTS out of range', 'DEPLOY_PORTS=70000', ['t'], /DEPLOY_PORTS is "70000"/],
    ['DEPLOY_PORTS equal', 'DEPLOY_PORTS=3001,3001\nDEPLOY_PROXY=caddy\nDEPLOY_PUBLIC_URL=http://127.0.0.1:8080', ['t'], /DEPLOY_PORTS is "3001,3001"/],
    ['DEPLOY_KEEP_RELEASES 0', 'DEPLOY_KEEP_RELEASES=0', ['t'], /DEPLOY_KEEP_RELEASES is "0", expected a whole number of at least 1/],
    ['DEPLOY_RUNTIME k8s', 'DEPLOY_RUNTIME=k8s', ['t'], /DEPLOY_RUNTIME is "k8s", expected `process` or `docker`/],
    ['APP_DIR missing', 'APP_DIR=/nonexistent/app', ['t'], /APP_DIR is "\/nonexistent\/app", expected an existing folder/],
    ['an unknown flag', '', ['t', '--force-everything'], /unknown option --force-everything for deploy-vps/],
    ['no env at all', '', [], /deploy-vps needs <env>/],
  ];

  it.each(cases)('%s', async (_, extra, args, message) => {
    s.writeEnv('t.env', `${localEnv(s, 18403)}\n${extra}`);
    const r = await s.run('deploy-vps', args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n').length).toBe(1);
  });

  it('a secrets file readable by others', async () => {
    s.writeEnv('t.env', localEnv(s, 18403));
    s.writeEnv('t.secrets.env', 'TOKEN=abc\n', 0o644);
    const r = await s.run('deploy-vps', ['t']);
    const { rmSync } = await import('node:fs');
    rmSync(join(s.envDir, 't.secrets.env'));
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(/^error: env\/t\.secrets\.env is readable by group or others \(mode 644\): run `chmod 600 .*`$/);
  });

  it('every script refuses an unknown flag and answers --help', async () => {
    for (const script of ['build', 'deploy-vps', 'status', 'start', 'stop', 'logs']) {
      const help = await s.run(script, ['--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toContain(`Usage: npx tsx scripts/${script}.ts`);
      expect(help.stdout).toContain('Exit codes:');
      const bad = await s.run(script, ['t', '--bogus']);
      expect(bad.code).toBe(2);
      expect(bad.stderr.trim()).toBe(`error: unknown option --bogus for ${script}: see \`npx tsx scripts/${script}.ts --help\``);
    }
  });
});
