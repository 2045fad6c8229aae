/**
 * Loads `env/<name>.env`, then `env/<name>.secrets.env`, then the process environment (later wins),
 * validates every key with zod and returns one frozen Config. A ConfigError lists every bad key.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, posix, relative, resolve } from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import { z } from 'zod';
import { Secret } from '../core/cmd.ts';
import { ConfigError, UsageError, type ConfigIssue } from '../core/errors.ts';
import { REPO_ROOT } from '../core/paths.ts';
import { defaultAppDir } from '../init/manifest.ts';
import { ENV_NAME, envDir, isSecretSetting, listEnvs } from './env-files.ts';
import { parsePgUrl } from './pg-url.ts';
import { prefixProblem } from '../proxy/route.ts';
import { parseWorkers, type WorkerSpec } from './workers.ts';

export { ENV_NAME, envDir, listEnvs };

export type Target = { readonly kind: 'local' } | { readonly kind: 'ssh'; readonly user: string; readonly host: string; readonly port: number };

/** Response headers the proxy sets: Strict-Transport-Security (https only), X-Content-Type-Options, X-Frame-Options, Referrer-Policy. */
export type Header = 'hsts' | 'nosniff' | 'frame' | 'referrer';
export type Compression = 'zstd' | 'gzip';

export interface Config {
  readonly env: string;
  readonly root: string;
  readonly app: { readonly name: string; readonly dir: string; readonly releaseDir: string };
  readonly hosts: readonly Target[];
  /** Root of the app on each host (DEPLOY_PATH), absolute. */
  readonly path: string;
  readonly runtime: 'process' | 'docker';
  readonly supervisor: 'pidfile' | 'systemd';
  readonly proxy: 'caddy' | 'nginx' | 'haproxy' | 'none';
  /** Slot ports: [blue] with proxy none, [blue, green] otherwise. */
  readonly ports: readonly number[];
  readonly publicUrl: string | undefined;
  readonly caddyAdmin: string;
  /** HAProxy: its runtime API socket, the folder of skiff's config files, its command (`-c`), and the command that reloads it. */
  readonly haproxy: { readonly socket: string; readonly confDir: string; readonly cmd: string; readonly reload: string };
  /**
   * TLS for an https DEPLOY_PUBLIC_URL: given certificate and key files on the host (any proxy), else
   * Caddy's automatic certificates from the ACME directory `acmeCa` (Let's Encrypt's when unset).
   */
  readonly tls: {
    readonly cert: string | undefined;
    readonly key: string | undefined;
    /** nginx with an https URL and no files: certbot's files for the URL host (`cert`, `key`), obtained by setup. */
    readonly certbot: boolean;
    readonly acmeCa: string | undefined;
    readonly acmeEmail: string | undefined;
    /** DEPLOY_ACME_CA_ROOT: the CA (PEM, on the host) that Caddy trusts for a private ACME directory's own HTTPS. */
    readonly acmeCaRoot: string | undefined;
  };
  /**
   * What the proxy adds to every answer: security headers, compression, JSON access logs (in
   * `accessLogDir`; undefined: the proxy's own log folder, /var/log/caddy or /var/log/nginx).
   */
  readonly http: {
    readonly headers: readonly Header[];
    readonly compression: readonly Compression[];
    readonly accessLog: 'json' | 'off';
    readonly accessLogDir: string | undefined;
  };
  readonly nginxConfDir: string;
  readonly nginxCmd: string;
  /** DEPLOY_SWITCH_DIR: the folder of the envs' flag folders, each holding the flag that picks its live slot (Caddy, nginx); undefined: the driver's default (lib/proxy/switch-flag.ts). */
  readonly switchDir: string | undefined;
  readonly health: { readonly path: string; readonly timeoutSeconds: number };
  readonly keepReleases: number;
  /** DEPLOY_SHIP_COMPRESSION: how the delta tar and the docker archive travel (lib/ship/compress.ts). */
  readonly shipCompression: 'auto' | 'zstd' | 'gzip' | 'none';
  readonly build: string | undefined;
  readonly start: string;
  readonly dockerfile: string;
  readonly dockerBuildArgs: readonly string[];
  readonly drainSeconds: number;
  /** DEPLOY_MEMORY_LIMIT and DEPLOY_CPU_LIMIT: what a slot may use (systemd or docker). */
  readonly limits: { readonly memory: { readonly bytes: number; readonly text: string } | undefined; readonly cpus: number | undefined };
  readonly sshKey: string | undefined;
  readonly knownHosts: string | undefined;
  /** Ask before deploying (default: only for the env named `production`). */
  readonly confirm: boolean;
  readonly backup: {
    readonly paths: readonly string[];
    readonly sqlite: readonly string[];
    readonly postgresUrl: Secret | undefined;
    readonly keep: number;
    /** DEPLOY_BACKUP_BEFORE: a deploy takes a backup before the new release starts. */
    readonly beforeDeploy: boolean;
    /** BACKUP_ENCRYPT_TO: the age recipient downloaded copies are encrypted to. */
    readonly encryptTo: string | undefined;
    /** BACKUP_AGE_IDENTITY: the file of the age identity that decrypts them (restore). */
    readonly ageIdentity: string | undefined;
    /** BACKUP_SIGNING_KEY: the operator's key of the MAC over each backup's manifest (checked before a copy is restored). */
    readonly signingKey: Secret | undefined;
  };
  /** DEPLOY_RELEASE_CMD: run on each host in the new release folder, with its environment, before it starts (docs/migrations.md). */
  readonly releaseCmd: string | undefined;
  /** DEPLOY_RELEASE_CMD_TIMEOUT: seconds it may run. */
  readonly releaseCmdTimeoutSeconds: number;
  /** DEPLOY_RELEASE_CACHE: folders the release command makes, each reused from the live release while its input files are unchanged. */
  readonly releaseCache: readonly CacheEntry[];
  /** DEPLOY_MIGRATE: run once per deploy (on the first host) after the new release is healthy in its slot, before the switch. */
  readonly migrate: string | undefined;
  /** DEPLOY_MIGRATE_TIMEOUT: seconds it may run. */
  readonly migrateTimeoutSeconds: number;
  /** DEPLOY_WORKERS: processes of the release that serve no HTTP, started and stopped with it (docs/workers.md). */
  readonly workers: readonly WorkerSpec[];
  /** DEPLOY_WORKER_GRACE_SECONDS: how long an old worker may finish its job after SIGTERM (default DEPLOY_DRAIN_SECONDS). */
  readonly workerGraceSeconds: number;
  /** DEPLOY_WORKER_UP_SECONDS: how long a new worker must stay up before the deploy counts it started. */
  readonly workerUpSeconds: number;
  /** Every key that is not skiff's: the app's environment, written to shared/.env. */
  readonly appEnv: Readonly<Record<string, string | Secret>>;
}

/** One entry of DEPLOY_RELEASE_CACHE: a folder of the release and the files whose content it is made from. */
export interface CacheEntry {
  readonly folder: string;
  readonly inputs: readonly string[];
}

/** A path inside the release folder: relative, no `..`, not the folder itself, no control character, no `:` or `,`. */
const isReleasePath = (p: string): boolean =>
  p !== '' && !p.startsWith('/') && !p.split('/').includes('..') && posix.normalize(p) !== '.' && !/[\u0000-\u001f\u007f:,]/.test(p);

/** `folder:input[,input] ...`, separated by spaces: e.g. `node_modules:package-lock.json .venv:requirements.txt`. */
const releaseCache = z
  .string()
  .transform((v) => v.split(/\s+/).filter(Boolean))
  .pipe(
    z.array(
      z
        .string()
        .regex(/^[^:]+:[^:]+$/)
        .transform((e): CacheEntry => {
          const [folder = '', inputs = ''] = e.split(':');
          return { folder: posix.normalize(folder).replace(/\/+$/, ''), inputs: inputs.split(',').filter(Boolean).map((i) => posix.normalize(i)) };
        })
        .refine((e) => isReleasePath(e.folder) && e.inputs.length > 0 && e.inputs.every(isReleasePath)),
    ),
  )
  .refine((es) => new Set(es.map((e) => e.folder)).size === es.length, 'a folder listed twice')
  .refine((es) => es.every((e) => es.every((o) => o === e || !o.folder.startsWith(`${e.folder}/`))), 'one folder inside another');

const NAME = /^[a-z0-9-]+$/;
const APP_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Keys the deploy sets for the app itself; an env file may not set them. */
const RESERVED_APP_KEYS = new Set(['PORT', 'DATA_DIR', 'APP_VERSION', 'APP_ENV', 'SKIFF_SLOT']);

const str = z.string();
const nonEmpty = z.string().min(1);
const int = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/)
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));
const bool = z.enum(['true', 'false']).transform((v) => v === 'true');
const list = z.string().transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean));
/**
 * Paths under shared/: relative, no `..`, not shared/ itself (`.`, `./`, `./.`), each written once in
 * its plain form (`./uploads/` becomes `uploads`), none inside another (the restore swaps each one whole).
 */
const sharedPaths = list
  .refine((ps) => ps.every((p) => !p.startsWith('/') && !p.split('/').includes('..')), 'outside shared/')
  .transform((ps) => ps.map((p) => posix.normalize(p).replace(/\/+$/, '')))
  .refine((ps) => ps.every((p) => p !== '.' && p !== ''), 'all of shared/')
  .refine((ps) => ps.every((p, i) => ps.every((q, j) => i === j || (p !== q && !q.startsWith(`${p}/`)))), 'one inside another');
/** BACKUP_PATHS: as above, and never shared/.env, which every backup holds already (as `env`) and restore leaves alone. */
const backupPaths = sharedPaths.refine((ps) => ps.every((p) => p !== '.env'), '.env');

const port = int(1, 65535);
const ports = z
  .string()
  .transform((v) => v.split(',').map((s) => s.trim()))
  .pipe(z.array(port).min(1).max(2))
  .refine((p) => new Set(p).size === p.length, 'equal ports');

const HOST_ENTRY = /^([a-z_][a-z0-9_.-]*)@([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::(\d{1,5}))?$/;
const hosts = z
  .string()
  .transform((v) => v.split(',').map((s) => s.trim()))
  .pipe(z.array(z.string().refine((h) => h === 'local' || HOST_ENTRY.test(h))).min(1))
  .transform((entries): Target[] =>
    entries.map((h) => {
      const m = HOST_ENTRY.exec(h);
      if (!m) return { kind: 'local' };
      return { kind: 'ssh', user: m[1] as string, host: (m[2] as string).replace(/^\[|\]$/g, ''), port: Number(m[3] ?? 22) };
    }),
  )
  .refine((t) => t.every((x) => x.kind === 'ssh') || t.length === 1, 'local with others')
  .refine((t) => t.every((x) => x.kind === 'local' || (x.port >= 1 && x.port <= 65535)), 'port')
  .refine((t) => new Set(t.map((x) => (x.kind === 'local' ? 'local' : `${x.host}:${x.port}`))).size === t.length, 'a host listed twice');

interface KeySpec {
  readonly schema: z.ZodType;
  readonly expected: string;
  readonly hint?: string;
  readonly default?: string;
}

/** Every key skiff reads, what it must look like, and its default. docs/configuration.md mirrors it. */
export const KEYS = {
  APP_NAME: { schema: str.regex(NAME), expected: 'a name of a-z, 0-9 and -', hint: 'e.g. APP_NAME=hello' },
  APP_DIR: { schema: nonEmpty, expected: 'the app source folder', default: 'example' },
  DEPLOY_HOSTS: { schema: hosts, expected: '`local` or comma-separated user@host[:port], each host once', default: 'local' },
  DEPLOY_PATH: { schema: nonEmpty, expected: 'an absolute path other than /', hint: 'e.g. DEPLOY_PATH=/srv/hello' },
  DEPLOY_RUNTIME: { schema: z.enum(['process', 'docker']), expected: '`process` or `docker`', default: 'process' },
  DEPLOY_SUPERVISOR: { schema: z.enum(['pidfile', 'systemd']), expected: '`pidfile` or `systemd`', default: 'pidfile' },
  DEPLOY_PROXY: { schema: z.enum(['caddy', 'nginx', 'haproxy', 'none']), expected: '`caddy`, `nginx`, `haproxy` or `none`', default: 'none' },
  DEPLOY_PORTS: {
    schema: ports,
    expected: 'one port (proxy none) or two different ports, each 1-65535',
    hint: 'e.g. DEPLOY_PORTS=3001,3002',
  },
  DEPLOY_PUBLIC_URL: { schema: z.url({ protocol: /^https?$/ }), expected: 'an http(s) URL', hint: 'e.g. https://app.example.com' },
  DEPLOY_CADDY_ADMIN: { schema: str.regex(/^[A-Za-z0-9.-]+:\d{1,5}$/), expected: 'host:port of the Caddy admin API', default: '127.0.0.1:2019' },
  DEPLOY_NGINX_CONF_DIR: { schema: str.regex(/^\//), expected: 'an absolute folder', default: '/etc/nginx/conf.d' },
  DEPLOY_NGINX_CMD: { schema: nonEmpty, expected: 'the nginx command', default: 'nginx' },
  DEPLOY_HAPROXY_SOCKET: { schema: str.regex(/^\/[^\u0000-\u001f]*$/), expected: "an absolute path: HAProxy's runtime API socket (level admin)", default: '/run/haproxy/admin.sock' },
  DEPLOY_HAPROXY_CONF_DIR: { schema: str.regex(/^\/[^\u0000-\u001f]*$/), expected: 'an absolute folder HAProxy loads (-f)', default: '/etc/haproxy/conf.d' },
  DEPLOY_HAPROXY_CMD: { schema: nonEmpty, expected: 'the haproxy command (for -c)', default: 'haproxy' },
  DEPLOY_HAPROXY_RELOAD: { schema: nonEmpty, expected: 'the command that reloads HAProxy', default: 'systemctl reload haproxy' },
  DEPLOY_TLS_CERT: { schema: str.regex(/^\/[^\u0000-\u001f]*$/), expected: 'an absolute path on the host: the certificate chain (PEM)' },
  DEPLOY_TLS_KEY: { schema: str.regex(/^\/[^\u0000-\u001f]*$/), expected: 'an absolute path on the host: the private key (PEM)' },
  DEPLOY_ACME_CA: { schema: z.url({ protocol: /^https$/ }), expected: "an https URL of an ACME directory (Caddy's automatic certificates)", hint: "e.g. https://acme-staging-v02.api.letsencrypt.org/directory" },
  DEPLOY_ACME_EMAIL: { schema: z.email(), expected: 'an email address for the ACME account' },
  DEPLOY_ACME_CA_ROOT: {
    schema: str.regex(/^\/[^\u0000-\u001f]*$/),
    expected: "an absolute path on the host: the CA certificate (PEM) of the ACME directory's own HTTPS",
    hint: 'for a private ACME server, with DEPLOY_ACME_CA',
  },
  DEPLOY_HEADERS: {
    schema: list.pipe(z.array(z.enum(['hsts', 'nosniff', 'frame', 'referrer', 'none']))).refine((l) => !l.includes('none') || l.length === 1),
    expected: 'comma-separated hsts, nosniff, frame, referrer, or none',
    default: 'hsts,nosniff,frame,referrer',
  },
  DEPLOY_COMPRESSION: {
    schema: list.pipe(z.array(z.enum(['zstd', 'gzip', 'none']))).refine((l) => !l.includes('none') || l.length === 1),
    expected: 'comma-separated zstd, gzip, or none',
    default: 'zstd,gzip',
  },
  DEPLOY_ACCESS_LOG: { schema: z.enum(['json', 'off']), expected: '`json` or `off`', default: 'json' },
  DEPLOY_ACCESS_LOG_DIR: {
    schema: str.regex(/^\/[^\u0000-\u001f]*$/),
    expected: 'an absolute folder on the host that the proxy can write',
    hint: 'default /var/log/caddy or /var/log/nginx',
  },
  DEPLOY_SWITCH_DIR: {
    schema: str.regex(/^\/[A-Za-z0-9._\/-]*$/),
    expected: 'an absolute folder on the host of letters, digits and - . _ / (the env\'s flag folder is <app>-<env> in it; Caddy and nginx stat the flag for each request)',
    hint: 'default /var/lib/skiff (Caddy); nginx: DEPLOY_NGINX_CONF_DIR/<app>-<env>.slot',
  },
  DEPLOY_HEALTH_PATH: { schema: str.regex(/^\/[^\s]*$/), expected: 'a URL path starting with /', default: '/api/health' },
  DEPLOY_HEALTH_TIMEOUT: { schema: int(1, 3600), expected: 'seconds, 1-3600', default: '60' },
  DEPLOY_SHIP_COMPRESSION: {
    schema: z.enum(['auto', 'zstd', 'gzip', 'none']),
    expected: '`auto`, `zstd`, `gzip` or `none`',
    hint: 'auto: zstd where both ends have it, else gzip; none to this machine itself',
    default: 'auto',
  },
  DEPLOY_KEEP_RELEASES: { schema: int(1, 1000), expected: 'a whole number of at least 1', hint: 'the live release counts', default: '3' },
  DEPLOY_BUILD: { schema: str, expected: 'a shell command run in APP_DIR', default: '' },
  DEPLOY_START: { schema: nonEmpty, expected: 'the command that starts the app in a release', hint: 'e.g. DEPLOY_START=node server.js' },
  DEPLOY_RELEASE_DIR: { schema: str.refine((p) => !isAbsolute(p) && !p.split('/').includes('..')), expected: 'a folder inside APP_DIR', default: '.' },
  DEPLOY_DOCKERFILE: { schema: nonEmpty, expected: 'a Dockerfile path relative to APP_DIR', default: 'Dockerfile' },
  DEPLOY_DOCKER_BUILD_ARGS: { schema: list, expected: 'comma-separated NAME=value', default: '' },
  DEPLOY_DRAIN_SECONDS: { schema: int(0, 3600), expected: 'seconds, 0-3600', default: '10' },
  DEPLOY_MEMORY_LIMIT: { schema: str.regex(/^[1-9][0-9]{0,15}[KMG]?$/i), expected: 'a size in bytes with K, M or G, e.g. 512M', hint: 'the most memory a slot may use' },
  DEPLOY_CPU_LIMIT: {
    schema: str.regex(/^[0-9]{1,4}(\.[0-9]{1,2})?$/).refine((v) => Number(v) > 0 && Number(v) <= 1024),
    expected: 'a number of CPUs above 0, e.g. 0.5 or 2',
    hint: 'the most CPU time a slot may use',
  },
  DEPLOY_SSH_KEY: { schema: nonEmpty, expected: 'a private key file' },
  DEPLOY_KNOWN_HOSTS: { schema: nonEmpty, expected: 'a known_hosts file' },
  DEPLOY_CONFIRM: { schema: bool, expected: '`true` or `false`' },
  DEPLOY_BACKUP_BEFORE: { schema: bool, expected: '`true` or `false`', default: 'false' },
  DEPLOY_RELEASE_CMD: { schema: str, expected: 'a shell command run in the new release folder on each host', hint: 'e.g. DEPLOY_RELEASE_CMD=npm ci --omit=dev', default: '' },
  DEPLOY_RELEASE_CMD_TIMEOUT: { schema: int(1, 86400), expected: 'seconds, 1-86400', default: '900' },
  DEPLOY_RELEASE_CACHE: {
    schema: releaseCache,
    expected: 'space-separated folder:input[,input] entries, paths inside the release (relative, no ..), each folder once, none inside another',
    hint: 'e.g. DEPLOY_RELEASE_CACHE=node_modules:package-lock.json .venv:requirements.txt',
    default: '',
  },
  DEPLOY_MIGRATE: { schema: str, expected: 'a shell command run once per deploy in the new release folder', hint: 'e.g. DEPLOY_MIGRATE=npx knex migrate:latest', default: '' },
  DEPLOY_MIGRATE_TIMEOUT: { schema: int(1, 86400), expected: 'seconds, 1-86400', default: '600' },
  // Parsed in parseConfig (lib/config/workers.ts), so a bad entry is named in the error.
  DEPLOY_WORKERS: { schema: str, expected: '`;`-separated name[:count]=command entries', hint: 'e.g. DEPLOY_WORKERS=queue:2=node worker.js;mailer=node mail.js', default: '' },
  DEPLOY_WORKER_GRACE_SECONDS: { schema: int(0, 3600), expected: 'seconds, 0-3600', hint: 'default DEPLOY_DRAIN_SECONDS' },
  DEPLOY_WORKER_UP_SECONDS: { schema: int(1, 600), expected: 'seconds, 1-600', default: '2' },
  BACKUP_PATHS: {
    schema: backupPaths,
    expected: 'comma-separated files or folders inside shared/ (relative, no .., not shared/ itself, not .env, none inside another)',
    hint: 'e.g. BACKUP_PATHS=uploads; shared/.env is always backed up',
    default: '',
  },
  BACKUP_SQLITE: { schema: sharedPaths, expected: 'comma-separated SQLite files under shared/ (relative, no .., each once)', default: '' },
  BACKUP_POSTGRES_URL: {
    // Read as libpq reads it (lib/config/pg-url.ts): what pg_dump gets is what the URL says, or the env is refused.
    schema: str.refine((u) => {
      try {
        parsePgUrl(u);
        return true;
      } catch {
        return false;
      }
    }),
    expected: 'a postgres:// URL as libpq reads it: postgres://user:password@host:port/db?sslmode=...',
    hint: 'percent-encode @ : / % in the user and password; a socket is ?host=/var/run/postgresql; parameters: host, port, sslmode, sslrootcert, connect_timeout ...',
  },
  BACKUP_KEEP: { schema: int(1, 1000), expected: 'a whole number of at least 1', default: '10' },
  BACKUP_ENCRYPT_TO: { schema: str.regex(/^age1[0-9a-z]{20,}$/), expected: 'an age recipient (age1...)', hint: 'make one with age-keygen, or see docs/backups.md' },
  BACKUP_AGE_IDENTITY: { schema: nonEmpty, expected: 'the file of an age identity (AGE-SECRET-KEY-1...)' },
  BACKUP_SIGNING_KEY: { schema: str.regex(/^\S{32,}$/), expected: 'a random key of at least 32 characters, no spaces', hint: 'make one with `openssl rand -hex 32`; keep it in the secrets file' },
} satisfies Record<string, KeySpec>;

type Key = keyof typeof KEYS;
/** The table as plain specs, for code that walks every key. */
const SPECS: Readonly<Record<Key, KeySpec>> = KEYS;

/** What each key of the table parses to; only a key without a default can be undefined. */
type Parsed = {
  readonly [K in Key]: z.output<(typeof KEYS)[K]['schema']> | ((typeof KEYS)[K] extends { default: string } ? never : undefined);
};

const isSkiffKey = (k: string): boolean => k === 'APP_NAME' || k === 'APP_DIR' || k.startsWith('DEPLOY_') || k.startsWith('BACKUP_');

/** The layers of one environment: each key's value, the file it came from, and which came from the secrets file. */
interface Source {
  readonly values: Readonly<Record<string, string>>;
  readonly origin: Readonly<Record<string, string>>;
  readonly secretKeys: ReadonlySet<string>;
}

/** A Source while its layers are read in, later layers overwriting earlier ones. */
interface SourceBeingRead {
  values: Record<string, string>;
  origin: Record<string, string>;
  secretKeys: Set<string>;
}

/** A path as users know it: relative to the repo when inside it. */
const shown = (path: string): string => (path.startsWith(`${REPO_ROOT}/`) ? relative(REPO_ROOT, path) : path);

/** Checks an environment name before any file is opened. */
export const checkEnvName = (env: string, dir: string): void => {
  if (!ENV_NAME.test(env)) {
    throw new UsageError(`environment name ${JSON.stringify(env)} is invalid: use a-z, 0-9 and - only (e.g. staging)`);
  }
  if (!existsSync(join(dir, `${env}.env`))) {
    const example = existsSync(join(dir, `${env}.env.example`))
      ? `; copy ${shown(join(dir, `${env}.env.example`))} to ${shown(join(dir, `${env}.env`))} and edit it`
      : '';
    const known = listEnvs(dir);
    throw new UsageError(`unknown environment "${env}": no ${shown(join(dir, `${env}.env`))}${example || `; known: ${known.join(', ') || 'none'}`}`);
  }
};

const readEnvFile = (file: string, label: string, secret: boolean, into: SourceBeingRead): void => {
  if (!existsSync(file)) return;
  if (secret) {
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) {
      throw new ConfigError(
        `${label} is readable by group or others (mode ${mode.toString(8)}): run \`chmod 600 ${file}\``,
      );
    }
  }
  const parsed = parseDotenv(readFileSync(file));
  for (const [k, v] of Object.entries(parsed)) {
    into.values[k] = v;
    into.origin[k] = label;
    if (secret) into.secretKeys.add(k);
    else into.secretKeys.delete(k);
  }
};

/**
 * Variables every shell sets for itself: a file's HOME or PATH is the app's, and the deploying
 * shell's own value must not replace it (it would ship this machine's PATH to the host).
 */
const SHELL_OWN = /^(HOME|PATH|USER|LOGNAME|SHELL|PWD|OLDPWD|SHLVL|TERM|LANG|LANGUAGE|LC_[A-Z]+|TMPDIR|HOSTNAME|MAIL|_)$/;

/** Reads the three layers for one environment. The process environment overrides skiff's keys and keys the files name. */
export const readLayers = (env: string, dir: string, processEnv: NodeJS.ProcessEnv): Source => {
  const source: SourceBeingRead = { values: {}, origin: {}, secretKeys: new Set() };
  readEnvFile(join(dir, `${env}.env`), `env/${env}.env`, false, source);
  readEnvFile(join(dir, `${env}.secrets.env`), `env/${env}.secrets.env`, true, source);
  for (const [k, v] of Object.entries(processEnv)) {
    if (v !== undefined && (isSkiffKey(k) || (Object.hasOwn(source.values, k) && !SHELL_OWN.test(k)))) {
      source.values[k] = v;
      source.origin[k] = 'environment';
    }
  }
  return source;
};

/** The Levenshtein distance between two keys, computed one row of the table at a time. */
const editDistance = (a: string, b: string): number => {
  // above[j] is the distance from a's first i characters to b's first j; `distance` is the cell last
  // written, so after both loops it is the one for all of a and all of b.
  let above = Array.from({ length: b.length + 1 }, (_, j) => j);
  let distance = b.length;
  for (let i = 0; i < a.length; i++) {
    let diagonal = i;
    distance = i + 1;
    const row = [distance];
    for (const [j, up] of above.slice(1).entries()) {
      distance = Math.min(up + 1, distance + 1, diagonal + (a[i] === b[j] ? 0 : 1));
      diagonal = up;
      row.push(distance);
    }
    above = row;
  }
  return distance;
};

/** The candidate nearest to a mistyped key, if one is at most three edits away (the first of equals). */
const closest = (key: string, candidates: readonly string[]): string | undefined => {
  const scored = candidates.map((candidate) => ({ candidate, distance: editDistance(key, candidate) }));
  const best = scored.sort((x, y) => x.distance - y.distance)[0];
  return best && best.distance <= 3 ? best.candidate : undefined;
};

const expandHome = (p: string, home: string): string => (p === '~' ? home : p.startsWith('~/') ? join(home, p.slice(2)) : p);

type IssueOf = (key: string, expected: string, hint?: string) => ConfigIssue;

/** Builds the issues of one environment: each names the file its value came from and hides a secret value. */
const issuesOf = (env: string, source: Source): IssueOf => (key, expected, hint) => ({
  key,
  file: source.origin[key] ?? `env/${env}.env`,
  value: source.values[key],
  expected,
  ...(hint ? { hint } : {}),
  ...(source.secretKeys.has(key) || isSecretSetting(key, source.values[key]) ? { secret: true } : {}),
});

/**
 * Parses every key of the table, with an issue for each bad value. A bad value is replaced by the
 * key's default, like an absent one, so the checks across keys still run with the value skiff would use.
 */
const parseKeys = (source: Source, issue: IssueOf): { values: Parsed; issues: ConfigIssue[] } => {
  const values: Record<string, unknown> = {};
  const issues: ConfigIssue[] = [];
  for (const [key, spec] of Object.entries(SPECS)) {
    const given = source.values[key];
    const result = given === undefined ? undefined : spec.schema.safeParse(given);
    if (result?.success) {
      values[key] = result.data;
      continue;
    }
    if (result) issues.push(issue(key, spec.expected, spec.hint));
    // A default that fails its own schema is a bug in the table, not in the config: let zod throw.
    values[key] = spec.default === undefined ? undefined : spec.schema.parse(spec.default);
  }
  // TypeScript cannot follow a loop over the table to each key's own output type; the loop sets every
  // key from its own schema, and every key with a default to a value.
  return { values: values as Parsed, issues };
};

/** Issues with keys that are not skiff's own: unknown skiff keys, reserved and badly named app keys. */
const keyNameIssues = (source: Source, runtime: Config['runtime'], issue: IssueOf): ConfigIssue[] => {
  const issues: ConfigIssue[] = [];
  for (const key of Object.keys(source.values)) {
    if (isSkiffKey(key) && !(key in KEYS)) {
      const guess = closest(key, Object.keys(KEYS));
      issues.push({ ...issue(key, 'a known key', guess ? `did you mean ${guess}?` : 'see docs/configuration.md'), problem: 'is not a key skiff knows' });
    } else if (!isSkiffKey(key) && RESERVED_APP_KEYS.has(key)) {
      issues.push({ ...issue(key, '', key === 'PORT' ? 'set DEPLOY_PORTS instead' : 'remove it'), problem: 'is set by skiff for the app and cannot be set here' });
    } else if (!isSkiffKey(key) && runtime === 'docker' && /^DOCKER_/.test(key)) {
      // The app's keys are in the environment of the docker command that starts the container.
      issues.push({ ...issue(key, '', 'rename it: with DEPLOY_RUNTIME=docker a DOCKER_* key would steer the docker command on the host'), problem: 'cannot be an app key with the docker runtime' });
    } else if (!isSkiffKey(key) && !APP_KEY.test(key)) {
      issues.push({ ...issue(key, ''), problem: 'is not a valid variable name: use letters, digits and _' });
    }
  }
  return issues;
};

/** DEPLOY_PATH as the hosts use it: ~ expanded for the local host, no trailing slash. */
const deployPath = (given: string, local: boolean, home: string): string => (local ? expandHome(given, home) : given).replace(/\/+$/, '');
/**
 * An absolute path below the root, with no `..` and no control character: `/.` is the root, and a
 * newline in the path would split the host commands that name it (a stop could match another env).
 */
export const isDeployPath = (path: string): boolean =>
  isAbsolute(path) && !path.split('/').includes('..') && posix.normalize(path) !== '/' && !/[\u0000-\u001f\u007f]/.test(path);

/** The app's environment: every key that is not skiff's, the secret ones wrapped. */
const appEnvOf = (source: Source): Record<string, string | Secret> => {
  const appEnv: Record<string, string | Secret> = {};
  for (const [k, v] of Object.entries(source.values)) {
    if (!isSkiffKey(k)) appEnv[k] = source.secretKeys.has(k) || isSecretSetting(k, v) ? new Secret(v) : v;
  }
  return appEnv;
};

/** Validates the layers into a frozen Config, or throws one ConfigError that lists every problem. */
export const parseConfig = (env: string, source: Source, opts: { root: string; home: string }): Config => {
  const issue = issuesOf(env, source);
  const table = parseKeys(source, issue);
  const { values } = table;
  const issues = [...table.issues];
  const bad = (key: Key, expected: string, hint?: string) => issues.push(issue(key, expected, hint));
  const missing = (key: Key): void => {
    if (source.values[key] === undefined) bad(key, SPECS[key].expected, SPECS[key].hint);
  };

  missing('APP_NAME');
  missing('DEPLOY_PATH');
  const runtime = values.DEPLOY_RUNTIME;
  if (runtime === 'process') missing('DEPLOY_START');
  issues.push(...keyNameIssues(source, runtime, issue));

  const local = values.DEPLOY_HOSTS.every((h) => h.kind === 'local');
  const path = values.DEPLOY_PATH === undefined ? undefined : deployPath(values.DEPLOY_PATH, local, opts.home);
  if (path !== undefined && !isDeployPath(path)) bad('DEPLOY_PATH', KEYS.DEPLOY_PATH.expected, local ? 'e.g. ~/.local/share/skiff/hello' : 'e.g. /srv/hello');

  const proxy = values.DEPLOY_PROXY;
  const ports = values.DEPLOY_PORTS;
  if (ports && proxy === 'none' && ports.length !== 1) bad('DEPLOY_PORTS', 'one port with DEPLOY_PROXY=none', 'or set DEPLOY_PROXY');
  if (ports && proxy !== 'none' && ports.length !== 2) bad('DEPLOY_PORTS', `two ports (blue,green) with DEPLOY_PROXY=${proxy}`);
  missing('DEPLOY_PORTS');
  if (proxy !== 'none' && source.values.DEPLOY_PUBLIC_URL === undefined) bad('DEPLOY_PUBLIC_URL', `the URL the ${proxy} proxy serves`, 'e.g. http://127.0.0.1:8080');
  const https = values.DEPLOY_PUBLIC_URL?.startsWith('https:') ?? false;
  if (https && proxy === 'none') bad('DEPLOY_PUBLIC_URL', 'an http:// URL with DEPLOY_PROXY=none (TLS is the proxy\'s work)', 'set DEPLOY_PROXY, or use http://');
  const urlHost = values.DEPLOY_PUBLIC_URL === undefined ? '' : new URL(values.DEPLOY_PUBLIC_URL).hostname;
  const ipHost = /^\[.*\]$/.test(urlHost) || /^\d{1,3}(\.\d{1,3}){3}$/.test(urlHost);
  const givenCert = values.DEPLOY_TLS_CERT !== undefined;
  if (https && proxy === 'caddy' && !givenCert && ipHost) {
    bad('DEPLOY_PUBLIC_URL', 'a domain name for an ACME certificate (an IP address gets none)', 'use the domain, or give DEPLOY_TLS_CERT and DEPLOY_TLS_KEY');
  }
  // nginx without files: certbot's certificate for the URL host, which setup obtains.
  const certbot = https && proxy === 'nginx' && !givenCert;
  if (https && proxy === 'nginx' && !givenCert && ipHost) {
    bad('DEPLOY_PUBLIC_URL', 'a domain name for a certificate from certbot (an IP address gets none)', 'use the domain, or give DEPLOY_TLS_CERT and DEPLOY_TLS_KEY');
  }
  if (https && proxy === 'haproxy' && !givenCert) {
    bad('DEPLOY_TLS_CERT', `the certificate for ${urlHost} with DEPLOY_PROXY=${proxy} and an https URL`, 'e.g. DEPLOY_TLS_CERT=/etc/letsencrypt/live/example.com/fullchain.pem, with DEPLOY_TLS_KEY (docs/proxies.md#tls)');
  }
  // The URL's path is the env's route prefix on its host (lib/proxy/route.ts, docs/proxies.md#several-apps-on-one-host).
  const urlProblem = values.DEPLOY_PUBLIC_URL === undefined ? undefined : prefixProblem(values.DEPLOY_PUBLIC_URL);
  if (urlProblem) bad('DEPLOY_PUBLIC_URL', urlProblem, 'e.g. https://example.com/api');
  const prefix = urlProblem || values.DEPLOY_PUBLIC_URL === undefined ? '' : new URL(values.DEPLOY_PUBLIC_URL).pathname.replace(/\/$/, '');
  // The prefix reaches the app unchanged, so the check through the proxy must ask a path of this app's.
  if (prefix !== '' && proxy !== 'none' && values.DEPLOY_HEALTH_PATH !== prefix && !values.DEPLOY_HEALTH_PATH.startsWith(`${prefix}/`)) {
    issues.push({
      ...issue('DEPLOY_HEALTH_PATH', `a path under ${prefix}, the prefix of DEPLOY_PUBLIC_URL (the app gets the path unchanged)`, `e.g. DEPLOY_HEALTH_PATH=${prefix}/health`),
      problem: `is ${values.DEPLOY_HEALTH_PATH}${source.values.DEPLOY_HEALTH_PATH === undefined ? ' (its default)' : ''}, outside the route of DEPLOY_PUBLIC_URL`,
    });
  }
  if (values.DEPLOY_ACME_CA_ROOT !== undefined && values.DEPLOY_ACME_CA === undefined) {
    bad('DEPLOY_ACME_CA_ROOT', 'set with DEPLOY_ACME_CA (the root is for a private ACME directory)', 'set DEPLOY_ACME_CA, or remove DEPLOY_ACME_CA_ROOT');
  }
  if ((values.DEPLOY_TLS_CERT === undefined) !== (values.DEPLOY_TLS_KEY === undefined)) {
    bad(values.DEPLOY_TLS_CERT === undefined ? 'DEPLOY_TLS_CERT' : 'DEPLOY_TLS_KEY', 'set with DEPLOY_TLS_CERT and DEPLOY_TLS_KEY both, or neither');
  }

  // The pidfile supervisor starts a plain process: nothing would hold it to a limit.
  for (const key of ['DEPLOY_MEMORY_LIMIT', 'DEPLOY_CPU_LIMIT'] as const) {
    if (values[key] !== undefined && runtime === 'process' && values.DEPLOY_SUPERVISOR === 'pidfile') {
      bad(key, `${SPECS[key].expected}, with DEPLOY_SUPERVISOR=systemd or DEPLOY_RUNTIME=docker`, 'the pidfile supervisor cannot hold a process to a limit');
    }
  }

  // Docker refuses less than 6 MiB; more than 1 PiB is a typo, and past 2^53 the figure would not even be exact.
  if (values.DEPLOY_MEMORY_LIMIT !== undefined) {
    const { bytes } = memoryLimit(values.DEPLOY_MEMORY_LIMIT);
    if (bytes < 6 * 1024 ** 2 || bytes > 1024 ** 5) bad('DEPLOY_MEMORY_LIMIT', 'between 6M and 1048576G', `${values.DEPLOY_MEMORY_LIMIT} is ${bytes < 6 * 1024 ** 2 ? 'too little for any app' : 'more than any host has'}`);
  }

  // A database inside a folder of BACKUP_PATHS would come back twice, the raw file put back over its consistent copy.
  const within = (file: string, folder: string) => file === folder || file.startsWith(`${folder}/`);
  for (const db of values.BACKUP_SQLITE) {
    const folder = values.BACKUP_PATHS.find((p) => within(db, p));
    if (folder !== undefined) bad('BACKUP_PATHS', `paths that hold no BACKUP_SQLITE database (${folder} holds ${db})`, 'list only what lies beside the database, e.g. data/uploads: the database is copied on its own');
  }

  // The image is built on this machine and never changes on a host: what a release command would
  // make belongs in the Dockerfile, whose layer cache already skips an unchanged install.
  if (runtime === 'docker' && values.DEPLOY_RELEASE_CMD) {
    bad('DEPLOY_RELEASE_CMD', 'unset with DEPLOY_RUNTIME=docker', 'put the command in the Dockerfile (RUN ...): its layer cache skips an install whose inputs did not change');
  }
  // With docker the migration runs in the new container before the switch: one slot has none then.
  if (runtime === 'docker' && values.DEPLOY_MIGRATE && proxy === 'none') {
    bad('DEPLOY_MIGRATE', 'set with a proxy when DEPLOY_RUNTIME=docker (it runs in the new container, healthy in its idle slot, before the switch)', 'set DEPLOY_PROXY, or run the migration from the app at start (docs/migrations.md#docker)');
  }
  if (values.DEPLOY_RELEASE_CACHE.length > 0 && !values.DEPLOY_RELEASE_CMD) {
    bad('DEPLOY_RELEASE_CACHE', 'set with DEPLOY_RELEASE_CMD (the cache holds what that command makes)', 'set DEPLOY_RELEASE_CMD, or remove DEPLOY_RELEASE_CACHE');
  }

  // Workers (docs/workers.md): processes under the pidfile or systemd supervisor, or containers.
  let workers: WorkerSpec[] = [];
  try {
    workers = parseWorkers(values.DEPLOY_WORKERS);
  } catch (error) {
    issues.push({ ...issue('DEPLOY_WORKERS', KEYS.DEPLOY_WORKERS.expected, KEYS.DEPLOY_WORKERS.hint), problem: `is bad: ${error instanceof Error ? error.message : String(error)}` });
  }
  for (const key of ['DEPLOY_WORKER_GRACE_SECONDS', 'DEPLOY_WORKER_UP_SECONDS'] as const) {
    if (source.values[key] !== undefined && source.values.DEPLOY_WORKERS === undefined) bad(key, 'set with DEPLOY_WORKERS', 'set DEPLOY_WORKERS, or remove it');
  }

  // skiff inside the app's repository (scripts/init.ts): APP_DIR defaults to that repository.
  const appDir = resolve(opts.root, expandHome(source.values.APP_DIR === undefined ? defaultAppDir(opts.root) : values.APP_DIR, opts.home));
  // A bad APP_DIR has its issue already; the default folder it fell back to is not checked too.
  const appDirValid = !table.issues.some((i) => i.key === 'APP_DIR');
  if (appDirValid && !existsSync(appDir)) bad('APP_DIR', 'an existing folder', `${appDir} does not exist`);

  const name = values.APP_NAME;
  // Each of these is undefined only when an issue above says why; testing them lets TypeScript see it.
  if (issues.length > 0 || name === undefined || path === undefined || ports === undefined) throw new ConfigError(issues);

  const pgUrl = values.BACKUP_POSTGRES_URL;
  const inHome = (file: string | undefined) => (file === undefined ? undefined : expandHome(file, opts.home));
  const ageIdentity = inHome(values.BACKUP_AGE_IDENTITY);
  return deepFreeze({
    env,
    root: opts.root,
    app: { name, dir: appDir, releaseDir: join(appDir, values.DEPLOY_RELEASE_DIR) },
    hosts: values.DEPLOY_HOSTS,
    path,
    runtime,
    supervisor: values.DEPLOY_SUPERVISOR,
    proxy,
    ports,
    publicUrl: values.DEPLOY_PUBLIC_URL,
    caddyAdmin: values.DEPLOY_CADDY_ADMIN,
    haproxy: { socket: values.DEPLOY_HAPROXY_SOCKET, confDir: values.DEPLOY_HAPROXY_CONF_DIR, cmd: values.DEPLOY_HAPROXY_CMD, reload: values.DEPLOY_HAPROXY_RELOAD },
    tls: {
      ...(certbot ? { cert: `${CERTBOT_LIVE}/${urlHost}/fullchain.pem`, key: `${CERTBOT_LIVE}/${urlHost}/privkey.pem` } : { cert: values.DEPLOY_TLS_CERT, key: values.DEPLOY_TLS_KEY }),
      certbot,
      acmeCa: values.DEPLOY_ACME_CA,
      acmeEmail: values.DEPLOY_ACME_EMAIL,
      acmeCaRoot: values.DEPLOY_ACME_CA_ROOT,
    },
    http: {
      headers: values.DEPLOY_HEADERS.filter((h): h is Header => h !== 'none'),
      compression: values.DEPLOY_COMPRESSION.filter((c): c is Compression => c !== 'none'),
      accessLog: values.DEPLOY_ACCESS_LOG,
      accessLogDir: values.DEPLOY_ACCESS_LOG_DIR?.replace(/(.)\/+$/, '$1'),
    },
    nginxConfDir: values.DEPLOY_NGINX_CONF_DIR,
    nginxCmd: values.DEPLOY_NGINX_CMD,
    switchDir: values.DEPLOY_SWITCH_DIR?.replace(/(.)\/+$/, '$1'),
    health: { path: values.DEPLOY_HEALTH_PATH, timeoutSeconds: values.DEPLOY_HEALTH_TIMEOUT },
    keepReleases: values.DEPLOY_KEEP_RELEASES,
    shipCompression: values.DEPLOY_SHIP_COMPRESSION,
    // An empty DEPLOY_BUILD (its default) means there is nothing to build.
    build: values.DEPLOY_BUILD || undefined,
    // Only the docker runtime may leave DEPLOY_START unset; it starts what the image says.
    start: values.DEPLOY_START ?? '',
    dockerfile: values.DEPLOY_DOCKERFILE,
    dockerBuildArgs: values.DEPLOY_DOCKER_BUILD_ARGS,
    drainSeconds: values.DEPLOY_DRAIN_SECONDS,
    limits: {
      memory: values.DEPLOY_MEMORY_LIMIT === undefined ? undefined : memoryLimit(values.DEPLOY_MEMORY_LIMIT),
      cpus: values.DEPLOY_CPU_LIMIT === undefined ? undefined : Number(values.DEPLOY_CPU_LIMIT),
    },
    sshKey: inHome(values.DEPLOY_SSH_KEY),
    knownHosts: inHome(values.DEPLOY_KNOWN_HOSTS),
    confirm: values.DEPLOY_CONFIRM ?? env === 'production',
    backup: {
      paths: values.BACKUP_PATHS,
      sqlite: values.BACKUP_SQLITE,
      postgresUrl: pgUrl === undefined ? undefined : new Secret(pgUrl),
      keep: values.BACKUP_KEEP,
      beforeDeploy: values.DEPLOY_BACKUP_BEFORE,
      encryptTo: values.BACKUP_ENCRYPT_TO,
      ageIdentity: ageIdentity === undefined ? undefined : resolve(opts.root, ageIdentity),
      signingKey: values.BACKUP_SIGNING_KEY === undefined ? undefined : new Secret(values.BACKUP_SIGNING_KEY),
    },
    releaseCmd: values.DEPLOY_RELEASE_CMD.trim() || undefined,
    releaseCmdTimeoutSeconds: values.DEPLOY_RELEASE_CMD_TIMEOUT,
    releaseCache: values.DEPLOY_RELEASE_CACHE,
    migrate: values.DEPLOY_MIGRATE.trim() || undefined,
    migrateTimeoutSeconds: values.DEPLOY_MIGRATE_TIMEOUT,
    workers,
    workerGraceSeconds: values.DEPLOY_WORKER_GRACE_SECONDS ?? values.DEPLOY_DRAIN_SECONDS,
    workerUpSeconds: values.DEPLOY_WORKER_UP_SECONDS,
    appEnv: appEnvOf(source),
  });
};

/** Where certbot keeps the certificate of each name (`<name>/fullchain.pem`, `<name>/privkey.pem`). */
export const CERTBOT_LIVE = '/etc/letsencrypt/live';

/** A memory limit as written (`512M`) and in bytes. */
const memoryLimit = (text: string): { bytes: number; text: string } => {
  const unit = text.slice(-1).toUpperCase();
  const scale = unit === 'K' ? 1024 : unit === 'M' ? 1024 ** 2 : unit === 'G' ? 1024 ** 3 : 1;
  return { bytes: Number(scale === 1 ? text : text.slice(0, -1)) * scale, text: scale === 1 ? text : `${text.slice(0, -1)}${unit}` };
};

const deepFreeze = <T>(value: T): T => {
  if (value && typeof value === 'object' && !(value instanceof Secret) && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
};

/** Loads and validates the configuration of one environment. */
export const loadConfig = (env: string, processEnv: NodeJS.ProcessEnv = process.env): Config => {
  const dir = envDir(processEnv);
  checkEnvName(env, dir);
  return parseConfig(env, readLayers(env, dir, processEnv), { root: REPO_ROOT, home: processEnv.HOME ?? homedir() });
};

/** Validates one file on its own (the example files), as if it were an environment. */
export const validateFile = (file: string, processEnv: NodeJS.ProcessEnv = {}): Config => {
  const source: SourceBeingRead = { values: {}, origin: {}, secretKeys: new Set() };
  readEnvFile(file, file, false, source);
  for (const [k, v] of Object.entries(processEnv)) if (v !== undefined) source.values[k] = v;
  return parseConfig('example', source, { root: REPO_ROOT, home: processEnv.HOME ?? homedir() });
};
