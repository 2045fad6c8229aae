/**
 * Where the env files are and which environments they name. Light on purpose (node built-ins only):
 * the Taskfile's argument checks use it without loading the config's validators.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { REPO_ROOT } from '../core/paths.ts';

/** Environment names: a-z, 0-9 and -. */
export const ENV_NAME = /^[a-z0-9-]+$/;

/** The folder of env files: env/ in the repo, or SKIFF_ENV_DIR. */
export const envDir = (processEnv: NodeJS.ProcessEnv = process.env): string =>
  processEnv.SKIFF_ENV_DIR ? resolve(processEnv.SKIFF_ENV_DIR) : join(REPO_ROOT, 'env');

/** Names of the environments that have an env file. */
export const listEnvs = (dir: string): string[] =>
  existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.env') && !f.endsWith('.secrets.env'))
        .map((f) => f.slice(0, -'.env'.length))
        .filter((n) => ENV_NAME.test(n))
        .sort()
    : [];
