/**
 * Workers (DEPLOY_WORKERS) through the real scripts on this machine, blue-green behind a real Caddy:
 * a worker that took a job when a deploy replaces it gets SIGTERM and its grace, finishes the job,
 * and the new release's worker takes the next one; a worker that exits at once fails the deploy
 * with exit 1 and nothing switched, the old worker still at work; status, stop, start and rollback
 * carry the workers along; a bad worker name is refused at config time with exit 2.
 */
import { existsSync, mkdirSync, readFileSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caddyUnderTest, waitFor } from '../support/proxies.ts';
import { get, localEnv, makeSandbox, pidsWithMarker, type Sandbox } from '../support/sandbox.ts';

// Caddy's public port 18630 (admin 18639), the slots 18631 and 18632.
const caddy = caddyUnderTest(18630);
const URL = `http://127.0.0.1:${caddy.publicPort}`;

/**
 * A queue consumer: a job is a file in $DATA_DIR/queue; it claims one by renaming it (so two
 * workers never take the same), writes `took N <version>`, works 3 s, writes `done N <version>`.
 * SIGTERM lets the job it took finish, then it exits; idle, it exits at once. A job whose file says
 * `long` works until SIGTERM comes (at most 30 s), then 3 s more: the deploy's stop surely finds it
 * at work, whatever the machine's speed.
 */
const WORKER = `
const fs = require('node:fs');
const path = require('node:path');
const dir = process.env.DATA_DIR;
const q = path.join(dir, 'queue');
const log = (line) => fs.appendFileSync(path.join(dir, 'jobs.log'), line + '\\n');
fs.mkdirSync(q, { recursive: true });
let busy, stopping = false, finish;
process.on('SIGTERM', () => { stopping = true; if (!busy) process.exit(0); log('term ' + busy); if (finish) finish(); });
const tick = () => {
  if (stopping) return;
  const next = fs.readdirSync(q).sort()[0];
  if (next === undefined) return void setTimeout(tick, 100);
  try { fs.renameSync(path.join(q, next), path.join(dir, 'took-' + next)); } catch { return void setTimeout(tick, 10); }
  busy = next;
  log('took ' + next + ' ' + process.env.APP_VERSION + (process.env.PORT ? ' port' : ''));
  const done = () => { log('done ' + next + ' ' + process.env.APP_VERSION); busy = undefined; if (stopping) process.exit(0); tick(); };
  if (fs.readFileSync(path.join(dir, 'took-' + next), 'utf8') !== 'long') return void setTimeout(done, 3000);
  const cap = setTimeout(done, 30000);
  finish = () => { clearTimeout(cap); setTimeout(done, 3000); };
};
tick();
`;

/** Pids of this DEPLOY_PATH's processes whose marker contains `piece` (one that ends meanwhile is left out). */
const markedWith = (deployPath: string, piece: string): number[] =>
  pidsWithMarker(deployPath).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, 'utf8').includes(piece);
    } catch {
      return false;
    }
  });

describe('workers replaced on deploy, behind Caddy', () => {
  let s: Sandbox;
  const jobsLog = () => (existsSync(join(s.deployPath, 'shared/data/jobs.log')) ? readFileSync(join(s.deployPath, 'shared/data/jobs.log'), 'utf8') : '');
  const addJob = (n: string, body = '') => {
    const q = join(s.deployPath, 'shared/data/queue');
    mkdirSync(q, { recursive: true });
    writeFileSync(join(q, `.${n}`), body);
    renameSync(join(q, `.${n}`), join(q, n));
  };
  const workerPids = (release: string) => markedWith(s.deployPath, `#worker-queue.1@${release}\0`);
  const live = () => readlinkSync(join(s.deployPath, 'current')).replace(/^releases\//, '');
  const env = (workers: string) =>
    localEnv(
      s,
      caddy.slots[0],
      [caddy.keys(s.dir), `DEPLOY_PORTS=${caddy.slots.join(',')}`, `DEPLOY_PUBLIC_URL=${URL}`, `DEPLOY_WORKERS=${workers}`, 'DEPLOY_WORKER_GRACE_SECONDS=10', 'DEPLOY_WORKER_UP_SECONDS=1', 'DEPLOY_DRAIN_SECONDS=1'].join('\n'),
    ).replace(`DEPLOY_PORTS=${caddy.slots[0]}\n`, '');
  const status = async () => JSON.parse((await s.run('status', ['t', '--json'])).stdout) as { release: { release: string }; workers: { id: string; state: string; pid?: number }[] };

  beforeAll(async () => {
    s = makeSandbox('workers');
    // The example is an ES module package: the worker is CommonJS under its own name.
    writeFileSync(join(s.appDir, 'worker.cjs'), WORKER);
    s.writeEnv('t.env', env('queue=node worker.cjs'));
    await caddy.start(s.dir);
  });
  afterAll(() => {
    s.cleanup();
    caddy.stop();
  });

  it('starts the worker with the release, without PORT, and status shows it', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('started 1 worker process (queue.1), up after 1s');
    const st = await status();
    expect(st.workers).toEqual([{ id: 'queue.1', state: 'running', pid: expect.any(Number) }]);
    expect((await s.run('status', ['t'])).stdout).toMatch(/ {2}workers {3}queue\.1 running \(pid \d+\)/);
    addJob('job1');
    await waitFor(() => jobsLog().includes('done job1'), 'the first job');
    expect(jobsLog()).toBe('took job1 1.0.0\ndone job1 1.0.0\n');
  });

  it('a deploy replaces the worker without losing the job it took: SIGTERM, the job finished, the next job taken by the new release', async () => {
    const before = live();
    const oldPids = workerPids(before);
    expect(oldPids.length).toBeGreaterThan(0);
    addJob('job2', 'long');
    await waitFor(() => jobsLog().includes('took job2'), 'the old worker taking job2');
    s.setVersion('1.1.0');
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`old workers: stopped 1 worker process of ${before}`));
    // SIGTERM found the old worker at job2; it finished it within its grace, and is gone.
    expect(jobsLog(), r.stdout).toContain('took job2 1.0.0\nterm job2\ndone job2 1.0.0\n');
    expect(workerPids(before)).toEqual([]);
    expect(live()).not.toBe(before);
    addJob('job3');
    await waitFor(() => jobsLog().includes('took job3 1.1.0'), 'the new worker taking job3');
    expect((await status()).workers[0]?.state).toBe('running');
  });

  it('a worker that exits at once fails the deploy with exit 1 and nothing switched; the old worker keeps working', async () => {
    const before = live();
    const oldPids = workerPids(before);
    s.setVersion('1.2.0');
    s.writeEnv('t.env', env('queue=node worker.cjs;broken=node missing.cjs'));
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/worker broken\.1 of release \S+-1\.2\.0 exited within 1s of its start \(its log says: Error: Cannot find module '\S+missing\.cjs'\): see \S+\/worker-broken\.log/);
    expect(live()).toBe(before);
    expect((await get(URL)).text).toContain('hello 1.1.0');
    expect(workerPids(before)).toEqual(oldPids);
    // Nothing of the failed release runs: no slot, no worker.
    expect(markedWith(s.deployPath, 'APP_VERSION=1.2.0\0')).toEqual([]);
    s.writeEnv('t.env', env('queue=node worker.cjs'));
  });

  it('stop stops the worker, start starts it again, rollback moves it back', async () => {
    const stop = await s.run('stop', ['t']);
    expect(stop.code).toBe(0);
    expect(stop.stdout).toMatch(/stopped pid \d+; stopped 1 worker process of/);
    expect((await status()).workers).toEqual([{ id: 'queue.1', state: 'stopped' }]);
    const start = await s.run('start', ['t']);
    expect(start.code).toBe(0);
    expect(start.stdout).toContain('started 1 worker process (queue.1)');
    const from = live();
    const rb = await s.run('rollback', ['t', '--yes']);
    expect(rb.stderr).toBe('');
    expect(rb.code).toBe(0);
    expect(live()).not.toBe(from);
    expect(workerPids(from)).toEqual([]);
    expect(workerPids(live()).length).toBeGreaterThan(0);
    addJob('job4');
    await waitFor(() => jobsLog().includes('took job4 1.0.0'), 'the rolled-back worker taking job4');
  });

  it('refuses a bad worker name at config time: one line, exit 2, nothing touched', async () => {
    const before = live();
    s.writeEnv('t.env', env('my/queue=node worker.cjs'));
    const r = await s.run('deploy-vps', ['t']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('DEPLOY_WORKERS is bad: the worker name "my/queue" is not a-z, 0-9 and - (at most 32, no spaces or slashes)');
    expect(live()).toBe(before);
  });
});

describe('workers replaced on deploy with proxy none (one slot)', () => {
  const PORT = 18635;
  let s: Sandbox;
  const data = () => join(s.deployPath, 'shared/data');
  const jobsLog = () => (existsSync(join(data(), 'jobs.log')) ? readFileSync(join(data(), 'jobs.log'), 'utf8') : '');
  const addJob = (n: string, body = '') => {
    mkdirSync(join(data(), 'queue'), { recursive: true });
    writeFileSync(join(data(), 'queue', `.${n}`), body);
    renameSync(join(data(), 'queue', `.${n}`), join(data(), 'queue', n));
  };
  beforeAll(() => {
    s = makeSandbox('workers-none');
    writeFileSync(join(s.appDir, 'worker.cjs'), WORKER);
    s.writeEnv('t.env', localEnv(s, PORT, 'DEPLOY_WORKERS=queue:2=node worker.cjs\nDEPLOY_WORKER_GRACE_SECONDS=10\nDEPLOY_WORKER_UP_SECONDS=1\nDEPLOY_DRAIN_SECONDS=1'));
  });
  afterAll(() => s.cleanup());

  it('the new workers start once the new process is healthy, then the old ones finish their job and stop', async () => {
    const first = await s.run('deploy-vps', ['t']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('started 2 worker processes (queue.1, queue.2), up after 1s');
    addJob('job1', 'long');
    await waitFor(() => jobsLog().includes('took job1'), 'an old worker taking job1');
    s.setVersion('1.1.0');
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // The new workers were up before the old ones were told to stop.
    expect(r.stdout).toMatch(/started 2 worker processes \(queue\.1, queue\.2\), up after 1s[\s\S]*old workers: stopped 2 worker processes of \S+-1\.0\.0/);
    expect(jobsLog()).toContain('took job1 1.0.0\nterm job1\ndone job1 1.0.0\n');
    const st = JSON.parse((await s.run('status', ['t', '--json'])).stdout) as { workers: { id: string; state: string }[] };
    expect(st.workers.map((w) => `${w.id} ${w.state}`)).toEqual(['queue.1 running', 'queue.2 running']);
  });
});
