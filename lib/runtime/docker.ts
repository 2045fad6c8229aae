/**
 * The docker runtime: a slot is a container `<app>-<env>-<color>` with `--network host`, PORT set
 * to the slot's port, the app's environment from the release's env file, shared/data at /data and
 * `--restart unless-stopped`. A release folder holds release.json: the image id the container runs.
 */
import type { Config } from '../config/config.ts';
import { containerLogs, containerName, containerStatus, runContainer, stopContainer } from '../commands/docker.ts';
import { SkiffError } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import type { Layout } from '../core/paths.ts';
import type { Runtime, SlotRun } from './runtime.ts';

/** What `releases/<id>/release.json` holds for a docker release. */
export interface ImageRelease {
  /** `<app>:<version>`, as built. */
  readonly image: string;
  /** The image id (`sha256:...`) the container runs. */
  readonly imageId: string;
  /** The release's tag on the host (`<app>:<env>-<id>`), removed when the release is pruned. */
  readonly ref: string;
  /** The names of the app's environment keys (the values stay in the env file). */
  readonly envKeys: readonly string[];
}

export const releaseJsonPath = (l: Layout, id: string): string => `${l.release(id)}/release.json`;

/** Reads release.json of a docker release; a clear error when it is missing. */
export const readImageRelease = async (host: Host, l: Layout, id: string): Promise<ImageRelease> => {
  const text = await host.get(releaseJsonPath(l, id));
  if (!text) throw new SkiffError(`${host.name}: release ${id} has no release.json: it was not deployed with DEPLOY_RUNTIME=docker`);
  return JSON.parse(text.toString()) as ImageRelease;
};

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

export const dockerRuntime = (cfg: Config): Runtime => {
  const name = (slot: string) => containerName(cfg.app.name, cfg.env, slot);
  return {
    kind: 'docker',
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
        }),
      );
      return `container ${name(s.slot)} ${out.stdout.trim().slice(0, 12)}`;
    },
    halt: async (host, _l, slot, graceSeconds) => (await host.exec(stopContainer(name(slot), graceSeconds))).stdout.trim(),
    logTail: async (host, _l, slot, lines = 10) => (await host.exec(containerLogs(name(slot), lines, false))).stdout,
    showLog: async (host, _l, slot, lines, follow, write, signal) => {
      await host.exec(containerLogs(name(slot), lines, follow), { onStdout: write, check: false, ...(signal ? { signal } : {}) });
    },
    logName: (_l, slot) => `docker logs ${name(slot)}`,
  };
};
