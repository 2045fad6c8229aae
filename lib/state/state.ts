/**
 * What skiff remembers on each host: `.skiff/state.json` (which slot is live, with what) and
 * `.skiff/releases.jsonl` (one line per event, folded by release id). Parsing is pure; reading and
 * writing go through a Host.
 */
import { z } from 'zod';
import { appendLine } from '../commands/release.ts';
import { SkiffError } from '../core/errors.ts';
import { isReleaseId } from '../release/version.ts';
import type { Host } from '../host/host.ts';
import type { Layout } from '../core/paths.ts';
import { MAX_WORKER_COUNT, WORKER_NAME, type WorkerSpec } from '../config/workers.ts';

export type ReleaseStatus = 'live' | 'failed' | 'rolled-back' | 'bad';

export interface SlotState {
  readonly release: string;
  readonly version: string;
  readonly port: number;
  /** The start command the release was deployed with, so it starts the same way later. */
  readonly start: string;
  readonly startedAt: string;
  /** The workers the release runs (DEPLOY_WORKERS when it was deployed); absent: none. */
  readonly workers?: readonly WorkerSpec[];
}

export interface HostState {
  readonly app: string;
  readonly env: string;
  /** The slot serving traffic; undefined before the first deploy. */
  readonly live: string | undefined;
  readonly slots: Readonly<Record<string, SlotState>>;
  readonly updatedAt: string;
}

export interface ReleaseRecord {
  readonly id: string;
  readonly version: string;
  readonly gitSha: string | undefined;
  /** The start command it was deployed with (absent in records of early versions). */
  readonly start?: string;
  /** The workers it was deployed with (absent in records from before DEPLOY_WORKERS). */
  readonly workers?: readonly WorkerSpec[];
  readonly who: string;
  readonly at: string;
  readonly status: ReleaseStatus;
  /** Milliseconds per step. */
  readonly durations?: Readonly<Record<string, number>>;
  readonly reason?: string;
  readonly backupId?: string;
  /** DEPLOY_RELEASE_CMD on this host: run, or skipped with its folders reused from the live release. */
  readonly releaseCmd?: ReleaseCmdRecord;
  /** DEPLOY_MIGRATE: that it ran (on one host of the deploy), and how it ended. */
  readonly migration?: MigrationRecord;
  /** What the deploy sent to the host: bytes, files sent, files taken from the live release. */
  readonly shipped?: { readonly bytes: number; readonly files: number; readonly reused: number; readonly packing?: 'zstd' | 'gzip' | 'none' };
}

/** How DEPLOY_RELEASE_CMD went on a host: `ran` or `failed` (with its exit status), or `skipped` (its folders reused). */
export interface ReleaseCmdRecord {
  readonly status: 'ran' | 'skipped' | 'failed' | 'timed-out';
  readonly ms: number;
  readonly exitCode?: number | null;
  /** The DEPLOY_RELEASE_CACHE folders hard-linked from this release. */
  readonly reusedFrom?: string;
}

/** How DEPLOY_MIGRATE went: on which host, `ok`, `failed` (its exit status) or `timed-out` (stopped at its deadline). */
export interface MigrationRecord {
  readonly host: string;
  readonly status: 'ok' | 'failed' | 'timed-out';
  readonly ms: number;
  readonly exitCode?: number | null;
}

/** The status update of an existing release, appended later (a rollback marks the live one bad). */
export interface StatusEvent {
  readonly id: string;
  readonly status: ReleaseStatus;
  readonly at: string;
  readonly reason?: string;
}

/** The live slot of a host's state and what runs in it; undefined before the first deploy. */
export const liveSlot = (state: HostState | undefined): { readonly slot: string; readonly release: SlotState } | undefined => {
  const slot = state?.live;
  const release = slot ? state.slots[slot] : undefined;
  return slot && release ? { slot, release } : undefined;
};

const slotSchema = z.object({
  // The folder name under releases/: a record on the host never names a path of its own.
  release: z.string().refine(isReleaseId, 'a release id (YYYYMMDD-HHMMSS-version)'),
  version: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  start: z.string(),
  startedAt: z.string(),
  // Worker names become file names and markers on the host: checked like DEPLOY_WORKERS.
  workers: z.array(z.object({ name: z.string().regex(WORKER_NAME), count: z.number().int().min(1).max(MAX_WORKER_COUNT), command: z.string().min(1) })).optional(),
});

const stateSchema = z
  .object({
    app: z.string().min(1),
    env: z.string().min(1),
    live: z.string().min(1).optional(),
    slots: z.record(z.string(), slotSchema),
    updatedAt: z.string(),
  })
  .refine((s) => s.live === undefined || s.slots[s.live] !== undefined, { message: 'the live slot has no entry in slots', path: ['live'] });

/** state.json is there but cannot be read as a state: cut short by a crash or a full disk, or edited. */
export class StateDamagedError extends SkiffError {
  /** What is wrong with it, in a few words. */
  readonly problem: string;
  constructor(problem: string, where = 'state.json') {
    super(
      `${where} is damaged (${problem}); nothing was changed: \`status\` shows what runs, rebuilt from releases.jsonl and the running slots, and the next deploy or rollback rewrites it`,
    );
    this.problem = problem;
  }
}

/** Parses state.json; a missing file means nothing is deployed, a damaged one throws StateDamagedError. */
export const parseState = (text: string | undefined): HostState | undefined => {
  if (text === undefined) return undefined;
  if (text.trim() === '') throw new StateDamagedError(text === '' ? 'empty' : 'only blanks');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new StateDamagedError(`not JSON, ${text.length} bytes: cut short?`);
  }
  const parsed = stateSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new StateDamagedError(issue ? `${issue.path.join('.') || 'the file'}: ${issue.message}` : 'not a state');
  }
  return { ...parsed.data, live: parsed.data.live };
};

/** What a damaged state.json is rebuilt from: the history, the `current` link and what runs in each slot. */
export interface RebuildFacts {
  readonly app: string;
  readonly env: string;
  readonly history: readonly ReleaseRecord[];
  /** The release `current` points at (commit points it before it writes state.json), if any. */
  readonly current: string | undefined;
  readonly onHost: readonly string[];
  /** The slots of the config, each with its port and whether a process runs there. */
  readonly slots: readonly { readonly slot: string; readonly port: number; readonly running: boolean }[];
  /** The port the proxy sends traffic to; undefined without a proxy or when it cannot say. */
  readonly routed: number | undefined;
  /** DEPLOY_START, for a release whose record is lost with the start command it ran with. */
  readonly start: string;
  readonly now: string;
}

/**
 * The state a damaged state.json stood for: the live release is the one `current` points at (else
 * the last one the history records live), its slot the one the proxy sends traffic to (else the
 * only slot, or the only running one). Slots other than the live one are left out: what they ran is
 * not known, and the next deploy starts its release in one of them anyway. Returns a reason when it
 * cannot tell; undefined state when nothing was ever deployed.
 */
export const rebuildState = (f: RebuildFacts): { readonly state: HostState | undefined } | { readonly unknown: string } => {
  const fromLink = f.current !== undefined && f.onHost.includes(f.current) ? f.current : undefined;
  const liveId = fromLink ?? f.history.filter((r) => r.status === 'live' && f.onHost.includes(r.id)).at(-1)?.id;
  if (liveId === undefined) {
    return f.onHost.length === 0 ? { state: undefined } : { unknown: 'neither `current` nor releases.jsonl names a release on the host that went live' };
  }
  const routedSlot = f.routed === undefined ? undefined : f.slots.find((s) => s.port === f.routed);
  if (f.routed !== undefined && !routedSlot) return { unknown: `the proxy sends traffic to port ${f.routed}, which is no slot's` };
  const running = f.slots.filter((s) => s.running);
  const slot = routedSlot ?? (f.slots.length === 1 ? f.slots[0] : running.length === 1 ? running[0] : undefined);
  if (!slot) {
    return { unknown: `the proxy sends traffic nowhere and ${running.length === 0 ? 'no slot runs' : 'both slots run'}, so which slot serves ${liveId} cannot be told` };
  }
  const record = f.history.find((r) => r.id === liveId);
  // A release id is <date>-<time>-<version>: the version, when the record is lost too.
  const version = record?.version ?? liveId.split('-').slice(2).join('-');
  return {
    state: {
      app: f.app,
      env: f.env,
      live: slot.slot,
      slots: { [slot.slot]: { release: liveId, version, port: slot.port, start: record?.start ?? f.start, startedAt: record?.at ?? f.now, ...(record?.workers ? { workers: record.workers } : {}) } },
      updatedAt: f.now,
    },
  };
};

const parseEntry = (text: string): (Partial<ReleaseRecord> & { id?: string }) | undefined => {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' ? (value as Partial<ReleaseRecord>) : undefined;
  } catch {
    return undefined;
  }
};

/**
 * Folds the history lines into one record per release, in the order releases were last live: a
 * release goes where its last `live` line is (a rollback to it appends one), one that never went
 * live stays where it was first recorded. Later lines update status. The order is the order of the
 * lines, which the host appends under the deploy lock: the times in them come from the clocks of
 * the machines that deployed, which may disagree.
 */
export const foldHistory = (text: string): ReleaseRecord[] => {
  const byId = new Map<string, ReleaseRecord>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const entry = parseEntry(line) ?? parseEntry(line.slice(line.lastIndexOf('{"id":')));
    if (!entry?.id) continue; // a line cut by a crash mid-append is skipped, not fatal
    const prev = byId.get(entry.id);
    if (prev) {
      // Going live again moves the release last (a Map keeps the order of insertion).
      if (entry.status === 'live') byId.delete(entry.id);
      byId.set(entry.id, { ...prev, status: entry.status ?? prev.status, ...(entry.reason ? { reason: entry.reason } : {}) });
    } else if (entry.version) byId.set(entry.id, entry as ReleaseRecord);
  }
  return [...byId.values()];
};

/**
 * The release that was live just before `liveId` went live (the default rollback target): the
 * newest in `history` (foldHistory's order) before it that went live, was not marked bad since, and
 * is still on the host. With no live release known, the newest such release.
 */
export const liveBefore = (history: readonly ReleaseRecord[], liveId: string | undefined, onHost: readonly string[]): ReleaseRecord | undefined => {
  const liveIndex = history.findIndex((r) => r.id === liveId);
  return history
    .slice(0, liveIndex === -1 ? history.length : liveIndex)
    .filter((r) => r.status === 'live' && onHost.includes(r.id))
    .at(-1);
};

/**
 * Release ids to delete so that `keep` remain: the oldest first, never the live release, the one
 * live just before it (the default rollback target, see liveBefore), nor the one that served until
 * this run.
 */
export const releasesToPrune = (
  onHost: readonly string[],
  history: readonly ReleaseRecord[],
  liveId: string | undefined,
  keep: number,
  /** The release that served until this run (a rollback may have put an older one there): kept too. */
  servedBefore?: string,
): string[] => {
  const sorted = [...onHost].sort();
  const previousGood = liveBefore(history, liveId, onHost)?.id;
  const protectedIds = new Set([liveId, previousGood, servedBefore].filter((x): x is string => x !== undefined && onHost.includes(x)));
  const excess = sorted.length - Math.max(keep, protectedIds.size);
  if (excess <= 0) return [];
  return sorted.filter((id) => !protectedIds.has(id)).slice(0, excess);
};

/** Reads state.json; throws StateDamagedError (naming the host and the file) when it is damaged. */
export const readState = async (host: Host, l: Layout): Promise<HostState | undefined> => {
  const text = (await host.get(l.state))?.toString();
  try {
    return parseState(text);
  } catch (error) {
    if (error instanceof StateDamagedError) throw new StateDamagedError(error.problem, `${host.name}: ${l.state}`);
    throw error;
  }
};

export const writeState = (host: Host, l: Layout, state: HostState): Promise<void> =>
  host.put(l.state, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });

export const readHistory = async (host: Host, l: Layout): Promise<ReleaseRecord[]> =>
  foldHistory((await host.get(l.history))?.toString() ?? '');

export const appendHistory = async (host: Host, l: Layout, entry: ReleaseRecord | StatusEvent): Promise<void> => {
  await host.exec(appendLine(l.history), { stdin: `${JSON.stringify(entry)}\n` });
};

/** One line per action in .skiff/audit.log: when, who, what. */
export const audit = async (host: Host, l: Layout, at: string, who: string, action: string): Promise<void> => {
  await host.exec(appendLine(l.audit), { stdin: `${at} ${who} ${action}\n` });
};
