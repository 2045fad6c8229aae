/**
 * The Python example (examples/python: FastAPI on uvicorn, Alembic, SQLite) deployed over SSH to a
 * real OpenSSH server on 127.0.0.41 behind a real Caddy: its venv built on the host by
 * DEPLOY_RELEASE_CMD from Debian's python3 packages (no PyPI here) and reused while
 * requirements.txt is unchanged, its migrations run by DEPLOY_MIGRATE, redeployed under load with a
 * new migration, and rolled back. Then the same app as an image (its Dockerfile on
 * local/python-base:12, test/infra/python-image.sh) with the docker runtime behind nginx, its
 * migrations run by DEPLOY_MIGRATE in the new container.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProbe } from '../support/probe.ts';
import { caddyUnderTest, nginxUnderTest } from '../support/proxies.ts';
import { get, makeSandbox, ROOT, type Sandbox } from '../support/sandbox.ts';

const SSH = { ip: '127.0.0.41', port: 2261 };
const SSH_DOCKER = { ip: '127.0.0.41', port: 2263 };
const SSH_PG = { ip: '127.0.0.41', port: 2264 };
// Debian's python3 by its path: on this machine a `python3` earlier on PATH may be another one,
// without Debian's packages. A user's env file says `python3`.
const PY = '/usr/bin/python3';
const RELEASE_CMD = `${PY} -m venv --system-site-packages .venv && .venv/bin/pip install --quiet --disable-pip-version-check --no-index --no-deps -r requirements.txt`;

interface Record_ {
  id: string;
  version: string;
  status: string;
  releaseCmd?: { status: string };
  migration?: { status: string };
}

/** A sandbox whose app is a copy of examples/python (without a local .venv or caches). */
const pythonSandbox = (name: string): Sandbox & { setPyVersion(v: string): void } => {
  const s = makeSandbox(name);
  rmSync(s.appDir, { recursive: true, force: true });
  const src = join(ROOT, 'examples/python');
  cpSync(src, s.appDir, { recursive: true, filter: (p) => !/\/(\.venv|__pycache__|data)(\/|$)/.test(p.slice(src.length)) });
  return {
    ...s,
    setPyVersion(v: string) {
      const file = join(s.appDir, 'pyproject.toml');
      writeFileSync(file, readFileSync(file, 'utf8').replace(/^version = ".*"$/m, `version = "${v}"`));
    },
  };
};

const history = (deployPath: string): Record_[] => {
  const byId = new Map<string, Record_>();
  for (const line of readFileSync(join(deployPath, '.skiff/releases.jsonl'), 'utf8').trim().split('\n')) {
    const r = JSON.parse(line) as Record_;
    byId.set(r.id, { ...byId.get(r.id), ...r });
  }
  return [...byId.values()];
};

const sqlite = (db: string, sql: string): string => execFileSync('sqlite3', [db, sql], { encoding: 'utf8' }).trim();

/** A migration file that adds a nullable column (expand: the code before it runs on the new schema). */
const addColumnMigration = (appDir: string) =>
  writeFileSync(
    join(appDir, 'migrations/versions/0002_note_tag.py'),
    [
      '"""notes.tag: a nullable column"""',
      'from alembic import op',
      'import sqlalchemy as sa',
      '',
      'revision = "0002"',
      'down_revision = "0001"',
      'branch_labels = None',
      'depends_on = None',
      '',
      '',
      'def upgrade():',
      '    op.add_column("notes", sa.Column("tag", sa.Text, nullable=True))',
      '',
      '',
      'def downgrade():',
      '    op.drop_column("notes", "tag")',
      '',
    ].join('\n'),
  );

type Addr = { ip: string; port: number };
const sshd = (dir: string, to: Addr = SSH) => execFileSync('bash', [join(ROOT, 'test/infra/sshd.sh'), dir, to.ip, String(to.port)], { stdio: 'ignore' });
const sshKeys = (dir: string, to: Addr = SSH) =>
  [`DEPLOY_HOSTS=${userInfo().username}@${to.ip}:${to.port}`, `DEPLOY_SSH_KEY=${join(dir, 'id_ed25519')}`, `DEPLOY_KNOWN_HOSTS=${join(dir, 'known_hosts')}`];

describe('the Python example, process runtime over SSH behind Caddy', () => {
  let s: ReturnType<typeof pythonSandbox>;
  let sshDir: string;
  const caddy = caddyUnderTest(18940);
  const url = `http://127.0.0.1:${caddy.publicPort}`;
  const db = () => join(s.deployPath, 'shared/data/app.db');
  const env = (extra: readonly string[] = []) =>
    [
      'APP_NAME=hello-py',
      `APP_DIR=${s.appDir}`,
      ...sshKeys(sshDir),
      `DEPLOY_PATH=${s.deployPath}`,
      'DEPLOY_RUNTIME=process',
      `DEPLOY_PORTS=${caddy.slots.join(',')}`,
      `DEPLOY_PUBLIC_URL=${url}`,
      caddy.keys(s.dir),
      `DEPLOY_RELEASE_CMD=${RELEASE_CMD}`,
      'DEPLOY_RELEASE_CACHE=.venv:requirements.txt',
      'DEPLOY_MIGRATE=.venv/bin/python -m alembic upgrade head',
      'DEPLOY_START=.venv/bin/python -m app',
      'DEPLOY_HEALTH_PATH=/api/health',
      'DEPLOY_HEALTH_TIMEOUT=30',
      'DEPLOY_DRAIN_SECONDS=3',
      'DEPLOY_KEEP_RELEASES=5',
      'BACKUP_SQLITE=data/app.db',
      'LOG_LEVEL=info',
      ...extra,
    ].join('\n');
  const throughProxy = async () => (await get(url)).text.trim();

  beforeAll(async () => {
    s = pythonSandbox('python-example');
    sshDir = join(s.dir, 'sshd');
    // Fails (rather than skips) when a component cannot be had: CI installs them (test/infra/up.sh).
    sshd(sshDir);
    await caddy.start(s.dir);
    s.writeEnv('t.env', env());
  });
  afterAll(() => {
    caddy.stop();
    const pid = join(sshDir, 'sshd.pid');
    if (existsSync(pid)) spawnSync('kill', [readFileSync(pid, 'utf8').trim()]);
    s?.cleanup();
  });

  it('the first deploy builds the venv on the host, runs the migration, and serves through Caddy', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('deployed 1.0.0');
    expect(await throughProxy()).toBe('hello 1.0.0 (t)');
    expect(sqlite(db(), 'SELECT version_num FROM alembic_version')).toBe('0001');
    const health = JSON.parse((await get(`${url}/api/health`)).text) as { status: string; schema: string; checks: Record<string, { ok: boolean }> };
    expect(health).toMatchObject({ status: 'ok', schema: '0001', checks: { dataDir: { ok: true }, database: { ok: true } } });
    const note = await fetch(`${url}/api/notes`, { method: 'POST', body: JSON.stringify({ body: 'kept across deploys' }) });
    expect(note.status).toBe(201);
    expect(history(s.deployPath).at(-1)).toMatchObject({ version: '1.0.0', status: 'live', releaseCmd: { status: 'ran' }, migration: { status: 'ok' } });
  });

  it('a code-only redeploy under load with a new migration: the venv is reused, the column added, no failed request', async () => {
    addColumnMigration(s.appDir);
    s.setPyVersion('1.1.0');
    const probe = startProbe(`${url}/api/health`, { headers: { connection: 'close' }, timeoutMs: 5000 });
    const r = await s.run('deploy-vps', ['t']);
    const result = await probe.stop();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(result.requests).toBeGreaterThan(50);
    expect(result.failures, `failed requests: ${result.firstErrors.join('; ')}`).toBe(0);
    expect(r.stdout).toContain('DEPLOY_RELEASE_CMD skipped');
    expect(await throughProxy()).toBe('hello 1.1.0 (t)');
    expect(sqlite(db(), 'SELECT version_num FROM alembic_version')).toBe('0002');
    expect(sqlite(db(), 'SELECT count(*) FROM pragma_table_info(\'notes\') WHERE name = \'tag\'')).toBe('1');
    expect((await get(`${url}/api/notes`)).text).toContain('kept across deploys');
    expect(history(s.deployPath).at(-1)).toMatchObject({ version: '1.1.0', status: 'live', releaseCmd: { status: 'skipped' }, migration: { status: 'ok' } });
  });

  it('a changed requirements.txt builds the venv again', async () => {
    const file = join(s.appDir, 'requirements.txt');
    writeFileSync(file, `${readFileSync(file, 'utf8')}# one more line\n`);
    s.setPyVersion('1.1.1');
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('changed since');
    expect(history(s.deployPath).at(-1)).toMatchObject({ version: '1.1.1', status: 'live', releaseCmd: { status: 'ran' } });
  });

  it('a migration that fails: nothing is switched (exit 1), the schema and the live release are as they were', async () => {
    writeFileSync(
      join(s.appDir, 'migrations/versions/0003_broken.py'),
      'revision = "0003"\ndown_revision = "0002"\nbranch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n    raise RuntimeError("this migration is broken")\n\n\ndef downgrade():\n    pass\n',
    );
    s.setPyVersion('1.2.0');
    const r = await s.run('deploy-vps', ['t']);
    rmSync(join(s.appDir, 'migrations/versions/0003_broken.py'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('DEPLOY_MIGRATE failed');
    expect(r.stderr).toContain('this migration is broken');
    expect(await throughProxy()).toBe('hello 1.1.1 (t)');
    expect(sqlite(db(), 'SELECT version_num FROM alembic_version')).toBe('0002');
    expect(history(s.deployPath).at(-1)).toMatchObject({ version: '1.2.0', status: 'failed', migration: { status: 'failed' } });
  });

  it('rollback under load: the previous code serves on the new schema (expand), no failed request', async () => {
    const probe = startProbe(`${url}/api/health`, { headers: { connection: 'close' }, timeoutMs: 5000 });
    const r = await s.run('rollback', ['t']);
    const result = await probe.stop();
    expect(r.code, r.stderr).toBe(0);
    expect(result.failures, `failed requests: ${result.firstErrors.join('; ')}`).toBe(0);
    // The releases after the target ran DEPLOY_MIGRATE: the rollback says the schema stays.
    expect(r.stderr).toContain('ran DEPLOY_MIGRATE, so the schema moved');
    expect(await throughProxy()).toBe('hello 1.1.0 (t)');
    expect((await get(`${url}/api/notes`)).text).toContain('kept across deploys');
    expect(sqlite(db(), 'SELECT version_num FROM alembic_version')).toBe('0002');
  });

  it('a bad setting stops the app at start with one line, and the live release keeps serving', async () => {
    s.setPyVersion('1.2.1');
    s.writeEnv('t.env', env(['SLOW_MS=soon']));
    const r = await s.run('deploy-vps', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("SLOW_MS must be a whole number of milliseconds, not 'soon'");
    expect(await throughProxy()).toBe('hello 1.1.0 (t)');
  });
});

describe('the Python example, docker runtime over SSH behind nginx', () => {
  const APP = 'hello-py-dk';
  let s: ReturnType<typeof pythonSandbox>;
  let sshDir: string;
  const nginx = nginxUnderTest(18960);
  const url = `http://127.0.0.1:${nginx.publicPort}`;
  const env = (extra: readonly string[] = []) =>
    [
      `APP_NAME=${APP}`,
      `APP_DIR=${s.appDir}`,
      ...sshKeys(sshDir, SSH_DOCKER),
      `DEPLOY_PATH=${s.deployPath}`,
      'DEPLOY_RUNTIME=docker',
      'DEPLOY_DOCKER_BUILD_ARGS=BASE=local/python-base:12,OFFLINE=1',
      `DEPLOY_PORTS=${nginx.slots.join(',')}`,
      `DEPLOY_PUBLIC_URL=${url}`,
      nginx.keys(s.dir),
      'DEPLOY_HEALTH_PATH=/api/health',
      'DEPLOY_HEALTH_TIMEOUT=30',
      'DEPLOY_DRAIN_SECONDS=3',
      // In the new container, once it is healthy, before the switch.
      'DEPLOY_MIGRATE=/venv/bin/python -m alembic upgrade head',
      ...extra,
    ].join('\n');
  const throughProxy = async () => (await get(url)).text.trim();

  beforeAll(async () => {
    // The base image: Debian's python3 packages (no registry here). Fails when it cannot be made.
    execFileSync('bash', [join(ROOT, 'test/infra/python-image.sh')], { stdio: 'ignore' });
    s = pythonSandbox('python-docker');
    sshDir = join(s.dir, 'sshd');
    sshd(sshDir, SSH_DOCKER);
    await nginx.start(s.dir);
    s.writeEnv('t.env', env());
  });
  afterAll(() => {
    nginx.stop();
    const pid = join(sshDir, 'sshd.pid');
    if (existsSync(pid)) spawnSync('kill', [readFileSync(pid, 'utf8').trim()]);
    spawnSync('bash', ['-c', `docker ps -aq --filter label=skiff.app=${APP} | xargs -r docker rm -f; docker images -q ${APP} | sort -u | xargs -r docker rmi -f`]);
    s?.cleanup();
  });

  it('deploys the image, runs the migration in its container, and serves through nginx', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await throughProxy()).toBe('hello 1.0.0 (t)');
    expect(sqlite(join(s.deployPath, 'shared/data/app.db'), 'SELECT version_num FROM alembic_version')).toBe('0001');
    expect((await fetch(`${url}/api/notes`, { method: 'POST', body: JSON.stringify({ body: 'in a container' }) })).status).toBe(201);
  });

  it('a redeploy with a new migration under load: no failed request; then rollback', async () => {
    addColumnMigration(s.appDir);
    s.setPyVersion('1.1.0');
    const probe = startProbe(`${url}/api/health`, { headers: { connection: 'close' }, timeoutMs: 5000 });
    const r = await s.run('deploy-vps', ['t']);
    const result = await probe.stop();
    expect(r.code, r.stderr).toBe(0);
    expect(result.requests).toBeGreaterThan(50);
    expect(result.failures, `failed requests: ${result.firstErrors.join('; ')}`).toBe(0);
    expect(await throughProxy()).toBe('hello 1.1.0 (t)');
    expect(sqlite(join(s.deployPath, 'shared/data/app.db'), 'SELECT version_num FROM alembic_version')).toBe('0002');
    const back = await s.run('rollback', ['t']);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stderr).toContain('ran DEPLOY_MIGRATE, so the schema moved');
    expect(await throughProxy()).toBe('hello 1.0.0 (t)');
    expect((await get(`${url}/api/notes`)).text).toContain('in a container');
  });
});

describe('the Python example on PostgreSQL, process runtime over SSH', () => {
  const PG = { dir: '/tmp/skiff-test-postgres', port: 18745 };
  const DB = 'hello_py_e2e';
  const PORT = 18955;
  let s: ReturnType<typeof pythonSandbox>;
  let sshDir: string;
  const psql = (sql: string, as: 'app' | 'postgres' = 'app', db = DB) =>
    execFileSync('psql', ['-h', '127.0.0.1', '-p', String(PG.port), '-U', as, '-d', db, '-qAt', '-v', 'ON_ERROR_STOP=1', '-c', sql], {
      encoding: 'utf8',
      env: { ...process.env, PGPASSWORD: `${as} pw` },
    }).trim();
  const env = () =>
    [
      'APP_NAME=hello-py-pg',
      `APP_DIR=${s.appDir}`,
      ...sshKeys(sshDir, SSH_PG),
      `DEPLOY_PATH=${s.deployPath}`,
      `DEPLOY_PORTS=${PORT}`,
      `DEPLOY_RELEASE_CMD=${RELEASE_CMD.replace('requirements.txt', 'requirements-postgres.txt')}`,
      'DEPLOY_RELEASE_CACHE=.venv:requirements.txt,requirements-postgres.txt',
      'DEPLOY_MIGRATE=.venv/bin/python -m alembic upgrade head',
      'DEPLOY_START=.venv/bin/python -m app',
      'DEPLOY_HEALTH_PATH=/api/health',
      'DEPLOY_HEALTH_TIMEOUT=30',
      'DEPLOY_DRAIN_SECONDS=3',
    ].join('\n');

  beforeAll(() => {
    // Fails (rather than skips) when PostgreSQL cannot be had: CI installs it with test/infra/up.sh.
    execFileSync('bash', [join(ROOT, 'test/infra/postgres.sh'), PG.dir, String(PG.port)], { stdio: 'ignore' });
    psql(`DROP DATABASE IF EXISTS ${DB}`, 'postgres', 'postgres');
    psql(`CREATE DATABASE ${DB} OWNER app`, 'postgres', 'postgres');
    s = pythonSandbox('python-pg');
    sshDir = join(s.dir, 'sshd');
    sshd(sshDir, SSH_PG);
    s.writeEnv('t.env', env());
    // The password is a secret: in the secrets file (0600), never in output.
    s.writeEnv('t.secrets.env', `DATABASE_URL=postgresql://app:app%20pw@127.0.0.1:${PG.port}/${DB}\n`, 0o600);
  });
  afterAll(() => {
    const pid = join(sshDir, 'sshd.pid');
    if (existsSync(pid)) spawnSync('kill', [readFileSync(pid, 'utf8').trim()]);
    s?.cleanup();
    spawnSync('psql', ['-h', '127.0.0.1', '-p', String(PG.port), '-U', 'postgres', '-d', 'postgres', '-c', `DROP DATABASE IF EXISTS ${DB}`], { env: { ...process.env, PGPASSWORD: 'postgres pw' } });
  });

  it('deploys with its migration applied to PostgreSQL, the password shown nowhere', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(psql('SELECT version_num FROM alembic_version')).toBe('0001');
    const health = JSON.parse((await get(`http://127.0.0.1:${PORT}/api/health`)).text) as { status: string; schema: string };
    expect(health).toMatchObject({ status: 'ok', schema: '0001' });
    expect((await fetch(`http://127.0.0.1:${PORT}/api/notes`, { method: 'POST', body: JSON.stringify({ body: 'in postgres' }) })).status).toBe(201);
    expect(psql('SELECT body FROM notes')).toBe('in postgres');
    expect(r.stdout).not.toContain('app pw');
    expect(r.stdout).not.toContain('app%20pw');
  });

  it('a redeploy adds the column on PostgreSQL; the rows stay', async () => {
    addColumnMigration(s.appDir);
    s.setPyVersion('1.1.0');
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('DEPLOY_RELEASE_CMD skipped');
    expect(psql('SELECT version_num FROM alembic_version')).toBe('0002');
    expect(psql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'notes' AND column_name = 'tag'")).toBe('1');
    expect((await get(`http://127.0.0.1:${PORT}/api/notes`)).text).toContain('in postgres');
  });
});
