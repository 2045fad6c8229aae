/**
 * The commands a deploy runs inside its new release on the hosts (docs/migrations.md):
 * DEPLOY_RELEASE_CMD on each host after ship and before start (dependencies built on the host),
 * skipped when DEPLOY_RELEASE_CACHE says its folders can be taken from the live release; and
 * DEPLOY_MIGRATE once per deploy, on the first host, after the new release is healthy in its slot
 * and before the switch. Their output streams into the progress lines, scrubbed of secret values;
 * a failure stops the deploy before anything is switched.
 */
import { CACHE_KEYS_FILE, cacheKeys, parseCacheKeys, reuseFolders, TIMED_OUT } from '../commands/hooks.ts';
import { knownSecretStartAtEnd, redactKnown } from '../core/cmd.ts';
import { firstLine, SkiffError } from '../core/errors.ts';
import { DeadlineError } from '../host/host.ts';
import { recordFailure } from './deploy.ts';
import type { DeployCtx } from './session.ts';
import type { MigrationRecord } from '../state/state.ts';

/** How many of the command's last lines a failure message quotes. */
const TAIL_LINES = 5;

/** A line longer than this is shown in pieces (a progress bar drawn with \r, say). */
const MAX_LINE = 4000;

/**
 * Splits a stream of output into lines, each scrubbed of every known secret value before `emit`
 * sees it, and keeps the last TAIL_LINES for an error message. Whole lines are scrubbed, so a secret
 * cut in two by the stream's chunks is still found; a very long line is cut where no secret can start.
 */
export const lineSplitter = (emit: (line: string) => void) => {
  let pending = '';
  const tail: string[] = [];
  const out = (line: string) => {
    const clean = redactKnown(line.replace(/\r/g, ''));
    if (clean.trim() === '') return;
    tail.push(clean);
    if (tail.length > TAIL_LINES) tail.shift();
    emit(clean);
  };
  return {
    push(chunk: Buffer | string): void {
      pending += chunk.toString();
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const line of parts) out(line);
      while (pending.length > MAX_LINE) {
        const keep = knownSecretStartAtEnd(pending.slice(0, MAX_LINE));
        out(pending.slice(0, MAX_LINE - keep));
        pending = pending.slice(MAX_LINE - keep);
      }
    },
    end(): void {
      if (pending) out(pending);
      pending = '';
    },
    tail: (): readonly string[] => tail,
  };
};

/** How a hook ended: its exit status, whether its deadline stopped it, how long it ran, its last lines. */
interface HookRun {
  readonly code: number | null;
  readonly timedOut: boolean;
  readonly ms: number;
  readonly tail: readonly string[];
}

/** Runs a command in this run's release on the host, its lines going to ctx.log. Never throws for the command's exit status. */
const runInRelease = async (ctx: DeployCtx, command: string, timeoutSeconds: number): Promise<HookRun> => {
  const { host, l } = ctx;
  const lines = lineSplitter((line) => ctx.log(line));
  const t0 = ctx.clock.now();
  const hook = ctx.runtime.hookCommand(l, { release: ctx.run.id, slot: ctx.run.target.slot, version: ctx.run.version, command, timeoutSeconds });
  try {
    // The host's `timeout` stops the command; this deadline is the backstop when the host itself hangs.
    const r = await host.exec(hook, { onStdout: (b) => lines.push(b), check: false, signal: ctx.signal, timeoutMs: (timeoutSeconds + 60) * 1000 });
    lines.end();
    const ms = ctx.clock.now() - t0;
    const timedOut = r.code !== null && (TIMED_OUT as readonly number[]).includes(r.code) && ms >= timeoutSeconds * 1000;
    return { code: r.code, timedOut, ms, tail: lines.tail() };
  } catch (error) {
    lines.end();
    if (error instanceof DeadlineError) return { code: null, timedOut: true, ms: ctx.clock.now() - t0, tail: lines.tail() };
    throw error;
  }
};

/** The words of a failure: `exit 2` or `stopped at its deadline of 30 s (KEY)`, and the last lines. */
const howItEnded = (run: HookRun, key: string, timeoutSeconds: number): string => {
  const how = run.timedOut ? `stopped at its deadline of ${timeoutSeconds} s (${key}_TIMEOUT)` : `failed (exit ${run.code ?? 'by a signal'})`;
  return `${how}${run.tail.length > 0 ? `; its last lines: ${run.tail.join(' | ')}` : '; it printed nothing'}`;
};

/** What the live release still does, for the end of a failure message. */
const stillServing = (ctx: DeployCtx): string => {
  const prev = ctx.run.previous;
  return prev ? `nothing was switched: ${prev.slot.release} still serves` : 'nothing was switched (nothing served before)';
};

/**
 * DEPLOY_RELEASE_CMD in the new release folder, after ship and the env file, before start. With
 * DEPLOY_RELEASE_CACHE, when every folder's key (the hash of the command and its input files)
 * equals the live release's, the folders are hard-linked from it and the command is skipped;
 * otherwise it runs from scratch (no folder carried over: an install into a folder whose files are
 * shared with the live release could change the release that serves). On failure the release is
 * recorded failed and nothing else changes.
 */
export const releaseCommand = async (ctx: DeployCtx): Promise<void> => {
  const { host, l, cfg } = ctx;
  const command = cfg.releaseCmd;
  if (command === undefined) return;
  const dir = l.release(ctx.run.id);
  const cache = cfg.releaseCache;
  const keys = cache.length > 0 ? parseCacheKeys((await host.exec(cacheKeys(dir, command, cache))).stdout) : new Map<string, string>();
  const keysText = [...keys].map(([folder, key]) => `${key} ${folder}\n`).join('');
  const live = ctx.run.previous?.slot.release;
  if (cache.length > 0 && live !== undefined && live !== ctx.run.id) {
    const liveKeys = parseCacheKeys((await host.get(`${l.release(live)}/${CACHE_KEYS_FILE}`))?.toString() ?? '');
    const changed = cache.filter((e) => keys.get(e.folder) === undefined || liveKeys.get(e.folder) !== keys.get(e.folder)).map((e) => e.folder);
    if (changed.length === 0) {
      const t0 = ctx.clock.now();
      const reused = await host.exec(reuseFolders(l.release(live), dir, cache.map((e) => e.folder)), { check: false });
      if (reused.code === 0) {
        await host.put(`${dir}/${CACHE_KEYS_FILE}`, keysText);
        ctx.run.releaseCmd = { status: 'skipped', ms: ctx.clock.now() - t0, reusedFrom: live };
        ctx.log(`inputs unchanged: ${cache.map((e) => e.folder).join(', ')} taken from ${live}; DEPLOY_RELEASE_CMD skipped`);
        return;
      }
      ctx.log(`could not take ${cache.map((e) => e.folder).join(', ')} from ${live} (${redactKnown(reused.stderr.trim().split('\n').at(-1) ?? `exit ${reused.code}`)}): running DEPLOY_RELEASE_CMD`);
    } else {
      ctx.log(`changed since ${live}: ${changed.join(', ')}: running DEPLOY_RELEASE_CMD`);
    }
  }
  const run = await runInRelease(ctx, command, cfg.releaseCmdTimeoutSeconds);
  if (run.code === 0) {
    if (keysText) await host.put(`${dir}/${CACHE_KEYS_FILE}`, keysText);
    ctx.run.releaseCmd = { status: 'ran', ms: run.ms };
    ctx.log(`DEPLOY_RELEASE_CMD done in ${run.ms} ms`);
    return;
  }
  ctx.run.releaseCmd = { status: run.timedOut ? 'timed-out' : 'failed', ms: run.ms, exitCode: run.code };
  const error = new SkiffError(`${host.name}: DEPLOY_RELEASE_CMD ${howItEnded(run, 'DEPLOY_RELEASE_CMD', cfg.releaseCmdTimeoutSeconds)}; ${stillServing(ctx)}`);
  const left = (await recordFailure(ctx, 'failed', error)).filter((x): x is string => x !== undefined);
  if (left.length > 0) error.message += `\n  undoing it: ${left.join('; ')}`;
  throw error;
};

/** Undo of releaseCommand when another host failed: the release never started; it is recorded failed. */
export const unreleaseCommand = async (ctx: DeployCtx, reason: string): Promise<void> => {
  const left = (await recordFailure(ctx, 'failed', new SkiffError(reason))).filter((x): x is string => x !== undefined);
  if (left.length > 0) throw new SkiffError(left.join('; '));
};

/**
 * DEPLOY_MIGRATE, once per deploy: on the first host, in its new release, with the release's
 * environment. It runs after the new release is healthy in its idle slot and before the switch
 * (with proxy `none`, where there is no idle slot, before the running release is replaced). Every
 * host's run record says it ran and how. On failure every host stops its new slot (the old one has
 * served all along) and records the release failed with the migration; the error names the
 * backup DEPLOY_BACKUP_BEFORE took, which holds the data of before the migration.
 */
export const migrateOnce = async (all: readonly DeployCtx[]): Promise<void> => {
  const [first] = all;
  const command = first?.cfg.migrate;
  if (!first || command === undefined) return;
  const { cfg } = first;
  const run = await runInRelease(first, command, cfg.migrateTimeoutSeconds);
  const migration: MigrationRecord = {
    host: first.host.name,
    status: run.code === 0 ? 'ok' : run.timedOut ? 'timed-out' : 'failed',
    ms: run.ms,
    ...(run.code === 0 ? {} : { exitCode: run.code }),
  };
  for (const c of all) c.run.migration = migration;
  if (run.code === 0) {
    first.log(`DEPLOY_MIGRATE done on ${first.host.name} in ${run.ms} ms`);
    return;
  }
  const backup = first.run.backupId ? `; backup ${first.run.backupId} (DEPLOY_BACKUP_BEFORE) holds the data of before it: \`npx tsx scripts/restore.ts ${cfg.env} ${first.run.backupId}\` if it left the schema half changed` : '';
  const error = new SkiffError(`${first.host.name}: DEPLOY_MIGRATE ${howItEnded(run, 'DEPLOY_MIGRATE', cfg.migrateTimeoutSeconds)}; ${stillServing(first)}${backup}`);
  const left: string[] = [];
  for (const c of all) {
    // Blue-green: the new release runs in the idle slot and goes. Proxy none: it has not started yet.
    const { slot } = c.run.target;
    if (c.proxy) {
      try {
        await c.runtime.halt(c.host, c.l, slot, 0);
      } catch (e) {
        left.push(`${c.host.name}: could not stop the new release in slot ${slot}: ${firstLine(e)}`);
      }
    }
    for (const x of await recordFailure(c, 'failed', error)) if (x !== undefined) left.push(`${c.host.name}: ${x}`);
  }
  if (left.length > 0) error.message += `\n  undoing it: ${left.join('; ')}`;
  throw error;
};
