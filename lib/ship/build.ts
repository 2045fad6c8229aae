/** The local build: DEPLOY_BUILD in APP_DIR, and the release folder it leaves, streamed as tar. */
import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { Readable } from 'node:stream';
import { dockerBuild, imageId, imageLabels } from '../commands/docker.ts';
import type { Config } from '../config/config.ts';
import { SkiffError } from '../core/errors.ts';
import { run, streamFrom } from '../host/local.ts';

/** Runs the build command in APP_DIR, passing its output line by line to `onOutput`. */
export const runBuild = async (cfg: Config, onOutput: (text: string) => void): Promise<void> => {
  if (!cfg.build) return;
  const forward = (b: Buffer) => onOutput(b.toString());
  const result = await run(['/bin/sh', '-c', cfg.build], {
    cwd: cfg.app.dir,
    // The build is the developer's own command on this machine: it gets their whole environment
    // (npm config, proxies, toolchains), unlike the app on a host.
    env: { ...process.env } as Record<string, string>,
    check: false,
    onStdout: forward,
    onStderr: forward,
    label: 'local',
  });
  if (result.code !== 0) {
    const tail = `${result.stdout}${result.stderr}`.trim().split('\n').slice(-5).join('\n  ');
    throw new SkiffError(`build failed (exit ${result.code}) running \`${cfg.build}\` in ${cfg.app.dir}; nothing was shipped:\n  ${tail}`);
  }
  if (!existsSync(cfg.app.releaseDir)) {
    throw new SkiffError(`the build left no ${cfg.app.releaseDir}: check DEPLOY_RELEASE_DIR and DEPLOY_BUILD`);
  }
};

/**
 * Entries of the release folder as a tar stream, folders without their contents: a delta ship sends
 * the ones the host lacks, a whole ship every entry of the manifest (so what never ships stays out
 * of both). Names go to tar NUL-separated on stdin, each starting with `./`.
 */
export const releaseEntriesTar = (cfg: Config, paths: readonly string[]): { stream: Readable; done: Promise<void> } => {
  const list = Buffer.from(paths.map((p) => `./${p}\0`).join(''));
  const { stdout, done } = streamFrom(['tar', '-c', '-f', '-', '--no-recursion', '--null', '-T', '-'], cfg.app.releaseDir, list);
  return { stream: stdout, done };
};

/** The image a version builds into: `<app>:<version>` (a tag allows letters, digits, `_`, `.` and `-`). */
export const imageTag = (cfg: Config, version: string): string => `${cfg.app.name}:${version.replace(/[^A-Za-z0-9_.-]/g, '-')}`;

/** The Dockerfile of DEPLOY_DOCKERFILE; exit 2 before anything runs when it is missing. */
export const checkDockerfile = (cfg: Config): string => {
  const dockerfile = isAbsolute(cfg.dockerfile) ? cfg.dockerfile : join(cfg.app.dir, cfg.dockerfile);
  if (!existsSync(dockerfile)) {
    throw new SkiffError(`${dockerfile} does not exist: write a Dockerfile for the app, or point DEPLOY_DOCKERFILE at it (relative to APP_DIR)`, 2);
  }
  return dockerfile;
};

/**
 * DEPLOY_RUNTIME=docker: `docker build` of APP_DIR with DEPLOY_DOCKERFILE, tagged `<app>:<version>`
 * and labelled with the version, git sha and build time. Returns the image id.
 */
export const buildImage = async (
  cfg: Config,
  facts: { version: string; gitSha: string | undefined; builtAt: string },
  onOutput: (text: string) => void,
): Promise<{ tag: string; id: string }> => {
  const dockerfile = checkDockerfile(cfg);
  const env = { ...process.env } as Record<string, string>;
  const info = await run(['docker', 'info', '--format', '{{.ServerVersion}}'], { env, check: false, label: 'local' }).catch(() => undefined);
  if (!info) throw new SkiffError('docker is not installed on this machine: install it (Debian: apt-get install docker.io), or use DEPLOY_RUNTIME=process', 2);
  if (info.code !== 0) throw new SkiffError(`the Docker daemon on this machine does not answer: start it (systemctl start docker): ${info.stderr.trim().split('\n').at(-1) ?? ''}`);
  const tag = imageTag(cfg, facts.version);
  const forward = (b: Buffer) => onOutput(b.toString());
  const built = await run(
    dockerBuild({ tag, dockerfile, context: cfg.app.dir, buildArgs: cfg.dockerBuildArgs, labels: imageLabels(facts.version, facts.gitSha, facts.builtAt) }),
    { env, check: false, onStdout: forward, onStderr: forward, label: 'local' },
  );
  if (built.code !== 0) {
    const tail = `${built.stdout}${built.stderr}`.trim().split('\n').slice(-5).join('\n  ');
    throw new SkiffError(`docker build of ${tag} failed (exit ${built.code}); nothing was shipped:\n  ${tail}`);
  }
  const id = (await run(imageId(tag), { env, label: 'local' })).stdout.trim();
  return { tag, id };
};
