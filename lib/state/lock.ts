/**
 * The deploy lock on a host. Held for the whole command, released in `finally`; its holder.json gets
 * a fresh `heartbeat_at` every 10 s. A lock whose holder ran on this machine and whose pid is dead is
 * provably stale: it is reported and broken. One whose heartbeat is older than a minute is reported,
 * and broken only with --force-unlock. --lock-wait queues behind a running command.
 */
import { randomBytes } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { acquireLock, breakLock, LOCK_HELD, refreshHolder, releaseLock } from '../commands/lock.ts';
import { LockHeldError, SkiffError } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import type { Layout } from '../core/paths.ts';

export interface Holder {
  readonly user: string;
  readonly host: string;
  readonly pid: number;
  readonly command: string;
  readonly version: string;
  readonly started_at: string;
  readonly heartbeat_at: string;
  readonly token: string;
}

export const HEARTBEAT_MS = 10_000;
export const STALE_MS = 60_000;

export interface LockOptions {
  readonly command: string;
  readonly version: string;
  readonly now: () => Date;
  readonly log?: (line: string) => void;
  /** Break a lock whose holder is gone or whose heartbeat is stale. */
  readonly forceUnlock?: boolean;
  /** Wait up to this long for a running command to finish. */
  readonly waitSeconds?: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/** Why a held lock may be broken, or undefined when its holder looks alive. */
export const staleness = (other: Holder, now: Date, here: string, alive: (pid: number) => boolean): string | undefined => {
  if (other.host === here && !alive(other.pid)) return `${describeHolder(other)} is no longer running`;
  const beat = Date.parse(other.heartbeat_at);
  if (Number.isFinite(beat) && now.getTime() - beat > STALE_MS) {
    return `${describeHolder(other)} has not updated it for ${Math.round((now.getTime() - beat) / 1000)}s`;
  }
  return undefined;
};

/** Runs `fn` while holding the lock on `host`; exit 3 (LockHeldError) if someone else holds it. */
export const withLock = async <T>(host: Host, l: Layout, info: LockOptions, fn: () => Promise<T>): Promise<T> => {
  const token = randomBytes(8).toString('hex');
  const at = info.now().toISOString();
  const holder: Holder = {
    user: userInfo().username,
    host: hostname(),
    pid: process.pid,
    command: info.command,
    version: info.version,
    started_at: at,
    heartbeat_at: at,
    token,
  };
  const take = () => host.exec(acquireLock(l), { stdin: JSON.stringify(holder, null, 2), check: false });
  const sleep = info.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  const deadline = Date.now() + (info.waitSeconds ?? 0) * 1000;
  let result = await take();
  for (let waited = false; result.code === LOCK_HELD; waited = true) {
    const other = parseHolder(result.stdout);
    const stale = other && staleness(other, info.now(), hostname(), pidAliveHere);
    // A dead pid on this machine is proof; an old heartbeat is a strong hint that needs --force-unlock.
    if (stale && (info.forceUnlock || (other.host === hostname() && !pidAliveHere(other.pid)))) {
      info.log?.(`breaking a stale lock on ${host.name}: ${stale}`);
      await host.exec(breakLock(l));
    } else if (Date.now() < deadline) {
      if (!waited) info.log?.(`${host.name} is locked by ${other ? describeHolder(other) : 'another run'}: waiting up to ${info.waitSeconds}s`);
      await sleep(1000);
    } else {
      const hint = stale ? `; it looks stale (${stale}): pass --force-unlock to break it` : ': wait for it to finish, or pass --lock-wait SECONDS';
      throw new LockHeldError(`${host.name} is locked by ${other ? describeHolder(other) : 'another run'}${hint}`);
    }
    result = await take();
  }
  if (result.code !== 0) {
    throw new SkiffError(`${host.name}: cannot create ${l.skiff}: ${result.stderr.trim().split('\n').at(-1) ?? ''}; check DEPLOY_PATH and its permissions`);
  }
  const beat = setInterval(() => {
    const fresh = { ...holder, heartbeat_at: info.now().toISOString() };
    host.exec(refreshHolder(l, token), { stdin: JSON.stringify(fresh, null, 2), check: false }).catch(() => undefined);
  }, HEARTBEAT_MS);
  beat.unref();
  try {
    return await fn();
  } finally {
    clearInterval(beat);
    await host.exec(releaseLock(l, token), { check: false });
  }
};

const pidAliveHere = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, but another user's
  }
};

const parseHolder = (text: string): Holder | undefined => {
  try {
    const h = JSON.parse(text) as Partial<Holder>;
    return typeof h.pid === 'number' && typeof h.host === 'string' ? (h as Holder) : undefined;
  } catch {
    return undefined;
  }
};

const describeHolder = (h: Holder): string =>
  `${h.user}@${h.host} pid ${h.pid} (${h.command}${h.version ? ` ${h.version}` : ''}, since ${h.started_at})`;
