/** Real git repositories in temporary folders, with a bare "origin", for release tests. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Repo {
  readonly dir: string;
  readonly work: string;
  readonly origin: string;
  /** An environment with a home of its own, so the machine's git config plays no part. */
  readonly env: NodeJS.ProcessEnv;
  git(...args: string[]): string;
  commit(subject: string, file?: string): void;
  write(file: string, text: string): void;
  /** sha256 of every file below a folder (work tree and .git), for "nothing changed" checks. */
  snapshot(): Record<string, string>;
  cleanup(): void;
}

export const makeRepo = (opts: { version?: string; test?: string; lockfile?: boolean } = {}): Repo => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-git-'));
  const home = join(dir, 'home');
  mkdirSync(home);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_DATE: '2026-11-20T10:00:00Z',
    GIT_COMMITTER_DATE: '2026-11-20T10:00:00Z',
  };
  const origin = join(dir, 'origin.git');
  const work = join(dir, 'work');
  const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, env, encoding: 'utf8' }).trim();
  git(dir, 'init', '-q', '--bare', origin);
  git(dir, 'init', '-q', '-b', 'main', work);
  git(work, 'config', 'user.name', 'Release Tester');
  git(work, 'config', 'user.email', 'tester@example.com');
  const pkg = { name: 'app', version: opts.version ?? '1.0.0', scripts: { test: opts.test ?? 'true' } };
  writeFileSync(join(work, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  if (opts.lockfile) {
    const lock = { name: 'app', version: pkg.version, lockfileVersion: 3, requires: true, packages: { '': { name: 'app', version: pkg.version } } };
    writeFileSync(join(work, 'package-lock.json'), `${JSON.stringify(lock, null, 2)}\n`);
  }
  git(work, 'add', '.');
  git(work, 'commit', '-q', '-m', 'chore: start');
  git(work, 'tag', '-a', `v${pkg.version}`, '-m', `v${pkg.version}`);
  git(work, 'remote', 'add', 'origin', origin);
  git(work, 'push', '-q', '-u', 'origin', 'main', `v${pkg.version}`);

  let n = 0;
  const walk = (root: string, into: Record<string, string>, prefix = ''): void => {
    for (const name of readdirSync(root)) {
      const full = join(root, name);
      if (statSync(full).isDirectory()) walk(full, into, `${prefix}${name}/`);
      else into[`${prefix}${name}`] = createHash('sha256').update(readFileSync(full)).digest('hex');
    }
  };
  return {
    dir,
    work,
    origin,
    env,
    git: (...args) => git(work, ...args),
    commit(subject, file = `f${++n}.txt`) {
      writeFileSync(join(work, file), `${subject}\n`);
      git(work, 'add', file);
      git(work, 'commit', '-q', '-m', subject);
    },
    write(file, text) {
      writeFileSync(join(work, file), text);
    },
    snapshot() {
      const files: Record<string, string> = {};
      walk(work, files);
      walk(origin, files, 'origin/');
      return files;
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
};
