import { describe, expect, it } from 'vitest';
import { foldHistory, liveBefore, parseState, releasesToPrune, type HostState, type ReleaseRecord, type ReleaseStatus } from '../../lib/state/state.ts';

const record = (id: string, status: ReleaseStatus, extra: Partial<ReleaseRecord> = {}): ReleaseRecord => ({
  id,
  version: `v-${id}`,
  gitSha: 'abc1234',
  who: 'me@box',
  at: '2026-11-22T23:45:12.000Z',
  status,
  ...extra,
});

const line = (value: unknown): string => JSON.stringify(value);
const lines = (...values: readonly unknown[]): string => values.map((v) => (typeof v === 'string' ? v : line(v))).join('\n') + '\n';

describe('foldHistory', () => {
  it.each<[string, string, { id: string; status: ReleaseStatus; reason?: string }[]]>([
    ['empty file', '', []],
    ['blank lines only', '\n\n  \n', []],
    ['one release', lines(record('r1', 'live')), [{ id: 'r1', status: 'live' }]],
    ['oldest first', lines(record('r1', 'live'), record('r2', 'failed'), record('r3', 'live')), [
      { id: 'r1', status: 'live' },
      { id: 'r2', status: 'failed' },
      { id: 'r3', status: 'live' },
    ]],
    [
      'a later line updates status and reason, order kept',
      lines(record('r1', 'live'), record('r2', 'live'), { id: 'r2', status: 'bad', at: 'later', reason: 'rolled back' }),
      [
        { id: 'r1', status: 'live' },
        { id: 'r2', status: 'bad', reason: 'rolled back' },
      ],
    ],
    ['several updates: the last wins', lines(record('r1', 'live'), { id: 'r1', status: 'bad', at: 'x' }, { id: 'r1', status: 'rolled-back', at: 'y' }), [
      { id: 'r1', status: 'rolled-back' },
    ]],
    ['an update without status keeps the status', lines(record('r1', 'live'), { id: 'r1', at: 'x', reason: 'note' }), [{ id: 'r1', status: 'live', reason: 'note' }]],
    ['an update before its release is ignored', lines({ id: 'r1', status: 'bad', at: 'x' }), []],
    ['a line without id is skipped', lines({ version: '1', status: 'live' }, record('r1', 'live')), [{ id: 'r1', status: 'live' }]],
    ['a garbage line is skipped', lines('not json at all', record('r1', 'live'), '{]', '42', '[]', '"text"'), [{ id: 'r1', status: 'live' }]],
    ['a cut last line is skipped', line(record('r1', 'live')) + '\n' + line(record('r2', 'live')).slice(0, 25), [{ id: 'r1', status: 'live' }]],
    ['a cut line between two good ones is skipped', lines(record('r1', 'live'), line(record('r2', 'live')).slice(0, 30), record('r3', 'live')), [
      { id: 'r1', status: 'live' },
      { id: 'r3', status: 'live' },
    ]],
    ['CRLF line ends', [line(record('r1', 'live')), line({ id: 'r1', status: 'bad', at: 'x' })].join('\r\n'), [{ id: 'r1', status: 'bad' }]],
  ])('%s', (_name, text, expected) => {
    const folded = foldHistory(text);
    expect(folded.map((r) => ({ id: r.id, status: r.status, ...(r.reason ? { reason: r.reason } : {}) }))).toEqual(expected);
  });

  it('keeps every field of the first record', () => {
    const r = record('r1', 'live', { durations: { build: 12 }, backupId: 'b1' });
    expect(foldHistory(lines(r, { id: 'r1', status: 'bad', at: 'later' }))).toEqual([{ ...r, status: 'bad' }]);
  });

  // BUG lib/state/state.ts:66: `JSON.parse('null')` is null and `entry.id` throws a TypeError, so one
  // garbage line reading `null` breaks every command that reads the history, instead of being skipped.
  it('skips a line that is JSON null', () => {
    expect(foldHistory(lines('null', record('r1', 'live'))).map((r) => r.id)).toEqual(['r1']);
  });

  // BUG lib/state/state.ts:64 with appendHistory (lib/state/state.ts:106): a line cut by a crash has no newline,
  // so the next append lands on the same line; the whole line is skipped and the next, complete
  // record is lost with it (here the release that went live after the crash).
  it('keeps the record appended after a cut line', () => {
    const text = line(record('r1', 'live')) + '\n' + line(record('r2', 'live')).slice(0, 30) + line(record('r3', 'live')) + '\n';
    expect(foldHistory(text).map((r) => r.id)).toEqual(['r1', 'r3']);
  });
});

const history = (...entries: readonly (readonly [string, ReleaseStatus])[]): ReleaseRecord[] => entries.map(([id, status]) => record(id, status));

describe('releasesToPrune', () => {
  it.each<[string, string[], ReleaseRecord[], string | undefined, number, string[]]>([
    ['nothing on the host', [], [], undefined, 3, []],
    ['fewer than keep', ['r1', 'r2'], history(['r1', 'live'], ['r2', 'live']), 'r2', 3, []],
    ['exactly keep', ['r1', 'r2', 'r3'], history(['r1', 'live'], ['r2', 'live'], ['r3', 'live']), 'r3', 3, []],
    [
      'the oldest go first',
      ['r1', 'r2', 'r3', 'r4', 'r5'],
      history(['r1', 'live'], ['r2', 'live'], ['r3', 'live'], ['r4', 'live'], ['r5', 'live']),
      'r5',
      3,
      ['r1', 'r2'],
    ],
    [
      'the host listing order does not matter',
      ['r5', 'r3', 'r1', 'r4', 'r2'],
      history(['r1', 'live'], ['r2', 'live'], ['r3', 'live'], ['r4', 'live'], ['r5', 'live']),
      'r5',
      3,
      ['r1', 'r2'],
    ],
    [
      'keep=1 still keeps the live and the previous good release',
      ['r1', 'r2', 'r3', 'r4', 'r5'],
      history(['r1', 'live'], ['r2', 'live'], ['r3', 'live'], ['r4', 'live'], ['r5', 'live']),
      'r5',
      1,
      ['r1', 'r2', 'r3'],
    ],
    [
      'keep=1: the previous good one is the newest live before the live one, skipping failed ones',
      ['r1', 'r2', 'r3', 'r4', 'r5'],
      history(['r1', 'live'], ['r2', 'live'], ['r3', 'live'], ['r4', 'failed'], ['r5', 'live']),
      'r5',
      1,
      ['r1', 'r2', 'r4'],
    ],
    [
      'failed releases are not pruned first: only age counts',
      ['r1', 'r2', 'r3', 'r4', 'r5'],
      history(['r1', 'live'], ['r2', 'live'], ['r3', 'failed'], ['r4', 'failed'], ['r5', 'live']),
      'r5',
      3,
      ['r1', 'r3'],
    ],
    [
      'bad and rolled-back releases are not good ones',
      ['r1', 'r2', 'r3', 'r4'],
      history(['r1', 'live'], ['r2', 'rolled-back'], ['r3', 'bad'], ['r4', 'live']),
      'r4',
      1,
      ['r2', 'r3'],
    ],
    [
      'after a rollback the live release is not the newest: newer ones are pruned by age',
      ['r1', 'r2', 'r3', 'r4', 'r5'],
      history(['r1', 'live'], ['r2', 'live'], ['r3', 'live'], ['r4', 'bad'], ['r5', 'bad']),
      'r3',
      2,
      ['r1', 'r4', 'r5'],
    ],
    [
      'a previous good release no longer on the host is passed over for an older one',
      ['r1', 'r3', 'r4'],
      history(['r1', 'live'], ['r2', 'live'], ['r3', 'live'], ['r4', 'failed']),
      'r3',
      1,
      ['r4'],
    ],
    [
      'releases the history does not know are pruned by age too',
      ['r0', 'r1', 'r2', 'r3'],
      history(['r1', 'live'], ['r2', 'live'], ['r3', 'live']),
      'r3',
      2,
      ['r0', 'r1'],
    ],
    [
      'no live release: the newest good one is kept',
      ['r1', 'r2', 'r3', 'r4'],
      history(['r1', 'live'], ['r2', 'live'], ['r3', 'live'], ['r4', 'failed']),
      undefined,
      1,
      ['r1', 'r2', 'r4'],
    ],
    [
      'release ids sort by time',
      ['20261122-234512-1.0.0', '20261121-000000-2.0.0', '20261123-000000-0.1.0'],
      history(['20261121-000000-2.0.0', 'live'], ['20261122-234512-1.0.0', 'live'], ['20261123-000000-0.1.0', 'live']),
      '20261123-000000-0.1.0',
      1,
      ['20261121-000000-2.0.0'],
    ],
  ])('%s', (_name, onHost, hist, liveId, keep, expected) => {
    const doomed = releasesToPrune(onHost, hist, liveId, keep);
    expect(doomed).toEqual(expected);
    if (liveId !== undefined) expect(doomed).not.toContain(liveId);
    expect(onHost.length - doomed.length).toBeGreaterThanOrEqual(Math.min(keep, onHost.length));
  });
});

describe('parseState', () => {
  const state: HostState = {
    app: 'hello',
    env: 'local',
    live: 'blue',
    slots: { blue: { release: 'r1', version: '1.0.0', port: 8001, start: 'node server.js', startedAt: '2026-11-22T23:45:12.000Z' } },
    updatedAt: '2026-11-22T23:45:12.000Z',
  };

  it.each<[string, string | undefined, HostState | undefined]>([
    ['a missing file', undefined, undefined],
    ['an empty file', '', undefined],
    ['whitespace', ' \n\t', undefined],
    ['a state', `${JSON.stringify(state, null, 2)}\n`, state],
    ['before the first deploy', JSON.stringify({ ...state, live: undefined, slots: {} }), { ...state, live: undefined, slots: {} }],
  ])('%s', (_name, text, expected) => {
    expect(parseState(text)).toEqual(expected);
  });

  it('a corrupt file throws instead of reading as nothing deployed', () => {
    expect(() => parseState('{"app": "hel')).toThrow(SyntaxError);
  });
});

describe('history in the order releases were live', () => {
  const rec = (id: string, status: ReleaseStatus = 'live', at = '2026-12-01T00:00:00Z'): ReleaseRecord => ({ id, version: id, gitSha: undefined, start: 'node server.js', who: 'me', at, status });
  // A, B and C deployed; `rollback A` (by id: C is not marked bad) appends A's record again; D deployed.
  const text = lines(rec('a'), rec('b'), rec('c'), rec('a', 'live', '2026-12-01T03:00:00Z'), rec('d'));

  it('a release that goes live again moves after the others; its first record is kept', () => {
    const folded = foldHistory(text);
    expect(folded.map((r) => r.id)).toEqual(['b', 'c', 'a', 'd']);
    expect(folded.find((r) => r.id === 'a')?.at).toBe('2026-12-01T00:00:00Z');
  });

  it('a status line that is not live keeps the place; failed releases stay where they were recorded', () => {
    const folded = foldHistory(lines(rec('a'), rec('b'), rec('c', 'failed'), { id: 'a', status: 'bad', at: 'x' }, rec('d')));
    expect(folded.map((r) => [r.id, r.status])).toEqual([['a', 'bad'], ['b', 'live'], ['c', 'failed'], ['d', 'live']]);
  });

  it('the line order decides, not the times of machines whose clocks disagree', () => {
    const folded = foldHistory(lines(rec('a', 'live', '2026-12-01T10:00:00Z'), rec('b', 'live', '2026-12-01T09:00:00Z'), rec('a', 'live', '2026-12-01T08:00:00Z')));
    expect(folded.map((r) => r.id)).toEqual(['b', 'a']);
  });

  it('liveBefore is the release D replaced: A, not the newer C', () => {
    expect(liveBefore(foldHistory(text), 'd', ['a', 'b', 'c', 'd'])?.id).toBe('a');
  });

  it('after a rollback without an id from D to A (D marked bad), the next one goes to C', () => {
    const after = foldHistory(`${text}${lines(rec('a', 'live', 'later'), { id: 'd', status: 'bad', at: 'later' })}`);
    expect(after.map((r) => r.id)).toEqual(['b', 'c', 'd', 'a']);
    expect(liveBefore(after, 'a', ['a', 'b', 'c', 'd'])?.id).toBe('c');
  });

  it.each([1, 2])('retention with keep=%i keeps D and A (the release D replaced), with or without servedBefore', (keep) => {
    const folded = foldHistory(text);
    for (const servedBefore of [undefined, 'a']) {
      const doomed = releasesToPrune(['a', 'b', 'c', 'd'], folded, 'd', keep, servedBefore);
      expect(doomed).not.toContain('a');
      expect(doomed).not.toContain('d');
      expect(doomed).toEqual(['b', 'c']);
    }
  });
});

describe('releasesToPrune after a rollback to an older release', () => {
  it('keeps the release that served until this deploy, though a newer good one exists', () => {
    const rec = (id: string, status: ReleaseStatus): ReleaseRecord => ({ id, version: id, gitSha: undefined, start: 'node server.js', who: 'me', at: '2026-12-01T00:00:00Z', status });
    // A, B, C went live; `rollback A` put A back (C not marked bad); D is deployed now. History
    // as read is one record per release, in the order each first appeared.
    const history = [rec('a', 'live'), rec('b', 'live'), rec('c', 'live'), rec('d', 'live')];
    expect(releasesToPrune(['a', 'b', 'c', 'd'], history, 'd', 2, 'a')).toEqual(['b']);
  });
});
