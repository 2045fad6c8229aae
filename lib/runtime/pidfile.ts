/**
 * The pidfile supervisor of the process runtime: a slot's process runs in its own session with a pid
 * file and a log file under DEPLOY_PATH (lib/commands/supervisor.ts). Nothing restarts it after a
 * crash or starts it after a reboot: `start` does, and `status` says when it is needed.
 */
import { script } from '../core/cmd.ts';
import { DEADLINE } from '../host/host.ts';
import { tail } from '../commands/release.ts';
import { slotStatus, startSlot, stopSlot } from '../commands/supervisor.ts';
import { envUnits, unitName } from '../commands/systemd.ts';
import { EXIT, SkiffError } from '../core/errors.ts';
import type { Config } from '../config/config.ts';
import type { SlotRun, Supervisor } from './runtime.ts';

/** Parses the line printed by `slotStatus`. */
export const parseSlotStatus = (line: string): SlotRun => {
  const [word, pid, how] = line.trim().split(/\s+/);
  if (word === 'running' && pid) return { state: 'running', pid: Number(pid), pidFileOk: how === 'pidfile' };
  if (word === 'crashed' && pid) return { state: 'crashed', pid: Number(pid) };
  return { state: 'stopped' };
};

export const pidfileSupervisor = (cfg: Config): Supervisor => ({
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
  halt: async (host, l, slot, graceSeconds) => (await host.exec(stopSlot(l, slot, graceSeconds), { timeoutMs: graceSeconds * 1000 + DEADLINE.command })).stdout.trim(),
  logTail: async (host, l, slot, lines = 10) => (await host.exec(tail(l.log(slot), lines))).stdout,
  showLog: async (host, l, slot, lines, follow, write, signal) => {
    if (!follow) write(Buffer.from((await host.exec(tail(l.log(slot), lines))).stdout));
    else await host.exec(script('exec tail -n "$2" -F "$1"', l.log(slot), String(lines)), { onStdout: write, check: false, timeoutMs: DEADLINE.none, ...(signal ? { signal } : {}) });
  },
  logName: (l, slot) => l.log(slot),
});
