/**
 * Where the env files are and which environments they name. Light on purpose (node built-ins only):
 * the Taskfile's argument checks use it without loading the config's validators.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { carriesPassword } from '../core/cmd.ts';
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

/**
 * Words that say a value is a secret, as whole parts of a key name between underscores (or at its
 * start or end): `DB_PASSWORD`, `SESSION_SECRET`, `GITHUB_TOKEN`, `API_KEY`, `SENTRY_DSN`, but not
 * `PRIVATE_NETWORK`, `PASSWORDLESS_LOGIN` or `MONKEY`. `STRONG` ones mark skiff's own keys too;
 * `KEY` alone does not there (`DEPLOY_SSH_KEY` is a path).
 */
const STRONG = 'PASSWORDS?|PASSWD|SECRETS?|TOKENS?|CREDENTIALS?|PRIVATE_KEY|API_KEY';
const SECRET_NAME = new RegExp(`(^|_)(${STRONG}|KEYS?|DSN|PASS)(_|$)`, 'i');
const SECRET_SKIFF_NAME = new RegExp(`(^|_)(${STRONG})(_|$)`, 'i');

/** skiff's own keys, whose names are not an app's: most hold paths, names and numbers. */
const SKIFF_KEY = /^(APP_NAME|APP_DIR|DEPLOY_.*|BACKUP_.*)$/;

/**
 * Whether a key's value is a secret wherever it is set (env file, secrets file or the process
 * environment): BACKUP_POSTGRES_URL and BACKUP_SIGNING_KEY, a key whose name says so (`*_PASSWORD`,
 * `API_KEY`, `SESSION_SECRET`, ...; for skiff's own keys only the words of `STRONG`), and any value
 * that is a URL with a password in it. A key set in the secrets file is secret too; that is the
 * config's to know.
 */
export const isSecretSetting = (key: string, value: string | undefined): boolean =>
  key === 'BACKUP_POSTGRES_URL' ||
  key === 'BACKUP_SIGNING_KEY' ||
  (SKIFF_KEY.test(key) ? SECRET_SKIFF_NAME : SECRET_NAME).test(key) ||
  (value !== undefined && carriesPassword(value));
