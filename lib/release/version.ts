/**
 * The version of a build and the id of a release. Pure formatting here; `readVersion` asks git.
 * Version: the tag if HEAD is tagged vX.Y.Z, else `<package version>-<short sha>[-dirty]`, the package
 * version from package.json, else pyproject.toml's `[project] version`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import semver from 'semver';
import { run } from '../host/local.ts';

export interface GitFacts {
  readonly pkgVersion: string;
  readonly sha: string | undefined;
  readonly tag: string | undefined;
  readonly dirty: boolean;
}

/** Formats a version from what git and package.json say. */
export const formatVersion = (f: GitFacts): string => {
  const tagged = f.tag && semver.valid(f.tag.replace(/^v/, ''));
  if (tagged && !f.dirty) return tagged;
  if (!f.sha) return f.pkgVersion;
  return `${f.pkgVersion}-${f.sha}${f.dirty ? '-dirty' : ''}`;
};

const SAFE_ID = /[^A-Za-z0-9._-]+/g;

/** A release id that sorts by time and names the version: `20261122-234512-1.2.0-abc1234`. */
export const releaseId = (now: Date, version: string): string => {
  const stamp = now.toISOString().replace(/\.\d+Z$/, '').replace(/[-:]/g, '').replace('T', '-');
  return `${stamp}-${version.replace(SAFE_ID, '_')}`;
};

/** Release ids are words of letters, digits, `.`, `_` and `-`: safe in paths and messages. */
export const isReleaseId = (id: string): boolean => /^[0-9]{8}-[0-9]{6}-[A-Za-z0-9._-]+$/.test(id);

const git = async (dir: string, args: string[]): Promise<string | undefined> => {
  const r = await run(['git', '-C', dir, ...args], { label: 'local', check: false }).catch(() => undefined);
  return r && r.code === 0 ? r.stdout.trim() : undefined;
};

/** The `version` of pyproject.toml's `[project]` table (a Python app's package version), if any. */
export const pyprojectVersion = (text: string): string | undefined => {
  const table = /^\[project\][ \t]*$([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(text)?.[1] ?? '';
  return /^version[ \t]*=[ \t]*["']([^"'\n]+)["']/m.exec(table)?.[1];
};

const packageVersion = (appDir: string, root: string): string => {
  for (const dir of [appDir, root]) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const v = (JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version;
      if (typeof v === 'string' && v) return v;
    }
    const py = join(dir, 'pyproject.toml');
    const v = existsSync(py) ? pyprojectVersion(readFileSync(py, 'utf8')) : undefined;
    if (v) return v;
  }
  return '0.0.0';
};

/**
 * The repository a version comes from: the git repository that holds the folder (APP_DIR), wherever
 * skiff itself is; undefined outside any. version-tag releases this one (lib/release/version-tag.ts).
 */
export const repositoryOf = (dir: string): Promise<string | undefined> => git(dir, ['rev-parse', '--show-toplevel']);

/**
 * Reads the facts for APP_DIR from the repository that holds it: its tag at HEAD, its sha, whether
 * APP_DIR has changes; the package version of APP_DIR, else of that repository's root (the one
 * version-tag bumps), else of `root` when APP_DIR is in no repository.
 */
export const readGitFacts = async (appDir: string, root: string): Promise<GitFacts> => {
  const sha = await git(appDir, ['rev-parse', '--short', 'HEAD']);
  return {
    pkgVersion: packageVersion(appDir, (sha && (await repositoryOf(appDir))) || root),
    sha,
    tag: sha ? await git(appDir, ['describe', '--exact-match', '--tags', '--match', 'v[0-9]*', 'HEAD']) : undefined,
    dirty: sha ? Boolean(await git(appDir, ['status', '--porcelain', '--', '.'])) : false,
  };
};
