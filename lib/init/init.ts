/**
 * `init`: checks the app folder (exists, in git, committed, not skiff itself), plans, prints every
 * file it would write, and writes them (each atomically, the record last), then the next steps.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { REPO_ROOT } from '../core/paths.ts';
import { EXIT, SkiffError, UsageError } from '../core/errors.ts';
import { run } from '../host/local.ts';
import { INIT_MANIFEST, writeAtomic } from './manifest.ts';
import { InitRefusal, isApplied, planInit, readApp, type FileChange, type InitPlan, type SkiffSide } from './plan.ts';
import { runScript } from './detect.ts';
import { skiffSources } from './sources.ts';

export interface InitOptions {
  readonly dryRun: boolean;
  readonly force: boolean;
  readonly update: boolean;
  readonly yes: boolean;
}

// --no-optional-locks: a refused init leaves even git's index as it was (status would refresh it).
const git = async (dir: string, args: readonly string[]) => run(['git', '--no-optional-locks', '-C', dir, ...args], { label: 'local', check: false, timeoutMs: 30_000 });

/** skiff's side, read from the checkout that runs init. */
export const readSkiff = (root: string = REPO_ROOT): SkiffSide => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> };
  const ts = JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8')) as { compilerOptions: Record<string, unknown> };
  return { version: pkg.version, sources: skiffSources(root), deps: pkg.dependencies, compilerOptions: ts.compilerOptions };
};

/** The app folder checked: an existing folder in a git repository, with no uncommitted changes unless forced. Exit 2 otherwise. */
export const checkAppFolder = async (given: string, opts: { force: boolean }): Promise<string> => {
  const dir = resolve(given);
  if (!existsSync(dir)) throw new UsageError(`${given} does not exist: give the folder of your app's repository`);
  if (!statSync(dir).isDirectory()) throw new UsageError(`${given} is not a folder: give the folder of your app's repository`);
  if (dir === REPO_ROOT) throw new UsageError(`${given} is this skiff checkout itself: give the folder of your app's repository`);
  const top = await git(dir, ['rev-parse', '--show-toplevel']);
  if (top.code !== 0) throw new UsageError(`${given} is not in a git repository: run \`git init\` there and commit the app first, so what init writes can be reviewed and undone`);
  const status = await git(dir, ['status', '--porcelain', '--untracked-files=normal', '--', '.']);
  const dirty = status.stdout.split('\n').filter((l) => l.trim() !== '');
  if (dirty.length > 0 && !opts.force) {
    throw new UsageError(`${given} has ${dirty.length} uncommitted change${dirty.length === 1 ? '' : 's'} (${dirty[0]?.slice(3)}${dirty.length > 1 ? ', ...' : ''}): commit or stash them first, so init's changes stand apart (or pass --force)`);
  }
  return dir;
};

const pad = (s: string, n: number) => (s.length >= n ? `${s} ` : s.padEnd(n));

/** One line per file: `create scripts/deploy-vps.ts   a skiff script`. */
export const formatChanges = (changes: readonly FileChange[]): string[] => {
  const width = Math.min(44, Math.max(...changes.map((c) => c.path.length)) + 8);
  return changes.map((c) => `${pad(`${isApplied(c) ? c.action : 'keep'} ${c.path}`, width)}${c.why}`);
};

/** A unified diff of one change, from `diff -u` (labels a/ and b/ as git shows them). */
const diffOf = async (c: FileChange): Promise<string> => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-init-diff-'));
  try {
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    writeFileSync(a, c.before ?? '');
    writeFileSync(b, c.action === 'remove' ? '' : (c.content ?? ''));
    const r = await run(['diff', '-u', '--label', `a/${c.path}`, '--label', c.action === 'remove' ? '/dev/null' : `b/${c.path}`, a, b], { label: 'local', check: false, timeoutMs: 30_000 });
    return r.stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

/** Writes the plan: files in order (each atomically), removals, then the record. */
const apply = (root: string, changes: readonly FileChange[]): void => {
  const record = changes.find((c) => c.path === INIT_MANIFEST);
  for (const c of changes) {
    if (c === record || !isApplied(c)) continue;
    const file = join(root, c.path);
    if (c.action === 'remove') {
      unlinkSync(file);
      continue;
    }
    writeAtomic(file, c.content ?? '', c.executable ? 0o755 : 0o644);
    if (c.executable) chmodSync(file, 0o755);
  }
  if (record) writeAtomic(join(root, record.path), record.content ?? '');
};

/** What to do next, after a first init. */
export const nextSteps = (plan: InitPlan, folder: string): string[] => {
  const pm = plan.detected.packageManager ?? 'npm';
  const install = pm === 'npm' ? 'npm install' : `${pm} install`;
  return [
    'Next steps:',
    `  1. cd ${folder} && ${install}          (skiff's packages: tsx, zx, listr2, ssh2, zod, ...)`,
    '  2. edit env/staging.env: DEPLOY_HOSTS (user@your-server), DEPLOY_PATH, and check DEPLOY_START and DEPLOY_HEALTH_PATH',
    ...plan.detected.todo.map((t) => `     and ${t}`),
    '  3. npx tsx scripts/setup.ts staging --dry-run, then without --dry-run (prepares the server)',
    '  4. git add -A && git commit -m "Deploy with skiff"',
    `  5. ${runScript(pm, 'deploy:staging')}, then npx tsx scripts/status.ts staging`,
    "  The steps in full: docs/getting-started.md in skiff's repository.",
  ];
};

/** Runs init; resolves to the exit code. `out` and `err` receive whole lines. */
export const runInit = async (given: string, opts: InitOptions, out: (line: string) => void): Promise<number> => {
  const root = await checkAppFolder(given, opts);
  let plan: InitPlan;
  try {
    plan = planInit(readSkiff(), readApp(root), { update: opts.update, force: opts.force });
  } catch (error) {
    if (error instanceof InitRefusal) throw new SkiffError(error.message, EXIT.usage);
    throw error;
  }
  out(`skiff init ${root}${opts.update ? ' --update' : ''}: ${plan.detected.found.join('; ') || 'no Node or Python app recognised'}`);
  const applied = plan.changes.filter(isApplied);
  if (applied.length === 0) {
    for (const k of plan.kept) out(`kept: ${k}`);
    for (const c of plan.conflicts) out(`conflict: ${c}`);
    out('nothing to change');
    return EXIT.ok;
  }
  if (opts.update) {
    for (const c of plan.changes.filter((c) => c.action !== 'create' && c.path !== INIT_MANIFEST)) out((await diffOf(c)).trimEnd());
  }
  for (const line of formatChanges(plan.changes)) out(line);
  for (const k of plan.kept) out(`kept: ${k}`);
  for (const c of plan.conflicts) out(`conflict: ${c}`);
  if (opts.dryRun) {
    out(`dry run: nothing written (${applied.length} file${applied.length === 1 ? '' : 's'} would be)`);
    return EXIT.ok;
  }
  if (opts.update && !opts.yes) {
    out(`not applied: run init --update --yes to write these ${applied.length} files`);
    return EXIT.ok;
  }
  apply(root, plan.changes);
  out(`wrote ${applied.length} file${applied.length === 1 ? '' : 's'}`);
  if (!opts.update) for (const line of nextSteps(plan, given)) out(line);
  return EXIT.ok;
};
