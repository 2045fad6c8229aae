/**
 * The pidfile supervisor of the process runtime: a slot's process runs in its own session with a pid
 * file and a log file under DEPLOY_PATH (lib/commands/supervisor.ts). Nothing restarts it after a
 * crash or starts it after a reboot: `start` does, and `status` says when it is needed.
 */
import { script } from '../core/cmd.ts';
import { afterGrace, DEADLINE } from '../host/host.ts';
import { tail } from '../commands/release.ts';
import { slotStatus, startSlot, stopSlot } from '../commands/supervisor.ts';
import { startWorkers, stopStrayWorkers, stopWorkers, workerLog, workerStatus } from '../commands/workers.ts';
import { envUnits, unitName } from '../commands/systemd.ts';
import { EXIT, SkiffError } from '../core/errors.ts';
import type { Config } from '../config/config.ts';
import type { SlotRun, Supervisor, WorkerDriver, WorkerRun } from './runtime.ts';

/** Parses the line printed by `slotStatus`. */
export const parseSlotStatus = (line: string): SlotRun => {
  const [word, pid, how] = line.trim().split(/\s+/);
  if (word === 'running' && pid) return { state: 'running', pid: Number(pid), pidFileOk: how === 'pidfile' };
  if (word === 'crashed' && pid) return { state: 'crashed', pid: Number(pid) };
  return { state: 'stopped' };
};

/** Parses the lines printed by `workerStatus`. */
export const parseWorkerStatus = (text: string): WorkerRun[] =>
  text
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([id]) => Boolean(id))
    .map(([id = '', word, pid]): WorkerRun => (word === 'running' || word === 'crashed' ? { id, state: word, pid: Number(pid) } : { id, state: 'stopped' }));

/**
 * Workers under the pidfile supervisor (lib/commands/workers.ts): each process in a session of its
 * own with a pid file and a marker, its output in `shared/logs/worker-<name>.log`. The grace of a
 * stop counts before its deadline does.
 */
export const pidfileWorkers: WorkerDriver = {
  find: async (host, l, release, ids) => parseWorkerStatus((await host.exec(workerStatus(l, release, ids))).stdout),
  start: async (host, l, spec) => {
    await host.exec(startWorkers(l, spec));
  },
  stop: async (host, l, release, ids, graceSeconds) =>
    (await host.exec(stopWorkers(l, release, ids, graceSeconds), afterGrace(graceSeconds))).stdout.trim(),
  stopStrays: async (host, l, keep, graceSeconds) =>
    Number((await host.exec(stopStrayWorkers(l, keep, graceSeconds), afterGrace(graceSeconds))).stdout.trim() || '0'),
  logTail: async (host, l, _release, id, lines) => (await host.exec(tail(workerLog(l, id), lines), { check: false })).stdout,
  logName: (l, _release, id) => workerLog(l, id),
};

export const pidfileSupervisor = (cfg: Config): Supervisor => ({
  workers: pidfileWorkers,
  // A slot that the systemd supervisor runs would be restarted by systemd behind the pidfile supervisor's back.
  preflight: async (host) => {
    const prefix = unitName(cfg.app.name, cfg.env, '').replace(/\.service$/, '');
    const running = (await host.exec(envUnits(prefix))).stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((line) => line.split(' '))
      .find(([, active, enabled]) => active === 'active' || enabled === 'enabled');
    if (running) {
      throw new SkiffError(
        `${host.name}: ${running[0] ?? ''} (DEPLOY_SUPERVISOR=systemd) still serves this env: run \`npx tsx scripts/stop.ts ${cfg.env}\` with DEPLOY_SUPERVISOR=systemd first, then deploy with pidfile`,
        EXIT.usage,
      );
    }
  },
  find: async (host, l, slot) => parseSlotStatus((await host.exec(slotStatus(l, slot))).stdout),
  launch: async (host, l, s) => {
    const out = await host.exec(
      startSlot(l, { slot: s.slot, releaseDir: l.release(s.release), port: s.port, start: s.start, version: s.version, env: cfg.env, envFile: l.envOf(s.release) }),
    );
    return `pid ${out.stdout.trim().split('\n').at(-1) ?? ''}`;
  },
  // The stop may take its whole grace period (DEPLOY_DRAIN_SECONDS, up to an hour) before the deadline starts to count.
  halt: async (host, l, slot, graceSeconds) => (await host.exec(stopSlot(l, slot, graceSeconds), afterGrace(graceSeconds))).stdout.trim(),
  logTail: async (host, l, slot, lines = 10) => (await host.exec(tail(l.log(slot), lines))).stdout,
  showLog: async (host, l, slot, lines, follow, write, signal) => {
    if (!follow) write(Buffer.from((await host.exec(tail(l.log(slot), lines))).stdout));
    else await host.exec(script('exec tail -n "$2" -F "$1"', l.log(slot), String(lines)), { onStdout: write, check: false, timeoutMs: DEADLINE.none, ...(signal ? { signal } : {}) });
  },
  logName: (l, slot) => l.log(slot),
});
