/** Taskfile.ts: lists its tasks, refuses unknown ones, and runs a deploy through the script. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { makeRepo, type Repo } from '../support/git-repo.ts';
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

  it('refuses a task argument that is not an environment (exit 2)', async () => {
    const r = await taskfile(s, ['deploy', 'nope']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('error: task deploy: "nope" is not an environment; one of: t');
  });

  it('passes a script\'s exit code through (bad flag: 2)', async () => {
    const r = await taskfile(s, ['status', 't', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown option --bogus for status');
  });

  it('deploy <env> runs the deploy, from any directory', async () => {
    const r = await taskfile(s, ['deploy', 't']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('deployed 1.0.0');
    expect((await get('http://127.0.0.1:18411/')).text).toContain('hello 1.0.0 (t)');
    expect((await taskfile(s, ['stop', 't'])).code).toBe(0);
  });

  describe('release <env> <bump>', () => {
    let repo: Repo;
    beforeAll(() => {
      repo = makeRepo();
      repo.commit('feat: something to release');
    });
    afterAll(() => repo.cleanup());

    it('an unknown bump stops at the first step: nothing built or deployed (exit 2)', async () => {
      const r = await taskfile(s, ['release', 't', 'huge', '--yes', '--repo', repo.work]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('"huge" is neither patch');
      expect(existsSync(join(s.dir, 'rel/srv'))).toBe(false);
    });

    it('a failing build stops the chain after the tag: the host is untouched (exit 1)', async () => {
      s.writeEnv('rel.env', localEnv(s, 18412, `DEPLOY_PATH=${join(s.dir, 'rel/srv')}\nDEPLOY_BUILD=echo compile error >&2; exit 1`));
      const r = await taskfile(s, ['release', 'rel', 'patch', '--yes', '--repo', repo.work]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('build failed (exit 1)');
      expect(repo.git('describe', '--tags')).toBe('v1.0.1');
      expect(existsSync(join(s.dir, 'rel/srv'))).toBe(false);
    });

    it('versions, builds, deploys and verifies', async () => {
      repo.commit('fix: and one more');
      s.writeEnv('rel.env', localEnv(s, 18412, `DEPLOY_PATH=${join(s.dir, 'rel/srv')}\nDEPLOY_BUILD=true`));
      const r = await taskfile(s, ['release', 'rel', 'minor', '--yes', '--repo', repo.work]);
      expect(r.stderr).not.toMatch(/^error/m);
      expect(r.code).toBe(0);
      expect(repo.git('describe', '--tags')).toBe('v1.1.0');
      expect(r.stdout).toContain('deployed 1.0.0');
      expect(r.stdout).toMatch(/health +ok \(HTTP 200\)/);
      expect((await get('http://127.0.0.1:18412/')).text).toContain('hello 1.0.0 (rel)');
      const stop = await taskfile(s, ['stop', 'rel']);
      expect(stop.code, `${stop.stdout}${stop.stderr}`).toBe(0);
    });
  });
});
