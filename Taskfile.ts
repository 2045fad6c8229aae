#!/usr/bin/env -S npx tsx
/**
 * The team's one list of commands, like a Makefile:
 *   npx tsx Taskfile.ts --list
 *   npx tsx Taskfile.ts deploy staging --yes
 *   npx tsx Taskfile.ts release production patch
 * Each task is a typed function with a description; lib/cli/taskfile.ts checks arguments and runs
 * dependencies once each, in order.
 */
import { EXIT, UsageError } from './lib/core/errors.ts';
import { main, npm, script, type Task, type TaskContext } from './lib/cli/taskfile.ts';

const env = { name: 'env', kind: 'env' } as const;

/** Stops a chain at the first step that does not exit 0. */
const chain = async (steps: readonly (() => Promise<number>)[]): Promise<number> => {
  for (const step of steps) {
    const code = await step();
    if (code !== EXIT.ok) return code;
  }
  return EXIT.ok;
};

const tasks: Record<string, Task> = {
  build: { description: 'build the app of an environment', args: [env], script: 'build', run: script('build') },
  deploy: { description: 'build and deploy to an environment', args: [env], script: 'deploy-vps', run: script('deploy-vps') },
  'deploy-group': { description: 'deploy the services of a group (env/<group>.group) together, all or nothing; --rollback takes them back', args: [{ name: 'group', kind: 'word' }], script: 'deploy-group', run: script('deploy-group') },
  rollback: { description: 'go back to an earlier release', args: [env, { name: 'release', kind: 'optional' }], script: 'rollback', run: script('rollback') },
  backup: { description: 'back up the data of an environment', args: [env, { name: 'label', kind: 'optional' }], script: 'backup', run: script('backup') },
  restore: { description: 'restore a backup', args: [env, { name: 'backup', kind: 'word' }], script: 'restore', run: script('restore') },
  version: { description: 'bump the version, commit and tag it', args: [{ name: 'bump', kind: 'word' }], script: 'version-tag', run: script('version-tag') },
  setup: { description: 'prepare the hosts of an environment (idempotent)', args: [env], script: 'setup', run: script('setup') },
  status: { description: 'show the live release, its process and health', args: [env], script: 'status', run: script('status') },
  logs: { description: 'print the live release log', args: [env], script: 'logs', run: script('logs') },
  start: { description: 'start the live release if it is stopped', args: [env], script: 'start', run: script('start') },
  stop: { description: 'stop the live release', args: [env], script: 'stop', run: script('stop') },
  maintenance: { description: 'put up or take down the 503 maintenance page (on|off)', args: [env, { name: 'on|off', kind: 'word' }], script: 'maintenance', run: script('maintenance') },
  export: { description: 'write Compose, Swarm or Kubernetes files for the release (--to compose|swarm|kubernetes)', args: [env], script: 'export', run: script('export') },
  'db:migrate': { description: 'run DEPLOY_MIGRATE in the live release (first host), with its environment', args: [env], run: (ctx) => migrate(ctx) },
  'db:backup': { description: 'back up the database and data of an environment', args: [env, { name: 'label', kind: 'optional' }], script: 'backup', run: script('backup') },
  'db:restore': { description: 'restore a backup of the database and data', args: [env, { name: 'backup', kind: 'word' }], script: 'restore', run: script('restore') },
  'db:shell': { description: 'open psql or sqlite3 on the database of an environment (first host)', args: [env], run: (ctx) => onFirstHost(ctx, ['--db', ...tty()]) },
  restart: { description: 'restart the live release: stop (it drains), then start', args: [env], run: (ctx) => restart(ctx) },
  shell: { description: 'open a shell in the live release folder, with its environment (first host)', args: [env], run: (ctx) => onFirstHost(ctx, [...tty(), '--', 'exec "${SHELL:-/bin/sh}"']) },
  'env-check': { description: 'validate every env file and report every problem', run: () => envCheck() },
  test: { description: 'run every test', run: npm('test') },
  typecheck: { description: 'type-check the project', run: npm('typecheck') },
  ci: { description: 'what CI runs', deps: ['typecheck', 'test'], run: async () => EXIT.ok },
  release: {
    description: 'version, build, backup, deploy and verify, stopping at the first failure',
    args: [env, { name: 'bump', kind: 'word' }],
    run: (ctx) => release(ctx),
  },
};

/**
 * version-tag, build, backup (when the env names data to back up), deploy, then a health check. The
 * tag goes on the repository this env deploys from (its APP_DIR's), unless --repo names another.
 */
const release = ({ args: [target = '', bump = ''], flags, task }: TaskContext) => {
  const pass = flags.filter((f) => f === '--yes' || f === '-y' || f === '--dry-run');
  const repo = flags.includes('--repo') ? ['--repo', flags[flags.indexOf('--repo') + 1] ?? ''] : ['--env', target];
  const run = (name: string, ...args: string[]) => () => script(name)({ args, flags: pass, task });
  return chain([
    run('version-tag', bump, ...repo),
    () => (pass.includes('--dry-run') ? Promise.resolve(EXIT.ok) : script('build')({ args: [target], flags: [], task })),
    () => backupIfConfigured(target, pass),
    run('deploy-vps', target, '--no-build'),
    () => (pass.includes('--dry-run') ? Promise.resolve(EXIT.ok) : verify(target)),
  ]);
};

const backupIfConfigured = async (target: string, pass: readonly string[]): Promise<number> => {
  const { loadConfig } = await import('./lib/config/config.ts');
  const { backup } = loadConfig(target);
  if (!backup.sqlite.length && !backup.paths.length && !backup.postgresUrl) return EXIT.ok;
  if (pass.includes('--dry-run')) {
    process.stdout.write(`release: would back up ${target} before deploying (dry run: not backed up)\n`);
    return EXIT.ok;
  }
  return script('backup')({ args: [target, 'before-release'], flags: [], task: async () => EXIT.ok });
};

/** After a deploy: the live release answers its health check. */
const verify = async (target: string): Promise<number> => {
  const { runAttached } = await import('./lib/host/local.ts');
  const { join } = await import('node:path');
  const { REPO_ROOT } = await import('./lib/core/paths.ts');
  return runAttached([join(REPO_ROOT, 'node_modules/.bin/tsx'), join(REPO_ROOT, 'scripts/status.ts'), target], process.cwd());
};

/** `--tty` when this terminal can give one (a piped stdin makes the session read it instead). */
const tty = (): string[] => (process.stdin.isTTY ? ['--tty'] : []);

/**
 * scripts/exec.ts on the environment's first host (or the one `--host` names), with the task's
 * flags before `rest`: a database, a shell or a migration is one host's business, not each host's.
 */
const onFirstHost = async ({ args: [target = ''], flags, task }: TaskContext, rest: readonly string[]): Promise<number> => {
  const { loadConfig } = await import('./lib/config/config.ts');
  const { targetName } = await import('./lib/flows/exec.ts');
  const [first] = loadConfig(target).hosts;
  const host = flags.includes('--host') || !first ? [] : ['--host', targetName(first)];
  return script('exec')({ args: [target, ...host, ...flags, ...rest], flags: [], task });
};

/** DEPLOY_MIGRATE, run once through exec as a shell command line; refused when it is not set. */
const migrate = async (ctx: TaskContext): Promise<number> => {
  const target = ctx.args[0] ?? '';
  const { loadConfig } = await import('./lib/config/config.ts');
  const cfg = loadConfig(target);
  const command = cfg.migrate;
  if (!command) {
    throw new UsageError(`db:migrate: DEPLOY_MIGRATE is not set for ${target}: set it in env/${target}.env to the migration command (e.g. DEPLOY_MIGRATE=alembic upgrade head)`);
  }
  // The deadline a deploy gives it; like exec it takes no deploy lock (docs/exec.md#dbmigrate).
  const timeout = ctx.flags.includes('--timeout') ? [] : ['--timeout', String(cfg.migrateTimeoutSeconds)];
  return onFirstHost(ctx, [...timeout, '--', command]);
};

/** stop (it drains for DEPLOY_DRAIN_SECONDS), then start and its health check; start takes no --yes. */
const restart = ({ args: [target = ''], flags, task }: TaskContext) =>
  chain([
    () => script('stop')({ args: [target], flags, task }),
    () => script('start')({ args: [target], flags: flags.filter((f) => f !== '--yes' && f !== '-y'), task }),
  ]);

const envCheck = async (): Promise<number> => {
  const { checkEnvFiles } = await import('./lib/config/envcheck.ts');
  const results = checkEnvFiles();
  for (const r of results) {
    process.stdout.write(r.problems.length ? `✖ ${r.file}\n${r.problems.map((p) => `    ${p}`).join('\n')}\n` : `✔ ${r.file}\n`);
  }
  const bad = results.filter((r) => r.problems.length).length;
  process.stdout.write(bad ? `${bad} of ${results.length} env files have problems\n` : `all ${results.length} env files are valid\n`);
  return bad ? EXIT.usage : EXIT.ok;
};

await main(tasks);
