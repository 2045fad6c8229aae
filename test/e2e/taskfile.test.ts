/** Taskfile.ts: lists its tasks, refuses unknown ones, and runs a deploy through the script. */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, localEnv, makeSandbox, ROOT, runProcess, type Sandbox } from '../support/sandbox.ts';

const taskfile = (s: Sandbox, args: string[]) =>
  runProcess([join(ROOT, 'node_modules/.bin/tsx'), join(ROOT, 'Taskfile.ts'), ...args], {
    cwd: '/',
    env: { ...process.env, HOME: s.home, SKIFF_ENV_DIR: s.envDir },
  });

describe('Taskfile.ts', () => {
  let s: Sandbox;
  beforeAll(() => {
    s = makeSandbox('taskfile');
    s.writeEnv('t.env', localEnv(s, 18411));
  });
  afterAll(() => s.cleanup());

  it('--list names every task with its description', async () => {
    const r = await taskfile(s, ['--list']);
    expect(r.code).toBe(0);
    for (const task of ['build', 'deploy', 'status', 'start', 'stop', 'logs', 'test', 'typecheck']) {
      expect(r.stdout).toMatch(new RegExp(`^  ${task} .*\\S$`, 'm'));
    }
    expect(r.stdout).toContain('build and deploy to an environment');
  });

  it('refuses an unknown task with exit 2', async () => {
    const r = await taskfile(s, ['deploi', 't']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('error: unknown task "deploi": run `npx tsx Taskfile.ts --list` to see the tasks');
  });

  it('passes a task\'s exit code through (unknown env: 2)', async () => {
    const r = await taskfile(s, ['deploy', 'nope']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown environment "nope"');
  });

  it('deploy <env> runs the deploy, from any directory', async () => {
    const r = await taskfile(s, ['deploy', 't']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('deployed 1.0.0');
    expect((await get('http://127.0.0.1:18411/')).text).toContain('hello 1.0.0 (t)');
    expect((await taskfile(s, ['stop', 't'])).code).toBe(0);
  });
});
