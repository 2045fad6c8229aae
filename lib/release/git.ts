/** The git commands version-tag needs, run in one repository through lib/host/local.ts. */
import { SkiffError } from '../core/errors.ts';
import { run } from '../host/local.ts';
import type { Commit } from './changes.ts';

export interface Git {
  readonly dir: string;
  /** Runs git and returns trimmed stdout; throws on failure. */
  (args: readonly string[], input?: string): Promise<string>;
  /** Runs git; resolves to its exit status and output, never throws for a non-zero status. */
  try(args: readonly string[]): Promise<{ code: number | null; out: string; err: string }>;
}

/** A git runner for `dir`, with the caller's environment (their identity, ssh agent and config). */
export const gitIn = (dir: string): Git => {
  // No optional locks: `git status` must not refresh the index, so a dry run leaves .git byte-identical.
  const env = { ...process.env, LC_ALL: 'C', GIT_TERMINAL_PROMPT: '0', GIT_OPTIONAL_LOCKS: '0' } as Record<string, string>;
  const attempt = async (args: readonly string[], input?: string) => {
    const r = await run(['git', '-C', dir, ...args], { env, check: false, label: 'local', ...(input !== undefined ? { stdin: input } : {}) });
    return { code: r.code, out: r.stdout.trim(), err: r.stderr.trim() };
  };
  const git = (async (args: readonly string[], input?: string) => {
    const r = await attempt(args, input);
    if (r.code !== 0) throw new SkiffError(`git ${args.join(' ')} failed: ${r.err.split('\n').slice(-2).join(' ') || `exit ${r.code}`}`);
    return r.out;
  }) as Git;
  Object.assign(git, { dir, try: attempt });
  return git;
};

/** Commits from `since` (a tag, or the root when undefined) to HEAD, newest first. */
export const commitsSince = async (git: Git, since: string | undefined): Promise<Commit[]> => {
  const out = await git(['log', '--format=%H%x1f%s%x1e', since ? `${since}..HEAD` : 'HEAD']);
  return out
    .split('\x1e')
    .map((rec) => rec.trim())
    .filter(Boolean)
    .map((rec) => {
      const [sha = '', subject = ''] = rec.split('\x1f');
      return { sha, subject };
    });
};

/** The newest tag `vX.Y.Z` reachable from HEAD, if any. */
export const lastTag = async (git: Git): Promise<string | undefined> => {
  const r = await git.try(['describe', '--tags', '--abbrev=0', '--match', 'v[0-9]*']);
  return r.code === 0 && r.out ? r.out : undefined;
};

/** The remote to fetch and push: the branch's upstream remote, else `origin` when it exists. */
export const releaseRemote = async (git: Git, branch: string): Promise<string | undefined> => {
  const upstream = await git.try(['config', `branch.${branch}.remote`]);
  if (upstream.code === 0 && upstream.out) return upstream.out;
  const remotes = (await git(['remote'])).split('\n');
  return remotes.includes('origin') ? 'origin' : undefined;
};
