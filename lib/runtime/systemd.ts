/**
 * The systemd supervisor of the process runtime: a slot is a unit of its own (lib/commands/systemd.ts),
 * restarted by systemd when it crashes, started at boot while it is the live slot, logging to the
 * journal. A slot that a pidfile supervisor started (a host moving to systemd) is still found and
 * stopped, so the first deploy with systemd leaves no process behind.
 */
import type { Config } from '../config/config.ts';
import { slotMarker, slotStatus, stopSlot } from '../commands/supervisor.ts';
import {
  envUnits,
  foreignUnits,
  parseWorkerUnitName,
  removeUnit,
  startUnit,
  stopAndRemoveUnits,
  stopUnit,
  systemdCheck,
  unitFile,
  unitLog,
  unitName,
  unitsStatus,
  unitStatus,
  workerUnitFile,
  workerUnitName,
} from '../commands/systemd.ts';
import { workerSlot } from '../commands/workers.ts';
import { EXIT, SkiffError } from '../core/errors.ts';
import type { Layout } from '../core/paths.ts';
import { afterGrace, DEADLINE, linesByName, type Host } from '../host/host.ts';
import { parseSlotStatus, pidfileWorkers } from './pidfile.ts';
import type { SlotRun, Supervisor, UnitInfo, WorkerDriver, WorkerRun } from './runtime.ts';

/** Parses the line printed by `unitStatus`. */
export const parseUnitStatus = (name: string, line: string): SlotRun | undefined => {
  const [active, sub, main, execMain, restarts, enabled] = line.trim().split(/\s+/);
  if (!active || active === 'none') return undefined;
  const unit: UnitInfo = { name, enabled: enabled ?? 'disabled', restarts: Number(restarts) || 0 };
  const pid = Number(main) || Number(execMain) || 0;
  if (active === 'active' || (active === 'activating' && sub !== 'auto-restart')) return { state: 'running', pid, pidFileOk: true, unit };
  // Between two restarts after a crash, or given up on: the unit does not serve.
  if (active === 'failed' || (active === 'activating' && sub === 'auto-restart')) return { state: 'crashed', pid: Number(execMain) || pid, unit };
  return { state: 'stopped', unit };
};

/** Why a host cannot run systemd units for this user, as one line with the fix; undefined when it can. */
export const systemdProblem = (hostName: string, env: string, answer: string): string | undefined => {
  const [word, user = ''] = answer.trim().split(/\s+/);
  if (word === 'ok') return undefined;
  if (word === 'no-systemd') {
    return `${hostName} does not run systemd (its init is something else), so DEPLOY_SUPERVISOR=systemd cannot work there: use DEPLOY_SUPERVISOR=pidfile`;
  }
  if (word === 'no-linger') {
    return (
      `${hostName}: ${user} has no lingering, so its systemd units would stop at logout and not start at boot: ` +
      `run \`npx tsx scripts/setup.ts ${env}\` (or as root on the host: loginctl enable-linger ${user})`
    );
  }
  return `${hostName}: the systemd user manager of ${user} does not answer: run \`npx tsx scripts/setup.ts ${env}\`, or log in once and check \`systemctl --user status\``;
};

/** Two answers of a stop (`stopped N`, `killed N`, `not-running`) as one: killed if either killed. */
export const sumStops = (a: string, b: string): string => {
  const count = (x: string) => (x === 'not-running' ? 0 : Number(x.split(' ')[1]) || 0);
  if (a === 'not-running' && b === 'not-running') return 'not-running';
  const killed = [a, b].filter((x) => x.startsWith('killed '));
  return killed.length > 0 ? `killed ${killed.reduce((n, x) => n + count(x), 0)}` : `stopped ${count(a) + count(b)}`;
};

/** How a worker's unit stands, from a line of `unitsStatus` (its name first). */
export const workerRunOf = (id: string, line: string | undefined): WorkerRun => {
  const [name = '', ...rest] = (line ?? '').trim().split(/\s+/);
  const run = parseUnitStatus(name, rest.join(' '));
  if (!run || run.state === 'stopped') return { id, state: 'stopped' };
  return { id, state: run.state, pid: run.pid, restarts: run.unit?.restarts ?? 0 };
};

/**
 * Workers under systemd: a unit per process and release (workerUnitName), restarted when it fails,
 * enabled while its release is live so it starts at boot, its output in the journal. Worker
 * processes the pidfile supervisor started (a host moving to systemd) are still found and stopped.
 */
export const systemdWorkers = (cfg: Config): WorkerDriver => {
  const name = (release: string, id: string) => workerUnitName(cfg.app.name, cfg.env, release, id);
  return {
    async find(host, l, release, ids) {
      const lines = linesByName((await host.exec(unitsStatus(ids.map((id) => name(release, id))))).stdout);
      const runs = ids.map((id) => workerRunOf(id, lines.get(name(release, id))));
      const none = runs.filter((r) => r.state === 'stopped').map((r) => r.id);
      if (none.length === 0) return runs;
      const earlier = new Map((await pidfileWorkers.find(host, l, release, none)).filter((r) => r.state === 'running').map((r) => [r.id, r]));
      return runs.map((r) => earlier.get(r.id) ?? r);
    },
    async start(host, l, spec) {
      for (const p of spec.procs) {
        const unit = name(spec.release, p.id);
        const text = workerUnitFile({
          app: cfg.app.name,
          env: cfg.env,
          id: p.id,
          root: l.root,
          release: spec.release,
          releaseDir: spec.releaseDir,
          envFile: spec.envFile,
          dataDir: l.data,
          version: spec.version,
          marker: slotMarker(l, workerSlot(spec.release, p.id)),
          command: p.command,
          graceSeconds: cfg.workerGraceSeconds,
          memory: cfg.limits.memory?.text,
          cpus: cfg.limits.cpus,
        });
        const r = await host.exec(startUnit(unit), { stdin: text, check: false });
        const why = r.stderr.trim().split('\n').at(-1) ?? '';
        if (r.code === 3) throw new SkiffError(`${host.name}: ${why.replace(/^refused: /, '')}: remove or rename it, or choose another APP_NAME`, EXIT.usage);
        if (r.code !== 0) throw new SkiffError(`${host.name}: systemd could not start ${unit} (exit ${r.code}): ${why}`);
      }
    },
    async stop(host, l, release, ids, graceSeconds) {
      const units = (await host.exec(stopAndRemoveUnits(ids.map((id) => name(release, id)), graceSeconds), afterGrace(graceSeconds))).stdout.trim();
      // Processes the pidfile supervisor started before this host moved to systemd, some perhaps beside units.
      return sumStops(units, await pidfileWorkers.stop(host, l, release, ids, graceSeconds));
    },
    async stopStrays(host, l, keep, graceSeconds) {
      const units = (await host.exec(envUnits(`skiff-${cfg.app.name}-${cfg.env}-worker-`))).stdout
        .split('\n')
        .map((line) => line.split(' ')[0] ?? '')
        .filter((unit) => {
          const w = parseWorkerUnitName(cfg.app.name, cfg.env, unit);
          return w !== undefined && !keep.includes(w.release);
        });
      if (units.length > 0) await host.exec(stopAndRemoveUnits(units, graceSeconds), afterGrace(graceSeconds));
      return units.length + (await pidfileWorkers.stopStrays(host, l, keep, graceSeconds));
    },
    logTail: async (host, _l, release, id, lines) => (await host.exec(unitLog(name(release, id), lines, false), { check: false })).stdout,
    logName: (_l, release, id) => `the journal of ${name(release, id)} (journalctl -u; --user for a user's units)`,
  };
};

export const systemdSupervisor = (cfg: Config): Supervisor => {
  const unit = (slot: string) => unitName(cfg.app.name, cfg.env, slot);
  const unitPrefix = unit('').replace(/\.service$/, '');
  const slots = cfg.ports.length > 1 ? ['blue', 'green'] : ['blue'];
  const pidfileFind = async (host: Host, l: Layout, slot: string) => parseSlotStatus((await host.exec(slotStatus(l, slot))).stdout);

  return {
    workers: systemdWorkers(cfg),
    async preflight(host) {
      const problem = systemdProblem(host.name, cfg.env, (await host.exec(systemdCheck())).stdout);
      if (problem) throw new SkiffError(problem, EXIT.usage);
      const foreign = (await host.exec(foreignUnits(slots.map(unit)))).stdout.trim().split('\n').filter(Boolean);
      if (foreign.length > 0) {
        const [name = '', file] = (foreign[0] ?? '').split(' ');
        if (file === 'masked') throw new SkiffError(`${host.name}: the unit ${name} is masked, so skiff will not start it: \`systemctl unmask ${name}\` if it may run`, EXIT.usage);
        throw new SkiffError(
          `${host.name}: a unit ${name} exists that skiff did not write (${file}): remove or rename it, or choose another APP_NAME`,
          EXIT.usage,
        );
      }
      // A slot of an earlier setting (two slots before DEPLOY_PROXY=none): gone when idle, refused while it serves.
      for (const line of (await host.exec(envUnits(unitPrefix))).stdout.trim().split('\n').filter(Boolean)) {
        const [name = '', active, enabled] = line.split(' ');
        // A slot's unit, or a worker's (stopped with its release, and as a stray on deploy).
        if (slots.some((slot) => unit(slot) === name) || parseWorkerUnitName(cfg.app.name, cfg.env, name)) continue;
        if (active === 'active' || enabled === 'enabled') {
          throw new SkiffError(
            `${host.name}: ${name} is a slot of an earlier setting and still ${active === 'active' ? 'runs' : 'starts at boot'}: ` +
              `stop it first (systemctl${cfg.hosts.some((h) => h.kind === 'ssh' && h.user !== 'root') ? ' --user' : ''} disable --now ${name}), then deploy`,
            EXIT.usage,
          );
        }
        await host.exec(removeUnit(name));
      }
    },
    async find(host, l, slot) {
      const found = parseUnitStatus(unit(slot), (await host.exec(unitStatus(unit(slot)))).stdout);
      // No unit yet: a process the pidfile supervisor started before this host moved to systemd.
      return found ?? (await pidfileFind(host, l, slot));
    },
    async launch(host, l, s) {
      const text = unitFile({
        app: cfg.app.name,
        env: cfg.env,
        slot: s.slot,
        root: l.root,
        releaseDir: l.release(s.release),
        envFile: l.envOf(s.release),
        port: s.port,
        dataDir: l.data,
        version: s.version,
        release: s.release,
        marker: slotMarker(l, s.slot),
        start: s.start,
        drainSeconds: cfg.drainSeconds,
        memory: cfg.limits.memory?.text,
        cpus: cfg.limits.cpus,
      });
      const r = await host.exec(startUnit(unit(s.slot)), { stdin: text, check: false });
      const why = r.stderr.trim().split('\n').at(-1) ?? '';
      if (r.code === 3) throw new SkiffError(`${host.name}: ${why.replace(/^refused: /, '')}: remove or rename it, or choose another APP_NAME`, EXIT.usage);
      if (r.code !== 0) throw new SkiffError(`${host.name}: systemd could not start ${unit(s.slot)} (exit ${r.code}): ${why}`);
      return `pid ${r.stdout.trim().split('\n').at(-1) ?? ''}, unit ${unit(s.slot)}`;
    },
    async halt(host, l, slot, graceSeconds) {
      const timeoutMs = graceSeconds * 1000 + DEADLINE.command;
      const result = (await host.exec(stopUnit(unit(slot), graceSeconds), { timeoutMs })).stdout.trim();
      if (result !== 'not-running') return result;
      // A slot the pidfile supervisor started, from before this host moved to systemd.
      return (await host.exec(stopSlot(l, slot, graceSeconds), { timeoutMs })).stdout.trim();
    },
    logTail: async (host, _l, slot, lines = 10) => (await host.exec(unitLog(unit(slot), lines, false), { check: false })).stdout,
    showLog: async (host, _l, slot, lines, follow, write, signal) => {
      if (!follow) write(Buffer.from((await host.exec(unitLog(unit(slot), lines, false))).stdout));
      else await host.exec(unitLog(unit(slot), lines, true), { onStdout: write, check: false, timeoutMs: DEADLINE.none, ...(signal ? { signal } : {}) });
    },
    logName: (_l, slot) => `the journal of ${unit(slot)} (journalctl -u; --user for a user's units)`,
  };
};
