/**
 * A release's workers on a host (DEPLOY_WORKERS, docs/workers.md): started beside its slot, counted
 * started once they stayed up DEPLOY_WORKER_UP_SECONDS (a worker that exits at once fails like a
 * health check), stopped with SIGTERM and DEPLOY_WORKER_GRACE_SECONDS to finish the job they took.
 */
import { workerInstances, type WorkerSpec } from '../config/workers.ts';
import { HealthCheckError, SkiffError } from '../core/errors.ts';
import type { WorkerDriver, WorkerRun } from '../runtime/runtime.ts';
import type { Session } from './session.ts';

export type { WorkerRun } from '../runtime/runtime.ts';
export { parseWorkerStatus } from '../runtime/pidfile.ts';

/** A release and the workers it runs: DEPLOY_WORKERS when it was deployed. */
export interface ReleaseWorkers {
  readonly release: string;
  readonly version: string;
  readonly workers: readonly WorkerSpec[];
}

/** The runtime's way to run workers (config refuses DEPLOY_WORKERS where there is none). */
const driverOf = (ctx: Session): WorkerDriver => {
  const driver = ctx.runtime.workers;
  if (!driver) throw new SkiffError(`DEPLOY_WORKERS: the ${ctx.cfg.runtime} runtime runs no workers (docs/workers.md#where-workers-are-refused)`, 2);
  return driver;
};

/**
 * The line of a worker's log tail that says why it exited: of what it printed since its last start
 * line (`--- ... start`), the last that names an error, else the last one (a runtime's own last line,
 * like Node's `Node.js v20`, says nothing).
 */
export const whyExited = (tail: string): string => {
  const lines = tail.split('\n').map((x) => x.trim());
  const since = lines.slice(lines.findLastIndex((x) => x.startsWith('--- ')) + 1).filter(Boolean);
  return (since.findLast((x) => /error|exception|fatal|not found|denied|no such/i.test(x)) ?? since.at(-1) ?? '').slice(0, 200);
};

const ids = (workers: readonly WorkerSpec[]) => workerInstances(workers).map((p) => p.id);

/** How each process of a release's workers stands on the host. */
export const findWorkers = async (ctx: Session, r: ReleaseWorkers): Promise<WorkerRun[]> =>
  r.workers.length === 0 ? [] : driverOf(ctx).find(ctx.host, ctx.l, r.release, ids(r.workers));

/**
 * Starts the processes of a release's workers that do not run, waits DEPLOY_WORKER_UP_SECONDS and
 * checks they still run. One that exited fails it like a health check: those it started are stopped
 * and a HealthCheckError names the worker with the last line of its log. Returns a line for the
 * progress tree, or undefined without workers.
 */
export const startReleaseWorkers = async (
  ctx: Session,
  r: ReleaseWorkers,
  { interruptible = true, fresh = false }: { readonly interruptible?: boolean; readonly fresh?: boolean } = {},
): Promise<string | undefined> => {
  if (r.workers.length === 0) return undefined;
  const { host, l, cfg } = ctx;
  const driver = driverOf(ctx);
  const running = new Set((await findWorkers(ctx, r)).filter((w) => w.state === 'running').map((w) => w.id));
  const procs = workerInstances(r.workers)
    .filter((p) => !running.has(p.id))
    .map((p) => ({ id: p.id, command: p.worker.command }));
  if (procs.length === 0) return `workers already running (${running.size})`;
  await driver.start(host, l, { release: r.release, releaseDir: l.release(r.release), envFile: l.envOf(r.release), version: r.version, env: cfg.env, procs });
  if (interruptible) ctx.signal.throwIfAborted();
  await ctx.clock.sleep(cfg.workerUpSeconds * 1000);
  // One this call started that its supervisor has had to start again exited too, whatever it is now.
  const started = new Set(procs.map((p) => p.id));
  const down = (await findWorkers(ctx, r)).filter((w) => w.state !== 'running' || (started.has(w.id) && (w.restarts ?? 0) > 0));
  if (down.length > 0) {
    const first = down[0]?.id ?? '';
    const last = whyExited(await driver.logTail(host, l, r.release, first, 20));
    // A new release's workers all go, the ones that exited too (systemd or Docker would start those
    // again). A live release's stay as they are: their supervisor goes on retrying, and `status` tells.
    if (fresh) await driver.stop(host, l, r.release, procs.map((p) => p.id), 0);
    throw new HealthCheckError(
      `${host.name}: worker ${down.map((w) => w.id).join(', ')} of release ${r.release} exited within ${cfg.workerUpSeconds}s of its start` +
        `${last ? ` (its log says: ${last})` : ''}: see ${driver.logName(l, r.release, first)}`,
    );
  }
  return `started ${procs.length} worker process${procs.length === 1 ? '' : 'es'} (${procs.map((p) => p.id).join(', ')}), up after ${cfg.workerUpSeconds}s`;
};

/**
 * Stops a release's workers: SIGTERM, `graceSeconds` to finish their jobs, SIGKILL. Returns a line
 * (`stopped 2 worker processes`, `killed 1 ...`), or undefined when none ran.
 */
export const stopReleaseWorkers = async (ctx: Session, r: ReleaseWorkers, graceSeconds: number): Promise<string | undefined> => {
  if (r.workers.length === 0) return undefined;
  const out = await driverOf(ctx).stop(ctx.host, ctx.l, r.release, ids(r.workers), graceSeconds);
  if (out === 'not-running') return undefined;
  const [how, n] = out.split(' ');
  const what = `${n ?? '?'} worker process${n === '1' ? '' : 'es'} of ${r.release}`;
  return how === 'killed' ? `killed ${what} still up after ${graceSeconds}s (DEPLOY_WORKER_GRACE_SECONDS)` : `stopped ${what}`;
};

/**
 * Stops the worker processes of releases other than `keep` (left by a run killed between starting
 * its workers and recording its release). Returns a line, or undefined when there were none.
 */
export const stopStrays = async (ctx: Session, keep: readonly string[], graceSeconds: number): Promise<string | undefined> => {
  const driver = ctx.runtime.workers;
  if (!driver) return undefined;
  const n = await driver.stopStrays(ctx.host, ctx.l, keep, graceSeconds);
  return n > 0 ? `stopped ${n} stray worker process${n === 1 ? '' : 'es'} of releases that are not live (left by an interrupted run)` : undefined;
};

/** The status line of a release's workers: `queue.1 running (pid 12), queue.2 crashed: run start`. */
export const workersLine = (runs: readonly WorkerRun[], env: string): string => {
  const parts = runs.map((w) => (w.state === 'running' ? `${w.id} running (pid ${w.pid ?? '?'})` : `${w.id} ${w.state}`));
  const down = runs.some((w) => w.state !== 'running');
  return `${parts.join(', ')}${down ? `: run \`npx tsx scripts/start.ts ${env}\`` : ''}`;
};
