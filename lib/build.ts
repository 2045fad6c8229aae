/** The local build: DEPLOY_BUILD in APP_DIR, and the release folder it leaves, streamed as tar. */
import { existsSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { Config } from './config.ts';
import { SkiffError } from './errors.ts';
import { run, streamFrom } from './local.ts';

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
 * Some entries of the release folder as a tar stream, folders without their contents: what a delta
 * ship sends. Names go to tar NUL-separated on stdin, each starting with `./`.
 */
export const releaseEntriesTar = (cfg: Config, paths: readonly string[]): { stream: Readable; done: Promise<void> } => {
  const list = Buffer.from(paths.map((p) => `./${p}\0`).join(''));
  const { stdout, done } = streamFrom(['tar', '-c', '-f', '-', '--no-recursion', '--null', '-T', '-'], cfg.app.releaseDir, list);
  return { stream: stdout, done };
};

/** The release folder as a tar stream (no temporary archive on disk). Files like .git and data stay out. */
export const releaseTar = (cfg: Config): { stream: Readable; done: Promise<void> } => {
  if (!existsSync(cfg.app.releaseDir)) {
    throw new SkiffError(`${cfg.app.releaseDir} does not exist: check APP_DIR and DEPLOY_RELEASE_DIR (or run the build)`);
  }
  const { stdout, done } = streamFrom(
    ['tar', '-c', '-f', '-', '--exclude=./.git', '--exclude=./data', '--exclude=./.env', '--exclude=./.env.*', '.'],
    cfg.app.releaseDir,
  );
  return { stream: stdout, done };
};
