/**
 * Workers (DEPLOY_WORKERS): the key parsed and refused where it cannot work, the builders as
 * strings, and the deploy, stop and start flows against the recording host: new workers start after
 * the new slot is healthy and before the switch, the old ones stop after it with their grace, and a
 * worker that exits at once fails the deploy with nothing switched and the old workers untouched.
 */
import { describe, expect, it } from 'vitest';
import { parseWorkers, workerInstances } from '../../lib/config/workers.ts';
import { render } from '../../lib/core/cmd.ts';
import { ConfigError, HealthCheckError } from '../../lib/core/errors.ts';
import { layout } from '../../lib/core/paths.ts';
import { startWorkers, stopStrayWorkers, stopWorkers, workerLog, workerSlot, workerStatus } from '../../lib/commands/workers.ts';
import { commit, replaceAndGate, retireOld, startIdle, switchBack, switchOver } from '../../lib/flows/deploy.ts';
import { formatStatus, gatherStatus, startLive, stopLive } from '../../lib/flows/status.ts';
import { parseWorkerStatus, whyExited, workersLine } from '../../lib/flows/workers.ts';
import { goingBackTo } from '../../lib/flows/rollback.ts';
import { CMD, deployCtx, DEPLOY_ID, flowSession, historyAppended, hostState, rejection, release, slot, testConfig } from '../support/flow-ctx.ts';
import { inOrder, inTurn, ok, when } from '../support/recording-host.ts';

const A = '20261130-090000-1.1.0';
const QUEUE = [{ name: 'queue', count: 2, command: 'node worker.js' }];
const WITH_WORKERS = { DEPLOY_WORKERS: 'queue:2=node worker.js', DEPLOY_WORKER_GRACE_SECONDS: '7' };

/** The distinctive pieces of the worker builders. */
const W = { start: 'shift 5', status: '-ge 3 ]', stop: 'unpid "$@"', strays: 'strays() {' } as const;

const configError = (values: Record<string, string>): ConfigError => {
  try {
    testConfig(values);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
};

describe('DEPLOY_WORKERS', () => {
  it('reads name[:count]=command entries separated by ;', () => {
    expect(parseWorkers('queue:2=node worker.js; mailer = node mail.js --fast ;')).toEqual([
      { name: 'queue', count: 2, command: 'node worker.js' },
      { name: 'mailer', count: 1, command: 'node mail.js --fast' },
    ]);
    expect(parseWorkers('')).toEqual([]);
    // A command may hold = and quotes: only the first = ends the name.
    expect(parseWorkers("tick=sh -c 'A=1 node t.js'")).toEqual([{ name: 'tick', count: 1, command: "sh -c 'A=1 node t.js'" }]);
    expect(workerInstances(parseWorkers('queue:2=a;m=b')).map((p) => p.id)).toEqual(['queue.1', 'queue.2', 'm.1']);
  });

  it.each([
    ['queue=', 'the worker queue has an empty command'],
    ['queue=   ', 'the worker queue has an empty command'],
    ['my queue=node w.js', 'the worker name "my queue" is not a-z, 0-9 and - (at most 32, no spaces or slashes)'],
    ['a/b=node w.js', 'the worker name "a/b" is not a-z, 0-9 and - (at most 32, no spaces or slashes)'],
    [`${'q'.repeat(33)}=node w.js`, `the worker name "${'q'.repeat(33)}" is not a-z, 0-9 and - (at most 32, no spaces or slashes)`],
    ['Queue=node w.js', 'the worker name "Queue" is not a-z, 0-9 and - (at most 32, no spaces or slashes)'],
    ['=node w.js', 'the worker name "" is not a-z, 0-9 and - (at most 32, no spaces or slashes)'],
    ['queue=a;queue=b', 'the worker name queue is given twice'],
    ['queue:0=a', 'the count of queue ("0") is not 1-16'],
    ['queue:17=a', 'the count of queue ("17") is not 1-16'],
    ['queue:x=a', 'the count of queue ("x") is not 1-16'],
    ['node worker.js', '"node worker.js" has no "=": write name=command'],
  ])('refuses %j: %s', (value, problem) => {
    expect(() => parseWorkers(value)).toThrow(problem);
    const e = configError({ DEPLOY_WORKERS: value });
    expect(e.exitCode).toBe(2);
    expect(e.message.split('\n')).toHaveLength(1);
    expect(e.message).toContain(`DEPLOY_WORKERS is bad: ${problem}`);
  });

  it.each([
    [{ DEPLOY_MEMORY_LIMIT: '512M' }, 'DEPLOY_MEMORY_LIMIT is "512M", expected a size in bytes with K, M or G, e.g. 512M, with DEPLOY_SUPERVISOR=systemd or DEPLOY_RUNTIME=docker'],
  ])('refuses workers where they cannot run as documented: %j', (values, line) => {
    const e = configError({ DEPLOY_WORKERS: 'q=node w.js', ...values });
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain(line);
    expect(e.message.split('\n')).toHaveLength(1);
  });

  it('takes the grace from DEPLOY_DRAIN_SECONDS unless given, and refuses the worker keys without workers', () => {
    expect(testConfig({ DEPLOY_WORKERS: 'q=a', DEPLOY_DRAIN_SECONDS: '4' }).workerGraceSeconds).toBe(4);
    expect(testConfig(WITH_WORKERS).workerGraceSeconds).toBe(7);
    expect(testConfig({}).workers).toEqual([]);
    for (const key of ['DEPLOY_WORKER_GRACE_SECONDS', 'DEPLOY_WORKER_UP_SECONDS']) {
      expect(configError({ [key]: '3' }).message).toBe(`env/staging.env: ${key} is "3", expected set with DEPLOY_WORKERS (set DEPLOY_WORKERS, or remove it)`);
    }
    expect(configError({ DEPLOY_WORKERS: 'q=a', DEPLOY_WORKER_UP_SECONDS: '0' }).message).toContain('DEPLOY_WORKER_UP_SECONDS is "0", expected seconds, 1-600');
  });
});

describe('worker builders', () => {
  const l = layout('/srv/a b');
  const R = '20261201-100000-1.2.0';

  it('names each process by its worker, number and release', () => {
    expect(workerSlot(R, 'queue.1')).toBe('worker-queue.1@20261201-100000-1.2.0');
    expect(workerLog(l, 'queue.2')).toBe('/srv/a b/shared/logs/worker-queue.log');
  });

  it('starts every process with the env file, no PORT and its own marker, quoted', () => {
    const c = render(startWorkers(l, { release: R, releaseDir: l.release(R), envFile: l.envOf(R), version: '1.2.0', env: 'staging', procs: [{ id: 'q.1', command: "node w.js 'x' $HOME; rm" }] }));
    expect(c).toContain('unset PORT; export DATA_DIR="$3" APP_VERSION="$4" APP_ENV="$5"');
    expect(c).toContain('SKIFF_SLOT="$2" nohup setsid sh -c "$3" >>"$4" 2>&1 </dev/null &');
    expect(c.endsWith(
      "' sh '/srv/a b/releases/20261201-100000-1.2.0' '/srv/a b/.skiff/env/20261201-100000-1.2.0.env' '/srv/a b/shared/data' 1.2.0 staging " +
        `q.1 '/srv/a b#worker-q.1@20261201-100000-1.2.0' 'node w.js '\\''x'\\'' $HOME; rm' '/srv/a b/shared/logs/worker-q.log' '/srv/a b/.skiff/worker-q.1@20261201-100000-1.2.0.pid'`,
    )).toBe(true);
  });

  it('finds and stops processes by marker and pid file, the grace first', () => {
    expect(render(workerStatus(l, R, ['q.1'])).endsWith(" sh q.1 '/srv/a b#worker-q.1@20261201-100000-1.2.0' '/srv/a b/.skiff/worker-q.1@20261201-100000-1.2.0.pid'")).toBe(true);
    const stop = render(stopWorkers(l, R, ['q.1', 'q.2'], 30));
    expect(stop.endsWith(
      " sh 30 '/srv/a b#worker-q.1@20261201-100000-1.2.0' '/srv/a b/.skiff/worker-q.1@20261201-100000-1.2.0.pid' '/srv/a b#worker-q.2@20261201-100000-1.2.0' '/srv/a b/.skiff/worker-q.2@20261201-100000-1.2.0.pid'",
    )).toBe(true);
    expect(stop).toContain('for p in $found; do kill -TERM "$p" 2>/dev/null; done');
    expect(stop).toContain('kill -KILL "-$p"');
  });

  it('tells why a worker exited from its log tail: an error line since its last start, else its last line', () => {
    const node = "--- 2026 start 1.0.0 worker q.1\nold Error: from before\n--- 2026 start 1.1.0 worker q.1\nnode:internal/modules/cjs/loader:1228\n  throw err;\nError: Cannot find module '/srv/x/missing.cjs'\n    at Module._resolveFilename\n\nNode.js v20.20.2\n";
    expect(whyExited(node)).toBe("Error: Cannot find module '/srv/x/missing.cjs'");
    expect(whyExited('--- start\nbye\n')).toBe('bye');
    expect(whyExited('--- start\n')).toBe('');
    expect(whyExited('')).toBe('');
  });

  it('stops stray workers: of this DEPLOY_PATH, of a release not kept', () => {
    const c = render(stopStrayWorkers(l, [R], 5));
    expect(c).toContain('case "$v" in "$root#worker-"*@*) ;; *) continue ;; esac');
    expect(c.endsWith(" sh '/srv/a b' 5 20261201-100000-1.2.0")).toBe(true);
  });

  it('reads the status lines, and says what to do for one that is down', () => {
    const runs = parseWorkerStatus('queue.1 running 12\nqueue.2 crashed 13\nmail.1 stopped\n');
    expect(runs).toEqual([
      { id: 'queue.1', state: 'running', pid: 12 },
      { id: 'queue.2', state: 'crashed', pid: 13 },
      { id: 'mail.1', state: 'stopped' },
    ]);
    expect(workersLine(runs, 'staging')).toBe('queue.1 running (pid 12), queue.2 crashed, mail.1 stopped: run `npx tsx scripts/start.ts staging`');
    expect(workersLine(runs.slice(0, 1), 'staging')).toBe('queue.1 running (pid 12)');
  });
});

describe('workers in the deploy flow', () => {
  const cfg = testConfig(WITH_WORKERS);
  const live = hostState('blue', { blue: { ...slot(A, 3001), workers: QUEUE } });
  const oldStop = `#worker-queue.1@${A}`;
  const newMark = `#worker-queue.1@${DEPLOY_ID}`;

  it('blue-green: the new workers start after the new slot is healthy (and DEPLOY_MIGRATE), just before the switch, checked after DEPLOY_WORKER_UP_SECONDS; the old stop after it with their grace', async () => {
    const { ctx, host, clock, logs } = deployCtx({
      cfg,
      state: live,
      going: { workers: QUEUE },
      rules: [
        // Asked before the start (which do not run yet) and after DEPLOY_WORKER_UP_SECONDS.
        inTurn(W.status, [ok('queue.1 stopped\nqueue.2 stopped\n'), ok('queue.1 running 51\nqueue.2 running 52\n')]),
        when(W.start, ok('queue.1 51\nqueue.2 52\n')),
        when(W.stop, ok('stopped 2')),
        when(W.strays, ok('1\n')),
      ],
    });
    await startIdle(ctx);
    expect(host.commands.some((c) => c.includes(W.start))).toBe(false);
    await switchOver(ctx);
    expect(inOrder(host.events, [CMD.probe, W.status, W.start, W.status, 'switch 3002'])).toEqual([CMD.probe, W.status, W.start, W.status, 'switch 3002']);
    expect(host.commands.filter((c) => c.includes(W.start))[0]).toContain(newMark);
    expect(clock.sleeps).toContain(2000);
    expect(host.commands.some((c) => c.includes(W.stop))).toBe(false);
    expect(logs).toContain('started 2 worker processes (queue.1, queue.2), up after 2s');
    // Before the start: workers of no live release (an interrupted run's) are stopped; the live one's are kept.
    expect(inOrder(host.events, [W.strays, W.start])).toEqual([W.strays, W.start]);
    expect(host.commands.find((c) => c.includes(W.strays))?.endsWith(` sh /srv/hello 7 ${A}`)).toBe(true);
    expect(logs).toContain('stopped 1 stray worker process of releases that are not live (left by an interrupted run)');
    await retireOld(ctx);
    const stops = host.commands.filter((c) => c.includes(W.stop));
    expect(stops).toHaveLength(1);
    expect(stops[0]).toContain(` sh 7 `);
    expect(stops[0]).toContain(oldStop);
    expect(inOrder(host.events, ['switch 3002', `${CMD.stop}`, W.stop])).toEqual(['switch 3002', CMD.stop, W.stop]);
    expect(logs).toContain(`old workers: stopped 2 worker processes of ${A}`);
    await commit(ctx);
    const state = JSON.parse(host.files.get('/srv/hello/.skiff/state.json')?.content.toString() ?? '{}');
    expect(state.slots.green.workers).toEqual(QUEUE);
    expect(historyAppended(host).at(-1)).toMatchObject({ id: DEPLOY_ID, status: 'live', workers: QUEUE });
  });

  it('a worker that exits at once fails the deploy like a health check: the new slot and its other workers stop, the old workers are untouched, nothing is switched', async () => {
    const { ctx, host, switches } = deployCtx({
      cfg,
      state: live,
      going: { workers: QUEUE },
      rules: [
        inTurn(W.status, [ok('queue.1 stopped\nqueue.2 stopped\n'), ok('queue.1 running 51\nqueue.2 crashed 52\n')]),
        when(W.start, ok('queue.1 51\nqueue.2 52\n')),
        when(CMD.logTail, ok('Error: Cannot find module worker.js\n')),
        when(W.stop, ok('stopped 1')),
      ],
    });
    await startIdle(ctx);
    const e = await rejection(switchOver(ctx));
    expect(e).toBeInstanceOf(HealthCheckError);
    expect(e.message).toBe(
      `web1: worker queue.2 of release ${DEPLOY_ID} exited within 2s of its start (its log says: Error: Cannot find module worker.js): see /srv/hello/shared/logs/worker-queue.log`,
    );
    const stops = host.commands.filter((c) => c.includes(W.stop));
    expect(stops.every((c) => c.includes(newMark) || c.includes(`#worker-queue.2@${DEPLOY_ID}`) || c.includes(`#worker-queue.1@${DEPLOY_ID}`))).toBe(true);
    expect(stops.some((c) => c.includes(oldStop))).toBe(false);
    expect(host.commands.some((c) => c.includes(CMD.stop) && c.includes('/srv/hello/.skiff/green.pid'))).toBe(true);
    expect(switches).toEqual([]);
    expect(historyAppended(host).at(-1)).toMatchObject({ id: DEPLOY_ID, status: 'failed' });
  });

  it('proxy none: the new workers start after the new process is healthy, then the old ones stop; a failing one brings the previous release back with its workers still running', async () => {
    const none = testConfig({ ...WITH_WORKERS, DEPLOY_PROXY: 'none', DEPLOY_PORTS: '3001', DEPLOY_PUBLIC_URL: '' });
    const good = deployCtx({
      cfg: none,
      state: live,
      going: { workers: QUEUE },
      rules: [inTurn(W.status, [ok('queue.1 stopped\nqueue.2 stopped\n'), ok('queue.1 running 1\nqueue.2 running 2\n')]), when(W.start, ok('')), when(W.stop, ok('stopped 2'))],
    });
    await replaceAndGate(good.ctx);
    expect(inOrder(good.host.events, [CMD.probe, W.start, W.status, W.stop])).toEqual([CMD.probe, W.start, W.status, W.stop]);
    expect(good.host.commands.filter((c) => c.includes(W.stop))[0]).toContain(oldStop);

    const bad = deployCtx({
      cfg: none,
      state: live,
      going: { workers: QUEUE },
      rules: [
        inTurn(W.status, [ok('queue.1 stopped\nqueue.2 stopped\n'), ok('queue.1 stopped\nqueue.2 stopped\n'), ok('queue.1 running 1\nqueue.2 running 2\n')]),
        when(W.start, ok('')),
        when(W.stop, ok('not-running')),
      ],
    });
    await expect(replaceAndGate(bad.ctx)).rejects.toThrow(/worker queue.1, queue.2 of release .* exited within 2s/);
    expect(bad.host.commands.filter((c) => c.includes(W.stop)).some((c) => c.includes(oldStop))).toBe(false);
    // The previous release's slot came back; its workers were found running, so none was started for it.
    expect(bad.host.commands.filter((c) => c.includes(W.start)).every((c) => c.includes(newMark))).toBe(true);
    expect(bad.logs).toContain('previous workers: workers already running (2)');
  });

  it('another host failed after the switch: this one switches back, and its new slot and new workers stop at once', async () => {
    const { ctx, host, switches } = deployCtx({
      cfg,
      state: live,
      going: { workers: QUEUE },
      rules: [inTurn(W.status, [ok('queue.1 stopped\nqueue.2 stopped\n'), ok('queue.1 running 1\nqueue.2 running 2\n')]), when(W.start, ok('')), when(W.stop, ok('stopped 2'))],
    });
    await startIdle(ctx);
    await switchOver(ctx);
    await expect(switchBack(ctx, 'web2 failed its health check')).resolves.toBeUndefined();
    expect(switches).toEqual([3002, 3001]);
    const stops = host.commands.filter((c) => c.includes(W.stop));
    expect(stops).toHaveLength(1);
    expect(stops[0]).toContain(newMark);
    expect(stops[0]).toContain(' sh 0 ');
    expect(historyAppended(host).at(-1)).toMatchObject({ id: DEPLOY_ID, status: 'rolled-back' });
  });

  it('a rollback starts the workers the release was deployed with, and none for a record without', () => {
    expect(goingBackTo(release(A, 'live', { workers: QUEUE }), cfg).workers).toEqual(QUEUE);
    expect(goingBackTo(release(A, 'live'), cfg).workers).toBeUndefined();
  });
});

describe('workers in status, stop and start', () => {
  const cfg = testConfig(WITH_WORKERS);
  const state = hostState('blue', { blue: { ...slot(A, 3001), workers: QUEUE } });

  it('status shows each worker process', async () => {
    const { session } = flowSession({ cfg, state, rules: [when(W.status, ok('queue.1 running 51\nqueue.2 stopped\n')), when(CMD.find, ok('running 40 pidfile'))] });
    const r = await gatherStatus(session, 'http://127.0.0.1:8080');
    expect(r.workers).toEqual([{ id: 'queue.1', state: 'running', pid: 51 }, { id: 'queue.2', state: 'stopped' }]);
    expect(formatStatus(r)).toContain('  workers   queue.1 running (pid 51), queue.2 stopped: run `npx tsx scripts/start.ts staging`');
  });

  it('stop stops the workers with their grace; start starts those that do not run', async () => {
    const stopping = flowSession({ cfg, state, rules: [when(W.strays, ok('1\n')), when(W.stop, ok('killed 1')), when(CMD.stop, ok('stopped 40'))] });
    expect(await stopLive(stopping.session)).toBe(
      `stopped pid 40; killed 1 worker process of ${A} still up after 7s (DEPLOY_WORKER_GRACE_SECONDS); stopped 1 stray worker process of releases that are not live (left by an interrupted run)`,
    );
    // The strays: of every release but the live one.
    expect(stopping.host.commands.find((c) => c.includes(W.strays))?.endsWith(` 7 ${A}`)).toBe(true);
    expect(stopping.host.commands.find((c) => c.includes(W.stop))).toContain(' sh 7 ');

    const starting = flowSession({
      cfg,
      state,
      rules: [
        inTurn(W.status, [ok('queue.1 running 51\nqueue.2 stopped\n'), ok('queue.1 running 51\nqueue.2 running 53\n')]),
        when(W.start, ok('queue.2 53\n')),
        when(CMD.exists, ok('yes')),
      ],
    });
    expect(await startLive(starting.session)).toContain('started 1 worker process (queue.2), up after 2s');
    const start = starting.host.commands.find((c) => c.includes(W.start)) ?? '';
    expect(start).toContain('#worker-queue.2@');
    expect(start).not.toContain('#worker-queue.1@');
  });
});

describe('workers under the systemd supervisor', () => {
  const cfg = testConfig({ ...WITH_WORKERS, DEPLOY_SUPERVISOR: 'systemd' });
  const state = hostState('blue', { blue: { ...slot(A, 3001), workers: QUEUE } });
  const unit = (id: string) => `skiff-hello-staging-worker-${id}-${A}.service`;
  const S = { status: 'NRestarts "$u"', start: 'enable --quiet "$1"', stop: 'stop --no-block "$@"', list: 'for f in "$dir/$1"*.service' } as const;

  it('start writes a unit per process that does not run, fed its unit file, and checks them in one command', async () => {
    const { session, host } = flowSession({
      cfg,
      state,
      rules: [
        inTurn(S.status, [ok(`${unit('queue.1')} active running 51 51 0 enabled\n${unit('queue.2')} none\n`), ok(`${unit('queue.1')} active running 51 51 0 enabled\n${unit('queue.2')} active running 53 53 0 enabled\n`)]),
        when(W.status, ok('queue.2 stopped\n')),
        when(S.start, ok('53\n')),
        when(CMD.exists, ok('yes')),
      ],
    });
    expect(await startLive(session)).toContain('started 1 worker process (queue.2), up after 2s');
    // The slot's unit starts too (it did not run); of the workers, queue.2 alone.
    const starts = host.execs.filter((e) => e.command.includes(S.start) && e.command.includes('-worker-'));
    expect(starts.map((e) => e.command.endsWith(` sh ${unit('queue.2')} '# written by skiff: '`))).toEqual([true]);
    expect(String(starts[0]?.options.stdin)).toContain(`ExecStart=/bin/sh "-c"`);
    expect(String(starts[0]?.options.stdin)).toContain(`"/srv/hello#worker-queue.2@${A}" "queue.2" "node worker.js"`);
  });

  it("start: a live worker that exits at once is named with its journal line, and its units are left to systemd's retries", async () => {
    const { session, host } = flowSession({
      cfg,
      state,
      rules: [
        inTurn(S.status, [ok(`${unit('queue.1')} none\n${unit('queue.2')} none\n`), ok(`${unit('queue.1')} activating auto-restart 0 60 2 enabled\n${unit('queue.2')} active running 61 61 0 enabled\n`)]),
        when(W.status, ok('queue.1 stopped\nqueue.2 stopped\n')),
        when(S.start, ok('60\n')),
        when('-o cat --no-pager', ok('--- start 1.1.0 worker queue.1\nError: Cannot find module worker.js\n')),
        when(S.stop, ok('killed 1')),
        when(CMD.exists, ok('yes')),
      ],
    });
    const e = await rejection(startLive(session));
    expect(e).toBeInstanceOf(HealthCheckError);
    expect(e.message).toContain(`worker queue.1 of release ${A} exited within 2s of its start (its log says: Error: Cannot find module worker.js): see the journal of ${unit('queue.1')}`);
    expect(host.commands.filter((c) => c.includes(S.stop))).toEqual([]);
  });

  it('a worker systemd had to start again is down, though it runs at the moment of the check; one that ran before is not judged by old restarts', async () => {
    const { session } = flowSession({
      cfg,
      state,
      rules: [
        inTurn(S.status, [ok(`${unit('queue.1')} active running 51 51 4 enabled\n${unit('queue.2')} none\n`), ok(`${unit('queue.1')} active running 51 51 4 enabled\n${unit('queue.2')} active running 70 70 2 enabled\n`)]),
        when(W.status, ok('queue.2 stopped\n')),
        when(S.start, ok('53\n')),
        when('-o cat --no-pager', ok('--- start 1.1.0 worker queue.2\nError: no queue\n')),
        when(S.stop, ok('killed 1')),
        when(CMD.exists, ok('yes')),
      ],
    });
    const e = await rejection(startLive(session));
    expect(e.message).toContain(`worker queue.2 of release ${A} exited within 2s of its start (its log says: Error: no queue)`);
    expect(e.message).not.toContain('queue.1');
  });

  it('strays: the units of releases that are not kept are stopped together, and pidfile strays too', async () => {
    const other = `skiff-hello-staging-worker-queue.1-20261101-090000-1.0.0.service`;
    const { session, host } = flowSession({
      cfg,
      state,
      rules: [
        when(S.list, ok(`${unit('queue.1')} active enabled\n${other} active enabled\nskiff-hello-staging-blue.service active enabled\n`)),
        when(S.stop, ok('stopped 1')),
        when(W.strays, ok('0')),
      ],
    });
    const { stopStrays } = await import('../../lib/flows/workers.ts');
    expect(await stopStrays(session, [A], 7)).toBe('stopped 1 stray worker process of releases that are not live (left by an interrupted run)');
    expect((host.commands.find((c) => c.includes(S.stop)) ?? '').endsWith(` ${other}`)).toBe(true);
  });
});
