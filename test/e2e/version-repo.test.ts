/**
 * One rule for the repository a version comes from: version-tag releases the repository that holds
 * APP_DIR, the one deploy reads its version from, so `version-tag patch` then `deploy-vps` deploys
 * exactly the tagged version. With real git repositories and a copy of skiff beside the app, inside
 * the app's repository, and beside a repository whose subfolder is the app.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeRepo, type Repo } from '../support/git-repo.ts';
import { pidsWithMarker, ROOT, runProcess, type RunResult } from '../support/sandbox.ts';

/** Answers every path (the health check too) with 200. */
const SERVER = "require('node:http').createServer((q, s) => s.end('up')).listen(Number(process.env.PORT), '127.0.0.1');\n";

interface Layout {
  /** The folder of the copy of skiff that runs. */
  readonly skiff: string;
  readonly app: Repo;
  readonly deployPath: string;
  readonly env: NodeJS.ProcessEnv;
  readonly run: (script: string, args?: readonly string[]) => Promise<RunResult>;
  readonly taskfile: (args: readonly string[]) => Promise<RunResult>;
  readonly writeEnv: (name: string, appDir: string, port: number) => void;
}

let cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.reverse()) c();
  cleanups = [];
});

/** Copies skiff's code (not its git history) into a folder, with the same node_modules. */
const copySkiff = (into: string): void => {
  mkdirSync(into, { recursive: true });
  for (const part of ['scripts', 'lib', 'Taskfile.ts', 'package.json', 'tsconfig.json']) cpSync(join(ROOT, part), join(into, part), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(into, 'node_modules'));
  mkdirSync(join(into, 'env'), { recursive: true });
};

/** An app repository (package.json 1.0.0, tagged v1.0.0, with a bare origin) and skiff at `skiffAt(app)`. */
const makeLayout = (skiffAt: (app: Repo, dir: string) => string, opts: { version?: string } = {}): Layout => {
  const app = makeRepo({ version: opts.version ?? '1.0.0' });
  const dir = mkdtempSync(join(tmpdir(), 'skiff-version-repo-'));
  const deployPath = join(dir, 'srv');
  cleanups.push(() => {
    // The envs deploy into folders of srv/ (srv/local, srv/web): their slots carry those paths.
    const envDirs = existsSync(deployPath) ? readdirSync(deployPath).map((e) => join(deployPath, e)) : [];
    for (const pid of [deployPath, ...envDirs].flatMap(pidsWithMarker)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    app.cleanup();
  });
  const skiff = skiffAt(app, dir);
  const env: NodeJS.ProcessEnv = { ...app.env };
  for (const k of Object.keys(env)) if (k.startsWith('DEPLOY_') || k.startsWith('BACKUP_') || k === 'APP_NAME' || k === 'APP_DIR' || k === 'SKIFF_ENV_DIR') delete env[k];
  const tsx = join(skiff, 'node_modules/.bin/tsx');
  return {
    skiff,
    app,
    deployPath,
    env,
    run: (script, args = []) => runProcess([tsx, join(skiff, 'scripts', `${script}.ts`), ...args], { cwd: dir, env }),
    taskfile: (args) => runProcess([tsx, join(skiff, 'Taskfile.ts'), ...args], { cwd: dir, env }),
    writeEnv: (name, appDir, port) =>
      writeFileSync(
        join(skiff, 'env', `${name}.env`),
        [`APP_NAME=hello`, `APP_DIR=${appDir}`, 'DEPLOY_HOSTS=local', `DEPLOY_PATH=${deployPath}/${name}`, `DEPLOY_PORTS=${port}`, 'DEPLOY_START=node server.js', 'DEPLOY_HEALTH_TIMEOUT=10', 'DEPLOY_DRAIN_SECONDS=2', ''].join('\n'),
      ),
  };
};

/** The app's server committed at the root of its repository. */
const addServer = (app: Repo, at = 'server.js'): void => {
  mkdirSync(join(app.work, at, '..'), { recursive: true });
  app.write(at, SERVER);
  app.git('add', at);
  app.git('commit', '-q', '-m', 'feat: serve');
};

/** Skiff beside the app, in a repository of its own: APP_DIR=../app. */
const beside = (app: Repo, dir: string): string => {
  addServer(app);
  const skiff = join(dir, 'skiff');
  copySkiff(skiff);
  const git = (...args: string[]) => execFileSync('git', ['-C', skiff, ...args], { env: app.env, encoding: 'utf8' }).trim();
  git('init', '-q', '-b', 'main');
  git('config', 'user.name', 'Skiff Tester');
  git('config', 'user.email', 'skiff@example.com');
  writeFileSync(join(skiff, '.gitignore'), 'node_modules\n');
  git('add', '.');
  git('commit', '-q', '-m', 'chore: skiff');
  symlinkSync(app.work, join(dir, 'app'));
  return skiff;
};

const skiffGit = (l: Layout, ...args: string[]): string => execFileSync('git', ['-C', l.skiff, ...args], { env: l.env, encoding: 'utf8' }).trim();

const versionOf = async (l: Layout, env: string): Promise<string> => {
  const r = await l.run('status', [env, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { release: { version: string } }).release.version;
};

const deploy = async (l: Layout, env: string): Promise<RunResult> => {
  const r = await l.run('deploy-vps', [env, '--json']);
  expect(r.stderr, r.stdout).not.toMatch(/^error:/m);
  expect(r.code).toBe(0);
  return r;
};

const lastJson = (r: RunResult): Record<string, unknown> => JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as Record<string, unknown>;

describe('version-tag releases the repository deploy reads its version from', () => {
  it('skiff beside the app (APP_DIR=../app): the app repository is tagged, skiff\'s is not, and the deploy carries the tag', async () => {
    const l = makeLayout(beside);
    l.writeEnv('local', '../app', 18471);
    const skiffHead = skiffGit(l, 'rev-parse', 'HEAD');
    const tag = await l.run('version-tag', ['patch', '--yes', '--no-tests', '--json']);
    expect(tag.stderr).not.toMatch(/^error:/m);
    expect(tag.code).toBe(0);
    expect(tag.stderr).toContain(`Repository: ${l.app.work} (APP_DIR of local)`);
    expect(lastJson(tag)).toMatchObject({ version: '1.0.1', tag: 'v1.0.1', repo: l.app.work });
    expect(l.app.git('describe', '--tags', '--exact-match')).toBe('v1.0.1');
    expect(skiffGit(l, 'rev-parse', 'HEAD')).toBe(skiffHead);
    expect(skiffGit(l, 'tag', '-l')).toBe('');

    const d = await deploy(l, 'local');
    expect(d.stdout).toMatch(/deployed 1\.0\.1 \(release \d{8}-\d{6}-1\.0\.1\) to local/);
    expect(lastJson(d)).toMatchObject({ action: 'deploy', env: 'local', version: '1.0.1' });
    expect(await versionOf(l, 'local')).toBe('1.0.1');
  });

  it('skiff inside the app repository (in deploy/, APP_DIR=..): that one repository is tagged and deployed', async () => {
    const l = makeLayout((app) => {
      addServer(app);
      const skiff = join(app.work, 'deploy');
      copySkiff(skiff);
      app.write('.gitignore', 'node_modules\n');
      app.write('.skiffignore', 'deploy/\n');
      return skiff;
    });
    l.writeEnv('local', '..', 18472);
    l.app.git('add', '.');
    l.app.git('commit', '-q', '-m', 'chore: deploy with skiff');
    const tag = await l.run('version-tag', ['patch', '--yes', '--no-tests']);
    expect(tag.stderr).not.toMatch(/^error:/m);
    expect(tag.code).toBe(0);
    expect(tag.stdout.trim().split('\n').at(-1)).toBe('1.0.1');
    expect(l.app.git('describe', '--tags', '--exact-match')).toBe('v1.0.1');
    const d = await deploy(l, 'local');
    expect(d.stdout).toContain('deployed 1.0.1 (release');
    expect(await versionOf(l, 'local')).toBe('1.0.1');
  });

  it('APP_DIR a subfolder of a repository: the version is that repository\'s, tagged or not (never skiff\'s package.json)', async () => {
    const l = makeLayout((app, dir) => {
      const skiff = beside(app, dir); // the app repository holds server.js at its root, and web/ below
      addServer(app, 'web/server.js');
      return skiff;
    }, { version: '2.3.0' });
    l.writeEnv('web', '../app/web', 18473);
    const tag = await l.run('version-tag', ['minor', '--yes', '--no-tests']);
    expect(tag.code, tag.stderr).toBe(0);
    expect(tag.stderr).toContain(`Repository: ${l.app.work} (APP_DIR of web)`);
    expect(l.app.git('describe', '--tags', '--exact-match')).toBe('v2.4.0');
    expect((await deploy(l, 'web')).stdout).toContain('deployed 2.4.0 (release');
    expect(await versionOf(l, 'web')).toBe('2.4.0');

    // A commit after the tag: the repository root's package.json version with the sha, not skiff's 0.1.0.
    l.app.commit('fix: after the release', 'web/notes.txt');
    const sha = l.app.git('rev-parse', '--short', 'HEAD');
    expect((await deploy(l, 'web')).stdout).toContain(`deployed 2.4.0-${sha} (release`);
  });

  it('the Taskfile\'s release <env> <bump> tags the repository of that env and deploys that version', async () => {
    const l = makeLayout(beside);
    l.writeEnv('local', '../app', 18474);
    const r = await l.taskfile(['release', 'local', 'patch', '--yes']);
    expect(r.stderr).not.toMatch(/^error:/m);
    expect(r.code).toBe(0);
    expect(l.app.git('describe', '--tags', '--exact-match')).toBe('v1.0.1');
    expect(r.stdout).toContain('deployed 1.0.1 (release');
  });
});

describe('version-tag refuses when the repository to release is not clear (exit 2, one line, nothing changed)', () => {
  const refusals: [string, (l: Layout, dir: string) => void, string[], (l: Layout, dir: string) => string][] = [
    [
      '--repo naming a folder outside any repository',
      (_l, dir) => mkdirSync(join(dir, 'plain')),
      ['--repo', 'plain'],
      () => 'error: --repo plain is not in a git repository: name a folder of the repository to release',
    ],
    ['--repo naming nothing', () => {}, ['--repo', 'nope'], () => 'error: --repo nope does not exist'],
    ['--repo and --env both', () => {}, ['--repo', 'app', '--env', 'local'], () => 'error: --repo and --env both say which repository to release: give one'],
    ['an unknown --env', () => {}, ['--env', 'prod'], () => 'error: unknown environment "prod": no env/prod.env; known: local, tools'],
    [
      'environments that deploy from two repositories',
      () => {},
      [],
      (l) => `error: the environments deploy from 2 repositories (local: ${l.app.work}; tools: ${l.skiff}): pass --env <env> to release the one that environment deploys`,
    ],
    [
      'an APP_DIR in no repository',
      (l, dir) => {
        mkdirSync(join(dir, 'loose'));
        l.writeEnv('tools', '../loose', 18475);
      },
      [],
      (_l, dir) => `error: APP_DIR of tools (${join(dir, 'loose')}) is in no git repository, so there is no commit to tag: put it under git, or pass --repo <folder>`,
    ],
  ];

  it.each(refusals)('%s', async (_name, setup, args, message) => {
    let dir = '';
    const l = makeLayout((app, d) => {
      dir = d;
      return beside(app, d);
    });
    l.writeEnv('local', '../app', 18471);
    l.writeEnv('tools', '.', 18475); // skiff's own folder: another repository
    setup(l, dir);
    const before = l.app.snapshot();
    const tags = skiffGit(l, 'tag', '-l');
    const r = await l.run('version-tag', ['patch', '--yes', '--no-tests', ...args]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toBe(message(l, dir));
    expect(l.app.snapshot()).toEqual(before);
    expect(skiffGit(l, 'tag', '-l')).toBe(tags);
  });

  it('--env picks one of them, and a dry run of it changes nothing', async () => {
    const l = makeLayout(beside);
    l.writeEnv('local', '../app', 18471);
    l.writeEnv('tools', '.', 18475);
    const before = l.app.snapshot();
    const r = await l.run('version-tag', ['patch', '--env', 'local', '--dry-run', '--no-tests']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`Repository: ${l.app.work} (APP_DIR of local)`);
    expect(r.stdout).toContain('dry run: nothing was written; would release 1.0.0 -> 1.0.1');
    expect(l.app.snapshot()).toEqual(before);
  });
});
