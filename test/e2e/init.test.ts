/**
 * init end to end: skiff brought into an app's own repository (a CommonJS app none of skiff's
 * code knows), the refusals that change nothing, then deploys over SSH from inside that
 * repository with the npm aliases init added, version-tag then a deploy that carries the tag,
 * status and rollback; what init copied never reaches the host.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Repo } from '../support/git-repo.ts';
import { makeShopRepo, userEnv } from '../support/init-app.ts';
import { get, pidsWithMarker, ROOT, runProcess, type RunResult } from '../support/sandbox.ts';

const PORT = 18961;
const SSH = { ip: '127.0.0.41', port: 2261 };
const TSX = join(ROOT, 'node_modules/.bin/tsx');

describe('init, then deploys from inside the app repository', () => {
  let app: Repo;
  let sshDir: string;
  let deployPath: string;
  let env: NodeJS.ProcessEnv;
  const init = (args: readonly string[], cwd = ROOT): Promise<RunResult> => runProcess([TSX, join(ROOT, 'scripts/init.ts'), ...args], { cwd, env });
  /** A script of the app's own copy of skiff, run from the app's folder. */
  const inApp = (argv: readonly string[]): Promise<RunResult> => runProcess(argv, { cwd: app.work, env });
  const appScript = (script: string, args: readonly string[] = []) => inApp([join(app.work, 'node_modules/.bin/tsx'), `scripts/${script}.ts`, ...args]);

  beforeAll(() => {
    app = makeShopRepo();
    sshDir = join(app.dir, 'sshd');
    deployPath = join(app.dir, 'srv');
    env = userEnv(app);
    // Fails (rather than skips) when sshd cannot be had: CI installs it with test/infra/up.sh.
    execFileSync('bash', [join(ROOT, 'test/infra/sshd.sh'), sshDir, SSH.ip, String(SSH.port)], { stdio: 'ignore' });
  });
  afterAll(() => {
    for (const pid of pidsWithMarker(join(deployPath, 'staging'))) process.kill(pid, 'SIGKILL');
    const pid = join(sshDir, 'sshd.pid');
    if (existsSync(pid)) process.kill(Number(readFileSync(pid, 'utf8')), 'SIGTERM');
    app.cleanup();
  });

  describe('refusals: one line, exit 2, nothing changed', () => {
    it('a folder that does not exist, or that is not in git', async () => {
      const gone = await init([join(app.dir, 'nope')]);
      expect([gone.code, gone.stderr.trim(), gone.stdout]).toEqual([2, `error: ${join(app.dir, 'nope')} does not exist: give the folder of your app's repository`, '']);
      const plain = join(app.dir, 'plain');
      mkdirSync(plain);
      const r = await init([plain]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim()).toBe(`error: ${plain} is not in a git repository: run \`git init\` there and commit the app first, so what init writes can be reviewed and undone`);
      expect(readdirSync(plain)).toEqual([]);
    });

    it('uncommitted changes (unless --force), a package.json that is not JSON, a scripts/deploy-vps.ts of its own', async () => {
      const before = app.snapshot();
      app.write('notes.txt', 'draft\n');
      const dirty = await init([app.work]);
      expect(dirty.code).toBe(2);
      expect(dirty.stderr.trim()).toBe(`error: ${app.work} has 1 uncommitted change (notes.txt): commit or stash them first, so init's changes stand apart (or pass --force)`);
      rmSync(join(app.work, 'notes.txt'));

      const pkg = readFileSync(join(app.work, 'package.json'), 'utf8');
      app.write('package.json', '{ "name": "shop", }');
      const bad = await init([app.work, '--force']);
      expect(bad.code).toBe(2);
      expect(bad.stderr.trim()).toMatch(/^error: \S+\/package.json: package.json is not valid JSON \(.*\): fix it/);
      app.write('package.json', pkg);

      mkdirSync(join(app.work, 'scripts'));
      app.write('scripts/deploy-vps.ts', '// our old deploy script\n');
      const theirs = await init([app.work, '--force']);
      expect(theirs.code).toBe(2);
      expect(theirs.stderr.trim()).toBe('error: scripts/deploy-vps.ts already exists and was not made by skiff init: move it away (or delete it), then run init again');
      rmSync(join(app.work, 'scripts'), { recursive: true });
      expect(app.snapshot()).toEqual(before);
    });
  });

  it('--dry-run prints every file it would write and writes none', async () => {
    const before = app.snapshot();
    const r = await init([app.work, '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    for (const f of ['scripts/deploy-vps.ts', 'lib/core/cmd.ts', 'scripts/package.json', 'lib/package.json', 'Taskfile.mts', 'tsconfig.json', 'env/staging.env', 'env/production.env', '.skiff/init.json']) {
      expect(r.stdout).toMatch(new RegExp(`^create ${f.replaceAll('.', '\\.')} `, 'm'));
    }
    expect(r.stdout).toMatch(/^change \.gitignore +adds \/env\/\*\.secrets\.env, \/backups\/$/m);
    expect(r.stdout).toMatch(/^change package\.json +adds npm aliases deploy:staging, /m);
    expect(r.stdout).toMatch(/^dry run: nothing written \(\d+ files would be\)$/m);
    expect(app.snapshot()).toEqual(before);
  });

  it('init writes the files, keeps package.json as it was written, and a second run changes nothing', async () => {
    const r = await init([app.work]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Node app, no lockfile (npm assumed); start script: node server.js; port variable: PORT; health route: /healthz');
    expect(r.stdout).toContain('Next steps:');
    const pkg = readFileSync(join(app.work, 'package.json'), 'utf8');
    expect(pkg.split('\n').slice(0, 9).join('\n')).toBe('{\n    "name": "shop",\n    "version": "1.0.0",\n    "description": "a shop",\n    "main": "server.js",\n    "scripts": {\n        "start": "node server.js",\n        "test": "node -e \\"process.exit(0)\\"",\n        "deploy:staging": "tsx scripts/deploy-vps.ts staging",');
    expect(Object.keys(JSON.parse(pkg) as object)).toEqual(['name', 'version', 'description', 'main', 'scripts', 'license', 'devDependencies']);
    expect(readFileSync(join(app.work, 'env/staging.env'), 'utf8')).toContain('APP_DIR=.\n');
    const again = await init([app.work, '--force']);
    expect(again.code).toBe(0);
    expect(again.stdout.trim().split('\n').at(-1)).toBe('nothing to change');
    // The packages an `npm install` would bring: this machine's, linked.
    symlinkSync(join(ROOT, 'node_modules'), join(app.work, 'node_modules'));
    const env = readFileSync(join(app.work, 'env/staging.env'), 'utf8')
      .replace(/^DEPLOY_HOSTS=.*$/m, `DEPLOY_HOSTS=${userInfo().username}@${SSH.ip}:${SSH.port}`)
      .replace(/^DEPLOY_PATH=.*$/m, `DEPLOY_PATH=${join(deployPath, 'staging')}`)
      .replace(/^DEPLOY_PORTS=.*$/m, `DEPLOY_PORTS=${PORT}\nDEPLOY_SSH_KEY=${join(sshDir, 'id_ed25519')}\nDEPLOY_KNOWN_HOSTS=${join(sshDir, 'known_hosts')}\nDEPLOY_DRAIN_SECONDS=1`);
    app.write('env/staging.env', env);
    app.git('add', '-A');
    app.git('commit', '-q', '-m', 'chore: deploy with skiff');
    const third = await init([app.work]);
    expect([third.code, third.stdout.trim().split('\n').at(-1)]).toEqual([0, 'nothing to change']);
  });

  it('deploys over SSH from inside the repository, and none of skiff ships', async () => {
    const r = await inApp(['npm', 'run', '--silent', 'deploy:staging']);
    expect(r.stderr, r.stdout).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const sha = app.git('rev-parse', '--short', 'HEAD');
    expect(r.stdout).toContain(`deployed 1.0.0-${sha}`);
    expect((await get(`http://127.0.0.1:${PORT}/`)).text).toBe(`shop 1.0.0-${sha}\n`);
    const live = join(deployPath, 'staging/current');
    expect(readdirSync(live).sort()).toEqual(['.gitignore', 'node_modules', 'package.json', 'server.js']);
  });

  it('version-tag in the app repository, then a deploy that carries the tag; status; rollback', async () => {
    const tag = await appScript('version-tag', ['patch', '--yes', '--no-tests']);
    expect(tag.code, tag.stderr).toBe(0);
    expect(tag.stderr).toContain(`Repository: ${app.work}`);
    expect(app.git('describe', '--exact-match', '--tags', 'HEAD')).toBe('v1.0.1');
    const r = await inApp(['npm', 'run', '--silent', 'deploy:staging']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('deployed 1.0.1');
    expect((await get(`http://127.0.0.1:${PORT}/`)).text).toBe('shop 1.0.1\n');
    const status = await appScript('status', ['staging', '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect((JSON.parse(status.stdout) as { release: { version: string } }).release.version).toBe('1.0.1');
    const back = await inApp(['npm', 'run', '--silent', 'deploy:rollback', '--', 'staging']);
    expect(back.code, back.stderr).toBe(0);
    expect((await get(`http://127.0.0.1:${PORT}/`)).text).toMatch(/^shop 1\.0\.0-[0-9a-f]+\n$/);
  });
});
