/**
 * Secrets stay secret, and what never ships stays here: the real scripts deploy an app folder that
 * holds skiff's env folder, its local backups, key files, nested .env files and a .git to a real
 * OpenSSH server on 127.0.0.23, and the host is checked for every one of them; a deploy whose
 * start command prints a secret, a build that prints one from the process environment, and a
 * mistyped postgres URL must leave no secret value in stdout, stderr, the audit log or any file
 * under DEPLOY_PATH that others could read.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, localEnv, makeSandbox, ROOT, type Sandbox } from '../support/sandbox.ts';

const PORT = 18923;
const SSH = { ip: '127.0.0.23', port: 2243 };
const SECRET = 'sess-9f2c7e1a-top';
const PG_PASSWORD = 'hunter22-pg-pass';
const PROC_SECRET = 'proc-env-secret-5d81';

/** Files under `root` that anyone could read: the file is o+r and every folder from `root` down is o+x. */
const worldReadable = (root: string): string[] => {
  const found: string[] = [];
  const walk = (dir: string): void => {
    if (!(lstatSync(dir).mode & 0o001)) return;
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const st = lstatSync(path);
      if (st.isDirectory()) walk(path);
      else if (st.isFile() && st.mode & 0o004) found.push(path);
    }
  };
  walk(root);
  return found;
};

const holding = (files: readonly string[], text: string): string[] => files.filter((f) => readFileSync(f).includes(text));

describe('secrets and what never ships, over SSH', () => {
  let s: Sandbox;
  let sshDir: string;
  let envDir: string;
  const processEnv = () => ({ SKIFF_ENV_DIR: envDir, SKIFF_BACKUPS_DIR: join(s.appDir, 'backups') });
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
  const writeEnv = (text: string) => writeFileSync(join(envDir, 't.env'), text);
  const put = (rel: string, text = 'x\n') => {
    mkdirSync(dirname(join(s.appDir, rel)), { recursive: true });
    writeFileSync(join(s.appDir, rel), text);
  };
  /** The live release's id, as state.json on the host records it. */
  const liveId = (): string => {
    // The host's state.json as lib/state/state.ts writes it; a missing field fails the test below.
    const state = JSON.parse(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')) as { live: string; slots: Record<string, { release: string }> };
    return state.slots[state.live]?.release ?? 'none';
  };
  const liveDir = () => join(s.deployPath, 'releases', liveId());

  beforeAll(() => {
    s = makeSandbox('secrets-ship');
    sshDir = join(s.dir, 'sshd');
    // Fails (rather than skips) when sshd cannot be had: CI installs it with test/infra/up.sh.
    execFileSync('bash', [join(ROOT, 'test/infra/sshd.sh'), sshDir, SSH.ip, String(SSH.port)], { stdio: 'ignore' });
    // skiff's env folder and its local backups inside the app folder, as with APP_DIR=. in a repo.
    envDir = join(s.appDir, 'env');
    mkdirSync(envDir);
    writeEnv(env());
    writeFileSync(join(envDir, 't.secrets.env'), `SESSION_SECRET=${SECRET}\n`, { mode: 0o600 });
    put('backups/t/20261201-000000.tar');
    put('.npmrc', '//registry.npmjs.org/:_authToken=npm-token\n');
    put('certs/server.key');
    put('certs/server.pem');
    put('certs/chain.pem');
    put('deploy/id_rsa');
    put('deploy/id_ed25519.pub');
    put('lib/.env', 'NESTED=1\n');
    put('lib/.env.production', 'NESTED=1\n');
    put('config/app.secrets.env', 'X=1\n');
    put('.git/config');
    put('vendor/dep/.git/HEAD');
    put('vendor/dep/index.js');
    put('notes/todo.txt');
    put('tmp.log');
    put('.skiffignore', '# ours\nnotes/\n*.log\n!certs/chain.pem\n');
  });
  afterAll(() => {
    const pid = join(sshDir, 'sshd.pid');
    if (existsSync(pid)) process.kill(Number(readFileSync(pid, 'utf8')), 'SIGTERM');
    s.cleanup();
  });

  const NEVER_ON_HOST = [
    'env', 'backups', '.npmrc', 'certs/server.key', 'certs/server.pem', 'deploy/id_rsa', 'deploy/id_ed25519.pub', 'lib/.env', 'lib/.env.production',
    'config/app.secrets.env', '.git', 'vendor/dep/.git', 'notes', 'tmp.log',
  ];

  it('a dry run lists what the release leaves out, and changes nothing', async () => {
    const r = await s.run('deploy-vps', ['t', '--dry-run'], { env: processEnv() });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.includes('left out')) ?? '';
    for (const p of ['.git/', '.npmrc', 'backups/', "env/ (never ships: skiff's env folder)", 'lib/.env (never ships: an env file)', 'notes/ (.skiffignore: notes/)']) {
      expect(line).toContain(p);
    }
    expect(line).toContain('and 2 more');
    expect(existsSync(join(s.deployPath, 'releases'))).toBe(false);
  });

  it('deploys, and none of what never ships, nor what .skiffignore names, is on the host', async () => {
    const r = await s.run('deploy-vps', ['t'], { env: processEnv() });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((await get(`http://127.0.0.1:${PORT}/`)).text).toBe('hello 1.0.0 (t)\n');
    const live = liveDir();
    for (const p of NEVER_ON_HOST) expect(existsSync(join(live, p)), p).toBe(false);
    for (const p of ['server.js', 'certs/chain.pem', 'vendor/dep/index.js', '.skiffignore']) expect(existsSync(join(live, p)), p).toBe(true);
    // The manifest on the host lists what the tar carried, and no more.
    const manifest = readFileSync(join(s.deployPath, '.skiff/manifests', `${liveId()}.json`), 'utf8');
    for (const p of NEVER_ON_HOST) expect(manifest).not.toContain(`"${p}"`);
  });

  it('a delta ship leaves out the same: new secrets files and keys added since stay here', async () => {
    put('lib/deeper/.env.local', 'X=1\n');
    put('more/id_ecdsa');
    put('more/other.secrets.env');
    put('more/kept.txt', 'kept\n');
    s.setVersion('1.0.1');
    const r = await s.run('deploy-vps', ['t'], { env: processEnv() });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/shipped .* files sent, \d+ taken from the live release/);
    const live = liveDir();
    for (const p of [...NEVER_ON_HOST, 'lib/deeper/.env.local', 'more/id_ecdsa', 'more/other.secrets.env']) expect(existsSync(join(live, p)), p).toBe(false);
    expect(readFileSync(join(live, 'more/kept.txt'), 'utf8')).toBe('kept\n');
  });

  it("a start command that prints a secret: no secret in the output, the audit log or a file others can read", async () => {
    s.setVersion('1.0.2');
    writeEnv(env(['DEPLOY_START=echo "starting with $SESSION_SECRET and $DB_PASSWORD" >&2; exit 3', `DB_PASSWORD=${PG_PASSWORD}`, 'DEPLOY_HEALTH_TIMEOUT=3'].join('\n')));
    const r = await s.run('deploy-vps', ['t'], { env: processEnv() });
    writeEnv(env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the app exited before it answered its health check');
    // The log tail in the error had both values; each is there as [REDACTED].
    expect(r.stderr).toContain('starting with [REDACTED] and [REDACTED]');
    for (const text of [r.stdout, r.stderr]) {
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(PG_PASSWORD);
    }
    expect(readFileSync(join(s.deployPath, '.skiff/audit.log'), 'utf8')).not.toContain(SECRET);
    const readable = worldReadable(s.deployPath);
    expect(readable.length).toBeGreaterThan(0);
    expect(holding(readable, SECRET)).toEqual([]);
    expect(holding(readable, PG_PASSWORD)).toEqual([]);
    // The previous release still serves.
    expect((await get(`http://127.0.0.1:${PORT}/`)).text).toBe('hello 1.0.1 (t)\n');
  });

  it('a build that prints a secret from the process environment: not in the output', async () => {
    writeEnv(env('DEPLOY_BUILD=echo "building with $SESSION_SECRET"; echo "token $SESSION_SECRET" >&2; exit 1'));
    const r = await s.run('deploy-vps', ['t'], { env: { ...processEnv(), SESSION_SECRET: PROC_SECRET } });
    writeEnv(env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('build failed (exit 1)');
    expect(`${r.stdout}${r.stderr}`).toContain('token [REDACTED]');
    for (const text of [r.stdout, r.stderr]) {
      expect(text).not.toContain(PROC_SECRET);
      expect(text).not.toContain(SECRET);
    }
  });

  it.each([
    ['a mistyped scheme', `postgress://app:${PG_PASSWORD}@127.0.0.1/app`, `"postgress://app:[REDACTED]@127.0.0.1/app"`],
    ['a missing colon', `postgres//app:${PG_PASSWORD}@127.0.0.1/app`, `"postgres//app:[REDACTED]@127.0.0.1/app"`],
    ['a port that is no number (the URL does not parse)', `postgres://app:${PG_PASSWORD}@127.0.0.1:notaport/app`, `"postgres://app:[REDACTED]@127.0.0.1:notaport/app"`],
  ])('BACKUP_POSTGRES_URL with %s: exit 2, one line, the password masked, the host untouched', async (_name, url, shown) => {
    const audit = readFileSync(join(s.deployPath, '.skiff/audit.log'), 'utf8');
    const state = readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8');
    for (const [where, extra] of [
      ['env/t.env', `BACKUP_POSTGRES_URL=${url}`],
      ['environment', ''],
    ] as const) {
      writeEnv(env(extra));
      const r = await s.run('backup', ['t'], { env: { ...processEnv(), ...(where === 'environment' ? { BACKUP_POSTGRES_URL: url } : {}) } });
      writeEnv(env());
      expect(r.code).toBe(2);
      // One line: the key, the value with its password masked, then what was expected.
      expect(r.stderr.startsWith(`error: ${where}: BACKUP_POSTGRES_URL is ${shown} (a secret: its password not shown), expected a postgres:// URL`)).toBe(true);
      expect(r.stderr.split('\n')).toHaveLength(2);
      expect(r.stderr).not.toContain(PG_PASSWORD);
      expect(r.stdout).not.toContain(PG_PASSWORD);
    }
    expect(readFileSync(join(s.deployPath, '.skiff/audit.log'), 'utf8')).toBe(audit);
    expect(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')).toBe(state);
  });
});
