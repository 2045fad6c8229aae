/**
 * Where the env files are and which environments they name. Light on purpose (node built-ins only):
 * the Taskfile's argument checks use it without loading the config's validators.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { secretParts } from '../core/cmd.ts';
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

/** Names that say a value is a secret: passwords, tokens, keys, credentials, DSNs. */
const SECRET_NAME = /PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE|(^|_)(KEY|DSN|PASS)(_|$)/i;

/**
 * Whether a key's value is a secret wherever it is set (env file, secrets file or the process
 * environment): BACKUP_POSTGRES_URL, an app key whose name says so (`*_PASSWORD`, `API_KEY`,
 * `SESSION_SECRET`, ...), and any value that is a URL with a password in it. A key set in the
 * secrets file is secret too; that is the config's to know.
 */
export const isSecretSetting = (key: string, value: string | undefined): boolean =>
  key === 'BACKUP_POSTGRES_URL' ||
  (!/^(APP_NAME|APP_DIR|DEPLOY_.*|BACKUP_.*)$/.test(key) && SECRET_NAME.test(key)) ||
  (value !== undefined && secretParts(value).length > 0);
