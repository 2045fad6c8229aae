/**
 * Rollback against a recording host: which release it chooses and what it refuses, and the deploy
 * steps it runs with an older release (its own folder, env file and start command) instead of a build.
 */
import { describe, expect, it } from 'vitest';
import { SkiffError, UsageError } from '../../lib/core/errors.ts';
import { commit, preflight, replaceAndGate, retireOld, startIdle, switchOver } from '../../lib/flows/deploy.ts';
import { chooseTarget, chooseTargetOnAll, formatHistory, goingBackTo, markBad, readRollbackFacts } from '../../lib/flows/rollback.ts';
import { foldHistory, type ReleaseRecord } from '../../lib/state/state.ts';
import {
  appendedTo,
  auditAppended,
  CMD,
  deployCtx,
  fakeProxy,
  forSlot,
  flowSession,
  historyAppended,
  hostState,
  NOW,
  rejection,
  release,
  slot,
  testConfig,
  thrown,
} from '../support/flow-ctx.ts';
import { inOrder, ok, when } from '../support/recording-host.ts';
import { words } from './shell-words.ts';

const A = '20261120-090000-1.0.0';
const B = '20261121-090000-1.1.0';
const C = '20261122-090000-1.2.0';
const D = '20261123-090000-1.3.0';
const E = '20261124-090000-1.4.0';
const cfg = testConfig();

describe('chooseTarget', () => {
  // A good, B pruned, C marked bad, D failed its start, E live.
  const history = [release(A), release(B), release(C, 'bad'), release(D, 'failed'), release(E)];
  const onHost = [A, C, D, E];

  it('goes back to the newest release before the live one that went live, was not marked bad and is still on the host', () => {
    expect(chooseTarget(history, E, onHost, undefined, 'staging').id).toBe(A);
    expect(chooseTarget(history, E, [...onHost, B], undefined, 'staging').id).toBe(B);
  });

  it('takes a requested release that is on the host, whatever came after it', () => {
    expect(chooseTarget(history, E, onHost, C, 'staging').id).toBe(C);
  });

  it.each<[string, string, string]>([
    ['a word that is not a release id', 'x;rm -rf /', '"x;rm -rf /" is not a release id (like 20261122-234512-1.2.0): see --list'],
    ['the live release', E, `${E} is already live`],
    ['a pruned release', B, `release ${B} is not on the host (pruned, or never deployed): see \`npx tsx scripts/rollback.ts staging --list\``],
    ['a release never deployed', '20261125-090000-9.9.9', 'release 20261125-090000-9.9.9 is not on the host (pruned, or never deployed): see `npx tsx scripts/rollback.ts staging --list`'],
  ])('refuses %s as a usage error', (_name, requested, message) => {
    const error = thrown(() => chooseTarget(history, E, onHost, requested, 'staging'));
    expect(error).toBeInstanceOf(UsageError);
    expect(error).toMatchObject({ message, exitCode: 2 });
  });

  it('has nothing to go back to when no earlier release went live and is on the host (exit 2)', () => {
    const error = thrown(() => chooseTarget([release(A, 'failed'), release(B, 'bad'), release(E)], E, [A, B, E], undefined, 'staging'));
    expect(error).toBeInstanceOf(SkiffError);
    expect(error).toMatchObject({ message: 'no earlier good release of staging is on the host to go back to: see --list', exitCode: 2 });
  });

  it('with no live release recorded, considers the whole history', () => {
    expect(chooseTarget(history, undefined, onHost, undefined, 'staging').id).toBe(E);
  });
});

describe('chooseTarget after a rollback by id and a new deploy', () => {
  it('goes back to the release the live one replaced, not to the newest older one', () => {
    // A, B, C deployed; `rollback A` (by id) appended A's record again; D deployed.
    const text = [release(A), release(B), release(C), release(A), release(D)].map((r) => JSON.stringify(r)).join('\n');
    expect(chooseTarget(foldHistory(text), D, [A, B, C, D], undefined, 'staging').id).toBe(A);
  });
});

describe('chooseTargetOnAll', () => {
  const web = (host: string, onHost: string[]) => ({ host, history: [release(A), release(B), release(C)], liveId: C, onHost });

  it('chooses on the first host and needs the release on every host', () => {
    expect(chooseTargetOnAll([web('web1', [A, B, C]), web('web2', [B, C])], undefined, 'staging').id).toBe(B);
    expect(() => chooseTargetOnAll([web('web1', [A, B, C]), web('web2', [A, C])], undefined, 'staging')).toThrow(
      new UsageError(`release ${B} is not on web2 (pruned, or that host joined later): name a release every host has, see --list`),
    );
  });

  it('refuses an empty host list', () => {
    expect(() => chooseTargetOnAll([], undefined, 'staging')).toThrow(new UsageError('no host to roll back'));
  });
});

describe('formatHistory', () => {
  it('lists newest first, marks the live release and the pruned ones', () => {
    const lines = formatHistory([release(A), release(B, 'failed'), release(C)], C, [B, C]).split('\n');
    expect(lines[0]).toMatch(/^ {2}release +version +status +when \(UTC\) +who$/);
    expect(lines.slice(1).map((l) => l.slice(0, 2) + l.split(/ +/).slice(1, 4).join(' ') + (l.endsWith('(pruned)') ? ' (pruned)' : ''))).toEqual([
      `* ${C} 1.2.0 live`,
      `  ${B} 1.1.0 failed`,
      `  ${A} 1.0.0 live (pruned)`,
    ]);
    expect(lines[1]).toContain('2026-11-30 09:00:00  me@here');
    expect(formatHistory([], undefined, [])).toBe('no releases yet');
  });
});

describe('readRollbackFacts', () => {
  it('reads the live release from state.json, the folded history and the release folders', async () => {
    const { session } = flowSession({
      state: hostState('green', { blue: slot(B, 3001), green: slot(C, 3002) }),
      history: [release(B), release(C), { id: B, status: 'bad', at: '2026-11-30T10:00:00.000Z', reason: 'rolled back by me@here' }],
      rules: [when(CMD.listReleases, ok(`${B}\n${C}\n`))],
    });
    const facts = await readRollbackFacts(session);
    expect(facts.liveId).toBe(C);
    expect(facts.onHost).toEqual([B, C]);
    expect(facts.history.map((r) => [r.id, r.status])).toEqual([
      [B, 'bad'],
      [C, 'live'],
    ]);
  });
});

describe('goingBackTo', () => {
  it('goes back with the start command the release was deployed with, else DEPLOY_START', () => {
    expect(goingBackTo(release(B, 'live', { start: 'node old-server.js' }), cfg)).toEqual({
      action: 'rollback',
      id: B,
      version: '1.1.0',
      gitSha: 'abc1234',
      start: 'node old-server.js',
    });
    expect(goingBackTo(release(A), cfg).start).toBe('node server.js');
  });
});

describe('a rollback runs the deploy steps with the older release', () => {
  const target: ReleaseRecord = release(B, 'live', { start: 'node old-server.js', gitSha: 'old0001' });
  const liveC = hostState('blue', { blue: slot(C, 3001), green: slot(B, 3002, 'node old-server.js') });
  const startWords = (command: string | undefined) => words(command ?? '').slice(-10);

  it('blue-green: preflight, start in the idle slot from its own folder, env file and start command, switch, retire, commit', async () => {
    const { ctx, host } = deployCtx({ plan: 'unfixed', state: liveC, going: goingBackTo(target, cfg), rules: [when(CMD.stop, ok('stopped 11'))] });
    await preflight(ctx);
    await startIdle(ctx);
    await switchOver(ctx);
    await retireOld(ctx);
    await commit(ctx);
    const steps = [CMD.tools, CMD.port, CMD.start, CMD.probe, 'switch 3002', CMD.publicProbe, CMD.connections, CMD.stop, `${CMD.switchCurrent}${B}`, 'put /srv/hello/.skiff/state.json'];
    expect(inOrder(host.events, steps)).toEqual(steps);
    expect(startWords(host.commands.find((c) => c.includes(CMD.start)))).toEqual([
      `/srv/hello/releases/${B}`,
      `/srv/hello/.skiff/env/${B}.env`,
      '3002',
      '/srv/hello/shared/data',
      '1.1.0',
      'staging',
      '/srv/hello#green',
      'node old-server.js',
      '/srv/hello/shared/logs/green.log',
      '/srv/hello/.skiff/green.pid',
    ]);
    // Nothing is built or shipped, and its own env file goes live.
    expect(host.commands.some((c) => c.includes(CMD.exists) || c.includes(CMD.prepare))).toBe(false);
    expect(host.commands.find((c) => c.includes(CMD.switchCurrent))).toContain(`cp /srv/hello/.skiff/env/${B}.env`);
    const state = JSON.parse(host.files.get('/srv/hello/.skiff/state.json')?.content.toString() ?? '') as { live: string; slots: Record<string, unknown> };
    expect(state.live).toBe('green');
    expect(state.slots.green).toEqual({ release: B, version: '1.1.0', port: 3002, start: 'node old-server.js', startedAt: NOW.toISOString() });
    expect(historyAppended(host)).toMatchObject([{ id: B, status: 'live', start: 'node old-server.js', gitSha: 'old0001' }]);
    expect(auditAppended(host)).toEqual([`rollback ${B} live (version 1.1.0)`]);
  });

  it('proxy none: the live process is replaced by the older release with its start command', async () => {
    const noProxy = testConfig({ DEPLOY_PROXY: 'none', DEPLOY_PORTS: '3001', DEPLOY_PUBLIC_URL: '' });
    const { ctx, host } = deployCtx({ cfg: noProxy, state: hostState('blue', { blue: slot(C, 3001) }), going: goingBackTo(target, noProxy) });
    await replaceAndGate(ctx);
    const started = startWords(host.commands.find((c) => c.includes(CMD.start)));
    expect(started[0]).toBe(`/srv/hello/releases/${B}`);
    expect(started[7]).toBe('node old-server.js');
  });

  it("a start that fails records the target failed under the rollback's name, and the live slot is not touched", async () => {
    const { ctx, host } = deployCtx({ state: liveC, going: goingBackTo(target, cfg), rules: [when(CMD.probe, ok('000'))] });
    const error = await rejection(startIdle(ctx));
    expect(error.message).toMatch(/^web1: port 3002: the app exited before it answered its health check/);
    expect(historyAppended(host)).toMatchObject([{ id: B, status: 'failed', start: 'node old-server.js' }]);
    expect(auditAppended(host)).toEqual([`rollback ${B} failed: ${error.message.split('\n')[0]}`]);
    expect(host.commands.some((c) => c.includes(CMD.stop) && c.includes('/srv/hello/.skiff/blue.pid'))).toBe(false);
  });
});

describe('markBad', () => {
  it('appends a bad record for the release that was live; the next rollback passes over it', async () => {
    const history = [release(A), release(B), release(C)];
    const { session, host } = flowSession({ history });
    await markBad(session, C);
    const [line] = appendedTo(host, '/srv/hello/.skiff/releases.jsonl');
    expect(JSON.parse(line ?? '')).toEqual({ id: C, status: 'bad', at: NOW.toISOString(), reason: 'rolled back by me@here' });
    // The history as the host now holds it: the rollback to B went live, C is bad.
    const folded = foldHistory(`${history.map((r) => JSON.stringify(r)).join('\n')}\n${JSON.stringify(release(B))}\n${line}`);
    expect(folded.find((r) => r.id === C)).toMatchObject({ status: 'bad', reason: 'rolled back by me@here' });
    expect(chooseTarget(folded, B, [A, B, C], undefined, 'staging').id).toBe(A);
  });
});

describe('a damaged state.json', () => {
  const STATE = '/srv/hello/.skiff/state.json';
  const history = [release(A), release(B), release(C)];
  // C went live in green: `current` points at it, the proxy sends traffic to green, green runs.
  const setup = (stateText: string) => ({
    history,
    files: { [STATE]: stateText },
    proxy: (h: Parameters<typeof fakeProxy>[0]) => fakeProxy(h, { at: 3002 }),
    rules: [when('readlink', ok(`releases/${C}\n`)), when(CMD.listReleases, ok(`${A}\n${B}\n${C}\n`)), forSlot(CMD.find, 'green', ok('running 42 pidfile'))],
  });

  it('a deploy says so in one line, rebuilds it from the history and what runs, rewrites it, and deploys to the idle slot', async () => {
    const { ctx, host, logs } = deployCtx({ ...setup(''), plan: 'unfixed' });
    await preflight(ctx);
    expect(logs).toContain(`${STATE} is damaged (empty): rebuilt from releases.jsonl and the running slots (${C} live in slot green), and rewritten`);
    expect(ctx.run.previous?.slot).toMatchObject({ release: C, port: 3002 });
    expect(ctx.run.target).toEqual({ slot: 'blue', port: 3001 });
    const written = JSON.parse(host.files.get(STATE)?.content.toString() ?? '') as { live: string; slots: Record<string, { release: string }> };
    expect(written.live).toBe('green');
    expect(written.slots.green?.release).toBe(C);
    expect(auditAppended(host)).toEqual([`repair: ${STATE} was damaged (empty), rewritten (${C} live in slot green)`]);
  });

  it('a rollback reads it as rebuilt (the live release is C) and writes nothing before its lock', async () => {
    const { session, host } = flowSession(setup('{"app": "hello", "env": "stag'));
    expect((await readRollbackFacts(session)).liveId).toBe(C);
    expect(host.puts).toEqual([]);
  });

  it('when which slot serves cannot be told, the deploy refuses in one line and changes nothing', async () => {
    const s = setup('');
    const { ctx, host } = deployCtx({ ...s, plan: 'unfixed', proxy: (h) => fakeProxy(h), rules: [...s.rules, forSlot(CMD.find, 'blue', ok('running 41 pidfile'))] });
    const error = await rejection(preflight(ctx));
    expect(error.message).toBe(
      `web1: ${STATE} is damaged (empty) and cannot be rebuilt: the proxy sends traffic nowhere and both slots run, so which slot serves ${C} cannot be told; nothing was changed: ` +
        'delete it, then roll back to the release that should serve (`npx tsx scripts/rollback.ts staging --list`) or deploy',
    );
    expect(host.puts).toEqual([]);
    expect(auditAppended(host)).toEqual([]);
  });
});
