/**
 * The deploy flow's steps against a recording host: the commands each step sends and in what order,
 * what an undo does after a failure at each step, what it records, and what the error says. What an
 * undo could not do is said beside the failure that caused it, on the same error, and never replaces it.
 */
import { describe, expect, it } from 'vitest';
import { DryRunHost } from '../../lib/cli/run.ts';
import { HealthCheckError, SkiffError } from '../../lib/core/errors.ts';
import {
  commit,
  preflight,
  prune,
  pruneLine,
  replaceAndGate,
  retireOld,
  ship,
  startIdle,
  switchBack,
  switchOver,
  unreplace,
  unship,
  unstart,
  writeAppEnv,
} from '../../lib/flows/deploy.ts';
import {
  auditAppended,
  CMD,
  deployCtx,
  DEPLOY_ID,
  fakeProxy,
  forPort,
  forSlot,
  historyAppended,
  hostState,
  NOW,
  rejection,
  release,
  slot,
  testConfig,
} from '../support/flow-ctx.ts';
import { failed, inOrder, inTurn, ok, when, type RecordingHost } from '../support/recording-host.ts';
import { words } from './shell-words.ts';

const A = '20261130-090000-1.1.0';
const LIVE_BLUE = hostState('blue', { blue: slot(A, 3001) });
const NO_PROXY = testConfig({ DEPLOY_PROXY: 'none', DEPLOY_PORTS: '3001', DEPLOY_PUBLIC_URL: '' });

/** The commands containing every one of `pieces`. */
const sent = (host: RecordingHost, ...pieces: string[]): string[] => host.commands.filter((c) => pieces.every((p) => c.includes(p)));
const pidfile = (s: string) => `/srv/hello/.skiff/${s}.pid`;

describe('preflight', () => {
  it.each<[string, ReturnType<typeof hostState> | undefined, ReturnType<typeof testConfig> | undefined, string, number, string | undefined]>([
    ['a first deploy goes to blue', undefined, undefined, 'blue', 3001, undefined],
    ['live blue: the release goes to green', LIVE_BLUE, undefined, 'green', 3002, A],
    ['live green: the release goes to blue', hostState('green', { green: slot(A, 3002) }), undefined, 'blue', 3001, A],
    ['proxy none: always the one slot', LIVE_BLUE, NO_PROXY, 'blue', 3001, A],
  ])('fixes the plan from state.json: %s', async (_name, state, cfg, target, port, previous) => {
    const { ctx, host } = deployCtx({ plan: 'unfixed', ...(state ? { state } : {}), ...(cfg ? { cfg } : {}) });
    await preflight(ctx);
    expect(ctx.run.target).toEqual({ slot: target, port });
    expect(ctx.run.previous?.slot.release).toBe(previous);
    // It only reads: tools, state.json, what runs in the target slot, its port.
    expect(inOrder(host.events, [CMD.tools, 'get /srv/hello/.skiff/state.json', pidfile(target), CMD.port])).toEqual([
      CMD.tools,
      'get /srv/hello/.skiff/state.json',
      pidfile(target),
      CMD.port,
    ]);
    expect(host.puts).toEqual([]);
    expect(sent(host, CMD.append)).toEqual([]);
  });

  it('refuses a host that lacks tools, before it reads anything else', async () => {
    const { ctx, host } = deployCtx({ plan: 'unfixed', rules: [when(CMD.tools, ok('tar\nsetsid\n'))] });
    await expect(preflight(ctx)).rejects.toThrow(/^web1 lacks tar, setsid: run `npx tsx scripts\/setup.ts staging --install` \(or on the host: apt-get install coreutils tar util-linux\)$/);
    expect(host.events).toHaveLength(1);
    expect(() => ctx.run.plan).toThrow('no plan before preflight');
  });

  it('refuses a port another program holds, and changes nothing', async () => {
    const { ctx, host, switches } = deployCtx({ plan: 'unfixed', state: LIVE_BLUE, rules: [forPort(CMD.port, 3002, ok('in-use'))] });
    const error = await rejection(preflight(ctx));
    expect(error).toBeInstanceOf(SkiffError);
    expect(error.message).toBe('web1: port 3002 is already in use by another program: stop it or choose another port in DEPLOY_PORTS');
    expect(host.puts).toEqual([]);
    expect(sent(host, CMD.stop)).toEqual([]);
    expect(switches).toEqual([]);
  });

  it("accepts a port held by the target slot's own leftover process (startIdle stops it)", async () => {
    const { ctx } = deployCtx({
      plan: 'unfixed',
      state: LIVE_BLUE,
      rules: [forSlot(CMD.find, 'green', ok('running 77 pidfile')), forPort(CMD.port, 3002, ok('in-use'))],
    });
    await expect(preflight(ctx)).resolves.toBeUndefined();
  });

  it("passes on the proxy's warning about the switch", async () => {
    const { ctx, logs } = deployCtx({ plan: 'unfixed', proxy: (h) => fakeProxy(h, { risk: 'web1: net.ipv4.tcp_migrate_req is 0' }) });
    await preflight(ctx);
    expect(logs).toEqual(['ship stream: not compressed (the host is this machine)', 'web1: net.ipv4.tcp_migrate_req is 0']);
  });

  it('repairs an interrupted switch: the proxy goes back to the healthy live slot, then the slot it left drains and stops', async () => {
    const { ctx, host, logs, clock } = deployCtx({
      plan: 'unfixed',
      state: LIVE_BLUE,
      proxy: (h) => fakeProxy(h, { at: 3002 }),
      rules: [
        forSlot(CMD.find, 'blue', ok('running 100 pidfile')),
        forPort(CMD.probe, 3001, ok('200')),
        inTurn(CMD.connections, [ok('2'), ok('0')]),
        forSlot(CMD.stop, 'green', ok('stopped 77')),
      ],
    });
    await preflight(ctx);
    const steps = [CMD.probe, 'switch 3001', CMD.connections, CMD.stop, CMD.append];
    expect(inOrder(host.events, steps)).toEqual(steps);
    // The slot it left served until the switch: it gets DEPLOY_DRAIN_SECONDS (10), not a kill.
    expect(words(sent(host, CMD.stop)[0] ?? '').slice(-3)).toEqual([pidfile('green'), '/srv/hello#green', '10']);
    expect(sent(host, CMD.connections)[0]).toMatch(/' sh 3002$/);
    expect(auditAppended(host)).toEqual(['repair: caddy switched back from port 3002 to the live port 3001']);
    expect(logs).toEqual([
      'ship stream: not compressed (the host is this machine)',
      'an interrupted run had left caddy on slot green: switched back to the live slot blue (port 3001)',
      'slot green drained in 100 ms, stopped 77',
    ]);
    expect(clock.sleeps).toEqual([100]);
    expect(ctx.run.target).toEqual({ slot: 'green', port: 3002 });
  });

  it.each<[string, string]>([
    ['runs but is not healthy', 'running 100 pidfile'],
    ['does not run', 'stopped'],
  ])('stops before touching anything when the recorded live slot %s', async (_name, blue) => {
    const { ctx, host, switches } = deployCtx({
      plan: 'unfixed',
      state: LIVE_BLUE,
      proxy: (h) => fakeProxy(h, { at: 3002 }),
      rules: [forSlot(CMD.find, 'blue', ok(blue)), forPort(CMD.probe, 3001, ok('503'))],
    });
    await expect(preflight(ctx)).rejects.toThrow(
      'web1: caddy sends traffic to slot green (port 3002), left there by an interrupted run, and the recorded live slot blue is not healthy: ' +
        'check `npx tsx scripts/status.ts staging`, then roll back or stop what runs in green',
    );
    expect(switches).toEqual([]);
    expect(sent(host, CMD.stop)).toEqual([]);
    expect(sent(host, CMD.append)).toEqual([]);
  });
});

describe('ship and the app env', () => {
  const shipping = (exists: readonly string[]) =>
    deployCtx({
      cfg: testConfig({ GREETING: "it's me" }),
      state: LIVE_BLUE,
      rules: [(c) => (c.includes(CMD.exists) ? ok(exists.some((id) => c.endsWith(`/releases/${id}`)) ? 'yes' : 'no') : undefined)],
      runtime: (base, host) => ({
        ...base,
        ship: async (_h, _l, spec) => {
          host.note(`ship ${spec.id} from ${spec.liveRelease}`);
          return { bytes: 10, files: 2, reused: 1 };
        },
      }),
    });

  it('claims the run id with a suffix where that folder exists, after preparing the layout, and ships against the live release', async () => {
    const { ctx, host } = shipping([DEPLOY_ID, `${DEPLOY_ID}-2`]);
    await ship(ctx);
    expect(ctx.run.id).toBe(`${DEPLOY_ID}-3`);
    const steps = [CMD.prepare, `/releases/${DEPLOY_ID}`, `/releases/${DEPLOY_ID}-2`, `/releases/${DEPLOY_ID}-3`, `ship ${DEPLOY_ID}-3 from ${A}`];
    expect(inOrder(host.events, steps)).toEqual(steps);
    expect(sent(host, CMD.prepare)[0]).toContain(CMD.removePartials);
    expect(ctx.run.shipped).toEqual({ bytes: 10, files: 2, reused: 1 });
  });

  it('keeps the run id where no folder has it', async () => {
    const { ctx } = shipping([]);
    await ship(ctx);
    expect(ctx.run.id).toBe(DEPLOY_ID);
  });

  it("writes the app env of the claimed id, private, its values quoted", async () => {
    const { ctx, host } = shipping([DEPLOY_ID]);
    await ship(ctx);
    await writeAppEnv(ctx);
    const [file] = host.puts;
    expect(file?.path).toBe(`/srv/hello/.skiff/env/${DEPLOY_ID}-2.env`);
    expect(file?.mode).toBe(0o600);
    expect(file?.content.toString()).toBe("GREETING='it'\\''s me'\n");
  });

  it('unship removes the release folder, its env file and manifest; what it could not remove is its own error', async () => {
    const { ctx, host } = deployCtx();
    await unship(ctx);
    expect(words(sent(host, 'rm -rf')[0] ?? '')).toEqual([
      'rm',
      '-rf',
      `/srv/hello/releases/${DEPLOY_ID}`,
      `/srv/hello/.skiff/env/${DEPLOY_ID}.env`,
      `/srv/hello/.skiff/manifests/${DEPLOY_ID}.json`,
    ]);
    const broken = deployCtx({ rules: [when('rm -rf', failed(1, 'rm: Device or resource busy'))] });
    await expect(unship(broken.ctx)).rejects.toThrow(new RegExp(`^could not remove releases/${DEPLOY_ID}: web1: command failed \\(exit 1\\): .*Device or resource busy$`));
  });
});

describe('startIdle and unstart', () => {
  it('stops a leftover in the idle slot, checks its port, starts the release there and gates it; the live slot is not touched', async () => {
    const { ctx, host, logs } = deployCtx({ state: LIVE_BLUE, rules: [forSlot(CMD.stop, 'green', ok('stopped 55'))] });
    await startIdle(ctx);
    const steps = [pidfile('green'), CMD.port, CMD.start, CMD.probe];
    expect(inOrder(host.events, steps)).toEqual(steps);
    expect(sent(host, CMD.port)[0]).toMatch(/' sh 3002$/);
    expect(words(sent(host, CMD.start)[0] ?? '').slice(-10)).toEqual([
      `/srv/hello/releases/${DEPLOY_ID}`,
      `/srv/hello/.skiff/env/${DEPLOY_ID}.env`,
      '3002',
      '/srv/hello/shared/data',
      '1.2.0',
      'staging',
      '/srv/hello#green',
      'node server.js',
      '/srv/hello/shared/logs/green.log',
      pidfile('green'),
    ]);
    expect(sent(host, pidfile('blue'))).toEqual([]);
    expect(logs).toEqual(['stopped a leftover process in green (stopped 55)', 'started pid 4242 in green on port 3002', 'healthy after 0 ms']);
    expect(sent(host, CMD.append)).toEqual([]);
  });

  it('a port held by another program: nothing starts, the slot is stopped and the release recorded failed, the port error first', async () => {
    const { ctx, host } = deployCtx({ state: LIVE_BLUE, rules: [forPort(CMD.port, 3002, ok('in-use'))] });
    const error = await rejection(startIdle(ctx));
    const why = 'web1: port 3002 (slot green) is in use by another program: stop it or change DEPLOY_PORTS';
    expect(error.message).toBe(why);
    expect(sent(host, CMD.start)).toEqual([]);
    // The leftover check and the undo: both stop green.
    expect(sent(host, CMD.stop).map((c) => c.includes(pidfile('green')))).toEqual([true, true]);
    expect(historyAppended(host)).toEqual([
      { id: DEPLOY_ID, version: '1.2.0', gitSha: 'abc1234', start: 'node server.js', who: 'me@here', at: NOW.toISOString(), status: 'failed', durations: {}, reason: why },
    ]);
    expect(auditAppended(host)).toEqual([`deploy ${DEPLOY_ID} failed: ${why}`]);
  });

  it('a gate failure whose stop also fails says both, the gate first, and records the release failed', async () => {
    const { ctx, host } = deployCtx({
      rules: [inTurn(CMD.stop, [ok('not-running'), failed(1, 'kill: permission denied')]), when(CMD.probe, ok('000'))],
    });
    const error = await rejection(startIdle(ctx));
    const [first, ...rest] = error.message.split('\n');
    expect(first).toMatch(/^web1: port 3001: the app exited before it answered its health check/);
    expect(rest.at(-1)).toMatch(/^ {2}undoing it: could not stop the new release in slot blue: web1: command failed \(exit 1\)/);
    expect(historyAppended(host).map((r) => r.status)).toEqual(['failed']);
  });

  it('a record that cannot be written is said beside the failure, which stays first', async () => {
    const { ctx } = deployCtx({ rules: [when(CMD.probe, ok('000')), when(CMD.append, failed(1, 'No space left on device'))] });
    const error = await rejection(startIdle(ctx));
    const lines = error.message.split('\n');
    expect(lines[0]).toMatch(/^web1: port 3001: the app exited before/);
    expect(lines.at(-1)).toMatch(
      new RegExp(`^ {2}undoing it: could not record ${DEPLOY_ID} failed in /srv/hello/\\.skiff/releases\\.jsonl: .*No space left on device; could not append to /srv/hello/\\.skiff/audit\\.log: `),
    );
  });

  it('unstart: a stop that fails is an error naming the host, after the release is recorded failed', async () => {
    const { ctx, host } = deployCtx({ rules: [when(CMD.stop, failed(1, 'no such process group'))] });
    await expect(unstart(ctx, 'web2 failed: unhealthy')).rejects.toThrow(/^could not stop the new release in slot blue: web1: command failed/);
    expect(historyAppended(host)).toMatchObject([{ id: DEPLOY_ID, status: 'failed', reason: 'web2 failed: unhealthy' }]);
    expect(auditAppended(host)).toEqual([`deploy ${DEPLOY_ID} failed: web2 failed: unhealthy`]);
  });
});

describe('replaceAndGate and unreplace (proxy none)', () => {
  const previous = hostState('blue', { blue: slot(A, 3001, 'node old.js') });

  it('stops the old process with DEPLOY_DRAIN_SECONDS, checks the port, starts the release and gates it', async () => {
    const { ctx, host, logs } = deployCtx({ cfg: NO_PROXY, state: previous, rules: [when(CMD.stop, ok('stopped 11'))] });
    await replaceAndGate(ctx);
    const steps = [CMD.stop, CMD.port, `/srv/hello/releases/${DEPLOY_ID}`, CMD.probe];
    expect(inOrder(host.events, steps)).toEqual(steps);
    expect(words(sent(host, CMD.stop)[0] ?? '').at(-1)).toBe('10');
    expect(logs).toEqual(['old process stopped 11', 'started pid 4242 on port 3001', 'healthy after 0 ms']);
  });

  it('a port still held after the stop: the previous release starts again and the error says who holds the port', async () => {
    const { ctx, host } = deployCtx({ cfg: NO_PROXY, state: previous, rules: [when(CMD.port, ok('in-use'))] });
    await expect(replaceAndGate(ctx)).rejects.toThrow(/^web1: port 3001 is still in use after the old process stopped: another program holds it$/);
    expect(sent(host, CMD.start).map((c) => c.includes(`/srv/hello/releases/${A}`))).toEqual([true]);
  });

  it('a gate failure: the new release stops, is recorded failed, and the previous one starts again with its own start command', async () => {
    const { ctx, host, logs } = deployCtx({ cfg: NO_PROXY, state: previous, rules: [inTurn(CMD.probe, [ok('000'), ok('200')])] });
    const error = await rejection(replaceAndGate(ctx));
    expect(error.message.split('\n')[0]).toBe('web1: port 3001: the app exited before it answered its health check (no answer)');
    const steps = [`/srv/hello/releases/${DEPLOY_ID}`, CMD.probe, CMD.stop, '/srv/hello/.skiff/releases.jsonl', '/srv/hello/.skiff/audit.log', `/srv/hello/releases/${A}`, CMD.probe];
    expect(inOrder(host.events, steps)).toEqual(steps);
    const restart = words(sent(host, CMD.start)[1] ?? '');
    expect(restart).toContain(`/srv/hello/.skiff/env/${A}.env`);
    expect(restart).toContain('node old.js');
    expect(restart).toContain('1.1.0');
    expect(historyAppended(host)).toMatchObject([{ id: DEPLOY_ID, status: 'failed', reason: error.message.split('\n')[0] }]);
    expect(logs.at(-1)).toBe(`previous release ${A} serves again`);
  });

  it('when the previous release does not come back either, the error says the host is down and how to start it, the gate failure first', async () => {
    const { ctx } = deployCtx({ cfg: NO_PROXY, state: previous, rules: [when(CMD.probe, ok('000'))] });
    const error = await rejection(replaceAndGate(ctx));
    expect(error).toBeInstanceOf(HealthCheckError);
    const lines = error.message.split('\n');
    expect(lines[0]).toBe('web1: port 3001: the app exited before it answered its health check (no answer)');
    expect(lines.at(-1)).toBe(
      `  and the previous release ${A} did not come back: web1: port 3001: the app exited before it answered its health check (no answer); run \`npx tsx scripts/start.ts staging\``,
    );
  });

  it('a first deploy that fails has nothing to start again', async () => {
    const { ctx, host } = deployCtx({ cfg: NO_PROXY, rules: [when(CMD.probe, ok('000'))] });
    await expect(replaceAndGate(ctx)).rejects.toThrow(/^web1: port 3001: the app exited/);
    expect(sent(host, CMD.start)).toHaveLength(1);
  });

  it('unreplace (another host failed): records the reason and brings the previous release back', async () => {
    const { ctx, host } = deployCtx({ cfg: NO_PROXY, state: previous });
    await unreplace(ctx, 'web2 failed: unhealthy');
    expect(historyAppended(host)).toMatchObject([{ id: DEPLOY_ID, status: 'failed', reason: 'web2 failed: unhealthy' }]);
    expect(sent(host, CMD.start, `/srv/hello/releases/${A}`)).toHaveLength(1);
    const down = deployCtx({ cfg: NO_PROXY, state: previous, rules: [when(CMD.probe, ok('000'))] });
    const error = await rejection(unreplace(down.ctx, 'web2 failed: unhealthy'));
    expect(error).toBeInstanceOf(HealthCheckError);
    expect(error.message).toMatch(new RegExp(`^the previous release ${A} did not come back: .*; run \`npx tsx scripts/start.ts staging\`$`));
  });
});

describe('switchOver and switchBack', () => {
  it('switches the proxy to the new slot, then verifies through the public URL', async () => {
    const { ctx, host, logs, switches } = deployCtx({ state: LIVE_BLUE });
    await switchOver(ctx);
    expect(ctx.run.switchedFrom).toBe(3001);
    expect(switches).toEqual([3002]);
    expect(inOrder(host.events, ['switch 3002', 'http://127.0.0.1:8080/api/health'])).toEqual(['switch 3002', 'http://127.0.0.1:8080/api/health']);
    expect(logs).toEqual(['caddy sends http://127.0.0.1:8080 to port 3002']);
    expect(sent(host, CMD.stop)).toEqual([]);
  });

  it('a failed verify (5 tries, 200 ms apart) switches back, stops the new slot and records it rolled back', async () => {
    const { ctx, host, switches, clock } = deployCtx({ state: LIVE_BLUE, rules: [when(CMD.publicProbe, ok('502'))] });
    const error = await rejection(switchOver(ctx));
    const why = 'web1: the new release passed its direct health check but http://127.0.0.1:8080/api/health answers HTTP 502 through the proxy; switched back';
    expect(error.message).toBe(why);
    expect(switches).toEqual([3002, 3001]);
    expect(sent(host, CMD.publicProbe)).toHaveLength(5);
    expect(clock.sleeps).toEqual([200, 200, 200, 200, 200]);
    expect(inOrder(host.events, ['switch 3001', pidfile('green'), CMD.append])).toEqual(['switch 3001', pidfile('green'), CMD.append]);
    expect(sent(host, CMD.stop, pidfile('blue'))).toEqual([]);
    expect(historyAppended(host)).toMatchObject([{ id: DEPLOY_ID, status: 'rolled-back', reason: why }]);
    expect(auditAppended(host)).toEqual([`deploy ${DEPLOY_ID} rolled-back: ${why}`]);
  });

  it('when the proxy cannot be switched back, the new slot keeps running and the error says so', async () => {
    const { ctx, host, switches } = deployCtx({ state: LIVE_BLUE, proxy: (h) => fakeProxy(h, { at: 3001, failSwitchTo: [3001] }), rules: [when(CMD.publicProbe, ok('000'))] });
    const error = await rejection(switchOver(ctx));
    expect(switches).toEqual([3002, 3001]);
    expect(error.message.split('\n')[0]).toMatch(/answers nothing through the proxy; switched back$/);
    expect(error.message).toContain('undoing it: could not switch caddy back to port 3001 (it may still send traffic to the new release): admin API down');
    expect(sent(host, CMD.stop)).toEqual([]);
    expect(historyAppended(host).map((r) => r.status)).toEqual(['rolled-back']);
  });

  it('switchBack (another host failed): the proxy goes back to the old port, the new slot stops, the reason is recorded', async () => {
    const { ctx, host, switches, logs } = deployCtx({ state: LIVE_BLUE });
    await switchOver(ctx);
    await switchBack(ctx, 'web2 failed: unhealthy through the proxy');
    expect(switches).toEqual([3002, 3001]);
    // The new slot had the traffic for a moment: it drains (its connections asked for) before it stops.
    expect(inOrder(host.events, ['switch 3001', CMD.connections, pidfile('green'), CMD.append])).toEqual(['switch 3001', CMD.connections, pidfile('green'), CMD.append]);
    expect(logs.slice(-2)).toEqual(['switched back to port 3001', 'new release in green not-running']);
    expect(historyAppended(host)).toMatchObject([{ id: DEPLOY_ID, status: 'rolled-back', reason: 'web2 failed: unhealthy through the proxy' }]);
  });

  it('switchBack whose proxy will not switch: says so, keeps the new slot running, still records the release rolled back', async () => {
    const { ctx, host } = deployCtx({ state: LIVE_BLUE, proxy: (h) => fakeProxy(h, { at: 3001, failSwitchTo: [3001] }) });
    await switchOver(ctx);
    const error = await rejection(switchBack(ctx, 'web2 failed: unhealthy through the proxy'));
    expect(error.message).toBe('could not switch caddy back to port 3001 (it may still send traffic to the new release): admin API down');
    expect(sent(host, CMD.stop)).toEqual([]);
    expect(historyAppended(host)).toMatchObject([{ id: DEPLOY_ID, status: 'rolled-back' }]);
  });
});

describe('retireOld', () => {
  it('drains the old slot while connections stay open, at most 2 s, then stops it with DEPLOY_DRAIN_SECONDS', async () => {
    const { ctx, host, logs, clock } = deployCtx({ state: LIVE_BLUE, rules: [forPort(CMD.connections, 3001, ok('3')), forSlot(CMD.stop, 'blue', ok('stopped 11'))] });
    await retireOld(ctx);
    expect(clock.elapsed()).toBe(2000);
    expect(sent(host, CMD.connections)).toHaveLength(20);
    expect(words(sent(host, CMD.stop)[0] ?? '').slice(-3)).toEqual([pidfile('blue'), '/srv/hello#blue', '10']);
    expect(logs).toEqual(['old slot blue drained in 2000 ms, stopped 11']);
  });

  it('has nothing to do on a first deploy', async () => {
    const { ctx, host } = deployCtx();
    await retireOld(ctx);
    expect(host.events).toEqual([]);
  });
});

describe('commit', () => {
  it('points current at the release, publishes its env, writes state.json with the target slot live, then records it', async () => {
    const { ctx, host } = deployCtx({ state: hostState('blue', { blue: slot(A, 3001), green: slot('20261129-090000-1.0.0', 3002) }) });
    ctx.run.shipped = { bytes: 10, files: 2, reused: 1 };
    ctx.run.backupId = '20261201-100000-before-deploy';
    await commit(ctx);
    const steps = [`${CMD.switchCurrent}${DEPLOY_ID}`, 'put /srv/hello/.skiff/state.json', '/srv/hello/.skiff/releases.jsonl', '/srv/hello/.skiff/audit.log'];
    expect(inOrder(host.events, steps)).toEqual(steps);
    expect(sent(host, CMD.switchCurrent)[0]).toContain(`cp /srv/hello/.skiff/env/${DEPLOY_ID}.env /srv/hello/${CMD.publishEnv}`);
    const state = host.files.get('/srv/hello/.skiff/state.json');
    expect(state?.mode).toBe(0o600);
    expect(JSON.parse(state?.content.toString() ?? '')).toEqual({
      app: 'hello',
      env: 'staging',
      live: 'green',
      slots: {
        blue: slot(A, 3001),
        green: { release: DEPLOY_ID, version: '1.2.0', port: 3002, start: 'node server.js', startedAt: NOW.toISOString() },
      },
      updatedAt: NOW.toISOString(),
    });
    expect(historyAppended(host)).toMatchObject([
      { id: DEPLOY_ID, status: 'live', shipped: { bytes: 10, files: 2, reused: 1 }, backupId: '20261201-100000-before-deploy' },
    ]);
    expect(auditAppended(host)).toEqual([`deploy ${DEPLOY_ID} live (version 1.2.0)`]);
  });
});

describe('prune', () => {
  const ids = ['20261126-090000-1.0.0', '20261127-090000-1.0.1', '20261128-090000-1.0.2', '20261129-090000-1.0.3'];
  const pruning = (history: ReturnType<typeof release>[], keep: string) =>
    deployCtx({
      cfg: testConfig({ DEPLOY_KEEP_RELEASES: keep }),
      history: [...history, release(DEPLOY_ID)],
      rules: [when(CMD.listReleases, ok([...ids, DEPLOY_ID, ''].join('\n')))],
    });

  it('removes the oldest beyond DEPLOY_KEEP_RELEASES, failed ones counting', async () => {
    const { ctx, host } = pruning([release(ids[0] as string), release(ids[1] as string, 'failed'), release(ids[2] as string), release(ids[3] as string)], '3');
    expect(await prune(ctx)).toEqual(ids.slice(0, 2));
    expect(words(sent(host, 'rm -rf')[0] ?? '')).toEqual(['rm', '-rf', ...ids.slice(0, 2).flatMap((id) => [`/srv/hello/releases/${id}`, `/srv/hello/.skiff/env/${id}.env`, `/srv/hello/.skiff/manifests/${id}.json`])]);
  });

  it('never removes the new live release nor the previous good one, even when it is the oldest', async () => {
    const { ctx, host } = pruning([release(ids[0] as string), release(ids[1] as string, 'failed'), release(ids[2] as string, 'failed'), release(ids[3] as string, 'bad')], '1');
    expect(await prune(ctx)).toEqual(ids.slice(1));
    const removed = sent(host, 'rm -rf')[0] ?? '';
    expect(removed).not.toContain(`/releases/${ids[0]}`);
    expect(removed).not.toContain(`/releases/${DEPLOY_ID}`);
  });

  it('sends nothing when nothing is beyond the limit', async () => {
    const { ctx, host } = pruning([release(ids[3] as string)], '10');
    expect(await prune(ctx)).toEqual([]);
    expect(sent(host, 'rm -rf')).toEqual([]);
  });
  it('counts the new release when the host lacks its folder (a dry run made none), as the real run would', async () => {
    const { ctx } = deployCtx({
      cfg: testConfig({ DEPLOY_KEEP_RELEASES: '3' }),
      history: ids.map((id) => release(id)),
      rules: [when(CMD.listReleases, ok([...ids, ''].join('\n')))],
    });
    const printed: string[] = [];
    expect(await prune({ ...ctx, host: new DryRunHost(ctx.host, (line) => printed.push(line)) })).toEqual(ids.slice(0, 2));
    expect(printed.join('\n')).toContain(`: rm -rf /srv/hello/releases/${ids[0]}`);
    // A real run lists what is there.
    expect(await prune(ctx)).toEqual(ids.slice(0, 1));
  });

  it('says what it removed, or in a dry run what it would', () => {
    expect(pruneLine([], false)).toBe('0 removed');
    expect(pruneLine(['a', 'b'], false)).toBe('2 removed (a, b)');
    expect(pruneLine(['a'], true)).toBe('would remove 1 (a)');
  });
});
