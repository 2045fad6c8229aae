#!/usr/bin/env -S npx tsx
/**
 * The team's one list of commands, like a Makefile: `npx tsx Taskfile.ts --list`,
 * `npx tsx Taskfile.ts deploy local`. Each task is a typed function with a description; most run
 * one of scripts/ with the arguments given.
 */
import { join } from 'node:path';
import { EXIT, UsageError } from './lib/errors.ts';
import { REPO_ROOT } from './lib/paths.ts';

interface Task {
  readonly description: string;
  readonly usage: string;
  readonly run: (args: readonly string[]) => Promise<number>;
}

const script = (name: string) => async (args: readonly string[]) => {
  const { runAttached } = await import('./lib/local.ts');
  return runAttached([join(REPO_ROOT, 'node_modules/.bin/tsx'), join(REPO_ROOT, 'scripts', `${name}.ts`), ...args], process.cwd());
};
const npm = (name: string) => async (args: readonly string[]) => {
  const { runAttached } = await import('./lib/local.ts');
  return runAttached(['npm', 'run', '--silent', name, ...(args.length ? ['--', ...args] : [])], REPO_ROOT);
};

const tasks: Record<string, Task> = {
  build: { description: 'build the app of an environment', usage: '<env>', run: script('build') },
  deploy: { description: 'build and deploy to an environment', usage: '<env> [--yes] [--dry-run]', run: script('deploy-vps') },
  status: { description: 'show the live release, its process and health', usage: '<env> [--json]', run: script('status') },
  start: { description: 'start the live release if it is stopped', usage: '<env>', run: script('start') },
  stop: { description: 'stop the live release', usage: '<env>', run: script('stop') },
  logs: { description: 'print the live release log', usage: '<env> [--follow]', run: script('logs') },
  test: { description: 'run every test', usage: '', run: npm('test') },
  typecheck: { description: 'type-check the project', usage: '', run: npm('typecheck') },
};

const list = (): string =>
  [
    'Tasks (npx tsx Taskfile.ts <task> [args]; <task> --help for its options):',
    ...Object.entries(tasks).map(([name, t]) => `  ${`${name} ${t.usage}`.padEnd(40)}${t.description}`),
  ].join('\n');

const main = async (argv: readonly string[]): Promise<number> => {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--list' || name === '-l' || name === '--help' || name === '-h') {
    process.stdout.write(`${list()}\n`);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const task = tasks[name];
  if (!task) throw new UsageError(`unknown task "${name}": run \`npx tsx Taskfile.ts --list\` to see the tasks`);
  return task.run(rest);
};

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = error instanceof UsageError ? EXIT.usage : EXIT.failed;
}
