/**
 * The deploy lock on a host. Held for the whole command, released in `finally`. A lock whose holder
 * ran on this same host and whose pid is dead is provably stale: it is reported and broken.
 */
import { randomBytes } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { acquireLock, breakLock, LOCK_HELD, releaseLock } from './commands/lock.ts';
import { LockHeldError, SkiffError } from './errors.ts';
import type { Host } from './host.ts';
import type { Layout } from './paths.ts';

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

/** Runs `fn` while holding the lock on `host`; exit 3 (LockHeldError) if someone else holds it. */
export const withLock = async <T>(
  host: Host,
  l: Layout,
  info: { command: string; version: string; now: () => Date; log?: (line: string) => void },
  fn: () => Promise<T>,
): Promise<T> => {
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
  let result = await take();
  if (result.code === LOCK_HELD) {
    const other = parseHolder(result.stdout);
    // Provably gone: the holder ran on this machine (where skiff runs), and its pid is not alive here.
    if (other && other.host === hostname() && !pidAliveHere(other.pid)) {
      info.log?.(`breaking a stale lock on ${host.name}: ${describeHolder(other)} is no longer running`);
      await host.exec(breakLock(l));
      result = await take();
    }
  }
  if (result.code === LOCK_HELD) {
    const other = parseHolder(result.stdout);
    throw new LockHeldError(
      `${host.name} is locked by ${other ? describeHolder(other) : 'another run'}: wait for it to finish, or remove ${l.lock} if that run is gone`,
    );
  }
  if (result.code !== 0) {
    throw new SkiffError(`${host.name}: cannot create ${l.skiff}: ${result.stderr.trim().split('\n').at(-1) ?? ''}; check DEPLOY_PATH and its permissions`);
  }
  try {
    return await fn();
  } finally {
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
