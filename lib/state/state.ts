/**
 * What skiff remembers on each host: `.skiff/state.json` (which slot is live, with what) and
 * `.skiff/releases.jsonl` (one line per event, folded by release id). Parsing is pure; reading and
 * writing go through a Host.
 */
import { appendLine } from '../commands/release.ts';
import type { Host } from '../host/host.ts';
import type { Layout } from '../core/paths.ts';

export type ReleaseStatus = 'live' | 'failed' | 'rolled-back' | 'bad';

export interface SlotState {
  readonly release: string;
  readonly version: string;
  readonly port: number;
  /** The start command the release was deployed with, so it starts the same way later. */
  readonly start: string;
  readonly startedAt: string;
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
  readonly who: string;
  readonly at: string;
  readonly status: ReleaseStatus;
  /** Milliseconds per step. */
  readonly durations?: Readonly<Record<string, number>>;
  readonly reason?: string;
  readonly backupId?: string;
  /** What the deploy sent to the host: bytes, files sent, files taken from the live release. */
  readonly shipped?: { readonly bytes: number; readonly files: number; readonly reused: number };
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

/** Parses state.json; a missing file means nothing is deployed. */
export const parseState = (text: string | undefined): HostState | undefined => {
  if (text === undefined || text.trim() === '') return undefined;
  return JSON.parse(text) as HostState;
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

export const readState = async (host: Host, l: Layout): Promise<HostState | undefined> =>
  parseState((await host.get(l.state))?.toString());

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
