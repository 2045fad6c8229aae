/**
 * DEPLOY_RELEASE_CMD and DEPLOY_MIGRATE through the real scripts. The release command runs over a
 * real OpenSSH server on 127.0.0.41 (npm installs a dependency on the host, and is skipped on a
 * code-only redeploy); the migration runs once across two "servers" (test/infra/nshost.sh, each
 * with its own sshd, Caddy and /srv) against one SQLite database that both hosts reach, as two app
 * servers reach one database server. A failing or hanging command leaves every host as it was.
 */
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, localEnv, makeSandbox, ROOT, type Sandbox } from '../support/sandbox.ts';

/** A small app with one dependency from a tarball in the app (npm installs it offline) and a health check. */
const writeApp = (dir: string, version: string): void => {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'vendor'), { recursive: true });
  const pkg = join(dir, '.pkg');
  mkdirSync(pkg);
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'tiny-pad', version: '1.0.0', main: 'index.js' }));
  writeFileSync(join(pkg, 'index.js'), 'module.exports = (s, n) => String(s).padStart(n);\n');
  execFileSync('npm', ['pack', '--silent', '--pack-destination', join(dir, 'vendor')], { cwd: pkg, stdio: 'ignore' });
  rmSync(pkg, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'hello', version, private: true, dependencies: { 'tiny-pad': 'file:vendor/tiny-pad-1.0.0.tgz' } }, null, 2));
  execFileSync('npm', ['install', '--package-lock-only', '--offline', '--no-audit', '--no-fund'], { cwd: dir, stdio: 'ignore' });
  writeServer(dir, version);
};

/** The server answers `hello <version>` and its health; it needs its dependency when REQUIRE_PAD is set. */
const writeServer = (dir: string, version: string): void => {
  writeFileSync(
    join(dir, 'server.cjs'),
    [
      "const http = require('node:http');",
      "if (process.env.REQUIRE_PAD) require('tiny-pad');",
      `http.createServer((req, res) => { res.end(req.url === '/api/health' ? 'ok' : 'hello ${version}'); }).listen(Number(process.env.PORT), '127.0.0.1');`,
      "process.on('SIGTERM', () => process.exit(0));",
    ].join('\n'),
  );
};

interface HistoryLine {
  id: string;
  status: string;
  reason?: string;
  backupId?: string;
  releaseCmd?: { status: string; exitCode?: number; reusedFrom?: string };
  migration?: { host: string; status: string; exitCode?: number };
}
const historyOf = (root: string): HistoryLine[] =>
  readFileSync(join(root, '.skiff/releases.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as HistoryLine);

describe('DEPLOY_RELEASE_CMD over SSH', () => {
  const PORT = 18941;
  const SSH = { ip: '127.0.0.41', port: 2241 };
  let s: Sandbox;
  let sshDir: string;
  const count = () => (existsSync(join(s.deployPath, 'shared/data/installs.log')) ? readFileSync(join(s.deployPath, 'shared/data/installs.log'), 'utf8').trim().split('\n').length : 0);
  const env = (extra = '') =>
    localEnv(
      s,
      PORT,
      [
        `DEPLOY_HOSTS=${userInfo().username}@${SSH.ip}:${SSH.port}`,
        `DEPLOY_SSH_KEY=${join(sshDir, 'id_ed25519')}`,
        `DEPLOY_KNOWN_HOSTS=${join(sshDir, 'known_hosts')}`,
        'DEPLOY_START=node server.cjs',
        'REQUIRE_PAD=1',
        // Installs on the host, and counts its runs in shared/data (DATA_DIR is the release's environment).
        'DEPLOY_RELEASE_CMD=npm ci --omit=dev --offline --no-audit --no-fund && echo installed >>"$DATA_DIR/installs.log"',
        'DEPLOY_RELEASE_CACHE=node_modules:package-lock.json',
        extra,
      ].join('\n'),
    );
  const liveRelease = () => readlinkSync(join(s.deployPath, 'current')).replace(/^releases\//, '');

  beforeAll(() => {
    s = makeSandbox('hooks-ssh');
    sshDir = join(s.dir, 'sshd');
    // Fails (rather than skips) when sshd cannot be had: CI installs it with test/infra/up.sh.
    execFileSync('bash', [join(ROOT, 'test/infra/sshd.sh'), sshDir, SSH.ip, String(SSH.port)], { stdio: 'ignore' });
    writeApp(s.appDir, '1.0.0');
    s.writeEnv('t.env', env());
  });
  afterAll(() => {
    const pid = join(sshDir, 'sshd.pid');
    if (existsSync(pid)) process.kill(Number(readFileSync(pid, 'utf8')), 'SIGTERM');
    s.cleanup();
  });

  it('installs the dependencies on the host before the release starts', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Run DEPLOY_RELEASE_CMD in the new release');
    expect(r.stdout).toContain('added 1 package'); // npm's own line, streamed into the progress output
    expect((await get(`http://127.0.0.1:${PORT}/`)).text).toBe('hello 1.0.0');
    expect(existsSync(join(s.deployPath, 'releases', liveRelease(), 'node_modules/tiny-pad/index.js'))).toBe(true);
    expect(count()).toBe(1);
    expect(historyOf(s.deployPath).at(-1)?.releaseCmd?.status).toBe('ran');
  });

  it('a code-only redeploy takes node_modules from the live release and skips the command', async () => {
    const before = liveRelease();
    writeServer(s.appDir, '1.0.1');
    s.setVersion('1.0.1');
    // setVersion rewrites package.json only: the lock file, the cache's input, is unchanged.
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`node_modules taken from ${before}; DEPLOY_RELEASE_CMD skipped`);
    expect((await get(`http://127.0.0.1:${PORT}/`)).text).toBe('hello 1.0.1');
    expect(count()).toBe(1);
    const file = (id: string) => statSync(join(s.deployPath, 'releases', id, 'node_modules/tiny-pad/index.js'));
    expect(file(liveRelease()).ino).toBe(file(before).ino); // hard-linked, not copied
    expect(historyOf(s.deployPath).at(-1)?.releaseCmd).toMatchObject({ status: 'skipped', reusedFrom: before });
  });

  it('a changed lock file runs the command again', async () => {
    const lock = join(s.appDir, 'package-lock.json');
    writeFileSync(lock, `${readFileSync(lock, 'utf8')}\n`); // other bytes, the same dependencies
    s.setVersion('1.0.2');
    writeServer(s.appDir, '1.0.2');
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('changed since');
    expect(count()).toBe(2);
  });

  it('a release command that fails stops the deploy: nothing switched, the live release untouched (exit 1)', async () => {
    const live = liveRelease();
    s.setVersion('1.0.3');
    writeServer(s.appDir, '1.0.3');
    s.writeEnv('t.env', env('DEPLOY_RELEASE_CACHE=\nDEPLOY_RELEASE_CMD=echo compiling; echo "gcc: not found" >&2; exit 3'));
    const r = await s.run('deploy-vps', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('DEPLOY_RELEASE_CMD failed (exit 3); its last lines: compiling | gcc: not found');
    expect(r.stderr).toContain(`nothing was switched: ${live} still serves`);
    expect(liveRelease()).toBe(live);
    expect((await get(`http://127.0.0.1:${PORT}/`)).text).toBe('hello 1.0.2');
    expect(historyOf(s.deployPath).at(-1)).toMatchObject({ status: 'failed', releaseCmd: { status: 'failed', exitCode: 3 } });
  });

  it('a secret the release command prints is redacted in the output and the records', async () => {
    const secret = 'tok-9f8e7d6c5b4a-release';
    s.writeEnv('t.secrets.env', `API_TOKEN=${secret}\n`, 0o600);
    s.setVersion('1.0.4');
    writeServer(s.appDir, '1.0.4');
    s.writeEnv('t.env', env('DEPLOY_RELEASE_CACHE=\nDEPLOY_RELEASE_CMD=echo "token is $API_TOKEN"; echo "bad token $API_TOKEN" >&2; exit 1'));
    const r = await s.run('deploy-vps', ['t']);
    s.writeEnv('t.env', env());
    rmSync(join(s.envDir, 't.secrets.env'));
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain('token is [REDACTED]');
    expect(r.stderr).toContain('bad token [REDACTED]');
    expect(r.stdout + r.stderr).not.toContain(secret);
    for (const f of ['.skiff/releases.jsonl', '.skiff/audit.log']) expect(readFileSync(join(s.deployPath, f), 'utf8')).not.toContain(secret);
  });
});

describe('DEPLOY_MIGRATE on two hosts', () => {
  const NSHOST = join(ROOT, 'test/infra/nshost.sh');
  const PUBLIC = 18945;
  const SLOTS = [18946, 18947] as const;
  const ADMIN = '127.0.0.1:2019'; // each host has its own loopback
  interface TestHost {
    readonly name: string;
    readonly dir: string;
    readonly root: string;
    sh(command: string): string;
  }
  let s: Sandbox;
  let hosts: TestHost[];
  /** The database both hosts reach (the sandbox is outside their /srv, so they share it). */
  let db: string;
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
        'DEPLOY_DRAIN_SECONDS=1',
        'DEPLOY_START=node server.cjs',
        `DB_PATH=${db}`,
        extra,
      ].join('\n'),
    );
  const served = (h: TestHost) => h.sh(`curl -s -m 3 http://127.0.0.1:${PUBLIC}/ || true`).trim();
  const columns = () => execFileSync('sqlite3', [db, 'SELECT name FROM pragma_table_info(\'notes\')'], { encoding: 'utf8' }).trim().split('\n');
  const caddyConfig = (h: TestHost) => h.sh(`curl -s http://${ADMIN}/config/`);

  beforeAll(async () => {
    s = makeSandbox('hooks-hosts');
    db = join(s.dir, 'db/app.db');
    mkdirSync(join(s.dir, 'db'));
    execFileSync('sqlite3', [db, 'CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)']);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(s.dir, 'id_ed25519')]);
    hosts = [
      { ip: '127.0.0.42', port: 2242, n: 1 },
      { ip: '127.0.0.43', port: 2243, n: 2 },
    ].map(({ ip, port, n }) => {
      const dir = join(s.dir, `host${n}`);
      const pid = () => readFileSync(join(dir, 'ns.pid'), 'utf8').trim();
      return {
        name: `root@${ip}:${port}`,
        dir,
        root: join(dir, 'fs/hello'),
        ip,
        port,
        sh: (command: string) => execFileSync('nsenter', ['-t', pid(), '-n', '-m', '-p', 'sh', '-c', command], { encoding: 'utf8', timeout: 15_000 }),
      };
    });
    for (const h of hosts as (TestHost & { ip: string; port: number })[]) {
      mkdirSync(join(h.dir, 'sshd'), { recursive: true });
      for (const f of ['id_ed25519', 'id_ed25519.pub']) copyFileSync(join(s.dir, f), join(h.dir, 'sshd', f));
      // Fails (rather than skips) when a part is missing: CI installs them with test/infra/up.sh.
      execFileSync('bash', [NSHOST, 'up', h.dir, h.ip, String(h.port)], { stdio: 'pipe' });
      writeFileSync(join(h.dir, 'caddy.json'), JSON.stringify({ admin: { listen: ADMIN } }));
      const pid = readFileSync(join(h.dir, 'ns.pid'), 'utf8').trim();
      spawn('nsenter', ['-t', pid, '-n', '-m', '-p', 'caddy', 'run', '--config', join(h.dir, 'caddy.json')], { stdio: 'ignore', detached: true, env: { ...process.env, HOME: h.dir } }).unref();
    }
    writeFileSync(join(s.dir, 'known_hosts'), hosts.map((h) => readFileSync(join(h.dir, 'known_hosts'), 'utf8')).join(''));
    for (const h of hosts) {
      for (let i = 0; i < 100 && !caddyConfig(h).startsWith('null'); i++) await new Promise((r) => setTimeout(r, 100));
    }
    writeApp(s.appDir, '1.0.0');
    s.writeEnv('t.env', env());
    const first = await s.run('deploy-vps', ['t']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
  });
  afterAll(() => {
    for (const h of hosts ?? []) execFileSync('bash', [NSHOST, 'down', h.dir]);
    s.cleanup();
  });

  it('adds a column once, on the first host, before the switch', async () => {
    s.setVersion('1.1.0');
    writeServer(s.appDir, '1.1.0');
    // ALTER TABLE ADD COLUMN fails the second time: a second run would fail the deploy.
    s.writeEnv('t.env', env(`DEPLOY_MIGRATE=sqlite3 "$DB_PATH" 'ALTER TABLE notes ADD COLUMN tag TEXT' && echo "migrated on $(hostname) by $APP_VERSION"`));
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Run DEPLOY_MIGRATE on ${hosts[0]?.name}`);
    expect(r.stdout).toContain('migrated on');
    expect(columns()).toEqual(['id', 'body', 'tag']);
    for (const h of hosts) {
      expect(served(h)).toBe('hello 1.1.0');
      const last = historyOf(h.root).at(-1);
      expect(last).toMatchObject({ status: 'live', migration: { host: hosts[0]?.name, status: 'ok' } });
    }
    // The order: started and healthy in its slot, then migrated, then switched.
    const out = r.stdout;
    expect(out.indexOf('Start in the idle slot')).toBeLessThan(out.indexOf('Run DEPLOY_MIGRATE'));
    expect(out.indexOf('Run DEPLOY_MIGRATE')).toBeLessThan(out.indexOf('Switch caddy'));
  });

  it('a rollback over it warns that the schema moved and points at --with-data', async () => {
    const r = await s.run('rollback', ['t', '--yes']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: \S+ ran DEPLOY_MIGRATE, so the schema moved since \S+: .* roll back with --with-data/);
    for (const h of hosts) expect(served(h)).toBe('hello 1.0.0');
  });

  it('a failing migration stops the deploy: nothing switched, the new slots stopped, the backup recorded (exit 1)', async () => {
    s.setVersion('1.2.0');
    writeServer(s.appDir, '1.2.0');
    s.writeEnv('t.env', env(`DEPLOY_BACKUP_BEFORE=true\nBACKUP_PATHS=data\nDEPLOY_MIGRATE=sqlite3 "$DB_PATH" 'ALTER TABLE nosuch ADD COLUMN x TEXT'`));
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('DEPLOY_MIGRATE failed (exit 1); its last lines: ');
    expect(r.stderr).toContain('no such table: nosuch');
    expect(r.stderr).toMatch(/backup \S+-before-deploy \(DEPLOY_BACKUP_BEFORE\) holds the data of before it/);
    for (const h of hosts) {
      expect(served(h)).toBe('hello 1.0.0');
      const last = historyOf(h.root).at(-1);
      expect(last).toMatchObject({ status: 'failed', migration: { host: hosts[0]?.name, status: 'failed', exitCode: 1 } });
      expect(last?.backupId).toMatch(/-before-deploy$/);
      // Only the slot that served before runs.
      expect(h.sh(`curl -s -o /dev/null -w "%{http_code}" http://127.0.0.1:${SLOTS[1]}/api/health || true`).trim()).toBe('000');
    }
  });

  it('a migration that hangs is stopped at DEPLOY_MIGRATE_TIMEOUT, and so is the deploy (exit 1)', async () => {
    s.setVersion('1.3.0');
    writeServer(s.appDir, '1.3.0');
    s.writeEnv('t.env', env('DEPLOY_MIGRATE=echo waiting for a lock; sleep 3599\nDEPLOY_MIGRATE_TIMEOUT=2'));
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('DEPLOY_MIGRATE stopped at its deadline of 2 s (DEPLOY_MIGRATE_TIMEOUT); its last lines: waiting for a lock');
    for (const h of hosts) {
      expect(served(h)).toBe('hello 1.0.0');
      expect(historyOf(h.root).at(-1)).toMatchObject({ status: 'failed', migration: { status: 'timed-out' } });
    }
    // Nothing of it is left running on the host.
    expect(hosts[0]?.sh('pgrep -fx "sleep 3599" || true').trim()).toBe('');
  });
});
