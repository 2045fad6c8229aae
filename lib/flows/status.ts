/** What runs where: gathered from a host, formatted as text or JSON. Also start, stop and logs of the live slot. */
import { probeUrl } from '../commands/proxy.ts';
import { isOkStatus, portStatus, probeHealth } from '../commands/supervisor.ts';
import { bootedAt } from '../commands/systemd.ts';
import { exists } from '../commands/release.ts';
import { firstLine, NotDeployedError, SkiffError } from '../core/errors.ts';
import type { Session } from './session.ts';
import { gateSlot } from './deploy.ts';
import { askUntilOk, publicHealthUrl } from './health.ts';
import type { SlotRun } from '../runtime/runtime.ts';
import { loadState } from './state-repair.ts';
import { maintenanceLine, maintenanceStatus, type MaintenanceStatus } from './maintenance.ts';
import { readMaintenance } from '../state/maintenance.ts';
import { maintenanceFor } from '../proxy/maintenance.ts';
import { findWorkers, startReleaseWorkers, stopReleaseWorkers, stopStrays, workersLine, type WorkerRun } from './workers.ts';
import { liveSlot, readHistory, readState, audit, type ReleaseRecord, type SlotState } from '../state/state.ts';

export interface StatusReport {
  readonly env: string;
  readonly app: string;
  readonly host: string;
  readonly path: string;
  readonly deployed: boolean;
  readonly slot: string | undefined;
  readonly release: SlotState | undefined;
  readonly process: SlotRun;
  readonly health: string | undefined;
  readonly url: string;
  /** With a proxy: its kind and the port it sends traffic to (undefined: no route yet; error: no answer). */
  readonly proxy: { readonly kind: string; readonly port?: number | undefined; readonly error?: string } | undefined;
  readonly log: string;
  readonly lock: unknown;
  readonly history: readonly ReleaseRecord[];
  /** When state.json was damaged: what was wrong, and that the rest is as rebuilt from the history and the running slots. */
  readonly stateDamaged?: string;
  /** When the host last booted (ISO), where it can be told. */
  readonly bootedAt?: string;
  /** The live slot does not run because the host rebooted after its release started and nothing started it again. */
  readonly downSinceReboot?: boolean;
  /** Maintenance mode, when it is on or the proxy still serves its page (docs/maintenance.md). */
  readonly maintenance?: MaintenanceStatus;
  /** The live release's workers (DEPLOY_WORKERS when it was deployed), each process with how it stands. */
  readonly workers: readonly WorkerRun[];
}

/** Reads the state of the environment on its host. */
export const gatherStatus = async (ctx: Session, url: string): Promise<StatusReport> => {
  const { host, l, cfg } = ctx;
  const { state, damaged } = await loadState(ctx);
  const { slot, release } = liveSlot(state) ?? {};
  const proc: SlotRun = slot ? await ctx.runtime.find(host, l, slot) : { state: 'stopped' };
  const health =
    proc.state === 'running' && release
      ? (await host.exec(probeHealth(release.port, cfg.health.path, 3), { check: false })).stdout.trim()
      : undefined;
  const booted = Number((await host.exec(bootedAt(), { check: false })).stdout.trim());
  const bootedIso = Number.isFinite(booted) && booted > 0 ? new Date(booted * 1000).toISOString() : undefined;
  // Only the pidfile supervisor leaves an app down after a boot; a systemd unit that is down was stopped or is crash-looping.
  const pidfile = cfg.runtime === 'process' && cfg.supervisor === 'pidfile';
  const downSinceReboot = Boolean(pidfile && release && proc.state !== 'running' && bootedIso && Date.parse(release.startedAt) < booted * 1000);
  const holder = await host.get(l.holder);
  const workers = release ? await findWorkers(ctx, { release: release.release, version: release.version, workers: release.workers ?? [] }) : [];
  const proxy = ctx.proxy
    ? await ctx.proxy.current(host).then(
        (port) => ({ kind: ctx.proxy?.kind ?? '', port }),
        (e: unknown) => ({ kind: ctx.proxy?.kind ?? '', error: firstLine(e) }),
      )
    : undefined;
  return {
    env: cfg.env,
    app: cfg.app.name,
    host: host.name,
    path: l.root,
    deployed: Boolean(release),
    slot,
    release,
    process: proc,
    workers,
    health,
    url,
    proxy,
    log: slot ? ctx.runtime.logName(l, slot) : '',
    lock: holder ? readHolder(holder.toString()) : null,
    history: (await readHistory(host, l)).slice(-5),
    ...(damaged ? { stateDamaged: damaged } : {}),
    ...(bootedIso ? { bootedAt: bootedIso } : {}),
    ...(downSinceReboot ? { downSinceReboot } : {}),
    ...optionalMaintenance(await maintenanceStatus(ctx)),
  };
};

const optionalMaintenance = (m: MaintenanceStatus | undefined): { maintenance?: MaintenanceStatus } => (m ? { maintenance: m } : {});

/** The lock's holder.json as it is; a garbled one (a killed take) is shown as such, not thrown. */
const readHolder = (text: string): unknown => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return { unreadable: text.slice(0, 200) };
  }
};

/** How a systemd unit stands: at boot or not, and its restarts after crashes. */
const unitNote = (u: NonNullable<SlotRun['unit']>): string =>
  `unit ${u.name}, ${u.enabled === 'enabled' ? 'starts at boot' : `not started at boot (${u.enabled})`}` +
  (u.restarts > 0 ? `, restarted ${u.restarts} time${u.restarts === 1 ? '' : 's'} after crashes` : '');

const processLine = (p: SlotRun): string => {
  const u = p.unit;
  if (u) {
    if (p.state === 'running') return `running (pid ${p.pid}, ${unitNote(u)})`;
    if (p.state === 'crashed') return `crashed (${unitNote(u)}): systemd starts it again every second; see logs`;
    return `stopped (${unitNote(u)}): run start`;
  }
  const c = p.container;
  if (c) {
    const image = c.image.replace(/^sha256:/, '').slice(0, 12);
    const health = c.health === '-' ? '' : `, docker health ${c.health}`;
    if (p.state === 'running') return `running (container ${c.name}, image ${image}, pid ${p.pid}${health})`;
    if (p.state === 'crashed') return `crashed (container ${c.name} keeps restarting): see logs, then run start`;
    return `stopped (container ${c.name}, image ${image})`;
  }
  switch (p.state) {
    case 'running':
      return `running (pid ${p.pid}${p.pidFileOk ? '' : ', found without its pid file'})`;
    case 'crashed':
      return `crashed (pid ${p.pid} from the pid file is gone): run start`;
    case 'stopped':
      return 'stopped';
  }
};

const proxyLine = (p: NonNullable<StatusReport['proxy']>, livePort: number): string => {
  if (p.error !== undefined) return `${p.kind}: ${p.error}`;
  if (p.port === undefined) return `${p.kind}: has no route of this app (the proxy restarted or reloaded without it): run start to put it back`;
  if (p.port !== livePort) return `${p.kind} -> port ${p.port}, not the live slot's: an interrupted run left it there; the next deploy puts it back`;
  return `${p.kind} -> port ${p.port}`;
};

/** The text form of `status`. */
export const formatStatus = (r: StatusReport): string => {
  const note = r.stateDamaged ? [`  state     ${r.stateDamaged}`] : [];
  if (!r.deployed) return [`${r.app} ${r.env} on ${r.host}: nothing deployed yet: run \`npx tsx scripts/deploy-vps.ts ${r.env}\` first`, ...note].join('\n');
  const rel = r.release as SlotState;
  const lines = [
    `${r.app} ${r.env} on ${r.host}`,
    ...note,
    `  release   ${rel.release} (version ${rel.version})`,
    `  slot      ${r.slot}, port ${rel.port}`,
    `  process   ${processLine(r.process)}`,
    ...(r.workers.length > 0 ? [`  workers   ${workersLine(r.workers, r.env)}`] : []),
    ...(r.downSinceReboot
      ? [`  reboot    the host booted at ${r.bootedAt ?? '?'}, after this release started, and the pidfile supervisor does not start it at boot: run \`npx tsx scripts/start.ts ${r.env}\` (or use DEPLOY_SUPERVISOR=systemd)`]
      : []),
    ...(r.health !== undefined ? [`  health    ${isOkStatus(r.health) ? 'ok' : 'failing'} (HTTP ${r.health === '000' ? 'no answer' : r.health})`] : []),
    `  url       ${r.url}`,
    ...(r.proxy ? [`  proxy     ${proxyLine(r.proxy, rel.port)}`] : []),
    ...(r.maintenance ? [`  maint     ${maintenanceLine(r.maintenance, r.env, r.proxy?.kind ?? 'the proxy')}`] : []),
    `  path      ${r.path}`,
    ...(r.bootedAt ? [`  booted    ${r.bootedAt}`] : []),
    `  log       ${r.log}`,
    `  lock      ${r.lock ? `held: ${JSON.stringify(r.lock)}` : 'free'}`,
  ];
  if (r.history.length) {
    lines.push('  recent releases:');
    for (const h of [...r.history].reverse()) {
      lines.push(`    ${h.id === rel.release ? '*' : ' '} ${h.id.padEnd(36)} ${h.status.padEnd(11)} ${h.at}  ${h.who}`);
    }
  }
  return lines.join('\n');
};

/** The live slot, or exit 2 when nothing is deployed yet. */
const deployedSlot = async (ctx: Session) => {
  const live = liveSlot(await readState(ctx.host, ctx.l));
  if (!live) throw new NotDeployedError(ctx.cfg.env, ctx.host.name);
  return live;
};

/** Starts the live release if it is not running. Returns what happened, for the script to print. */
export const startLive = async (ctx: Session): Promise<string> => {
  const started = await startLiveSlot(ctx);
  const workers = await startLiveWorkers(ctx);
  const route = await restoreRoute(ctx);
  const page = await restorePage(ctx);
  return [started, workers, route, page].filter((x) => x !== undefined).join('; ');
};

/** The live release's workers that do not run, started (after its slot is healthy). */
const startLiveWorkers = async (ctx: Session): Promise<string | undefined> => {
  const { release } = await deployedSlot(ctx);
  const started = await startReleaseWorkers(ctx, { release: release.release, version: release.version, workers: release.workers ?? [] });
  if (started?.startsWith('started')) await audit(ctx.host, ctx.l, ctx.now().toISOString(), ctx.who, `start workers of ${release.release}`);
  return started;
};

/** Puts the maintenance page back up where the proxy lost it while the host's record says it is on. */
const restorePage = async (ctx: Session): Promise<string | undefined> => {
  const record = ctx.proxy ? await readMaintenance(ctx.host, ctx.l) : undefined;
  const page = maintenanceFor(ctx.cfg, ctx.proxy, ctx.clock);
  if (!record || !page || page.problem) return undefined;
  if (await page.serving(ctx.host)) return `maintenance is on: the page stays up (\`npx tsx scripts/maintenance.ts ${ctx.cfg.env} off\` gives the app back)`;
  await page.apply(ctx.host, record);
  await audit(ctx.host, ctx.l, ctx.now().toISOString(), ctx.who, 'maintenance page put back (the proxy had lost it)');
  return `${ctx.proxy?.kind ?? 'the proxy'} had lost the maintenance page: it is up again`;
};

/**
 * Puts skiff's route back where the proxy lost it (Caddy restarted from its own config file, nginx's
 * file removed), once the live slot answers. A route to another port is an interrupted run's,
 * which the next deploy repairs; it is left alone here.
 */
const restoreRoute = async (ctx: Session): Promise<string | undefined> => {
  const { host, proxy } = ctx;
  if (!proxy) return undefined;
  const live = await deployedSlot(ctx);
  if ((await proxy.current(host)) !== undefined) return undefined;
  await gateSlot(ctx, live.slot, live.release.port);
  await proxy.switchTo(host, live.release.port);
  await audit(host, ctx.l, ctx.now().toISOString(), ctx.who, `route ${proxy.kind} -> port ${live.release.port} (it had none)`);
  return `${proxy.kind} had lost the route: it sends traffic to port ${live.release.port} again`;
};

const startLiveSlot = async (ctx: Session): Promise<string> => {
  const { host, l, cfg } = ctx;
  const { slot, release } = await deployedSlot(ctx);
  const now = await ctx.runtime.find(host, l, slot);
  if (now.state === 'running') return `already running (${now.container ? `container ${now.container.name}` : `pid ${now.pid}`}); nothing started`;
  if ((await host.exec(exists(l.release(release.release)))).stdout.trim() !== 'yes') {
    throw new NotDeployedError(cfg.env, host.name);
  }
  if (now.state === 'crashed') await ctx.runtime.halt(host, l, slot, 0); // a container in a restart loop
  if ((await host.exec(portStatus(release.port))).stdout.trim() === 'in-use') {
    throw new SkiffError(`${host.name}: port ${release.port} of the live slot is in use by another program: stop it, then run start again`);
  }
  const started = await ctx.runtime.launch(host, l, { slot, release: release.release, port: release.port, start: release.start, version: release.version });
  await gateSlot(ctx, slot, release.port);
  await audit(host, l, ctx.now().toISOString(), ctx.who, `start ${release.release} (${started})`);
  return `started ${release.version} (${started}) on port ${release.port}${now.state === 'crashed' ? `; the previous ${ctx.runtime.unit} (pid ${now.pid}) had crashed` : ''}`;
};

/** Stops the live slot, letting it drain. */
export const stopLive = async (ctx: Session): Promise<string> => {
  const { host, l, cfg } = ctx;
  const { slot, release } = await deployedSlot(ctx);
  const result = await ctx.runtime.halt(host, l, slot, cfg.drainSeconds);
  const live = await stopReleaseWorkers(ctx, { release: release.release, version: release.version, workers: release.workers ?? [] }, cfg.workerGraceSeconds);
  // Workers of releases that are not live (an interrupted deploy's, which systemd or Docker would keep running): they stop too.
  const strays = (release.workers?.length ?? 0) > 0 || cfg.workers.length > 0 ? await stopStrays(ctx, [release.release], cfg.workerGraceSeconds) : undefined;
  const workers = [live, strays].filter((x) => x !== undefined).join('; ') || undefined;
  if (workers) await audit(host, l, ctx.now().toISOString(), ctx.who, `stop workers of ${release.release} (${workers})`);
  if (result === 'not-running') return workers ? `the app was not running; ${workers}` : `not running; nothing to stop`;
  await audit(host, l, ctx.now().toISOString(), ctx.who, `stop ${release.release} (${result})`);
  const [how, what] = result.split(' ');
  const named = `${ctx.runtime.haltedWord} ${what}`;
  const slotLine = how === 'killed' ? `stopped ${named} (killed after ${cfg.drainSeconds}s of draining)` : `stopped ${named}`;
  return workers ? `${slotLine}; ${workers}` : slotLine;
};

/** A writer that puts `prefix` before every line (a line cut between chunks is held until it ends). */
export const prefixLines = (prefix: string, write: (text: string) => void): ((b: Buffer) => void) => {
  let rest = '';
  return (b) => {
    const lines = (rest + b.toString()).split('\n');
    rest = lines.pop() ?? '';
    if (lines.length > 0) write(lines.map((line) => `${prefix}${line}\n`).join(''));
  };
};

/** Prints the live slot's log: the last lines, then new ones as they come with `follow`. */
export const showLogs = async (ctx: Session, lines: number, follow: boolean, write: (b: Buffer) => void): Promise<void> => {
  const { slot } = await deployedSlot(ctx);
  await ctx.runtime.showLog(ctx.host, ctx.l, slot, lines, follow, write, ctx.signal);
};

/**
 * What a host serves, as seen now: the release state.json records live, where the proxy sends
 * traffic, and what the health URL answers (through the proxy with one). One line, host first, for
 * the end of a deploy or rollback and of its undo. Never throws: a host that cannot be asked says so.
 */
export const observeServing = async (s: Session): Promise<{ line: string; release: string | undefined; healthy: boolean }> => {
  const { host, l, cfg } = s;
  try {
    const live = liveSlot(await readState(host, l));
    if (!live) return { line: `${host.name} serves no release (none is recorded live)`, release: undefined, healthy: false };
    const { release, version, port } = live.release;
    const routed = s.proxy ? await s.proxy.current(host) : port;
    // Behind the maintenance page the public URL answers 503 by design: the release is asked directly.
    const maintenance = s.proxy ? await readMaintenance(host, l).catch(() => undefined) : undefined;
    const viaProxy = s.proxy && cfg.publicUrl && !maintenance;
    const status = await askUntilOk(host, viaProxy ? probeUrl(publicHealthUrl(cfg), 5) : probeHealth(port, cfg.health.path, 5), s.clock);
    const healthy = isOkStatus(status) && routed === port;
    const answer = isOkStatus(status) ? 'healthy' : `its health check answers ${status === '000' || status === '' ? 'nothing' : `HTTP ${status}`}`;
    const route = routed === port ? (s.proxy ? (maintenance ? ` (asked directly), behind ${s.proxy.kind}` : ` through ${s.proxy.kind}`) : '') : `, but ${s.proxy?.kind ?? 'the proxy'} sends traffic to ${routed === undefined ? 'no port' : `port ${routed}`}, not ${port}`;
    const page = maintenance ? `; maintenance is on: ${cfg.publicUrl ?? ''} answers 503 until \`npx tsx scripts/maintenance.ts ${cfg.env} off\`` : '';
    return { line: `${host.name} serves ${version} (release ${release}), ${answer}${route}${page}`, release, healthy };
  } catch (error) {
    return { line: `${host.name} could not be asked what it serves: ${firstLine(error)}`, release: undefined, healthy: false };
  }
};

/** The line of observeServing, for an undo's report. */
export const servingLine = async (s: Session): Promise<string> => (await observeServing(s)).line;
