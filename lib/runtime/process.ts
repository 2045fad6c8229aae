/**
 * The process runtime: the build is DEPLOY_BUILD in APP_DIR, a ship sends the release folder's
 * changes (lib/ship/folder-ship.ts), and the `pidfile` supervisor starts, stops and finds a slot's
 * process on a host.
 */
import type { Config } from '../config/config.ts';
import { script } from '../core/cmd.ts';
import { DEADLINE } from '../host/host.ts';
import { removeReleases, tail } from '../commands/release.ts';
import { slotStatus, startSlot, stopSlot } from '../commands/supervisor.ts';
import { runBuild } from '../ship/build.ts';
import { shipFolder } from '../ship/folder-ship.ts';
import type { Runtime, SlotRun } from './runtime.ts';

/** Parses the line printed by `slotStatus`. */
export const parseSlotStatus = (line: string): SlotRun => {
  const [word, pid, how] = line.trim().split(/\s+/);
  if (word === 'running' && pid) return { state: 'running', pid: Number(pid), pidFileOk: how === 'pidfile' };
  if (word === 'crashed' && pid) return { state: 'crashed', pid: Number(pid) };
  return { state: 'stopped' };
};

/** The process runtime of an environment (its name reaches the app as APP_ENV). */
export const processRuntime = (cfg: Config): Runtime => ({
  unit: 'process',
  haltedWord: 'pid',
  buildTitle: (version) => `Build ${version}`,
  shipTitle: 'Ship the release',
  noBuild: cfg.build ? undefined : 'no DEPLOY_BUILD set',
  shipsInDryRun: true,
  checkLocal: () => {},
  preflight: async () => {},
  build: async ({ version }, log) => {
    await runBuild(cfg, log);
    return { summary: `built ${cfg.app.name} ${version}: ${cfg.app.releaseDir}`, json: { version, appDir: cfg.app.dir, releaseDir: cfg.app.releaseDir } };
  },
  ship: (host, l, spec, log) => shipFolder(host, l, cfg, spec, log),
  removeReleases: async (host, l, ids) => {
    if (ids.length > 0) await host.exec(removeReleases(l, ids));
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
