/**
 * The deploy flow, step by step (docs/deploy-vps.md). Each step is a short function of the context;
 * scripts/deploy-vps.ts puts them in a listr2 list. A step that can leave the host without a healthy
 * version undoes itself before it rethrows, so a failed deploy leaves the previous release serving.
 */
import { renderEnvFile } from '../config/appenv.ts';
import { seq } from '../core/cmd.ts';
import { exists, listReleases, missingTools, prepareLayout, publishEnv, removePartials, switchCurrent } from '../commands/release.ts';
import { connectionsTo, probeUrl } from '../commands/proxy.ts';
import { isOkStatus, portStatus, probeHealth } from '../commands/supervisor.ts';
import type { Config } from '../config/config.ts';
import { firstLine, HealthCheckError, SkiffError } from '../core/errors.ts';
import { askUntilOk, publicHealthUrl, waitHealthy } from './health.ts';
import type { Proxy } from '../proxy/proxy.ts';
import type { Host } from '../host/host.ts';
import { appendHistory, audit, liveSlot, readHistory, releasesToPrune, writeState } from '../state/state.ts';
import { loadState } from './state-repair.ts';
import { checkPageAfterSwitch } from './maintenance.ts';
import { readMaintenance } from '../state/maintenance.ts';
import type { DeployCtx, Plan, Previous, Session } from './session.ts';
import { negotiateCompression } from '../ship/compress.ts';
import { startReleaseWorkers, stopReleaseWorkers, stopStrays, type ReleaseWorkers } from './workers.ts';

/** With proxy `none` there is one slot, and it is called blue. */
export const SINGLE_SLOT = 'blue';

/** Times a step into ctx.run.durations. */
export const timed = async <T>(ctx: DeployCtx, step: string, fn: () => Promise<T>): Promise<T> => {
  ctx.signal.throwIfAborted();
  const t0 = Date.now();
  try {
    return await fn();
  } finally {
    ctx.run.durations[step] = Date.now() - t0;
  }
};

/** The commands of `tools` the host lacks. */
export const missingOn = async (host: Host, tools: readonly string[]): Promise<string[]> =>
  (await host.exec(missingTools(tools))).stdout.split('\n').filter(Boolean);

/** Whether something listens on a port of the host. */
const portInUse = async (host: Host, port: number): Promise<boolean> => (await host.exec(portStatus(port))).stdout.trim() === 'in-use';

/** Host prerequisites and the port: nothing is changed on the host if this fails. */
export const preflight = async (ctx: DeployCtx): Promise<void> => {
  const { host, l } = ctx;
  // DEPLOY_RELEASE_CMD and DEPLOY_MIGRATE run under `timeout` (coreutils): their deadline holds on the host itself.
  const hooks = ctx.cfg.releaseCmd !== undefined || ctx.cfg.migrate !== undefined ? ['timeout', 'sha256sum'] : [];
  const missing = await missingOn(host, ['sh', 'tar', 'setsid', 'grep', 'awk', ...hooks]);
  if (missing.length > 0) {
    throw new SkiffError(`${host.name} lacks ${missing.join(', ')}: run \`npx tsx scripts/setup.ts ${ctx.cfg.env} --install\` (or on the host: apt-get install coreutils tar util-linux)`);
  }
  await ctx.runtime.preflight(host, ctx.log);
  // What a deploy's ship stream is packed with, asked of the host now: a setting it cannot meet stops here.
  if (ctx.run.action === 'deploy') ctx.log((await negotiateCompression(host, ctx.cfg)).said);
  // A damaged state.json is rebuilt from the history and what runs, and rewritten (the lock is held).
  const { state, damaged } = await loadState(ctx, { repair: true });
  if (damaged) ctx.log(damaged);
  const live = liveSlot(state);
  const previous = state && live ? { state, slot: live.release } : undefined;
  ctx.run.fix({ previous, target: targetSlot(ctx.cfg, previous) });
  const { slot, port } = ctx.run.target;
  const ours = await ctx.runtime.find(host, l, slot);
  if (ours.state !== 'running' && (await portInUse(host, port))) {
    throw new SkiffError(`${host.name}: port ${port} is already in use by another program: stop it or choose another port in DEPLOY_PORTS`);
  }
  if (ctx.proxy) {
    await ctx.proxy.check(host);
    const risk = await ctx.proxy.switchRisk(host);
    if (risk) ctx.log(risk);
    await repairInterruptedSwitch(ctx, ctx.proxy);
  }
};

/**
 * A run killed between its switch and its record (kill -9, a lost machine) leaves the proxy on the
 * slot that state.json calls idle, and the next run would start its release there. If the recorded
 * live slot still runs and answers its health check, the proxy goes back to it, so the host serves
 * what its records say; otherwise the run stops before touching anything.
 */
const repairInterruptedSwitch = async (ctx: DeployCtx, proxy: Proxy): Promise<void> => {
  const { host, l, cfg } = ctx;
  const prev = ctx.run.previous;
  const idle = ctx.run.target;
  if (!prev || (await proxy.current(host)) !== idle.port || idle.port === prev.slot.port) return;
  const live = await ctx.runtime.find(host, l, prev.state.live ?? '');
  const health = live.state === 'running' ? (await host.exec(probeHealth(prev.slot.port, cfg.health.path, 3), { check: false })).stdout.trim() : '';
  if (!isOkStatus(health)) {
    throw new SkiffError(
      `${host.name}: ${proxy.kind} sends traffic to slot ${idle.slot} (port ${idle.port}), left there by an interrupted run, and the recorded live slot ${prev.state.live} is not healthy: ` +
        `check \`npx tsx scripts/status.ts ${cfg.env}\`, then roll back or stop what runs in ${idle.slot}`,
    );
  }
  await proxy.switchTo(host, prev.slot.port);
  ctx.log(`an interrupted run had left ${proxy.kind} on slot ${idle.slot}: switched back to the live slot ${prev.state.live} (port ${prev.slot.port})`);
  // What runs in that slot served until now: it drains like an old slot, so no request on its way
  // there is cut, before the new release takes the slot.
  const waited = await drain(ctx, idle.port);
  const stopped = await ctx.runtime.halt(host, l, idle.slot, cfg.drainSeconds);
  ctx.log(`slot ${idle.slot} drained in ${waited} ms, ${stopped}`);
  await audit(host, l, ctx.now().toISOString(), ctx.who, `repair: ${proxy.kind} switched back from port ${idle.port} to the live port ${prev.slot.port}`);
};

/** Runs the build on this machine: DEPLOY_BUILD in APP_DIR, or the image (the runtime's build). */
export const build = async (ctx: DeployCtx): Promise<void> => {
  const log = (text: string) => {
    for (const line of text.split('\n')) if (line.trim()) ctx.log(line);
  };
  await ctx.runtime.build({ version: ctx.run.version, gitSha: ctx.run.gitSha, builtAt: ctx.now().toISOString() }, log);
};

/** Picks the release id on a host: the run's id, with a suffix if that folder exists already. */
const claimReleaseId = async (ctx: DeployCtx): Promise<string> => {
  // Several hosts share one id (set by the script before shipping); a clash on one host gets a suffix.
  const base = ctx.run.id;
  let id = base;
  for (let n = 2; (await ctx.host.exec(exists(ctx.l.release(id)))).stdout.trim() === 'yes'; n++) id = `${base}-${n}`;
  ctx.run.claimId(id);
  return id;
};

/**
 * Ships the release to `releases/<id>`: the runtime sends what the host lacks (the changed files of
 * the release folder, or the image layers) and says what it sent. `verify`: the live release's files
 * are checked by sha256 before any is reused (by size otherwise).
 */
export const ship = async (ctx: DeployCtx, { verify = false } = {}): Promise<void> => {
  const { host, l } = ctx;
  await host.exec(seq(prepareLayout(l), removePartials(l)));
  const id = await claimReleaseId(ctx);
  ctx.run.shipped = await ctx.runtime.ship(host, l, { id, version: ctx.run.version, liveRelease: ctx.run.previous?.slot.release, verify }, ctx.log);
};

/** Undo of ship when another host failed: the release folder goes, it never served. */
export const unship = async (ctx: DeployCtx): Promise<void> => {
  const id = ctx.run.id;
  throwIfLeft(ctx, [await attempt(`remove releases/${id}`, () => ctx.runtime.removeReleases(ctx.host, ctx.l, [id]))]);
};

/**
 * Runs one action of an undo. Its failure is returned as a line saying what was left undone, never
 * thrown: the other actions of the undo still run, and the error that caused the undo stays first.
 */
const attempt = async (what: string, fn: () => Promise<unknown>): Promise<string | undefined> => {
  try {
    await fn();
    return undefined;
  } catch (error) {
    return `could not ${what}: ${firstLine(error)}`;
  }
};

/** Adds what an undo left to the error that caused it (same error, same exit code). */
const withLeft = (error: unknown, left: readonly (string | undefined)[]): unknown => {
  const lines = left.filter((x): x is string => x !== undefined);
  if (lines.length > 0 && error instanceof Error) error.message = `${error.message}\n  undoing it: ${lines.join('; ')}`;
  return error;
};

/** The end of an undo run for another host's failure: what it could not do is an error of its own. */
const throwIfLeft = (ctx: DeployCtx, left: readonly (string | undefined)[]): void => {
  const lines = left.filter((x): x is string => x !== undefined);
  // onEachHost names the host: the message is only what was left.
  if (lines.length > 0) throw new SkiffError(lines.join('; '));
};

/** Writes the release's app environment (mode 0600); it becomes shared/.env when the release goes live. */
export const writeAppEnv = (ctx: DeployCtx): Promise<void> =>
  ctx.host.put(ctx.l.envOf(ctx.run.id), renderEnvFile({ ...ctx.cfg.appEnv }), { mode: 0o600 });

/** The workers of the release this run puts live (DEPLOY_WORKERS, docs/workers.md). */
const newWorkers = (ctx: DeployCtx): ReleaseWorkers => ({ release: ctx.run.id, version: ctx.run.version, workers: ctx.run.workers });

/** The workers of the release that served before this run: what state.json says it was started with. */
const oldWorkers = (ctx: DeployCtx): ReleaseWorkers | undefined => {
  const prev = ctx.run.previous?.slot;
  return prev && prev.release !== ctx.run.id ? { release: prev.release, version: prev.version, workers: prev.workers ?? [] } : undefined;
};

/** Starts the new release's workers once its slot is healthy; one that exits at once fails the step like a health check. */
const startNewWorkers = async (ctx: DeployCtx): Promise<void> => {
  const old = oldWorkers(ctx);
  // Workers of no release that serves: an interrupted run's. Only where this env has workers at all.
  if (ctx.run.workers.length > 0 || (old?.workers.length ?? 0) > 0) {
    const strays = await stopStrays(ctx, old ? [old.release] : [], ctx.cfg.workerGraceSeconds);
    if (strays) ctx.log(strays);
  }
  const started = await startReleaseWorkers(ctx, newWorkers(ctx), { fresh: true });
  if (started) ctx.log(started);
};

/** Stops the old release's workers, each given DEPLOY_WORKER_GRACE_SECONDS to finish the job it took. */
const retireOldWorkers = async (ctx: DeployCtx): Promise<void> => {
  const old = oldWorkers(ctx);
  const stopped = old ? await stopReleaseWorkers(ctx, old, ctx.cfg.workerGraceSeconds) : undefined;
  if (stopped) ctx.log(`old workers: ${stopped}`);
};

/** Undo: the new release's workers stop at once (they took a job only if they ran; SIGTERM lets a graceful one put it back). */
const haltNewWorkers = (ctx: DeployCtx): Promise<string | undefined> =>
  attempt(`stop the workers of ${ctx.run.id}`, () => stopReleaseWorkers(ctx, newWorkers(ctx), 0));

const startIn = (ctx: DeployCtx, slot: string, release: string, version: string, port: number, start: string) =>
  ctx.runtime.launch(ctx.host, ctx.l, { slot, release, port, start, version });

/** Health gate of whatever runs in a slot now. An undo passes `interruptible: false`: it must finish. */
export const gateSlot = (ctx: Session, slot: string, port: number, interruptible = true) =>
  waitHealthy(ctx.host, {
    port,
    path: ctx.cfg.health.path,
    timeoutSeconds: ctx.cfg.health.timeoutSeconds,
    isAlive: async () => (await ctx.runtime.find(ctx.host, ctx.l, slot)).state === 'running',
    logTail: () => ctx.runtime.logTail(ctx.host, ctx.l, slot),
    ...(interruptible ? { signal: ctx.signal } : {}),
    clock: ctx.clock,
  });

/**
 * One slot (proxy `none`): stop the old process (it drains), start the new release, health-gate it.
 * On any failure the new process is stopped and the previous release started again.
 */
export const replaceAndGate = async (ctx: DeployCtx): Promise<void> => {
  const { host, l, cfg } = ctx;
  const port = cfg.ports[0] as number;
  try {
    const stopped = await ctx.runtime.halt(host, l, SINGLE_SLOT, cfg.drainSeconds);
    if (stopped !== 'not-running') ctx.log(`old process ${stopped}`);
    if ((await portInUse(host, port))) {
      throw new SkiffError(`${host.name}: port ${port} is still in use after the old process stopped: another program holds it`);
    }
    const started = await startIn(ctx, SINGLE_SLOT, ctx.run.id, ctx.run.version, port, ctx.run.start);
    ctx.log(`started ${started} on port ${port}`);
    const { ms } = await gateSlot(ctx, SINGLE_SLOT, port);
    ctx.log(`healthy after ${ms} ms`);
    // The old release's workers run until the new ones are up: a new one that exits leaves them working.
    await startNewWorkers(ctx);
    await retireOldWorkers(ctx);
  } catch (error) {
    const { down } = await restorePrevious(ctx, error);
    // Keep the original error as the one reported; say loudly that the host is down.
    if (down) throw new HealthCheckError(`${error instanceof Error ? error.message : String(error)}\n  and ${down}`);
    throw error;
  }
};

/** Undo of replaceAndGate when another host failed: this host goes back to its previous release. */
export const unreplace = async (ctx: DeployCtx, reason: string): Promise<void> => {
  const { left, down } = await restorePrevious(ctx, new SkiffError(reason));
  if (down) throw new HealthCheckError(down);
  throwIfLeft(ctx, left);
};

/**
 * Undo of replaceAndGate: records the release failed and brings the previous one back. Returns what
 * it could not do (also added to `error`), and `down` when the previous release did not come back.
 */
const restorePrevious = async (ctx: DeployCtx, error: unknown): Promise<{ left: (string | undefined)[]; down?: string }> => {
  const { host, l, cfg } = ctx;
  const halted = await attempt(`stop the new release in slot ${SINGLE_SLOT}`, () => ctx.runtime.halt(host, l, SINGLE_SLOT, 0));
  const left = [halted, await haltNewWorkers(ctx), ...(await recordFailure(ctx, 'failed', error))];
  withLeft(error, left);
  const prev = ctx.run.previous;
  if (!prev) return { left };
  try {
    await startIn(ctx, SINGLE_SLOT, prev.slot.release, prev.slot.version, prev.slot.port, prev.slot.start);
    await gateSlot(ctx, SINGLE_SLOT, prev.slot.port, false);
    ctx.log(`previous release ${prev.slot.release} serves again`);
    // Its workers still run unless this host had stopped them (another host failed later): started again then.
    const old = oldWorkers(ctx);
    const workers = old ? await startReleaseWorkers(ctx, old, { interruptible: false }) : undefined;
    if (workers) ctx.log(`previous workers: ${workers}`);
    return { left };
  } catch (restoreError) {
    return { left, down: `the previous release ${prev.slot.release} did not come back: ${firstLine(restoreError)}; run \`npx tsx scripts/start.ts ${cfg.env}\`` };
  }
};

/** Which slot a release goes to, and its port: the one slot with proxy `none`, else the idle color. */
export const targetSlot = (cfg: Config, previous: Previous | undefined): Plan['target'] => {
  // The config holds one port with proxy none and two (blue, green) with a proxy.
  if (cfg.proxy === 'none') return { slot: SINGLE_SLOT, port: cfg.ports[0] as number };
  const idle = previous?.state.live === 'blue' ? 'green' : 'blue';
  return { slot: idle, port: cfg.ports[idle === 'blue' ? 0 : 1] as number };
};

/**
 * Blue-green, step one: start the new release in the idle slot and health-gate it directly. The
 * live slot is not touched; on failure the new process is stopped and the release recorded failed.
 */
export const startIdle = async (ctx: DeployCtx): Promise<void> => {
  const { host, l } = ctx;
  const { slot, port } = ctx.run.target;
  try {
    const leftover = await ctx.runtime.halt(host, l, slot, 0); // a process left in the idle slot by an interrupted run
    if (leftover !== 'not-running') ctx.log(`stopped a leftover process in ${slot} (${leftover})`);
    if ((await portInUse(host, port))) {
      throw new SkiffError(`${host.name}: port ${port} (slot ${slot}) is in use by another program: stop it or change DEPLOY_PORTS`);
    }
    const started = await startIn(ctx, slot, ctx.run.id, ctx.run.version, port, ctx.run.start);
    ctx.log(`started ${started} in ${slot} on port ${port}`);
    const { ms } = await gateSlot(ctx, slot, port);
    ctx.log(`healthy after ${ms} ms`);
  } catch (error) {
    const halted = await attempt(`stop the new release in slot ${slot}`, () => ctx.runtime.halt(host, l, slot, 0));
    throw withLeft(error, [halted, await haltNewWorkers(ctx), ...(await recordFailure(ctx, 'failed', error))]);
  }
};

/** Undo of startIdle when another host failed: the new slot stops, the release is recorded failed. */
export const unstart = async (ctx: DeployCtx, reason: string): Promise<void> => {
  const { slot } = ctx.run.target;
  const halted = await attempt(`stop the new release in slot ${slot}`, () => ctx.runtime.halt(ctx.host, ctx.l, slot, 0));
  throwIfLeft(ctx, [halted, await haltNewWorkers(ctx), ...(await recordFailure(ctx, 'failed', new SkiffError(reason)))]);
};

/**
 * Blue-green, step two: switch the proxy to the new slot and verify through it. If that fails the
 * proxy is switched back and the new slot stopped; the old slot has served all along.
 */
export const switchOver = async (ctx: DeployCtx, proxy: Proxy | undefined = ctx.proxy): Promise<void> => {
  if (!proxy) return; // proxy none: replaceAndGate did the whole change
  const { host, l, cfg } = ctx;
  const { slot, port } = ctx.run.target;
  // The new workers start here, after DEPLOY_MIGRATE (which runs between the health gate and this
  // step): a worker of the new code never runs on the schema of before. One that exits fails the
  // deploy before anything is switched, as a health check would.
  try {
    await startNewWorkers(ctx);
  } catch (error) {
    const halted = await attempt(`stop the new release in slot ${slot}`, () => ctx.runtime.halt(host, l, slot, 0));
    throw withLeft(error, [halted, await haltNewWorkers(ctx), ...(await recordFailure(ctx, 'failed', error))]);
  }
  ctx.run.switchedFrom = await proxy.current(host);
  try {
    await proxy.switchTo(host, port);
    ctx.log(`${proxy.kind} sends ${cfg.publicUrl} to port ${port}`);
    await verifyThroughProxy(ctx);
  } catch (error) {
    const from = ctx.run.switchedFrom;
    const back = from === undefined ? undefined : await attempt(`switch ${proxy.kind} back to port ${from} (it may still send traffic to the new release)`, () => proxy.switchTo(host, from));
    // The new slot keeps running when the proxy could not be switched back: it may be what serves.
    const halted = back ? undefined : await attempt(`stop the new release in slot ${slot}`, () => ctx.runtime.halt(host, l, slot, 0));
    const workers = back ? undefined : await haltNewWorkers(ctx);
    throw withLeft(error, [back, halted, workers, ...(await recordFailure(ctx, 'rolled-back', error))]);
  }
};

/** Undo of switchOver when another host failed: the proxy goes back to the old slot, the new one stops. */
export const switchBack = async (ctx: DeployCtx, reason: string): Promise<void> => {
  const { host, l, proxy } = ctx;
  const from = ctx.run.switchedFrom;
  const back =
    proxy && from !== undefined
      ? await attempt(`switch ${proxy.kind} back to port ${from} (it may still send traffic to the new release)`, () => proxy.switchTo(host, from))
      : undefined;
  if (!back) ctx.log(`switched back to port ${from ?? '(none)'}`);
  const { slot, port } = ctx.run.target;
  // As in switchOver: the new slot keeps running when the proxy could not be switched back. It had the
  // traffic for a moment, so it drains like an old slot (its open connections close, then SIGTERM and
  // DEPLOY_DRAIN_SECONDS) rather than being killed with requests in flight.
  const halted = back
    ? undefined
    : await attempt(`stop the new release in slot ${slot}`, async () => {
        await drain(ctx, port);
        ctx.log(`new release in ${slot} ${await ctx.runtime.halt(host, l, slot, ctx.cfg.drainSeconds)}`);
      });
  const workers = back ? undefined : await haltNewWorkers(ctx);
  throwIfLeft(ctx, [back, halted, workers, ...(await recordFailure(ctx, 'rolled-back', new SkiffError(reason)))]);
};

/** Blue-green, step three (once every host serves the new release): drain the old slot and stop it. */
export const retireOld = async (ctx: DeployCtx): Promise<void> => {
  const { host, l, cfg } = ctx;
  const { slot } = ctx.run.target;
  const prev = ctx.run.previous;
  const old = prev?.state.live;
  if (prev && old && old !== slot) {
    const waited = await drain(ctx, prev.slot.port);
    const stopped = await ctx.runtime.halt(host, l, old, cfg.drainSeconds);
    ctx.log(`old slot ${old} drained in ${waited} ms, ${stopped}`);
  }
  await retireOldWorkers(ctx);
};

/** Through the proxy: the public health URL answers 2xx (a few tries; the switch is already done). */
const verifyThroughProxy = async (ctx: DeployCtx): Promise<void> => {
  // Behind the maintenance page the public URL answers 503: the page must still be up (docs/maintenance.md).
  const maintenance = await readMaintenance(ctx.host, ctx.l);
  if (maintenance) return ctx.log(await checkPageAfterSwitch(ctx, maintenance));
  const url = publicHealthUrl(ctx.cfg);
  const status = await askUntilOk(ctx.host, probeUrl(url, 5), ctx.clock);
  if (isOkStatus(status)) return;
  throw new HealthCheckError(
    `${ctx.host.name}: the new release passed its direct health check but ${url} answers ${status === '000' ? 'nothing' : `HTTP ${status}`} through the proxy; switched back`,
  );
};

/**
 * Gives requests already on their way to the old slot a moment: waits until it has no open
 * connections, at most 2 s (a proxy may keep idle connections to it open). The stop that follows
 * sends SIGTERM and allows DEPLOY_DRAIN_SECONDS for requests in flight. Returns the ms waited.
 */
const drain = async (ctx: DeployCtx, port: number): Promise<number> => {
  const clock = ctx.clock;
  const start = clock.now();
  const deadline = start + Math.min(ctx.cfg.drainSeconds, 2) * 1000;
  while (clock.now() < deadline) {
    const open = Number((await ctx.host.exec(connectionsTo(port), { check: false })).stdout.trim() || '0');
    if (open === 0) break;
    await clock.sleep(100);
  }
  return clock.now() - start;
};

/** Records a failed or rolled-back release; returns what could not be written, for the caller to report. */
export const recordFailure = async (ctx: DeployCtx, status: 'failed' | 'rolled-back', error: unknown): Promise<(string | undefined)[]> => {
  const reason = firstLine(error);
  // A record that cannot be written must not replace the failure being recorded: it is said beside it.
  const history = await attempt(`record ${ctx.run.id} ${status} in ${ctx.l.history}`, () => appendHistory(ctx.host, ctx.l, record(ctx, status, reason)));
  const audited = await attempt(`append to ${ctx.l.audit}`, () => audit(ctx.host, ctx.l, ctx.now().toISOString(), ctx.who, `${ctx.run.action} ${ctx.run.id} ${status}: ${reason}`));
  return [history, audited];
};

const record = (ctx: DeployCtx, status: 'live' | 'failed' | 'rolled-back', reason?: string) => ({
  id: ctx.run.id,
  version: ctx.run.version,
  gitSha: ctx.run.gitSha,
  start: ctx.run.start,
  // Recorded when there are some: a rollback starts the workers a release was deployed with, and none for a record without.
  ...(ctx.run.workers.length > 0 ? { workers: ctx.run.workers } : {}),
  who: ctx.who,
  at: ctx.now().toISOString(),
  status,
  durations: ctx.run.durations,
  ...(ctx.run.shipped ? { shipped: ctx.run.shipped } : {}),
  ...(ctx.run.backupId ? { backupId: ctx.run.backupId } : {}),
  ...(ctx.run.releaseCmd ? { releaseCmd: ctx.run.releaseCmd } : {}),
  ...(ctx.run.migration ? { migration: ctx.run.migration } : {}),
  ...(reason ? { reason } : {}),
});

/** Points `current` at the new release and records it live in state.json and the history. */
export const commit = async (ctx: DeployCtx): Promise<void> => {
  const { host, l, cfg } = ctx;
  await host.exec(seq(switchCurrent(l, ctx.run.id), publishEnv(l, ctx.run.id)));
  const at = ctx.now().toISOString();
  const { slot, port } = ctx.run.target;
  await writeState(host, l, {
    app: cfg.app.name,
    env: cfg.env,
    live: slot,
    slots: { ...ctx.run.previous?.state.slots, [slot]: { release: ctx.run.id, version: ctx.run.version, port, start: ctx.run.start, startedAt: at, ...(ctx.run.workers.length > 0 ? { workers: ctx.run.workers } : {}) } },
    updatedAt: at,
  });
  await appendHistory(host, l, record(ctx, 'live'));
  await audit(host, l, at, ctx.who, `${ctx.run.action} ${ctx.run.id} live (version ${ctx.run.version})`);
};

/** The progress line of a prune: `2 removed (a, b)`, or in a dry run `would remove 2 (a, b)`. */
export const pruneLine = (removed: readonly string[], dryRun: boolean): string => {
  const ids = removed.length > 0 ? ` (${removed.join(', ')})` : '';
  return dryRun ? `would remove ${removed.length}${ids}` : `${removed.length} removed${ids}`;
};

/** Removes releases beyond DEPLOY_KEEP_RELEASES, never the live one or the previous good one. */
export const prune = async (ctx: DeployCtx): Promise<string[]> => {
  const { host, l, cfg } = ctx;
  const listed = (await host.exec(listReleases(l))).stdout.split('\n').filter(Boolean);
  // A dry run made no release folder: the count is as the real run would find it.
  const onHost = host.dryRun && !listed.includes(ctx.run.id) ? [...listed, ctx.run.id] : listed;
  const doomed = releasesToPrune(onHost, await readHistory(host, l), ctx.run.id, cfg.keepReleases, ctx.run.previous?.slot.release);
  await ctx.runtime.removeReleases(host, l, doomed);
  return doomed;
};
