/**
 * The deploy lock on a host. Held for the whole command, released in `finally`; its holder.json is
 * rewritten every 10 s (the heartbeat). A held lock is judged from what is proof:
 * - its holder ran on this very machine (the same machine id, not merely the same hostname) and is
 *   gone (its pid is dead, the pid now belongs to another process, or the machine rebooted since):
 *   broken by itself, with a message;
 * - holder.json has not been rewritten for a minute, measured with the host's clock only (its
 *   mtime against the host's `date`), so a clock that is off on either machine changes nothing:
 *   broken only with --force-unlock;
 * - no holder.json, or one that is not a holder: broken only with --force-unlock.
 * Breaking is one step on the host under a mutex, and only if holder.json is still the one judged.
 * --lock-wait queues behind a running command.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname, networkInterfaces, userInfo } from 'node:os';
import { acquireLock, breakAndTake, LOCK_HELD, LOCK_LOST, NO_FLOCK, refreshHolder, releaseLock, removeDeadPartials } from '../commands/lock.ts';
import { LockHeldError, SkiffError } from '../core/errors.ts';
import type { ExecResult, Host } from '../host/host.ts';
import type { Layout } from '../core/paths.ts';

export interface Holder {
  readonly user: string;
  readonly host: string;
  readonly pid: number;
  readonly command: string;
  readonly version: string;
  readonly started_at: string;
  /** Written by the holder's clock: shown to people, never used to judge (the host's mtime is). */
  readonly heartbeat_at: string;
  readonly token: string;
  /** A hash of the holder's machine id: proof that a pid can be looked up here. Absent in older holders. */
  readonly machine?: string;
  /** A hash of the holder machine's boot id: another boot means the holder is gone. */
  readonly boot?: string;
  /** The process's start time (Linux /proc ticks since boot): a pid reused later is not the holder. */
  readonly pid_start?: string;
  /** The pid of the tsx launcher the run was started through (see `watchLauncher`). */
  readonly launcher?: number;
}

export const HEARTBEAT_MS = 10_000;
export const STALE_MS = 60_000;
/** How long a run whose launcher was killed is given to follow it before it counts as live. */
export const STOPPING_MS = 5_000;

export interface LockOptions {
  readonly command: string;
  readonly version: string;
  readonly now: () => Date;
  readonly log?: (line: string) => void;
  /** Break a lock whose heartbeat is stale, or that has no readable holder.json. */
  readonly forceUnlock?: boolean;
  /** Wait up to this long for a running command to finish. */
  readonly waitSeconds?: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/** What a contender saw of a held lock (parsed from the output of acquireLock and breakAndTake). */
export interface LockView {
  readonly holder: Holder | undefined;
  /** holder.json as read, for the message when it is not a holder. */
  readonly raw: string;
  /** How long ago holder.json was last written, by the host's clock; undefined when unknown. */
  readonly ageMs: number | undefined;
  /** Identifies this very holder.json: a break goes ahead only if it is unchanged. */
  readonly seen: string;
}

/** What this machine is: how a holder is recognised as having run here. */
export interface Here {
  readonly machine: string | undefined;
  readonly boot: string | undefined;
  /** Whether `pid` runs here and is the process that started at `start` (when known). */
  readonly alive: (pid: number, start?: string) => boolean;
}

export type Verdict =
  | { readonly kind: 'live'; readonly why?: string }
  /** Provably gone: broken without asking. */
  | { readonly kind: 'dead'; readonly why: string }
  /** Its launcher was killed: the run follows it within a moment. */
  | { readonly kind: 'stopping'; readonly why: string }
  /** Broken only with --force-unlock. */
  | { readonly kind: 'stale'; readonly why: string }
  | { readonly kind: 'unreadable'; readonly why: string };

/** Judges a held lock (pure: every fact about this machine comes in `here`). */
export const judge = (view: LockView, here: Here): Verdict => {
  const h = view.holder;
  if (!h) {
    const what = view.raw.trim() === '' ? 'has no holder.json' : 'has a holder.json that is not a holder';
    return { kind: 'unreadable', why: `its lock folder ${what}` };
  }
  const sameMachine = h.machine !== undefined && h.machine === here.machine;
  if (sameMachine && h.boot !== undefined && here.boot !== undefined && h.boot !== here.boot) {
    return { kind: 'dead', why: `${describeHolder(h)} ran before this machine restarted` };
  }
  if (sameMachine && !here.alive(h.pid, h.pid_start)) return { kind: 'dead', why: `${describeHolder(h)} is no longer running` };
  if (sameMachine && h.launcher !== undefined && !here.alive(h.launcher)) {
    return { kind: 'stopping', why: `${describeHolder(h)} was started by pid ${h.launcher}, which is gone` };
  }
  if (view.ageMs !== undefined && view.ageMs > STALE_MS) {
    return { kind: 'stale', why: `${describeHolder(h)} has not updated it for ${Math.round(view.ageMs / 1000)}s` };
  }
  return { kind: 'live' };
};

/** Parses the output of acquireLock / breakAndTake for a held lock; `now` is used only when the host could not tell the age. */
export const parseView = (stdout: string, now: Date): LockView => {
  const newline = stdout.indexOf('\n');
  const first = newline < 0 ? stdout : stdout.slice(0, newline);
  const raw = newline < 0 ? '' : stdout.slice(newline + 1);
  const [word, hostNow, mtime, seen] = first.split(' ');
  const holder = parseHolder(raw);
  let ageMs: number | undefined;
  if (word === 'lock' && /^\d+$/.test(hostNow ?? '') && /^\d+$/.test(mtime ?? '')) ageMs = (Number(hostNow) - Number(mtime)) * 1000;
  else if (holder) {
    // A host without GNU stat: the holder's own clock is all there is.
    const beat = Date.parse(holder.heartbeat_at);
    if (Number.isFinite(beat)) ageMs = now.getTime() - beat;
  }
  return { holder, raw, ageMs, seen: seen ?? 'missing' };
};

/** Runs `fn` while holding the lock on `host`; exit 3 (LockHeldError) if someone else holds it. */
export const withLock = async <T>(host: Host, l: Layout, info: LockOptions, fn: () => Promise<T>): Promise<T> => {
  exitIfOrphaned();
  const token = randomBytes(8).toString('hex');
  const at = info.now().toISOString();
  const here = thisMachine();
  const holder: Holder = {
    user: userInfo().username,
    host: hostname(),
    pid: process.pid,
    command: info.command,
    version: info.version,
    started_at: at,
    heartbeat_at: at,
    token,
    ...(here.machine ? { machine: here.machine } : {}),
    ...(here.boot ? { boot: here.boot } : {}),
    ...optional('pid_start', processStart(process.pid)),
    ...optional('launcher', LAUNCHER),
  };
  const text = (h: Holder) => JSON.stringify(h, null, 2);
  const sleep = info.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  const deadline = Date.now() + (info.waitSeconds ?? 0) * 1000;
  let result = await host.exec(acquireLock(l, text(holder)), { check: false });
  let broke = false;
  let unreadableSince: string | undefined;
  let stoppingUntil: number | undefined;
  for (let waited = false; result.code === LOCK_HELD; ) {
    const view = parseView(result.stdout, info.now());
    const verdict = judge(view, here);
    const who = view.holder ? describeHolder(view.holder) : 'another run';
    if (verdict.kind === 'unreadable' && unreadableSince !== view.seen) {
      // An older skiff writes holder.json just after its mkdir: look again before judging.
      unreadableSince = view.seen;
      await sleep(1000);
    } else if (verdict.kind === 'stopping' && Date.now() < (stoppingUntil ??= Date.now() + STOPPING_MS)) {
      await sleep(250);
    } else if (verdict.kind === 'dead' || (info.forceUnlock && (verdict.kind === 'stale' || verdict.kind === 'unreadable'))) {
      info.log?.(`breaking a stale lock on ${host.name}: ${verdict.why}`);
      result = await host.exec(breakAndTake(l, view.seen, token, text(holder)), { check: false });
      broke ||= result.code === 0;
      continue;
    } else if (Date.now() < deadline) {
      if (!waited) info.log?.(`${host.name} is locked by ${who}: waiting up to ${info.waitSeconds}s`);
      waited = true;
      await sleep(1000);
    } else {
      throw new LockHeldError(`${host.name} is locked by ${who}${refusalHint(verdict)}`);
    }
    result = await host.exec(acquireLock(l, text(holder)), { check: false });
  }
  if (result.code === NO_FLOCK) {
    throw new SkiffError(`${host.name} has no flock command, which the deploy lock needs: install util-linux (apt-get install util-linux)`);
  }
  if (result.code !== 0) {
    throw new SkiffError(`${host.name}: cannot create ${l.lock}: ${lastLine(result)}; check DEPLOY_PATH and its permissions`);
  }
  const beat = setInterval(() => {
    const fresh = text({ ...holder, heartbeat_at: info.now().toISOString() });
    host.exec(refreshHolder(l, token, fresh), { check: false }).then(
      (r) => {
        if (r.code === LOCK_LOST) info.log?.(`warning: the lock on ${host.name} was broken by another run (--force-unlock); this run goes on without it`);
      },
      () => undefined, // a heartbeat that cannot reach the host is tried again in 10 s
    );
  }, HEARTBEAT_MS);
  beat.unref();
  const watch = watchLauncher();
  try {
    if (broke) {
      const removed = await host.exec(removeDeadPartials(l, token));
      const n = Number(removed.stdout.trim());
      if (n > 0) info.log?.(`removed ${n} half-written .partial folder${n === 1 ? '' : 's'} the stopped run left on ${host.name}`);
    }
    return await fn();
  } finally {
    clearInterval(beat);
    if (watch) clearInterval(watch);
    await host.exec(releaseLock(l, token), { check: false });
  }
};

const refusalHint = (v: Verdict): string => {
  switch (v.kind) {
    case 'stale':
      return `; it looks stale (${v.why}): pass --force-unlock to break it`;
    case 'unreadable':
      return `; ${v.why}: if no skiff command runs on this host, pass --force-unlock to break it`;
    default:
      return ': wait for it to finish, or pass --lock-wait SECONDS';
  }
};

const lastLine = (r: ExecResult): string => r.stderr.trim().split('\n').at(-1) ?? '';

const optional = <K extends string, V>(key: K, value: V | undefined): { [k in K]?: V } =>
  // A computed key widens to `string` in TypeScript: the object has exactly the one key K.
  (value === undefined ? {} : { [key]: value }) as { [k in K]?: V };

const hashOf = (kind: string, value: string): string => createHash('sha256').update(`skiff-${kind}:${value.trim()}`).digest('hex').slice(0, 16);

const readText = (file: string): string | undefined => {
  try {
    const text = readFileSync(file, 'utf8').trim();
    return text === '' ? undefined : text;
  } catch {
    return undefined;
  }
};

/**
 * This machine's identity: a hash of /etc/machine-id (the id itself is not shared), else of its
 * network cards' hardware addresses (macOS has no machine-id file); undefined when neither exists,
 * and then no pid is ever taken as proof.
 */
export const machineId = (): string | undefined => {
  const id = readText('/etc/machine-id') ?? readText('/var/lib/dbus/machine-id');
  if (id) return hashOf('machine', id);
  const macs = Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .filter((i) => !i.internal && i.mac !== '00:00:00:00:00:00')
    .map((i) => i.mac);
  return macs.length > 0 ? hashOf('macs', [...new Set(macs)].sort().join(',')) : undefined;
};

const bootId = (): string | undefined => {
  const id = readText('/proc/sys/kernel/random/boot_id');
  return id ? hashOf('boot', id) : undefined;
};

/** A process's start time from /proc/<pid>/stat (field 22, after the parenthesised name); undefined off Linux. */
export const processStart = (pid: number): string | undefined => {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
};

const pidAliveHere = (pid: number, start?: string): boolean => {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false; // EPERM: alive, but another user's
  }
  const now = start === undefined ? undefined : processStart(pid);
  return now === undefined || now === start;
};

const thisMachine = (): Here => ({ machine: machineId(), boot: bootId(), alive: pidAliveHere });

/**
 * `npx tsx scripts/x.ts` runs the script in a child node process. A kill -9 of the tsx process
 * leaves that child running on its own: it would go on deploying and holding the lock, with a pid
 * nobody killed. The child is recognised by tsx's preflight in its node options; its launcher is
 * the parent it had when this module loaded.
 */
const LAUNCHER: number | undefined = process.execArgv.some((a) => /[\\/]tsx[\\/]dist[\\/]preflight\.cjs$/.test(a)) ? process.ppid : undefined;

/**
 * Whether the parent is still tsx: a launcher killed before this module loaded left the child with
 * init (or a subreaper) as its parent from the start. Where /proc is missing, the parent is trusted.
 */
const parentIsTsx = (): boolean => {
  try {
    return readFileSync(`/proc/${process.ppid}/cmdline`, 'utf8').includes('tsx');
  } catch {
    return true;
  }
};

/** A run whose launcher was killed ends the way the launcher did (SIGKILL): as the user asked. */
const exitIfOrphaned = (): void => {
  if (LAUNCHER !== undefined && (process.ppid !== LAUNCHER || !parentIsTsx())) process.kill(process.pid, 'SIGKILL');
};

const watchLauncher = (): NodeJS.Timeout | undefined => {
  if (LAUNCHER === undefined) return undefined;
  const timer = setInterval(exitIfOrphaned, 200);
  timer.unref();
  return timer;
};

const parseHolder = (text: string): Holder | undefined => {
  try {
    const h = JSON.parse(text) as Partial<Holder>; // checked field by field below
    if (typeof h.pid !== 'number' || typeof h.host !== 'string' || typeof h.token !== 'string') return undefined;
    return h as Holder; // the fields judged are checked; the rest are only shown
  } catch {
    return undefined;
  }
};

const describeHolder = (h: Holder): string =>
  `${h.user}@${h.host} pid ${h.pid} (${h.command}${h.version ? ` ${h.version}` : ''}, since ${h.started_at})`;
