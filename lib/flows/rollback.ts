/**
 * Rollback: the same start, health gate, switch and verify as a deploy, with an older release that is
 * still on the host (its own env file and start command) instead of a new build.
 */
import { listReleases } from '../commands/release.ts';
import type { Config } from '../config/config.ts';
import type { Going, Session } from './session.ts';
import { SkiffError, UsageError } from '../core/errors.ts';
import { appendHistory, liveBefore, liveSlot, readHistory, type ReleaseRecord } from '../state/state.ts';
import { loadState } from './state-repair.ts';
import { isReleaseId } from '../release/version.ts';

/**
 * The release to go back to: the requested one, or the one that was live just before the live one
 * went live and was not marked bad since (liveBefore). Only releases whose folder is still on the
 * host qualify.
 */
export const chooseTarget = (
  history: readonly ReleaseRecord[],
  liveId: string | undefined,
  onHost: readonly string[],
  requested: string | undefined,
  env: string,
): ReleaseRecord => {
  if (requested !== undefined) {
    if (!isReleaseId(requested)) throw new UsageError(`"${requested}" is not a release id (like 20261122-234512-1.2.0): see --list`);
    if (requested === liveId) throw new UsageError(`${requested} is already live`);
    const found = history.find((r) => r.id === requested);
    if (!found || !onHost.includes(requested)) {
      throw new UsageError(`release ${requested} is not on the host (pruned, or never deployed): see \`npx tsx scripts/rollback.ts ${env} --list\``);
    }
    return found;
  }
  const target = liveBefore(history, liveId, onHost);
  if (!target) throw new SkiffError(`no earlier good release of ${env} is on the host to go back to: see --list`, 2);
  return target;
};

/**
 * The release to go back to on several hosts: chosen on the first, and it must be on every host
 * (hosts deployed together share release ids).
 */
export const chooseTargetOnAll = (
  hosts: readonly { host: string; history: readonly ReleaseRecord[]; liveId: string | undefined; onHost: readonly string[] }[],
  requested: string | undefined,
  env: string,
): ReleaseRecord => {
  const [first, ...rest] = hosts;
  if (!first) throw new UsageError('no host to roll back');
  const target = chooseTarget(first.history, first.liveId, first.onHost, requested, env);
  for (const h of rest) {
    if (!h.onHost.includes(target.id)) {
      throw new UsageError(`release ${target.id} is not on ${h.host} (pruned, or that host joined later): name a release every host has, see --list`);
    }
  }
  return target;
};

/** The table of `--list`: the most recently live first (foldHistory's order, reversed), the live release marked with `*`. */
export const formatHistory = (history: readonly ReleaseRecord[], liveId: string | undefined, onHost: readonly string[]): string => {
  if (history.length === 0) return 'no releases yet';
  const rows = [...history].reverse().map((r) => {
    const mark = r.id === liveId ? '*' : ' ';
    const where = onHost.includes(r.id) ? '' : ' (pruned)';
    return `${mark} ${r.id.padEnd(36)} ${r.version.padEnd(20)} ${r.status.padEnd(11)} ${r.at.slice(0, 19).replace('T', ' ')}  ${r.who}${where}`;
  });
  return [`  ${'release'.padEnd(36)} ${'version'.padEnd(20)} ${'status'.padEnd(11)} ${'when (UTC)'.padEnd(19)}  who`, ...rows].join('\n');
};

/** Reads what rollback needs from the host. */
export const readRollbackFacts = async (ctx: Session) => {
  // A damaged state.json is read as rebuilt here; the rollback's preflight rewrites it under the lock.
  const liveId = liveSlot((await loadState(ctx)).state)?.release.release;
  const history = await readHistory(ctx.host, ctx.l);
  const onHost = (await ctx.host.exec(listReleases(ctx.l))).stdout.split('\n').filter(Boolean);
  return { liveId, history, onHost };
};

/** What a rollback puts live: the target release, with the start command it was deployed with. */
export const goingBackTo = (target: ReleaseRecord, cfg: Config): Going => ({
  action: 'rollback',
  id: target.id,
  version: target.version,
  gitSha: target.gitSha,
  start: target.start ?? cfg.start,
  // The workers it was deployed with, none for a record without: its code may lack today's workers' files.
  ...(target.workers ? { workers: target.workers } : {}),
});

/** Marks the release that was live as bad (a rollback without an id). */
export const markBad = (ctx: Session, id: string): Promise<void> =>
  appendHistory(ctx.host, ctx.l, { id, status: 'bad', at: ctx.now().toISOString(), reason: `rolled back by ${ctx.who}` });

/**
 * The releases a rollback to `targetId` goes back over whose DEPLOY_MIGRATE ran through: every one
 * recorded after the target (foldHistory's order) with a migration that ended `ok`, whatever
 * became of the release since. Their schema changes stay unless the data goes back too.
 */
export const migratedSince = (history: readonly ReleaseRecord[], targetId: string): ReleaseRecord[] => {
  const at = history.findIndex((r) => r.id === targetId);
  return history.slice(at + 1).filter((r) => r.migration?.status === 'ok');
};

/** The warning of a rollback over migrated releases, pointing at --with-data: one line. */
export const schemaWarning = (migrated: readonly ReleaseRecord[], target: ReleaseRecord, env: string): string | undefined => {
  if (migrated.length === 0) return undefined;
  const names = migrated.map((r) => r.id).join(', ');
  const backup = migrated.find((r) => r.backupId !== undefined)?.backupId;
  return (
    `warning: ${names} ran DEPLOY_MIGRATE, so the schema moved since ${target.id}: it will run on the migrated data, which works only if the migration kept the old schema readable (docs/migrations.md); ` +
    `to put the data of before back too, roll back with --with-data, which restores the newest backup taken while ${target.id} was live${backup ? ` (the deploy of ${migrated.find((r) => r.backupId)?.id} took ${backup} before its migration)` : ''}: ` +
    `npx tsx scripts/rollback.ts ${env} ${target.id} --with-data`
  );
};
