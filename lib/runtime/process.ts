/**
 * The process runtime: the build is DEPLOY_BUILD in APP_DIR, a ship sends the release folder's
 * changes (lib/ship/folder-ship.ts), and a supervisor starts, stops and finds a slot's process on a
 * host: `pidfile` (lib/runtime/pidfile.ts) or `systemd` (lib/runtime/systemd.ts), DEPLOY_SUPERVISOR.
 */
import type { Config } from '../config/config.ts';
import { runHook } from '../commands/hooks.ts';
import { removeReleases } from '../commands/release.ts';
import { execInRelease } from '../commands/exec.ts';
import { runBuild } from '../ship/build.ts';
import { shipFolder } from '../ship/folder-ship.ts';
import { pidfileSupervisor } from './pidfile.ts';
import type { Runtime } from './runtime.ts';
import { systemdSupervisor } from './systemd.ts';

export { parseSlotStatus } from './pidfile.ts';

/** The process runtime of an environment (its name reaches the app as APP_ENV). */
export const processRuntime = (cfg: Config): Runtime => ({
  unit: 'process',
  haltedWord: 'pid',
  buildTitle: (version) => `Build ${version}`,
  shipTitle: 'Ship the release',
  noBuild: cfg.build ? undefined : 'no DEPLOY_BUILD set',
  shipsInDryRun: true,
  checkLocal: () => {},
  build: async ({ version }, log) => {
    await runBuild(cfg, log);
    return { summary: `built ${cfg.app.name} ${version}: ${cfg.app.releaseDir}`, json: { version, appDir: cfg.app.dir, releaseDir: cfg.app.releaseDir } };
  },
  ship: (host, l, spec, log) => shipFolder(host, l, cfg, spec, log),
  hookCommand: (l, h) =>
    runHook({ releaseDir: l.release(h.release), envFile: l.envOf(h.release), dataDir: l.data, version: h.version, env: cfg.env, command: h.command, timeoutSeconds: h.timeoutSeconds }),
  removeReleases: async (host, l, ids) => {
    if (ids.length > 0) await host.exec(removeReleases(l, ids));
  },
  // The folder and env file both supervisors start the slot with (lib/commands/supervisor.ts, systemd.ts).
  execIn: async (_host, l, { release }, words) =>
    execInRelease(l, { releaseDir: l.release(release.release), envFile: l.envOf(release.release), port: release.port, version: release.version, env: cfg.env }, words),
  ...(cfg.supervisor === 'systemd' ? systemdSupervisor(cfg) : pidfileSupervisor(cfg)),
});
