/**
 * The docker runtime: the build is `docker build`, a ship sends the image layers a host lacks
 * (lib/ship/docker-ship.ts), and a slot is a container `<app>-<env>-<color>` with `--network host`,
 * PORT set to the slot's port, the app's environment from the release's env file, shared/data at
 * /data and `--restart unless-stopped`. A release folder holds release.json: the image id the
 * container runs, and the tag to remove when the release goes.
 */
import type { Config } from '../config/config.ts';
import {
  containerLogs,
  containerName,
  containersStatus,
  containerStatus,
  dockerAtBoot,
  runContainer,
  stopAndRemoveContainers,
  stopContainer,
  untagRelease,
  workerContainerName,
  workerContainers,
} from '../commands/docker.ts';
import type { Layout } from '../core/paths.ts';
import { hookInContainer } from '../commands/hooks.ts';
import { removeReleases } from '../commands/release.ts';
import { execInContainer, wordsWithoutShell } from '../commands/exec.ts';
import { firstLine, SkiffError } from '../core/errors.ts';
import { afterGrace, DEADLINE, linesByName, type Host } from '../host/host.ts';
import { buildImage, checkDockerfile } from '../ship/build.ts';
import { checkHostDocker, findImageRelease, readImageRelease, rememberImage, shipImage, type HostDocker } from '../ship/docker-ship.ts';
import type { Runtime, SlotRun, WorkerDriver, WorkerRun } from './runtime.ts';

/** Parses the line printed by `containerStatus`. */
export const parseContainerStatus = (name: string, line: string): SlotRun => {
  const [status, pid, image, health] = line.trim().split(/\s+/);
  if (!status || status === 'absent') return { state: 'stopped' };
  const container = { name, image: image ?? '', health: health ?? '-' };
  if (status === 'running') return { state: 'running', pid: Number(pid), pidFileOk: true, container };
  // restarting: it keeps exiting and docker keeps starting it again.
  if (status === 'restarting') return { state: 'crashed', pid: Number(pid), container };
  return { state: 'stopped', container };
};

/**
 * One line for a worker container docker could not start: the daemon's reason, and the fix when the
 * image has no shell for a command that needs one.
 */
export const workerStartFailure = (hostName: string, id: string, release: string, command: string, stderr: string): string => {
  const lines = stderr.split('\n').map((x) => x.trim()).filter(Boolean);
  const daemon = lines.find((x) => x.includes('Error response from daemon')) ?? lines.at(-1) ?? 'no reason given';
  const reason = /unable to start container process: (.*?)(: unknown)?$/.exec(daemon)?.[1] ?? daemon.replace(/^docker: /, '');
  const noShell = /exec: "sh": executable file not found/.test(daemon);
  return (
    `${hostName}: docker could not start worker ${id} of release ${release}: ${reason}` +
    (noShell ? `: the image has no sh to run \`${command}\`; write it as plain words (no $, |, &&, >), or build the image with a shell` : '')
  );
};

/** How a worker's container stands, from a line of `containersStatus` (its name first). */
export const workerContainerRun = (id: string, line: string | undefined): WorkerRun => {
  const [, status, pid, restarts] = (line ?? '').trim().split(/\s+/);
  const count = Number(restarts) || 0;
  if (status === 'running') return { id, state: 'running', pid: Number(pid), restarts: count };
  // restarting: it keeps exiting and docker keeps starting it again.
  if (status === 'restarting') return { id, state: 'crashed', pid: Number(pid), restarts: count };
  return { id, state: 'stopped' };
};

/**
 * Workers in the docker runtime: a container per process and release (workerContainerName) of the
 * release's image with the worker's command, the app's environment but no PORT, shared/data at
 * /data, `--network host` and `--restart unless-stopped` (Docker starts it again when it exits and
 * at boot); stopped together with the grace and removed.
 */
export const dockerWorkers = (cfg: Config, limits: readonly string[]): WorkerDriver => {
  const name = (release: string, id: string) => workerContainerName(cfg.app.name, cfg.env, release, id);
  return {
    async find(host, _l, release, ids) {
      const lines = linesByName((await host.exec(containersStatus(ids.map((id) => name(release, id))))).stdout);
      return ids.map((id) => workerContainerRun(id, lines.get(name(release, id))));
    },
    async start(host, l: Layout, spec) {
      const release = await readImageRelease(host, l, spec.release);
      for (const p of spec.procs) {
        const r = await host.exec(
          runContainer({
            name: name(spec.release, p.id),
            image: release.imageId,
            envFile: l.envOf(spec.release),
            envKeys: release.envKeys,
            dataDir: l.data,
            env: { DATA_DIR: '/data', APP_VERSION: spec.version, APP_ENV: cfg.env },
            labels: { 'skiff.app': cfg.app.name, 'skiff.env': cfg.env, 'skiff.worker': p.id, 'skiff.release': spec.release, 'skiff.version': spec.version },
            // An init process as PID 1 passes SIGTERM on (a program that is PID 1 ignores it without a
            // handler), and the image's HEALTHCHECK, which asks the app's port, is not the worker's.
            limits: [...limits, '--init', '--no-healthcheck'],
            // Plain words run with no shell (an image may have none); anything else through `sh -c`.
            command: wordsWithoutShell(p.command) ?? ['sh', '-c', p.command],
          }),
          { check: false },
        );
        if (r.code !== 0) throw new SkiffError(workerStartFailure(host.name, p.id, spec.release, p.command, r.stderr));
      }
    },
    stop: async (host, _l, release, ids, graceSeconds) =>
      (await host.exec(stopAndRemoveContainers(ids.map((id) => name(release, id)), graceSeconds), afterGrace(graceSeconds))).stdout.trim(),
    async stopStrays(host, _l, keep, graceSeconds) {
      const strays = (await host.exec(workerContainers(cfg.app.name, cfg.env))).stdout
        .split('\n')
        .map((line) => line.trim().split(/\s+/))
        .filter(([c, release]) => c && !keep.includes(release ?? ''))
        .map(([c]) => c ?? '');
      if (strays.length > 0) await host.exec(stopAndRemoveContainers(strays, graceSeconds), afterGrace(graceSeconds));
      return strays.length;
    },
    logTail: async (host, _l, release, id, lines) => (await host.exec(containerLogs(name(release, id), lines, false), { check: false })).stdout,
    logName: (_l, release, id) => `docker logs ${name(release, id)}`,
  };
};

export const dockerRuntime = (cfg: Config): Runtime => {
  const name = (slot: string) => containerName(cfg.app.name, cfg.env, slot);
  /** Each host's Docker, as preflight found it. */
  const dockers = new WeakMap<Host, HostDocker>();
  const limits = [...(cfg.limits.memory ? ['--memory', String(cfg.limits.memory.bytes)] : []), ...(cfg.limits.cpus !== undefined ? ['--cpus', String(cfg.limits.cpus)] : [])];
  return {
    workers: dockerWorkers(cfg, limits),
    unit: 'container',
    haltedWord: 'container',
    buildTitle: (version) => `Build the image ${cfg.app.name}:${version}`,
    shipTitle: 'Ship the image layers each host lacks',
    noBuild: undefined,
    // A dry run cannot ask a host's daemon what it would load.
    shipsInDryRun: false,
    checkLocal: (willBuild) => void (willBuild && checkDockerfile(cfg)),
    preflight: async (host, log) => {
      dockers.set(host, await checkHostDocker(host));
      const atBoot = (await host.exec(dockerAtBoot(), { check: false })).stdout.trim();
      if (atBoot !== 'enabled' && atBoot !== 'no-systemd' && atBoot !== 'not-found' && atBoot !== '') {
        log(
          `${host.name}: the Docker service is ${atBoot} at boot, so the containers will not come back after a reboot: ` +
            `run \`npx tsx scripts/setup.ts ${cfg.env}\` (or on the host: systemctl enable docker)`,
        );
      }
    },
    build: async (facts, log) => {
      const image = await buildImage(cfg, facts, log);
      rememberImage(cfg, image);
      log(`built ${image.tag} (${image.id.slice(7, 19)})`);
      return { summary: `built ${image.tag} (${image.id})`, json: { version: facts.version, image: image.tag, imageId: image.id } };
    },
    ship: async (host, l, spec, log) => shipImage(host, l, cfg, spec, dockers.get(host) ?? (await checkHostDocker(host)), log),
    // The images of releases that go lose their release tags; docker deletes an image once nothing uses it.
    removeReleases: async (host, l, ids) => {
      if (ids.length === 0) return;
      const kept: string[] = [];
      for (const id of ids) {
        try {
          const release = await findImageRelease(host, l, id);
          // A folder without release.json (a ship cut short) has no tag to remove.
          if (release) await host.exec(untagRelease(release.ref, release.image));
        } catch (error) {
          kept.push(`release ${id}: ${firstLine(error)}`);
        }
      }
      // The folders go even when a tag stayed: a tag costs only its name, and the error says which.
      await host.exec(removeReleases(l, ids));
      if (kept.length > 0) throw new SkiffError(`removed the release folders, but not every image tag: ${kept.join('; ')}`);
    },
    find: async (host, _l, slot) => parseContainerStatus(name(slot), (await host.exec(containerStatus(name(slot)))).stdout),
    launch: async (host, l, s) => {
      const release = await readImageRelease(host, l, s.release);
      const out = await host.exec(
        runContainer({
          name: name(s.slot),
          image: release.imageId,
          envFile: l.envOf(s.release),
          envKeys: release.envKeys,
          dataDir: l.data,
          env: { PORT: String(s.port), DATA_DIR: '/data', APP_VERSION: s.version, APP_ENV: cfg.env },
          labels: { 'skiff.app': cfg.app.name, 'skiff.env': cfg.env, 'skiff.slot': s.slot, 'skiff.release': s.release, 'skiff.version': s.version },
          limits,
        }),
      );
      return `container ${name(s.slot)} ${out.stdout.trim().slice(0, 12)}`;
    },
    // The stop may take its whole grace period (DEPLOY_DRAIN_SECONDS, up to an hour) before the deadline starts to count.
    halt: async (host, _l, slot, graceSeconds) => (await host.exec(stopContainer(name(slot), graceSeconds), afterGrace(graceSeconds))).stdout.trim(),
    logTail: async (host, _l, slot, lines = 10) => (await host.exec(containerLogs(name(slot), lines, false))).stdout,
    showLog: async (host, _l, slot, lines, follow, write, signal) => {
      await host.exec(containerLogs(name(slot), lines, follow), { onStdout: write, check: false, ...(follow ? { timeoutMs: DEADLINE.none } : {}), ...(signal ? { signal } : {}) });
    },
    logName: (_l, slot) => `docker logs ${name(slot)}`,
    // The slot's container runs the new image with the app's environment: the command runs there.
    hookCommand: (_l, h) => hookInContainer(name(h.slot), h.command, h.timeoutSeconds),
    // docker exec needs the container running; it has the app's environment and the image's WORKDIR.
    execIn: async (host, _l, { slot }, words, tty) => {
      const found = parseContainerStatus(name(slot), (await host.exec(containerStatus(name(slot)))).stdout);
      if (found.state !== 'running') {
        throw new SkiffError(`${host.name}: the live container ${name(slot)} is not running, so there is nothing to exec in: run \`npx tsx scripts/start.ts ${cfg.env}\` first`);
      }
      return execInContainer(name(slot), words, tty);
    },
  };
};
