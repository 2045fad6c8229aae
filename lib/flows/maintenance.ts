/**
 * Maintenance mode on a host (scripts/maintenance.ts, docs/maintenance.md): the proxy answers every
 * request to the env's route with a 503 page and Retry-After, while the slots behind it stay as they
 * are and answer skiff's health checks directly. The host's record (lib/state/maintenance.ts) keeps it
 * on across deploys, rollbacks and proxy restarts; `off` gives the app back only once it answers.
 */
import { probeHeaders, parseProbeAnswer } from '../commands/maintenance.ts';
import { probeUrl } from '../commands/proxy.ts';
import { isOkStatus, probeHealth } from '../commands/supervisor.ts';
import { EXIT, firstLine, NotDeployedError, SkiffError } from '../core/errors.ts';
import { maintenanceFor, type MaintenanceDriver, type PageSettings } from '../proxy/maintenance.ts';
import { readMaintenance, removeMaintenance, writeMaintenance, type MaintenanceRecord } from '../state/maintenance.ts';
import { audit, liveSlot, readState, type SlotState } from '../state/state.ts';
import { askUntilOk, publicHealthUrl } from './health.ts';
import type { Session } from './session.ts';

/** What a change of maintenance works from on a host, read by `maintenancePreflight` before anything changes. */
export interface MaintenanceFacts {
  readonly driver: MaintenanceDriver;
  /** The live slot and its release. */
  readonly live: { readonly slot: string; readonly release: SlotState };
  /** The record as it was: undefined while maintenance is off, or when it is damaged. */
  readonly before: MaintenanceRecord | undefined;
  /** The record on the host could not be read: `on` writes a new one, `off` removes it. */
  readonly damaged: boolean;
}

/** How many times the page (or the app, after `off`) is asked for through the proxy, 200 ms apart. */
const TRIES = 10;

/**
 * The checks before any change: a proxy to answer 503, a release deployed, a config the proxy can
 * carry the page with, and a proxy that can be driven. Throws (nothing changed) when one fails.
 */
export const maintenancePreflight = async (s: Session): Promise<MaintenanceFacts> => {
  const { cfg, host, l, proxy } = s;
  const driver = maintenanceFor(cfg, proxy, s.clock);
  if (!proxy || !driver) {
    throw new SkiffError(
      `${cfg.env} has DEPLOY_PROXY=none: nothing stands in front of the app to answer 503 while it is down; maintenance mode needs DEPLOY_PROXY=caddy, nginx or haproxy (docs/maintenance.md)`,
      EXIT.usage,
    );
  }
  if (driver.problem) throw new SkiffError(`${driver.problem} (docs/maintenance.md)`, EXIT.usage);
  const live = liveSlot(await readState(host, l));
  if (!live) throw new NotDeployedError(cfg.env, host.name);
  // A damaged record is what on and off are there to mend: they write a new one, or remove it.
  const read = await readMaintenance(host, l).then(
    (record) => ({ before: record, damaged: false }),
    () => ({ before: undefined, damaged: true }),
  );
  await proxy.check(host);
  return { driver, live, ...read };
};

/** The page answers through the proxy: a 503 with this Retry-After (a few tries: nginx's new workers take a moment). */
export const pageAnswers = async (s: Session, retryAfter: number): Promise<{ ok: boolean; seen: string }> => {
  let seen = '';
  for (let i = 0; i < TRIES; i++) {
    const answer = parseProbeAnswer((await s.host.exec(probeHeaders(publicHealthUrl(s.cfg), 5), { check: false, timeoutMs: 30_000 })).stdout);
    if (answer.status === '503' && answer.retryAfter === String(retryAfter)) return { ok: true, seen: '503' };
    seen = answer.status === '000' ? 'nothing' : `HTTP ${answer.status}${answer.retryAfter === undefined ? ' without Retry-After' : ` with Retry-After ${answer.retryAfter}`}`;
    await s.clock.sleep(200);
  }
  return { ok: false, seen };
};

/** Puts maintenance back as `before` was on a host: the page and record it had, or neither. Returns what it could not do. */
export const putBack = async (s: Session, facts: MaintenanceFacts): Promise<string | undefined> => {
  const { before, driver } = facts;
  try {
    if (before) {
      await writeMaintenance(s.host, s.l, before);
      await driver.apply(s.host, before);
    } else {
      await driver.remove(s.host);
      await removeMaintenance(s.host, s.l);
    }
    return undefined;
  } catch (error) {
    return `could not put maintenance back as it was (${before ? 'on, with its old page' : 'off'}): ${firstLine(error)}`;
  }
};

const sameSettings = (a: MaintenanceRecord | undefined, b: PageSettings): boolean => a?.message === b.message && a.retryAfter === b.retryAfter;

/**
 * Turns maintenance on (or changes its page): the record first, so that any switch from now on keeps
 * the page up; then the page, checked through the proxy. If that fails, the host goes back to what it had.
 */
export const turnOn = async (s: Session, facts: MaintenanceFacts, page: PageSettings): Promise<string> => {
  const { host, l, cfg } = s;
  const proxy = s.proxy;
  if (!proxy) throw new Error('maintenancePreflight lets no session without a proxy through');
  const { driver, live, before } = facts;
  const url = cfg.publicUrl ?? '';
  if (sameSettings(before, page) && (await driver.serving(host))) return `maintenance is on already with this page (since ${before?.since}); nothing changed`;
  const record: MaintenanceRecord = { ...page, since: before?.since ?? s.now().toISOString(), by: s.who };
  await writeMaintenance(host, l, record);
  try {
    // A proxy that lost skiff's route (restarted from its own config) gets it back first, with the page.
    if ((await proxy.current(host)) === undefined) await proxy.switchTo(host, live.release.port);
    await driver.apply(host, page);
    const answer = await pageAnswers(s, page.retryAfter);
    if (!answer.ok) {
      throw new SkiffError(`${host.name}: ${publicHealthUrl(cfg)} answers ${answer.seen} through ${proxy.kind}, not the maintenance page (503 with Retry-After ${page.retryAfter}): another site or route of the proxy may answer first`);
    }
  } catch (error) {
    const left = await putBack(s, facts);
    const was = before ? 'maintenance stays on with its old page' : 'maintenance stays off';
    if (error instanceof Error) error.message = `${error.message}; ${left ?? was}`;
    throw error;
  }
  await audit(host, l, s.now().toISOString(), s.who, `maintenance ${before ? 'page changed' : 'on'} (Retry-After ${page.retryAfter}): ${page.message}`);
  return `${before ? 'maintenance page changed' : 'maintenance on'}: ${url} answers 503 with Retry-After ${page.retryAfter}; ${live.release.release} stays in slot ${live.slot}, checked by skiff directly`;
};

/**
 * Turns maintenance off: only when the live release answers its health check directly; then the page
 * goes and the app must answer through the proxy, else the page is put back up.
 */
export const turnOff = async (s: Session, facts: MaintenanceFacts): Promise<string> => {
  const { host, l, cfg } = s;
  const { driver, live, before, damaged } = facts;
  const { release, version, port } = live.release;
  if (!before && !damaged && !(await driver.serving(host))) return 'maintenance is off already; nothing changed';
  const direct = (await host.exec(probeHealth(port, cfg.health.path, 5), { check: false, timeoutMs: 30_000 })).stdout.trim();
  if (!isOkStatus(direct)) {
    throw new SkiffError(
      `${host.name}: the live release ${release} does not answer its health check on port ${port} (${direct === '000' || direct === '' ? 'no answer' : `HTTP ${direct}`}): ` +
        `start it (\`npx tsx scripts/start.ts ${cfg.env}\`) before turning maintenance off; maintenance stays on`,
    );
  }
  await driver.remove(host);
  const status = await askUntilOk(host, probeUrl(publicHealthUrl(cfg), 5), s.clock, TRIES);
  if (!isOkStatus(status)) {
    const back = before ? await putBack(s, facts) : undefined;
    throw new SkiffError(
      `${host.name}: with the page gone ${publicHealthUrl(cfg)} answers ${status === '000' ? 'nothing' : `HTTP ${status}`} through ${s.proxy?.kind ?? 'the proxy'}; ${back ?? (before ? 'the maintenance page is back up' : 'check the proxy')}`,
    );
  }
  await removeMaintenance(host, l);
  await audit(host, l, s.now().toISOString(), s.who, 'maintenance off');
  return `maintenance off: ${cfg.publicUrl ?? ''} serves ${version} (release ${release}) again`;
};

/** What `--dry-run` prints for a host. */
export const describeChange = async (s: Session, facts: MaintenanceFacts, page: PageSettings | undefined): Promise<string> => {
  const { driver, before } = facts;
  if (page) {
    if (sameSettings(before, page) && (await driver.serving(s.host))) return 'maintenance is on already with this page: would change nothing';
    return `${driver.describe(true)}, and record it in .skiff/maintenance.json (Retry-After ${page.retryAfter})`;
  }
  if (!before && !(await driver.serving(s.host))) return 'maintenance is off already: would change nothing';
  return `would check that ${facts.live.release.release} answers on port ${facts.live.release.port}, then ${driver.describe(false).replace(/^would /, '')}, and remove .skiff/maintenance.json`;
};

/** Maintenance as `status` shows it: the record, and whether the proxy serves the page. */
export interface MaintenanceStatus {
  readonly on: boolean;
  readonly message?: string;
  readonly retryAfter?: number;
  readonly since?: string;
  readonly by?: string;
  /** Whether the proxy serves the page now; undefined when it could not be asked. */
  readonly served?: boolean;
  readonly error?: string;
}

/** Undefined when maintenance is off and the proxy serves no page (nothing to show). */
export const maintenanceStatus = async (s: Session): Promise<MaintenanceStatus | undefined> => {
  const driver = maintenanceFor(s.cfg, s.proxy, s.clock);
  let record: MaintenanceRecord | undefined;
  try {
    record = await readMaintenance(s.host, s.l);
  } catch (error) {
    return { on: true, error: firstLine(error) };
  }
  const served = driver && !driver.problem ? await driver.serving(s.host).catch(() => undefined) : undefined;
  if (!record && !served) return undefined;
  return record ? { on: true, ...record, ...(served === undefined ? {} : { served }) } : { on: false, served: true };
};

/** The status line of maintenance. */
export const maintenanceLine = (m: MaintenanceStatus, env: string, proxy: string): string => {
  if (m.error) return m.error;
  const off = `\`npx tsx scripts/maintenance.ts ${env} off\``;
  if (!m.on) return `off, but ${proxy} still serves the maintenance page: run ${off}`;
  const what = `on since ${m.since} by ${m.by}: 503 with Retry-After ${m.retryAfter}, "${m.message}"`;
  if (m.served === false) return `${what}; but ${proxy} does not serve the page now: run \`npx tsx scripts/maintenance.ts ${env} on\` again`;
  return `${what}; ${off} gives the app back`;
};

/**
 * Through the proxy while maintenance is on: the page answers (a deploy's or rollback's check after
 * its switch). Returns a progress line; throws when the page is gone.
 */
export const checkPageAfterSwitch = async (s: Session, record: MaintenanceRecord): Promise<string> => {
  const answer = await pageAnswers(s, record.retryAfter);
  if (!answer.ok) {
    throw new SkiffError(`${s.host.name}: maintenance is on, but after the switch ${publicHealthUrl(s.cfg)} answers ${answer.seen}, not the maintenance page; switched back`);
  }
  return `maintenance is on: ${publicHealthUrl(s.cfg)} answers the 503 page; the new release answered its health check directly and gets traffic once maintenance is off`;
};
