import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { UsageError } from '../../lib/core/errors.ts';
import { checkArgs, listTasks, runTaskfile, type Task } from '../../lib/cli/taskfile.ts';

describe('the task runner', () => {
  let calls: string[];
  let out: string;
  const savedEnvDir = process.env.SKIFF_ENV_DIR;
  beforeEach(() => {
    const dir = mkdtempSync(join(tmpdir(), 'skiff-tasks-'));
    writeFileSync(join(dir, 'local.env'), 'APP_NAME=x\n');
    writeFileSync(join(dir, 'staging.env.example'), 'APP_NAME=x\n');
    process.env.SKIFF_ENV_DIR = dir;
    calls = [];
    out = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out += chunk.toString();
      return true;
    });
  });
  afterEach(() => {
    vi.restoreAllMocks();
    if (savedEnvDir === undefined) delete process.env.SKIFF_ENV_DIR;
    else process.env.SKIFF_ENV_DIR = savedEnvDir;
  });

  const record = (name: string, code = 0): Task['run'] => async (ctx) => {
    calls.push(`${name}(${[...ctx.args, ...ctx.flags].join(' ')})`);
    return code;
  };
  const tasks: Record<string, Task> = {
    lint: { description: 'lint', run: record('lint') },
    typecheck: { description: 'typecheck', deps: ['lint'], run: record('typecheck') },
    test: { description: 'test', deps: ['lint'], run: record('test') },
    ci: { description: 'all checks', deps: ['typecheck', 'test', 'lint'], run: record('ci') },
    broken: { description: 'fails', run: record('broken', 1) },
    after: { description: 'after a failure', deps: ['broken', 'lint'], run: record('after') },
    twice: { description: 'calls lint twice', run: async (ctx) => (await ctx.task('lint')) + (await ctx.task('lint')) },
  };

  it('runs dependencies first, once each, in order', async () => {
    expect(await runTaskfile(tasks, ['ci'])).toBe(0);
    expect(calls).toEqual(['lint()', 'typecheck()', 'test()', 'ci()']);
  });

  it('stops at the first dependency that fails, with its exit code', async () => {
    expect(await runTaskfile(tasks, ['after'])).toBe(1);
    expect(calls).toEqual(['broken()']);
  });

  it('a task called twice from another task runs once', async () => {
    expect(await runTaskfile(tasks, ['twice'])).toBe(0);
    expect(calls).toEqual(['lint()']);
  });

  it('passes flags through, including the value of a flag that takes one', async () => {
    const withArgs: Record<string, Task> = { v: { description: 'v', args: [{ name: 'bump', kind: 'word' }], run: record('v') } };
    expect(await runTaskfile(withArgs, ['v', 'prerelease', '--preid', 'beta', '--yes', '--dry-run'])).toBe(0);
    expect(calls).toEqual(['v(prerelease --preid beta --yes --dry-run)']);
  });

  it('lists every task with its description and dependencies', async () => {
    expect(await runTaskfile(tasks, ['--list'])).toBe(0);
    expect(out).toContain('  ci                            all checks (runs typecheck, test, lint first)');
    expect(listTasks(tasks).split('\n').length).toBe(Object.keys(tasks).length + 1);
  });

  it('with no task it lists them and exits 2', async () => {
    expect(await runTaskfile(tasks, [])).toBe(2);
    expect(out).toContain('Tasks');
  });

  it('refuses an unknown task', async () => {
    await expect(runTaskfile(tasks, ['deploi'])).rejects.toThrow(new UsageError('unknown task "deploi": run `npx tsx Taskfile.ts --list` to see the tasks'));
    expect(calls).toEqual([]);
  });

  it.each([
    [['x'], 'task deploy takes <env> [release]'],
    [['local', 'r1', 'extra'], 'task deploy takes <env> [release]'],
    [['nope'], 'task deploy: "nope" is not an environment; one of: local'],
    [['../local'], 'task deploy: "../local" is not an environment'],
  ])('checks arguments: %j', (args, message) => {
    const deploy: Task = { description: 'd', args: [{ name: 'env', kind: 'env' }, { name: 'release', kind: 'optional' }], run: record('d') };
    const check = () => checkArgs('deploy', deploy, args);
    if (args[0] === 'x') expect(() => checkArgs('deploy', deploy, [])).toThrow(message);
    else expect(check).toThrow(message);
  });
});
