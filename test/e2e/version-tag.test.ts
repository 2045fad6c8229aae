/** version-tag against real git repositories with a bare origin. */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeRepo, type Repo } from '../support/git-repo.ts';
import { ROOT, runProcess, type RunResult } from '../support/sandbox.ts';

let repo: Repo | undefined;
afterEach(() => {
  repo?.cleanup();
  repo = undefined;
});

const versionTag = (r: Repo, args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> =>
  runProcess([join(ROOT, 'node_modules/.bin/tsx'), join(ROOT, 'scripts/version-tag.ts'), ...args, '--repo', r.work], {
    cwd: ROOT,
    env: { ...r.env, ...env },
  });

const pkgVersion = (r: Repo): string => (JSON.parse(readFileSync(join(r.work, 'package.json'), 'utf8')) as { version: string }).version;

describe('version-tag bumps', () => {
  it.each([
    ['1.0.0', ['patch'], '1.0.1'],
    ['1.0.0', ['minor'], '1.1.0'],
    ['1.0.0', ['major'], '2.0.0'],
    ['1.0.0', ['prerelease'], '1.0.1-rc.0'],
    ['1.0.1-rc.0', ['prerelease'], '1.0.1-rc.1'],
    ['1.0.0', ['prerelease', '--preid', 'beta'], '1.0.1-beta.0'],
    ['1.0.1-rc.1', ['patch'], '1.0.1'],
    ['1.0.0', ['3.1.4'], '3.1.4'],
    ['1.0.0', ['v2.0.0-rc.1'], '2.0.0-rc.1'],
  ])('%s %j gives %s', async (from, args, to) => {
    repo = makeRepo({ version: from, lockfile: true });
    repo.commit('feat: something');
    const r = await versionTag(repo, [...args, '--yes', '--no-tests', '--json']);
    expect(r.stderr).not.toMatch(/^error:/m);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').at(-1) as string)).toMatchObject({ version: to, tag: `v${to}`, previous: from });
    expect(pkgVersion(repo)).toBe(to);
    const lock = JSON.parse(readFileSync(join(repo.work, 'package-lock.json'), 'utf8')) as { version: string; packages: Record<string, { version: string }> };
    expect([lock.version, lock.packages['']?.version]).toEqual([to, to]);
    expect(repo.git('log', '-1', '--format=%s')).toBe(`release: v${to}`);
    expect(repo.git('cat-file', '-t', `v${to}`)).toBe('tag'); // annotated
    expect(repo.git('status', '--porcelain')).toBe('');
  });
});

describe('version-tag release', () => {
  it('groups the changes by type in the tag message and CHANGELOG.md, and pushes branch and tag', async () => {
    repo = makeRepo();
    repo.commit('feat(api): notes can be deleted');
    repo.commit('fix: health check on an empty database');
    repo.commit('perf: cache the count');
    repo.commit('docs: explain DATA_DIR');
    repo.commit('refactor: tidy the router');
    repo.commit('feat!: drop the old endpoint');
    const r = await versionTag(repo, ['minor', '--yes', '--push']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('1.1.0');
    const message = repo.git('tag', '-l', '--format=%(contents)', 'v1.1.0');
    expect(message).toMatch(/^v1\.1\.0\n\nFeatures:\n- BREAKING: drop the old endpoint \(\w{7}\)\n- notes can be deleted \(\w{7}\)\n\nFixes:\n- health check on an empty database/);
    expect(message).toContain('Performance:\n- cache the count');
    expect(message).toContain('Docs:\n- explain DATA_DIR');
    expect(message).toContain('Other:\n- refactor: tidy the router');
    const changelog = readFileSync(join(repo.work, 'CHANGELOG.md'), 'utf8');
    expect(changelog).toMatch(/^# Changelog\n\n## v1\.1\.0 \(\d{4}-\d\d-\d\d\)\n\n### Features\n\n- BREAKING: drop the old endpoint/);
    const remote = repo.git('ls-remote', 'origin');
    expect(remote).toContain('refs/heads/main');
    expect(remote).toContain('refs/tags/v1.1.0');
    expect(remote.split('\n').find((l) => l.endsWith('refs/heads/main'))?.split('\t')[0]).toBe(repo.git('rev-parse', 'HEAD'));
  });

  it('a second release prepends to CHANGELOG.md and lists only the new changes', async () => {
    repo = makeRepo();
    repo.commit('fix: one');
    expect((await versionTag(repo, ['patch', '--yes', '--no-tests'])).code).toBe(0);
    repo.commit('fix: two');
    expect((await versionTag(repo, ['patch', '--yes', '--no-tests'])).code).toBe(0);
    const changelog = readFileSync(join(repo.work, 'CHANGELOG.md'), 'utf8');
    expect(changelog.indexOf('## v1.0.2')).toBeLessThan(changelog.indexOf('## v1.0.1'));
    expect(repo.git('tag', '-l', '--format=%(contents)', 'v1.0.2')).not.toContain('one');
  });

  it('--dry-run leaves files, refs and index byte-identical', async () => {
    repo = makeRepo({ lockfile: true });
    repo.commit('feat: a');
    const before = repo.snapshot();
    const r = await versionTag(repo, ['minor', '--dry-run', '--push']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('dry run: nothing was written; would release 1.0.0 -> 1.1.0');
    expect(r.stderr).toContain('Features:\n- a');
    expect(repo.snapshot()).toEqual(before);
  });

  it('a push rejected by the remote undoes the local commit and tag', async () => {
    repo = makeRepo();
    repo.commit('fix: a');
    const hook = join(repo.origin, 'hooks/pre-receive');
    writeFileSync(hook, '#!/bin/sh\necho "releases are frozen" >&2\nexit 1\n');
    chmodSync(hook, 0o755);
    const head = repo.git('rev-parse', 'HEAD');
    const r = await versionTag(repo, ['patch', '--yes', '--push', '--no-tests']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('push to origin was rejected');
    expect(r.stderr).toContain('releases are frozen');
    expect(r.stderr).toMatch(/undone: deleted tag v1\.0\.1, removed commit \w{7}/);
    expect(repo.git('rev-parse', 'HEAD')).toBe(head);
    expect(repo.git('tag', '-l', 'v1.0.1')).toBe('');
    expect(repo.git('status', '--porcelain')).toBe('');
    expect(pkgVersion(repo)).toBe('1.0.0');
  });

  it('failing tests stop the release before anything is written (exit 1)', async () => {
    repo = makeRepo({ test: 'echo "1 test failed" >&2; exit 1' });
    repo.commit('fix: a');
    const before = repo.snapshot();
    const r = await versionTag(repo, ['patch', '--yes']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toBe('error: the tests failed (npm test exited 1): fix them, or pass --no-tests');
    expect(repo.snapshot()).toEqual(before);
  });

  it('without a terminal and without --yes it refuses (exit 2)', async () => {
    repo = makeRepo();
    const before = repo.snapshot();
    const r = await versionTag(repo, ['patch', '--no-tests']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n').at(-1)).toBe('error: Release v1.0.1: no terminal to ask on; pass --yes to confirm');
    expect(repo.snapshot()).toEqual(before);
  });
});

describe('version-tag refuses (exit 2, one line, nothing changed)', () => {
  const refusals: [string, (r: Repo) => void, string[], RegExp, NodeJS.ProcessEnv?][] = [
    ['an unknown bump word', () => {}, ['huge'], /^error: "huge" is neither patch, minor, major, prerelease nor a version like 1\.2\.3$/],
    ['a version that is not semver', () => {}, ['1.2'], /^error: "1\.2" is neither patch/],
    ['an explicit version lower than the current', () => {}, ['0.9.0'], /^error: 0\.9\.0 is not greater than the current version 1\.0\.0$/],
    ['the current version again', () => {}, ['1.0.0'], /^error: 1\.0\.0 is not greater than the current version 1\.0\.0$/],
    ['--preid with a space', () => {}, ['prerelease', '--preid', 'r c'], /^error: --preid "r c" is invalid/],
    ['a modified file', (r) => r.write('package.json', '{"name":"app","version":"1.0.0","x":1}\n'), ['patch'], /^error: the working tree is not clean \(package\.json\): commit or stash first$/],
    ['an untracked file', (r) => r.write('notes.txt', 'x'), ['patch'], /^error: the working tree is not clean \(notes\.txt\)/],
    ['a branch that is not a release branch', (r) => r.git('checkout', '-q', '-b', 'feature'), ['patch'], /^error: on branch feature, not a release branch \(main or master\): switch to it, or pass --any-branch$/],
    ['an existing tag', (r) => r.git('tag', 'v1.0.1'), ['patch'], /^error: tag v1\.0\.1 already exists: choose another version$/],
    [
      'a tag that exists only on the remote',
      (r) => {
        r.git('tag', 'v1.0.1');
        r.git('push', '-q', 'origin', 'v1.0.1');
        r.git('tag', '-d', 'v1.0.1');
      },
      ['patch'],
      /^error: tag v1\.0\.1 already exists on origin: choose another version$/,
    ],
    [
      'a branch behind its remote',
      (r) => {
        r.commit('fix: pushed');
        r.git('push', '-q', 'origin', 'main');
        r.git('reset', '-q', '--hard', 'HEAD~1');
      },
      ['patch'],
      /^error: main is behind origin\/main: pull first$/,
    ],
    [
      'a branch diverged from its remote',
      (r) => {
        r.commit('fix: pushed');
        r.git('push', '-q', 'origin', 'main');
        r.git('reset', '-q', '--hard', 'HEAD~1');
        r.commit('fix: local only', 'other.txt');
      },
      ['patch'],
      /^error: main and origin\/main have diverged: rebase or merge first$/,
    ],
    ['git user not set', (r) => { r.git('config', '--unset', 'user.name'); }, ['patch'], /^error: git user\.name is not set: run `git config user\.name "\.\.\."` first$/],
  ];

  it.each(refusals)('%s', async (_, setup, args, message, env) => {
    repo = makeRepo();
    repo.commit('feat: a');
    setup(repo);
    const before = repo.snapshot();
    const r = await versionTag(repo, [...args, '--yes'], env);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toMatch(message);
    expect(r.stderr.trim().split('\n').length).toBe(1);
    expect(repo.snapshot()).toEqual(before);
  });

  it('--any-branch allows another branch', async () => {
    repo = makeRepo();
    repo.git('checkout', '-q', '-b', 'hotfix');
    repo.commit('fix: urgent');
    const r = await versionTag(repo, ['patch', '--yes', '--no-tests', '--any-branch']);
    expect(r.code).toBe(0);
    expect(repo.git('describe', '--tags')).toBe('v1.0.1');
  });

  it('not a git repository', async () => {
    repo = makeRepo();
    const plain = join(repo.dir, 'home');
    const r = await runProcess([join(ROOT, 'node_modules/.bin/tsx'), join(ROOT, 'scripts/version-tag.ts'), 'patch', '--yes', '--repo', plain], { cwd: ROOT, env: repo.env });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`error: --repo ${plain} is not in a git repository: name a folder of the repository to release`);
  });

  it('no package.json', async () => {
    repo = makeRepo();
    repo.git('rm', '-q', 'package.json');
    repo.git('commit', '-q', '-m', 'chore: remove');
    const r = await versionTag(repo, ['patch', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(/^error: no package\.json in .*: version-tag bumps the version in package\.json$/);
  });
});
