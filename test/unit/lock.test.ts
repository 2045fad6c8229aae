import { describe, expect, it } from 'vitest';
import { staleness, STALE_MS, type Holder } from '../../lib/state/lock.ts';

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
  ...over,
});

describe('staleness of a held lock', () => {
  it.each<[string, Partial<Holder>, boolean, RegExp | undefined]>([
    ['a live holder on this machine', {}, true, undefined],
    ['a dead pid on this machine', {}, false, /pid 42 .* is no longer running$/],
    ['a dead-looking pid on another machine is no proof', { host: 'ci-runner' }, false, undefined],
    ['a heartbeat just inside the limit', { heartbeat_at: new Date(now.getTime() - STALE_MS + 1000).toISOString() }, true, undefined],
    ['a heartbeat two minutes old', { host: 'ci-runner', heartbeat_at: new Date(now.getTime() - 120_000).toISOString() }, true, /has not updated it for 120s$/],
    ['an unreadable heartbeat is not stale', { heartbeat_at: 'x' }, true, undefined],
  ])('%s', (_, over, alive, expected) => {
    const result = staleness(holder(over), now, 'laptop', () => alive);
    if (expected) expect(result).toMatch(expected);
    else expect(result).toBeUndefined();
  });
});
