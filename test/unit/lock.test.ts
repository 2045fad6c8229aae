import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { renderForExec, type Cmd } from '../../lib/core/cmd.ts';
import { layout, type Layout } from '../../lib/core/paths.ts';
import { acquireLock, breakAndTake, LOCK_HELD, LOCK_LOST, refreshHolder, releaseLock, removeDeadPartials } from '../../lib/commands/lock.ts';
import { judge, machineId, parseView, processStart, STALE_MS, type Here, type Holder, type LockView } from '../../lib/state/lock.ts';

const now = new Date('2026-11-23T01:00:00.000Z');
const holder = (over: Partial<Holder>): Holder => ({
  user: 'me',
  host: 'laptop',
  pid: 42,
  command: 'deploy',
  version: '1.0.0',
  started_at: now.toISOString(),
  heartbeat_at: now.toISOString(),
  token: 't',
  machine: 'm1',
  boot: 'b1',
  ...over,
});
const view = (h: Holder | undefined, ageMs: number | undefined = 0, raw = ''): LockView => ({ holder: h, raw, ageMs, seen: 'x' });
const here = (alive: (pid: number, start?: string) => boolean): Here => ({ machine: 'm1', boot: 'b1', alive });

describe('judging a held lock', () => {
  it.each<[string, LockView, (pid: number, start?: string) => boolean, string, RegExp | undefined]>([
    ['a live holder on this machine', view(holder({})), () => true, 'live', undefined],
    ['a dead pid on this machine', view(holder({})), () => false, 'dead', /pid 42 .* is no longer running$/],
    ['a pid now used by another process (its start time differs)', view(holder({ pid_start: '100' })), (_p, start) => start !== '100', 'dead', /no longer running$/],
    ['the same hostname on another machine, pid dead here: no proof', view(holder({ machine: 'm2' })), () => false, 'live', undefined],
    ['an older holder without a machine id: no proof', view(holder({ machine: undefined })), () => false, 'live', undefined],
    ['a holder from before this machine restarted', view(holder({ boot: 'b0' })), () => true, 'dead', /ran before this machine restarted$/],
    ['a holder whose tsx launcher is gone', view(holder({ launcher: 41 })), (pid) => pid !== 41, 'stopping', /started by pid 41, which is gone$/],
    ['a heartbeat just inside the limit', view(holder({ machine: 'm2' }), STALE_MS - 1000), () => true, 'live', undefined],
    ['a heartbeat two minutes old, by the host clock', view(holder({ machine: 'm2' }), 120_000), () => true, 'stale', /has not updated it for 120s$/],
    ['no holder.json', view(undefined), () => true, 'unreadable', /has no holder\.json$/],
    ['a garbled holder.json', view(undefined, 0, '{"pid": 4'), () => true, 'unreadable', /is not a holder$/],
  ])('%s', (_, v, alive, kind, why) => {
    const verdict = judge(v, here(alive));
    expect(verdict.kind).toBe(kind);
    if (why) expect('why' in verdict && verdict.why).toMatch(why);
  });
});

describe('the age of a heartbeat comes from the host clock', () => {
  const h = (beat: string) => JSON.stringify(holder({ heartbeat_at: beat }), null, 2);
  it('a holder whose clock is 10 minutes behind, rewritten 5 s ago, is fresh', () => {
    const v = parseView(`lock 1000 995 123_45\n${h(new Date(now.getTime() - 600_000).toISOString())}\n`, now);
    expect(v.ageMs).toBe(5000);
    expect(v.seen).toBe('123_45');
    expect(judge({ ...v, holder: { ...holder({}), machine: 'm2' } }, here(() => true)).kind).toBe('live');
  });
  it('a holder whose clock is 10 minutes ahead, silent for 2 minutes, is stale', () => {
    const v = parseView(`lock 1120 1000 1_2\n${h(new Date(now.getTime() + 600_000).toISOString())}\n`, now);
    expect(v.ageMs).toBe(120_000);
    expect(judge({ ...v, holder: { ...holder({}), machine: 'm2' } }, here(() => true)).kind).toBe('stale');
  });
  it('without the host times (no GNU stat) it falls back to heartbeat_at', () => {
    expect(parseView(`lock 1000 - 1_2\n${h(new Date(now.getTime() - 90_000).toISOString())}`, now).ageMs).toBe(90_000);
  });
  it('a view without holder.json', () => {
    expect(parseView('lock 1000 - missing\n', now)).toEqual({ holder: undefined, raw: '', ageMs: undefined, seen: 'missing' });
  });
});

describe('this machine', () => {
  it('has an id that is a hash, not /etc/machine-id itself', () => {
    const id = machineId();
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    if (existsSync('/etc/machine-id')) expect(readFileSync('/etc/machine-id', 'utf8')).not.toContain(id as string);
  });
  it('reads a process start time that tells a reused pid apart', () => {
    expect(processStart(process.pid)).toMatch(/^\d+$/);
    expect(processStart(process.pid)).toBe(processStart(process.pid));
    expect(processStart(2 ** 22 + 1)).toBeUndefined();
  });
});

/** The lock's scripts, run by a real sh on a temporary DEPLOY_PATH with a space and a quote in it. */
describe('the lock scripts in a real shell', () => {
  let dir: string;
  let l: Layout;
  const sh = (c: Cmd) => {
    const r = spawnSync('/bin/sh', ['-c', renderForExec(c)], { encoding: 'utf8' });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const json = (token: string) => JSON.stringify(holder({ token }), null, 2);
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "skiff-lock 'x "));
    l = layout(join(dir, 'srv $(id)'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('takes the lock with holder.json from its argument, and tells a second taker who holds it', () => {
    expect(sh(acquireLock(l, json('a'))).code).toBe(0);
    expect(JSON.parse(readFileSync(l.holder, 'utf8'))).toMatchObject({ token: 'a' });
    const held = sh(acquireLock(l, json('b')));
    expect(held.code).toBe(LOCK_HELD);
    const v = parseView(held.stdout, new Date());
    expect(v.holder?.token).toBe('a');
    expect(v.ageMs).toBeLessThan(5000);
    expect(v.seen).toMatch(/^\d+_\d+$/);
  });

  it('breaks a lock only while its holder.json is the one judged, and takes it in the same step', () => {
    sh(acquireLock(l, json('dead')));
    const seen = parseView(sh(acquireLock(l, json('x'))).stdout, new Date()).seen;
    expect(sh(breakAndTake(l, seen, 'b', json('b'))).code).toBe(0);
    expect(JSON.parse(readFileSync(l.holder, 'utf8'))).toMatchObject({ token: 'b' });
    // A second contender that judged the same dead holder finds a fresh lock: it leaves it alone.
    const late = sh(breakAndTake(l, seen, 'c', json('c')));
    expect(late.code).toBe(LOCK_HELD);
    expect(parseView(late.stdout, new Date()).holder?.token).toBe('b');
    expect(JSON.parse(readFileSync(l.holder, 'utf8'))).toMatchObject({ token: 'b' });
    expect(readdirSync(l.skiff).sort()).toEqual(['lock', 'lock.mutex']);
  });

  it('a lock folder without holder.json is reported as missing, and broken only as such', () => {
    mkdirSync(l.lock, { recursive: true });
    const held = sh(acquireLock(l, json('a')));
    expect(held.code).toBe(LOCK_HELD);
    expect(parseView(held.stdout, new Date()).seen).toBe('missing');
    writeFileSync(l.holder, '{"pid": 4'); // written meanwhile: no longer what was judged
    expect(sh(breakAndTake(l, 'missing', 'a', json('a'))).code).toBe(LOCK_HELD);
    rmSync(l.holder);
    expect(sh(breakAndTake(l, 'missing', 'a', json('a'))).code).toBe(0);
  });

  it('the heartbeat and the release act only with the holder token', () => {
    sh(acquireLock(l, json('a')));
    utimesSync(l.holder, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
    expect(sh(refreshHolder(l, 'b', json('b'))).code).toBe(LOCK_LOST);
    expect(parseView(sh(acquireLock(l, json('x'))).stdout, new Date()).ageMs).toBeGreaterThanOrEqual(119_000);
    expect(sh(refreshHolder(l, 'a', json('a'))).code).toBe(0);
    expect(parseView(sh(acquireLock(l, json('x'))).stdout, new Date()).ageMs).toBeLessThan(5000);
    // A token that is a prefix of the holder's is not the holder's.
    expect(sh(releaseLock(l, '')).code).toBe(0);
    expect(existsSync(l.lock)).toBe(true);
    expect(sh(releaseLock(l, 'a')).code).toBe(0);
    expect(existsSync(l.lock)).toBe(false);
  });

  it('only one of many contenders breaking the same dead lock at once gets it', () => {
    sh(acquireLock(l, json('dead')));
    const seen = parseView(sh(acquireLock(l, json('x'))).stdout, new Date()).seen;
    const file = join(dir, 'race.sh');
    // Twenty shells run the same break at once (with `&`), each with its own token.
    const line = (i: number) => `${renderForExec(breakAndTake(l, seen, `c${i}`, json(`c${i}`)))} >/dev/null 2>&1; echo "c${i} $?" &`;
    writeFileSync(file, `${Array.from({ length: 20 }, (_, i) => line(i)).join('\n')}\nwait\n`);
    const out = execFileSync('/bin/sh', [file], { encoding: 'utf8' }).trim().split('\n');
    const winners = out.filter((x) => x.endsWith(' 0')).map((x) => x.split(' ')[0]);
    expect(winners).toHaveLength(1);
    expect(out.filter((x) => x.endsWith(` ${LOCK_HELD}`))).toHaveLength(19);
    expect(JSON.parse(readFileSync(l.holder, 'utf8'))).toMatchObject({ token: winners[0] });
  });

  it('removes the .partial folders of releases and backups, and nothing else', () => {
    for (const d of [`${l.releases}/r1.partial/a`, `${l.releases}/r2`, `${l.root}/backups/b1.partial`, `${l.root}/backups/b2`, l.skiff]) mkdirSync(d, { recursive: true });
    const r = sh(removeDeadPartials(l, 'tok'));
    expect(r).toMatchObject({ code: 0, stdout: '2\n' });
    expect(readdirSync(l.releases)).toEqual(['r2']);
    expect(readdirSync(`${l.root}/backups`)).toEqual(['b2']);
    expect(readdirSync(l.skiff)).toEqual([]);
    expect(sh(removeDeadPartials(l, 'tok')).stdout).toBe('0\n');
  });
});
