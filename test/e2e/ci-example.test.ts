/**
 * The CI example has run: the jobs `test` and `deploy-staging` of docs/examples/github-actions.yml,
 * read out of the file, run step by step on this machine as a runner would (a fresh clone, a fresh
 * HOME, no terminal, the secrets in the environment of their step), deploying an app brought under
 * skiff by init to the loopback SSH host. Two steps stand in for what needs the internet: the
 * `uses:` actions (checkout is a clone; Node is this machine's) and `npm ci` (the packages are this
 * checkout's, linked); every other command is the file's own.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Repo } from '../support/git-repo.ts';
import { linkPackages, makeShopRepo, pointStaging, runInit, userEnv } from '../support/init-app.ts';
import { get, pidsWithMarker, ROOT, runProcess } from '../support/sandbox.ts';
import { workflowJobs, type Step } from '../support/workflow.ts';

const PORT = 18971;
const SSH = { ip: '127.0.0.42', port: 2262 };
const WORKFLOW = join(ROOT, 'docs/examples/github-actions.yml');
const APP_SECRET = 'SESSION_SECRET=ci-secret-7d1f0a';

describe('the CI example, run', () => {
  let app: Repo;
  let sshDir: string;
  let deployPath: string;
  let secrets: Record<string, string>;
  const jobs = workflowJobs(readFileSync(WORKFLOW, 'utf8'));

  beforeAll(async () => {
    app = makeShopRepo();
    sshDir = join(app.dir, 'sshd');
    deployPath = join(app.dir, 'srv/staging');
    execFileSync('bash', [join(ROOT, 'test/infra/sshd.sh'), sshDir, SSH.ip, String(SSH.port)], { stdio: 'ignore' });
    const init = await runInit([app.work], userEnv(app));
    expect(init.code, init.stderr).toBe(0);
    pointStaging(app, SSH, deployPath, PORT);
    app.git('add', '-A');
    app.git('commit', '-q', '-m', 'chore: deploy with skiff');
    app.git('push', '-q', 'origin', 'main');
    secrets = {
      DEPLOY_SSH_KEY: readFileSync(join(sshDir, 'id_ed25519'), 'utf8').trimEnd(),
      DEPLOY_KNOWN_HOSTS: readFileSync(join(sshDir, 'known_hosts'), 'utf8').trimEnd(),
      STAGING_SECRETS_ENV: APP_SECRET,
    };
  });
  afterAll(() => {
    for (const pid of pidsWithMarker(deployPath)) process.kill(pid, 'SIGKILL');
    const pid = join(sshDir, 'sshd.pid');
    if (existsSync(pid)) process.kill(Number(readFileSync(pid, 'utf8')), 'SIGTERM');
    app.cleanup();
  });

  /** Runs one job as a runner would; every step's output, and the runner's HOME and workspace. */
  const runJob = async (name: string) => {
    const steps = jobs[name] as Step[];
    const runner = join(app.dir, `runner-${name}`);
    const home = join(runner, 'home');
    const work = join(runner, 'work');
    mkdirSync(home, { recursive: true });
    const outputs: string[] = [];
    for (const step of steps) {
      if (step.uses?.startsWith('actions/checkout@')) {
        execFileSync('git', ['clone', '-q', '-b', 'main', app.origin, work], { env: app.env });
        continue;
      }
      if (step.uses?.startsWith('actions/setup-node@')) {
        expect(process.version).toMatch(/^v20\./);
        continue;
      }
      expect(step.uses, `a step this test cannot stand in for: ${JSON.stringify(step)}`).toBeUndefined();
      const run = step.run as string;
      if (run === 'npm ci') {
        linkPackages(work);
        continue;
      }
      const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home, CI: 'true', GITHUB_ACTIONS: 'true', LANG: 'C.UTF-8' };
      for (const [k, v] of Object.entries(step.env)) {
        const secret = /^\$\{\{ secrets\.(\w+) \}\}$/.exec(v);
        if (v.includes('${{') && !secret) throw new Error(`an expression this test does not know: ${v}`);
        env[k] = secret ? (secrets[secret[1] as string] ?? '') : v;
      }
      // GitHub runs `run:` with bash -e.
      const r = await runProcess(['bash', '--noprofile', '--norc', '-e', '-o', 'pipefail', '-c', run], { cwd: work, env });
      outputs.push(`$ ${run}\n${r.stdout}${r.stderr}`);
      expect(r.code, `${run}\n${r.stdout}${r.stderr}`).toBe(0);
    }
    return { home, work, log: outputs.join('\n') };
  };

  it("the test job runs the app's own tests", async () => {
    expect((jobs.test as Step[]).map((s) => s.run).filter(Boolean)).toEqual(['npm ci', 'npm test']);
    const { log } = await runJob('test');
    expect(log).toContain('node -e "process.exit(0)"');
  });

  it('the deploy job deploys to staging with the key and known_hosts from secrets, in files of mode 600, never in the log', async () => {
    const { home, work, log } = await runJob('deploy-staging');
    const sha = app.git('rev-parse', '--short', 'HEAD');
    expect(log).toContain(`deployed 1.0.0-${sha}`);
    expect((await get(`http://127.0.0.1:${PORT}/`)).text).toBe(`shop 1.0.0-${sha}\n`);
    for (const file of [join(home, '.ssh/deploy_key'), join(home, '.ssh/known_hosts'), join(work, 'env/staging.secrets.env')]) {
      expect((statSync(file).mode & 0o777).toString(8), file).toBe('600');
    }
    const keyBody = (secrets.DEPLOY_SSH_KEY as string).split('\n')[1] as string;
    expect(log).not.toContain(keyBody);
    expect(log).not.toContain('ci-secret-7d1f0a');
    // The app got its secret, in a file only the deploy user can read.
    const shared = join(deployPath, 'shared/.env');
    expect(readFileSync(shared, 'utf8')).toMatch(/^SESSION_SECRET='?ci-secret-7d1f0a'?$/m);
    expect((statSync(shared).mode & 0o777).toString(8)).toBe('600');
  });
});
