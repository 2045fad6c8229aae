/**
 * The task runner behind Taskfile.ts: typed tasks with a description, argument checks (env names
 * come from the files in env/), dependencies that run once each in order, and fixed exit codes.
 * Light on purpose: `--list` imports nothing heavy.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT, SkiffError, UsageError } from '../core/errors.ts';
import { REPO_ROOT } from '../core/paths.ts';
import { envDir, listEnvs } from '../config/env-files.ts';
import type { FlagSpec } from './cli.ts';
import { specs } from './specs.ts';

export type ArgKind = 'env' | 'word' | 'optional';

export interface TaskContext {
  /** Positional arguments, checked against the task's `args`. */
  readonly args: readonly string[];
  /** Flags given after the task (`--yes`, `--dry-run`, ...), passed through to scripts. */
  readonly flags: readonly string[];
  /** Runs another task (once per invocation, like a dependency). */
  readonly task: (name: string, args?: readonly string[]) => Promise<number>;
}

export interface Task {
  readonly description: string;
  readonly args?: readonly { readonly name: string; readonly kind: ArgKind }[];
  /** Tasks that run first, once each, in this order. */
  readonly deps?: readonly string[];
  /** A script under scripts/ whose `--help` answers `<task> --help`. */
  readonly script?: string;
  readonly run: (ctx: TaskContext) => Promise<number>;
}

/** Runs scripts/<name>.ts with the arguments and flags; resolves to its exit code. */
export const script = (name: string, ...fixed: readonly string[]) => async (ctx: TaskContext): Promise<number> => {
  const file = join(REPO_ROOT, 'scripts', `${name}.ts`);
  if (!existsSync(file)) throw new SkiffError(`scripts/${name}.ts is not part of this version of skiff yet`, EXIT.usage);
  const { runAttached } = await import('../host/local.ts');
  return runAttached([join(REPO_ROOT, 'node_modules/.bin/tsx'), file, ...fixed, ...ctx.args, ...ctx.flags], process.cwd());
};

/** Runs an npm script of the repo. */
export const npm = (name: string) => async (): Promise<number> => {
  const { runAttached } = await import('../host/local.ts');
  return runAttached(['npm', 'run', '--silent', name], REPO_ROOT);
};

const usageOf = (name: string, t: Task): string => [name, ...(t.args ?? []).map((a) => (a.kind === 'optional' ? `[${a.name}]` : `<${a.name}>`))].join(' ');

/** The text of `--list`. */
export const listTasks = (tasks: Readonly<Record<string, Task>>): string =>
  [
    'Tasks (npx tsx Taskfile.ts <task> [args] [--yes] [--dry-run]; <task> --help for its options):',
    ...Object.entries(tasks).map(([name, t]) => `  ${usageOf(name, t).padEnd(30)}${t.description}${t.deps?.length ? ` (runs ${t.deps.join(', ')} first)` : ''}`),
  ].join('\n');

const envNames = (): string[] => listEnvs(envDir());

/** Checks a task's positional arguments; env arguments must name a file in env/. */
export const checkArgs = (name: string, t: Task, args: readonly string[]): void => {
  const spec = t.args ?? [];
  const required = spec.filter((a) => a.kind !== 'optional').length;
  if (args.length < required || args.length > spec.length) {
    throw new UsageError(`task ${name} takes ${usageOf(name, t).slice(name.length + 1) || 'no arguments'}: e.g. npx tsx Taskfile.ts ${usageOf(name, t)}`);
  }
  spec.forEach((a, i) => {
    const value = args[i];
    if (a.kind === 'env' && value !== undefined && !envNames().includes(value)) {
      throw new UsageError(`task ${name}: "${value}" is not an environment; one of: ${envNames().join(', ') || 'none (add env/<name>.env)'}`);
    }
  });
};

/** Parses argv, runs the task and its dependencies, and returns the exit code. */
export const runTaskfile = async (tasks: Readonly<Record<string, Task>>, argv: readonly string[]): Promise<number> => {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--list' || name === '-l' || name === '--help' || name === '-h') {
    process.stdout.write(`${listTasks(tasks)}\n`);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const ran = new Map<string, number>();
  const { flags, positionals } = splitArgs(rest);
  const invoke = async (taskName: string, args: readonly string[]): Promise<number> => {
    const key = `${taskName} ${args.join(' ')}`;
    const earlier = ran.get(key);
    if (earlier !== undefined) return earlier;
    const t = tasks[taskName];
    if (!t) throw new UsageError(`unknown task "${taskName}": run \`npx tsx Taskfile.ts --list\` to see the tasks`);
    checkArgs(taskName, t, args);
    for (const dep of t.deps ?? []) {
      const code = await invoke(dep, []);
      if (code !== EXIT.ok) return code;
    }
    const code = await t.run({ args, flags, task: (n, a = []) => invoke(n, a) });
    ran.set(key, code);
    return code;
  };
  const t = tasks[name];
  if (t && (flags.includes('--help') || flags.includes('-h'))) {
    if (t.script) return script(t.script)({ args: [], flags: ['--help'], task: async () => EXIT.ok });
    process.stdout.write(`${usageOf(name, t)}\n  ${t.description}\n`);
    return EXIT.ok;
  }
  return invoke(name, positionals);
};

/** Flags of the scripts that take a value (from their specs): the word after them is not a task argument. */
const VALUE_FLAGS = new Set(
  Object.values(specs).flatMap((spec) =>
    Object.entries(spec.flags as Record<string, FlagSpec>).flatMap(([name, f]) => (f.type === 'string' ? [`--${name}`, ...(f.short ? [`-${f.short}`] : [])] : [])),
  ),
);

const splitArgs = (words: readonly string[]): { flags: string[]; positionals: string[] } => {
  const flags: string[] = [];
  const positionals: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    if (!w.startsWith('-')) positionals.push(w);
    else {
      flags.push(w);
      if (VALUE_FLAGS.has(w) && i + 1 < words.length) flags.push(words[++i] as string);
    }
  }
  return { flags, positionals };
};

/** The one place Taskfile.ts exits: errors become one line and their exit code. */
export const main = async (tasks: Readonly<Record<string, Task>>): Promise<void> => {
  try {
    process.exitCode = await runTaskfile(tasks, process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = error instanceof SkiffError ? error.exitCode : EXIT.failed;
  }
};
