/**
 * version-tag: preflight checks that change nothing, then the release commit and annotated tag,
 * undone if a later step fails (but only what this run made).
 */
import { existsSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { checkEnvName, envDir, listEnvs, readLayers } from '../config/config.ts';
import { SkiffError, UsageError } from '../core/errors.ts';
import { REPO_ROOT } from '../core/paths.ts';
import { defaultAppDir } from '../init/manifest.ts';
import { run } from '../host/local.ts';
import { repositoryOf } from './version.ts';
import { changelogSection, groupCommits, prependChangelog, renderChanges, setJsonVersion } from './changes.ts';
import { commitsSince, gitIn, lastTag, releaseRemote, type Git } from './git.ts';
import { nextVersion } from './bump.ts';

export interface TagOptions {
  readonly repo: string;
  readonly bump: string;
  readonly preid: string;
  readonly push: boolean;
  readonly tests: boolean;
  readonly anyBranch: boolean;
  /** Branches a release may be made from. */
  readonly branches: readonly string[];
  readonly dryRun: boolean;
  readonly now: Date;
}

export interface TagPlan {
  readonly git: Git;
  readonly root: string;
  readonly current: string;
  readonly next: string;
  readonly tag: string;
  readonly branch: string;
  readonly remote: string | undefined;
  readonly previousTag: string | undefined;
  readonly changes: string;
  readonly changelog: string;
  readonly head: string;
}

const fail = (message: string): never => {
  throw new UsageError(message);
};

/**
 * APP_DIR of an environment as a deploy resolves it (from the repo root, `~` as the home), read from
 * its env files and the process environment alone: the rest of the env need not be valid here.
 */
export const appDirOf = (env: string, processEnv: NodeJS.ProcessEnv = process.env): string => {
  const given = readLayers(env, envDir(processEnv), processEnv).values.APP_DIR ?? defaultAppDir(REPO_ROOT);
  const home = processEnv.HOME ?? homedir();
  return resolve(REPO_ROOT, given === '~' ? home : given.startsWith('~/') ? join(home, given.slice(2)) : given);
};

/** An environment's APP_DIR and the repository that holds it (undefined: none). */
export interface AppSource {
  readonly env: string;
  readonly appDir: string;
  readonly repo: string | undefined;
}

/**
 * The one repository the environments deploy from, or why there is none to release: an APP_DIR
 * missing or outside git, or environments that deploy from different repositories. Pure.
 */
export const chooseRepository = (found: readonly AppSource[]): { repo: string; envs: string[] } => {
  if (found.length === 0) fail('no env/<env>.env names an APP_DIR: pass --repo <folder> to say which repository to release');
  for (const f of found) {
    if (!existsSync(f.appDir)) fail(`APP_DIR of ${f.env} (${f.appDir}) does not exist: fix env/${f.env}.env, or pass --repo <folder>`);
    if (!f.repo) fail(`APP_DIR of ${f.env} (${f.appDir}) is in no git repository, so there is no commit to tag: put it under git, or pass --repo <folder>`);
  }
  const repos = [...new Set(found.map((f) => f.repo as string))];
  if (repos.length > 1) {
    const which = repos.map((r) => `${found.filter((f) => f.repo === r).map((f) => f.env).join(', ')}: ${r}`).join('; ');
    fail(`the environments deploy from ${repos.length} repositories (${which}): pass --env <env> to release the one that environment deploys`);
  }
  return { repo: repos[0] as string, envs: found.map((f) => f.env) };
};

/**
 * The repository version-tag releases, and why: the one a deploy reads its version from. With
 * `repo`, that folder's repository; with `env`, the repository that holds APP_DIR of that
 * environment; else the one that holds APP_DIR of every environment in env/ (they must agree). So
 * `version-tag patch` then `deploy-vps <env>` deploys exactly the tagged version.
 */
export const releaseSource = async (o: { readonly repo?: string | undefined; readonly env?: string | undefined }): Promise<{ repo: string; why: string }> => {
  if (o.repo !== undefined && o.env !== undefined) fail('--repo and --env both say which repository to release: give one');
  if (o.repo !== undefined) {
    const dir = resolve(o.repo);
    if (!existsSync(dir)) fail(`--repo ${o.repo} does not exist`);
    const repo = await repositoryOf(dir);
    if (!repo) fail(`--repo ${o.repo} is not in a git repository: name a folder of the repository to release`);
    return { repo: repo as string, why: '--repo' };
  }
  if (o.env !== undefined) checkEnvName(o.env, envDir());
  const envs = o.env !== undefined ? [o.env] : listEnvs(envDir());
  const found = await Promise.all(envs.map(async (env) => ({ env, appDir: appDirOf(env), repo: await repositoryOf(appDirOf(env)) })));
  const { repo, envs: named } = chooseRepository(found);
  return { repo, why: `APP_DIR of ${named.join(', ')}` };
};

/** Everything that must hold before a release is made. Reads only: nothing is written. */
export const planRelease = async (o: TagOptions): Promise<TagPlan> => {
  if (!existsSync(o.repo)) fail(`${o.repo} does not exist`);
  const probe = gitIn(o.repo);
  const top = await probe.try(['rev-parse', '--show-toplevel']);
  if (top.code !== 0) fail(`${o.repo} is not a git repository: run version-tag inside your project's repository`);
  const root = top.out;
  const git = gitIn(root);
  const pkgFile = join(root, 'package.json');
  if (!existsSync(pkgFile)) fail(`no package.json in ${root}: version-tag bumps the version in package.json`);
  const current = String((JSON.parse(readFileSync(pkgFile, 'utf8')) as { version?: unknown }).version ?? '');
  const next = nextVersion(current, o.bump, o.preid);
  const tag = `v${next}`;

  for (const key of ['user.name', 'user.email']) {
    if (!(await git.try(['config', key])).out) fail(`git ${key} is not set: run \`git config ${key} "..."\` first`);
  }
  const changed = await git(['diff', '--name-only', 'HEAD']);
  const untracked = await git(['ls-files', '--others', '--exclude-standard']);
  const dirty = `${changed}\n${untracked}`.split('\n').filter(Boolean);
  if (dirty.length) {
    fail(`the working tree is not clean (${dirty.slice(0, 3).join(', ')}${dirty.length > 3 ? ', ...' : ''}): commit or stash first`);
  }
  const branchProbe = await git.try(['symbolic-ref', '--short', '-q', 'HEAD']);
  if (branchProbe.code !== 0) fail('HEAD is detached: check out a release branch first');
  const branch = branchProbe.out;
  if (!o.anyBranch && !o.branches.includes(branch)) {
    fail(`on branch ${branch}, not a release branch (${o.branches.join(' or ')}): switch to it, or pass --any-branch`);
  }
  if ((await git.try(['rev-parse', '-q', '--verify', `refs/tags/${tag}`])).code === 0) fail(`tag ${tag} already exists: choose another version`);

  const head = await git(['rev-parse', 'HEAD']);
  const remote = await releaseRemote(git, branch);
  if (remote) await checkRemote(git, o, remote, branch, tag, head);

  const previousTag = await lastTag(git);
  const groups = groupCommits(await commitsSince(git, previousTag));
  const date = o.now.toISOString().slice(0, 10);
  const changelogFile = join(root, 'CHANGELOG.md');
  return {
    git,
    root,
    current,
    next,
    tag,
    branch,
    remote,
    previousTag,
    changes: renderChanges(groups),
    changelog: prependChangelog(existsSync(changelogFile) ? readFileSync(changelogFile, 'utf8') : undefined, changelogSection(next, date, groups)),
    head,
  };
};

/** Refuses when the remote branch has commits this one lacks, or when the tag is already there. */
const checkRemote = async (git: Git, o: TagOptions, remote: string, branch: string, tag: string, head: string): Promise<void> => {
  const listed = await git.try(['ls-remote', remote, `refs/heads/${branch}`, `refs/tags/${tag}`]);
  if (listed.code !== 0) fail(`cannot reach ${remote}: ${listed.err.split('\n').at(-1)}`);
  const refs = new Map(listed.out.split('\n').filter(Boolean).map((l) => [l.split('\t')[1], l.split('\t')[0]] as const));
  if (refs.has(`refs/tags/${tag}`)) fail(`tag ${tag} already exists on ${remote}: choose another version`);
  const theirs = refs.get(`refs/heads/${branch}`);
  if (!theirs || theirs === head) return;
  const isKnown = async () => (await git.try(['cat-file', '-e', `${theirs}^{commit}`])).code === 0;
  // Fetch the remote's commit by id when it is new here: objects only, no ref, no FETCH_HEAD.
  // A dry run fetches nothing at all.
  if (!(await isKnown()) && !o.dryRun) await git.try(['fetch', '--quiet', '--no-write-fetch-head', remote, theirs]);
  const known = await isKnown();
  if (known && (await git.try(['merge-base', '--is-ancestor', theirs, head])).code === 0) return; // we are ahead
  const behind = known && (await git.try(['merge-base', '--is-ancestor', head, theirs])).code === 0;
  fail(
    behind || !known
      ? `${branch} is behind ${remote}/${branch}: pull first`
      : `${branch} and ${remote}/${branch} have diverged: rebase or merge first`,
  );
};

/** Runs the project's tests (npm test) in the repository. */
export const runTests = async (root: string, onOutput: (line: string) => void): Promise<void> => {
  const r = await run(['npm', 'test', '--silent'], {
    cwd: root,
    env: { ...process.env } as Record<string, string>,
    check: false,
    label: 'local',
    onStdout: (b) => onOutput(b.toString().trim()),
    onStderr: (b) => onOutput(b.toString().trim()),
  });
  if (r.code !== 0) throw new SkiffError(`the tests failed (npm test exited ${r.code}): fix them, or pass --no-tests`);
};

const RELEASE_FILES = ['package.json', 'package-lock.json', 'CHANGELOG.md'] as const;

/** Writes package.json, package-lock.json and CHANGELOG.md with the new version. */
export const writeReleaseFiles = (p: TagPlan): void => {
  const pkg = join(p.root, 'package.json');
  writeFileSync(pkg, setJsonVersion(readFileSync(pkg, 'utf8'), p.next, false));
  const lock = join(p.root, 'package-lock.json');
  if (existsSync(lock)) writeFileSync(lock, setJsonVersion(readFileSync(lock, 'utf8'), p.next, true));
  writeFileSync(join(p.root, 'CHANGELOG.md'), p.changelog);
};

/** The release commit and the annotated tag whose message holds the grouped changes. Returns the commit. */
export const commitAndTag = async (p: TagPlan): Promise<string> => {
  await p.git(['add', '--', ...RELEASE_FILES.filter((f) => existsSync(join(p.root, f)))]);
  await p.git(['commit', '--quiet', '--no-verify', '-m', `release: ${p.tag}`]);
  const commit = await p.git(['rev-parse', 'HEAD']);
  await p.git(['tag', '--annotate', '--file=-', p.tag], `${p.tag}\n\n${p.changes}\n`);
  return commit;
};

/** Pushes the branch and the tag together: both land or neither does. */
export const pushRelease = async (p: TagPlan): Promise<void> => {
  if (!p.remote) throw new SkiffError(`--push: ${p.branch} has no remote to push to: add one with \`git remote add origin URL\``);
  const r = await p.git.try(['push', '--atomic', '--quiet', p.remote, `refs/heads/${p.branch}`, `refs/tags/${p.tag}`]);
  if (r.code !== 0) {
    // What the remote said (its hooks print `remote: ...`) and git's own verdict, on one line.
    const lines = r.err.split('\n').map((l) => l.trim()).filter(Boolean);
    const said = lines.filter((l) => l.startsWith('remote:')).map((l) => l.slice('remote:'.length).trim());
    throw new SkiffError(`push to ${p.remote} was rejected: ${[...said, ...lines.filter((l) => l.startsWith('!'))].join(' | ') || lines.at(-1)}`);
  }
};

/**
 * Undoes a failed release: deletes the tag and the commit if they are the ones this run made (the tag
 * points at `commit`, HEAD is `commit`), and restores the files otherwise. Never touches anything else.
 */
export const undoRelease = async (p: TagPlan, commit: string | undefined, changelogExisted: boolean): Promise<string[]> => {
  const undone: string[] = [];
  const tagged = await p.git.try(['rev-parse', '-q', '--verify', `refs/tags/${p.tag}^{commit}`]);
  if (commit && tagged.code === 0 && tagged.out === commit) {
    await p.git(['tag', '-d', p.tag]);
    undone.push(`deleted tag ${p.tag}`);
  }
  const head = await p.git(['rev-parse', 'HEAD']);
  if (commit && head === commit) {
    await p.git(['reset', '--quiet', '--hard', p.head]);
    undone.push(`removed commit ${commit.slice(0, 7)}`);
  } else if (!commit && head === p.head) {
    await p.git(['checkout', '--quiet', p.head, '--', ...RELEASE_FILES.filter((f) => f !== 'CHANGELOG.md' || changelogExisted).filter((f) => existsSync(join(p.root, f)))]);
    if (!changelogExisted) rmSync(join(p.root, 'CHANGELOG.md'), { force: true });
    undone.push('restored package.json and CHANGELOG.md');
  }
  return undone;
};
