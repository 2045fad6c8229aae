import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Secret } from '../../lib/core/cmd.ts';
import { checkEnvName, KEYS, loadConfig, parseConfig, readLayers, type Config } from '../../lib/config/config.ts';
import { ConfigError, UsageError } from '../../lib/core/errors.ts';

type EnvLines = Readonly<Record<string, string | undefined>>;

/** The smallest valid local config; a case removes a key by setting it to undefined. */
const BASE: EnvLines = {
  APP_NAME: 'hello',
  APP_DIR: 'app',
  DEPLOY_PATH: '/srv/hello',
  DEPLOY_PORTS: '3001',
  DEPLOY_START: 'node server.js',
};

const envText = (lines: EnvLines): string =>
  Object.entries(lines)
    .flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]))
    .join('\n') + '\n';

// fresh() makes a temp folder that stands for the repo root: env files in root/env, APP_DIR root/app.
let root: string;
let envDir: string;
let home: string;
const made: string[] = [];

const fresh = (): void => {
  root = mkdtempSync(join(tmpdir(), 'skiff-config-'));
  made.push(root);
  envDir = join(root, 'env');
  home = join(root, 'home');
  mkdirSync(envDir);
  mkdirSync(join(root, 'app'));
  mkdirSync(join(home, 'src'), { recursive: true });
};

afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

const writeEnv = (name: string, text: string, mode = 0o644): string => {
  const file = join(envDir, name);
  writeFileSync(file, text);
  chmodSync(file, mode);
  return file;
};

/** Writes env/<env>.env (and a secrets file if given) and parses them as loadConfig would. */
const load = (
  lines: EnvLines,
  opts: { env?: string; secrets?: EnvLines; secretsMode?: number; processEnv?: NodeJS.ProcessEnv } = {},
): Config => {
  const env = opts.env ?? 't';
  writeEnv(`${env}.env`, envText(lines));
  if (opts.secrets) writeEnv(`${env}.secrets.env`, envText(opts.secrets), opts.secretsMode ?? 0o600);
  else rmSync(join(envDir, `${env}.secrets.env`), { force: true });
  return parseConfig(env, readLayers(env, envDir, opts.processEnv ?? {}), { root, home });
};

const configError = (fn: () => unknown): ConfigError => {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
};

const usageError = (fn: () => unknown): UsageError => {
  try {
    fn();
  } catch (e) {
    if (e instanceof UsageError) return e;
    throw e;
  }
  throw new Error('expected a UsageError');
};

describe('parseConfig: valid configurations', () => {
  beforeAll(fresh);

  it('applies the defaults', () => {
    const cfg = load(BASE);
    expect(cfg).toMatchObject({
      env: 't',
      root,
      app: { name: 'hello', dir: join(root, 'app'), releaseDir: join(root, 'app') },
      hosts: [{ kind: 'local' }],
      path: '/srv/hello',
      runtime: 'process',
      supervisor: 'pidfile',
      proxy: 'none',
      ports: [3001],
      publicUrl: undefined,
      caddyAdmin: '127.0.0.1:2019',
      nginxConfDir: '/etc/nginx/conf.d',
      nginxCmd: 'nginx',
      health: { path: '/api/health', timeoutSeconds: 60 },
      keepReleases: 3,
      build: undefined,
      start: 'node server.js',
      dockerfile: 'Dockerfile',
      dockerBuildArgs: [],
      drainSeconds: 10,
      sshKey: undefined,
      knownHosts: undefined,
      confirm: false,
      backup: { paths: [], sqlite: [], postgresUrl: undefined, keep: 10 },
      appEnv: {},
    });
  });

  it('is deeply frozen', () => {
    const cfg = load(BASE);
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(Object.isFrozen(cfg.ports)).toBe(true);
    expect(Object.isFrozen(cfg.health)).toBe(true);
    expect(Object.isFrozen(cfg.appEnv)).toBe(true);
  });

  it.each<[string, EnvLines, Partial<Record<string, unknown>> | ((cfg: Config) => Partial<Record<string, unknown>>), string?]>([
    ['~/x is expanded against home for a local host', { DEPLOY_PATH: '~/x/y' }, () => ({ path: join(home, 'x/y') })],
    ['~ alone is home', { DEPLOY_PATH: '~' }, () => ({ path: home })],
    ['a trailing slash is dropped', { DEPLOY_PATH: '/srv/hello/' }, { path: '/srv/hello' }],
    [
      'ssh hosts are parsed into user, host and port',
      { DEPLOY_HOSTS: 'deploy@203.0.113.7, root@example.com:2222,ops@[2001:db8::1]:22' },
      {
        hosts: [
          { kind: 'ssh', user: 'deploy', host: '203.0.113.7', port: 22 },
          { kind: 'ssh', user: 'root', host: 'example.com', port: 2222 },
          { kind: 'ssh', user: 'ops', host: '2001:db8::1', port: 22 },
        ],
      },
    ],
    ['ssh hosts keep an absolute DEPLOY_PATH', { DEPLOY_HOSTS: 'deploy@h', DEPLOY_PATH: '/srv/x' }, { path: '/srv/x' }],
    [
      'caddy with two ports and a public URL',
      { DEPLOY_PROXY: 'caddy', DEPLOY_PORTS: '3001, 3002', DEPLOY_PUBLIC_URL: 'https://app.example.com' },
      { proxy: 'caddy', ports: [3001, 3002], publicUrl: 'https://app.example.com' },
    ],
    ['docker needs no DEPLOY_START', { DEPLOY_RUNTIME: 'docker', DEPLOY_START: undefined }, { runtime: 'docker', start: '' }],
    [
      'app keys go to appEnv, skiff keys do not',
      { LOG_LEVEL: 'info', GREETING: '"hello world"', EMPTY: '' },
      { appEnv: { LOG_LEVEL: 'info', GREETING: 'hello world', EMPTY: '' } },
    ],
    ['production asks for confirmation', {}, { confirm: true }, 'production'],
    ['DEPLOY_CONFIRM=false turns it off', { DEPLOY_CONFIRM: 'false' }, { confirm: false }, 'production'],
    ['DEPLOY_CONFIRM=true turns it on elsewhere', { DEPLOY_CONFIRM: 'true' }, { confirm: true }],
    ['ssh key and known hosts expand ~', { DEPLOY_SSH_KEY: '~/.ssh/id', DEPLOY_KNOWN_HOSTS: '/etc/kh' }, () => ({ sshKey: join(home, '.ssh/id'), knownHosts: '/etc/kh' })],
    ['APP_DIR ~/src is expanded against home', { APP_DIR: '~/src' }, () => ({ app: { name: 'hello', dir: join(home, 'src'), releaseDir: join(home, 'src') } })],
    ['DEPLOY_RELEASE_DIR is inside APP_DIR', { DEPLOY_RELEASE_DIR: 'dist' }, () => ({ app: { name: 'hello', dir: join(root, 'app'), releaseDir: join(root, 'app', 'dist') } })],
    [
      'lists are split on commas and trimmed',
      { BACKUP_PATHS: 'data/a, data/b,', BACKUP_SQLITE: 'data/app.db', DEPLOY_DOCKER_BUILD_ARGS: 'A=1,B=2' },
      { backup: { paths: ['data/a', 'data/b'], sqlite: ['data/app.db'], postgresUrl: undefined, keep: 10 }, dockerBuildArgs: ['A=1', 'B=2'] },
    ],
    ['numbers are parsed', { DEPLOY_KEEP_RELEASES: '1', DEPLOY_HEALTH_TIMEOUT: '5', DEPLOY_DRAIN_SECONDS: '0' }, { keepReleases: 1, health: { path: '/api/health', timeoutSeconds: 5 }, drainSeconds: 0 }],
    ['port 65535 is allowed', { DEPLOY_PORTS: '65535' }, { ports: [65535] }],
    ['DEPLOY_BUILD is kept', { DEPLOY_BUILD: 'npm ci && npm run build' }, { build: 'npm ci && npm run build' }],
  ])('%s', (_name, overrides, expected, env) => {
    const cfg = load({ ...BASE, ...overrides }, env === undefined ? {} : { env });
    expect(cfg).toMatchObject(typeof expected === 'function' ? expected(cfg) : expected);
  });

  it('a postgres URL becomes a Secret', () => {
    const cfg = load({ ...BASE, BACKUP_POSTGRES_URL: 'postgres://u:pw@db/app' });
    expect(cfg.backup.postgresUrl).toBeInstanceOf(Secret);
    expect(cfg.backup.postgresUrl?.reveal()).toBe('postgres://u:pw@db/app');
    expect(JSON.stringify(cfg)).not.toContain('pw@db');
  });
});

describe('parseConfig: invalid configurations', () => {
  beforeAll(fresh);

  it.each<[string, EnvLines, string, string]>([
    ['APP_NAME missing', { APP_NAME: undefined }, 'APP_NAME', 'env/t.env: APP_NAME is missing'],
    ['APP_NAME with capitals', { APP_NAME: 'Hello' }, 'APP_NAME', 'env/t.env: APP_NAME is "Hello", expected a name of a-z, 0-9 and -'],
    ['APP_NAME empty', { APP_NAME: '' }, 'APP_NAME', 'env/t.env: APP_NAME is empty'],
    ['DEPLOY_PORTS abc', { DEPLOY_PORTS: 'abc' }, 'DEPLOY_PORTS', 'env/t.env: DEPLOY_PORTS is "abc", expected one port (proxy none) or two different ports, each 1-65535'],
    ['DEPLOY_PORTS 0', { DEPLOY_PORTS: '0' }, 'DEPLOY_PORTS', 'env/t.env: DEPLOY_PORTS is "0"'],
    ['DEPLOY_PORTS 70000', { DEPLOY_PORTS: '70000' }, 'DEPLOY_PORTS', 'env/t.env: DEPLOY_PORTS is "70000"'],
    ['DEPLOY_PORTS twice the same', { DEPLOY_PORTS: '3001,3001' }, 'DEPLOY_PORTS', 'env/t.env: DEPLOY_PORTS is "3001,3001"'],
    ['DEPLOY_PORTS missing', { DEPLOY_PORTS: undefined }, 'DEPLOY_PORTS', 'env/t.env: DEPLOY_PORTS is missing'],
    ['two ports with proxy none', { DEPLOY_PORTS: '3001,3002' }, 'DEPLOY_PORTS', 'env/t.env: DEPLOY_PORTS is "3001,3002", expected one port with DEPLOY_PROXY=none'],
    [
      'one port with proxy caddy',
      { DEPLOY_PROXY: 'caddy', DEPLOY_PUBLIC_URL: 'https://a.example.com' },
      'DEPLOY_PORTS',
      'env/t.env: DEPLOY_PORTS is "3001", expected two ports (blue,green) with DEPLOY_PROXY=caddy',
    ],
    ['caddy without public URL', { DEPLOY_PROXY: 'caddy', DEPLOY_PORTS: '3001,3002' }, 'DEPLOY_PUBLIC_URL', 'env/t.env: DEPLOY_PUBLIC_URL is missing'],
    ['DEPLOY_KEEP_RELEASES 0', { DEPLOY_KEEP_RELEASES: '0' }, 'DEPLOY_KEEP_RELEASES', 'env/t.env: DEPLOY_KEEP_RELEASES is "0", expected a whole number of at least 1'],
    ['DEPLOY_SHIP_COMPRESSION lz4', { DEPLOY_SHIP_COMPRESSION: 'lz4' }, 'DEPLOY_SHIP_COMPRESSION', 'env/t.env: DEPLOY_SHIP_COMPRESSION is "lz4", expected `auto`, `zstd`, `gzip` or `none`'],
    ['DEPLOY_RUNTIME k8s', { DEPLOY_RUNTIME: 'k8s' }, 'DEPLOY_RUNTIME', 'env/t.env: DEPLOY_RUNTIME is "k8s", expected `process` or `docker`'],
    ['DEPLOY_PATH relative', { DEPLOY_PATH: 'relative/path' }, 'DEPLOY_PATH', 'env/t.env: DEPLOY_PATH is "relative/path", expected an absolute path other than /'],
    ['DEPLOY_PATH /', { DEPLOY_PATH: '/' }, 'DEPLOY_PATH', 'env/t.env: DEPLOY_PATH is "/", expected an absolute path other than /'],
    ['DEPLOY_PATH with ..', { DEPLOY_PATH: '/srv/../etc' }, 'DEPLOY_PATH', 'env/t.env: DEPLOY_PATH is "/srv/../etc"'],
    ['DEPLOY_PATH missing', { DEPLOY_PATH: undefined }, 'DEPLOY_PATH', 'env/t.env: DEPLOY_PATH is missing'],
    ['DEPLOY_PATH ~ on an ssh host', { DEPLOY_HOSTS: 'deploy@h', DEPLOY_PATH: '~/x' }, 'DEPLOY_PATH', 'env/t.env: DEPLOY_PATH is "~/x"'],
    ['DEPLOY_START missing for process', { DEPLOY_START: undefined }, 'DEPLOY_START', 'env/t.env: DEPLOY_START is missing'],
    ['APP_DIR that does not exist', { APP_DIR: 'nope' }, 'APP_DIR', 'env/t.env: APP_DIR is "nope", expected an existing folder'],
    ['unknown key DEPLOY_PORT', { DEPLOY_PORT: '3001' }, 'DEPLOY_PORT', 'env/t.env: DEPLOY_PORT is not a key skiff knows (did you mean DEPLOY_PORTS?)'],
    ['PORT is reserved', { PORT: '3000' }, 'PORT', 'env/t.env: PORT is set by skiff for the app and cannot be set here (set DEPLOY_PORTS instead)'],
    ['APP_ENV is reserved', { APP_ENV: 'x' }, 'APP_ENV', 'env/t.env: APP_ENV is set by skiff for the app and cannot be set here (remove it)'],
    ['a DOCKER_ app key with the docker runtime', { DEPLOY_RUNTIME: 'docker', DOCKER_HOST: 'tcp://x' }, 'DOCKER_HOST', 'env/t.env: DOCKER_HOST cannot be an app key with the docker runtime'],
    ['an app key that is no variable name', { 'LOG.LEVEL': 'x' }, 'LOG.LEVEL', 'env/t.env: LOG.LEVEL is not a valid variable name: use letters, digits and _'],
    ['local with ssh hosts', { DEPLOY_HOSTS: 'local,deploy@h' }, 'DEPLOY_HOSTS', 'env/t.env: DEPLOY_HOSTS is "local,deploy@h"'],
    ['ssh port out of range', { DEPLOY_HOSTS: 'deploy@h:70000' }, 'DEPLOY_HOSTS', 'env/t.env: DEPLOY_HOSTS is "deploy@h:70000"'],
    ['a host listed twice', { DEPLOY_HOSTS: 'deploy@h,deploy@h:22' }, 'DEPLOY_HOSTS', 'env/t.env: DEPLOY_HOSTS is "deploy@h,deploy@h:22"'],
    ['health path without /', { DEPLOY_HEALTH_PATH: 'health' }, 'DEPLOY_HEALTH_PATH', 'env/t.env: DEPLOY_HEALTH_PATH is "health"'],
    ['release dir outside APP_DIR', { DEPLOY_RELEASE_DIR: '../x' }, 'DEPLOY_RELEASE_DIR', 'env/t.env: DEPLOY_RELEASE_DIR is "../x"'],
    ['public URL not http', { DEPLOY_PUBLIC_URL: 'ftp://x' }, 'DEPLOY_PUBLIC_URL', 'env/t.env: DEPLOY_PUBLIC_URL is "ftp://x"'],
    ['DEPLOY_CONFIRM yes', { DEPLOY_CONFIRM: 'yes' }, 'DEPLOY_CONFIRM', 'env/t.env: DEPLOY_CONFIRM is "yes"'],
  ])('%s', (_name, overrides, key, message) => {
    const e = configError(() => load({ ...BASE, ...overrides }));
    expect(e.exitCode).toBe(2);
    expect(e.issues.map((i) => i.key)).toContain(key);
    expect(e.issues.find((i) => i.key === key)?.file).toBe('env/t.env');
    expect(e.message).toContain(message);
  });

  it('names the file a bad value came from', () => {
    const e = configError(() =>
      load(
        { ...BASE, LOG_LEVEL: 'info' },
        { secrets: { PORT: '1' }, processEnv: { DEPLOY_KEEP_RELEASES: '0' } },
      ),
    );
    expect(e.issues.map((i) => [i.key, i.file])).toEqual([
      ['DEPLOY_KEEP_RELEASES', 'environment'],
      ['PORT', 'env/t.secrets.env'],
    ]);
    expect(e.message).toContain('environment: DEPLOY_KEEP_RELEASES is "0"');
    expect(e.message).toContain('env/t.secrets.env: PORT is set by skiff');
  });

  it('lists several bad keys in one error, one line each', () => {
    const e = configError(() =>
      load({ ...BASE, APP_NAME: 'Bad', DEPLOY_PORTS: 'abc', DEPLOY_RUNTIME: 'k8s', DEPLOY_PORT: '1', PORT: '2' }),
    );
    expect(e.issues.map((i) => i.key).sort()).toEqual(['APP_NAME', 'DEPLOY_PORT', 'DEPLOY_PORTS', 'DEPLOY_RUNTIME', 'PORT']);
    const lines = e.message.split('\n');
    expect(lines).toHaveLength(5);
    for (const line of lines) expect(line).toMatch(/^env\/t\.env: [A-Z_]+ is /);
  });

  // Once, a bad value was printed as it was, even when it came from the secrets file, whose values
  // "reach the app but never the output" (env/local.secrets.env.example).
  it('does not print a value from the secrets file', () => {
    const e = configError(() => load(BASE, { secrets: { BACKUP_POSTGRES_URL: 'mysql://app:hunter2secret@db/app' } }));
    expect(e.issues.map((i) => i.key)).toEqual(['BACKUP_POSTGRES_URL']);
    expect(e.message).not.toContain('hunter2secret');
  });
});

describe('parseConfig: each default of KEYS', () => {
  beforeAll(() => {
    fresh();
    mkdirSync(join(root, 'example'));
  });

  const defaults = Object.entries(KEYS).flatMap(([key, spec]) => ('default' in spec ? [{ key, spec }] : []));
  const keysWithDefault = defaults.map(({ key }) => key);

  /** Key, where Config keeps it, what it is when the key is absent, and a given value that differs (plus what else that value needs). */
  const rows: [string, (cfg: Config) => unknown, () => unknown, EnvLines, () => unknown][] = [
    ['APP_DIR', (c) => c.app.dir, () => join(root, 'example'), { APP_DIR: 'app' }, () => join(root, 'app')],
    ['DEPLOY_HOSTS', (c) => c.hosts, () => [{ kind: 'local' }], { DEPLOY_HOSTS: 'deploy@h' }, () => [{ kind: 'ssh', user: 'deploy', host: 'h', port: 22 }]],
    ['DEPLOY_RUNTIME', (c) => c.runtime, () => 'process', { DEPLOY_RUNTIME: 'docker' }, () => 'docker'],
    ['DEPLOY_SUPERVISOR', (c) => c.supervisor, () => 'pidfile', { DEPLOY_SUPERVISOR: 'systemd' }, () => 'systemd'],
    [
      'DEPLOY_PROXY',
      (c) => c.proxy,
      () => 'none',
      { DEPLOY_PROXY: 'nginx', DEPLOY_PORTS: '3001,3002', DEPLOY_PUBLIC_URL: 'http://127.0.0.1:8080' },
      () => 'nginx',
    ],
    ['DEPLOY_CADDY_ADMIN', (c) => c.caddyAdmin, () => '127.0.0.1:2019', { DEPLOY_CADDY_ADMIN: 'localhost:2020' }, () => 'localhost:2020'],
    ['DEPLOY_NGINX_CONF_DIR', (c) => c.nginxConfDir, () => '/etc/nginx/conf.d', { DEPLOY_NGINX_CONF_DIR: '/etc/nginx/sites' }, () => '/etc/nginx/sites'],
    ['DEPLOY_NGINX_CMD', (c) => c.nginxCmd, () => 'nginx', { DEPLOY_NGINX_CMD: 'sudo nginx' }, () => 'sudo nginx'],
    ['DEPLOY_HAPROXY_SOCKET', (c) => c.haproxy.socket, () => '/run/haproxy/admin.sock', { DEPLOY_HAPROXY_SOCKET: '/tmp/h.sock' }, () => '/tmp/h.sock'],
    ['DEPLOY_HAPROXY_CONF_DIR', (c) => c.haproxy.confDir, () => '/etc/haproxy/conf.d', { DEPLOY_HAPROXY_CONF_DIR: '/srv/h' }, () => '/srv/h'],
    ['DEPLOY_HAPROXY_CMD', (c) => c.haproxy.cmd, () => 'haproxy', { DEPLOY_HAPROXY_CMD: 'sudo haproxy' }, () => 'sudo haproxy'],
    ['DEPLOY_HAPROXY_RELOAD', (c) => c.haproxy.reload, () => 'systemctl reload haproxy', { DEPLOY_HAPROXY_RELOAD: 'true' }, () => 'true'],
    ['DEPLOY_HEADERS', (c) => c.http.headers, () => ['hsts', 'nosniff', 'frame', 'referrer'], { DEPLOY_HEADERS: 'none' }, () => []],
    ['DEPLOY_COMPRESSION', (c) => c.http.compression, () => ['zstd', 'gzip'], { DEPLOY_COMPRESSION: 'gzip' }, () => ['gzip']],
    ['DEPLOY_ACCESS_LOG', (c) => c.http.accessLog, () => 'json', { DEPLOY_ACCESS_LOG: 'off' }, () => 'off'],
    ['DEPLOY_HEALTH_PATH', (c) => c.health.path, () => '/api/health', { DEPLOY_HEALTH_PATH: '/up' }, () => '/up'],
    ['DEPLOY_HEALTH_TIMEOUT', (c) => c.health.timeoutSeconds, () => 60, { DEPLOY_HEALTH_TIMEOUT: '5' }, () => 5],
    ['DEPLOY_KEEP_RELEASES', (c) => c.keepReleases, () => 3, { DEPLOY_KEEP_RELEASES: '7' }, () => 7],
    ['DEPLOY_SHIP_COMPRESSION', (c) => c.shipCompression, () => 'auto', { DEPLOY_SHIP_COMPRESSION: 'gzip' }, () => 'gzip'],
    ['DEPLOY_BUILD', (c) => c.build, () => undefined, { DEPLOY_BUILD: 'npm ci' }, () => 'npm ci'],
    ['DEPLOY_RELEASE_DIR', (c) => c.app.releaseDir, () => join(root, 'app'), { DEPLOY_RELEASE_DIR: 'dist' }, () => join(root, 'app', 'dist')],
    ['DEPLOY_DOCKERFILE', (c) => c.dockerfile, () => 'Dockerfile', { DEPLOY_DOCKERFILE: 'ops/Dockerfile' }, () => 'ops/Dockerfile'],
    ['DEPLOY_DOCKER_BUILD_ARGS', (c) => c.dockerBuildArgs, () => [], { DEPLOY_DOCKER_BUILD_ARGS: 'A=1' }, () => ['A=1']],
    ['DEPLOY_DRAIN_SECONDS', (c) => c.drainSeconds, () => 10, { DEPLOY_DRAIN_SECONDS: '0' }, () => 0],
    ['DEPLOY_BACKUP_BEFORE', (c) => c.backup.beforeDeploy, () => false, { DEPLOY_BACKUP_BEFORE: 'true' }, () => true],
    ['DEPLOY_RELEASE_CMD', (c) => c.releaseCmd, () => undefined, { DEPLOY_RELEASE_CMD: 'npm ci' }, () => 'npm ci'],
    ['DEPLOY_RELEASE_CMD_TIMEOUT', (c) => c.releaseCmdTimeoutSeconds, () => 900, { DEPLOY_RELEASE_CMD_TIMEOUT: '60' }, () => 60],
    [
      'DEPLOY_RELEASE_CACHE',
      (c) => c.releaseCache,
      () => [],
      { DEPLOY_RELEASE_CMD: 'npm ci', DEPLOY_RELEASE_CACHE: 'node_modules:package-lock.json' },
      () => [{ folder: 'node_modules', inputs: ['package-lock.json'] }],
    ],
    ['DEPLOY_MIGRATE', (c) => c.migrate, () => undefined, { DEPLOY_MIGRATE: 'npm run migrate' }, () => 'npm run migrate'],
    ['DEPLOY_MIGRATE_TIMEOUT', (c) => c.migrateTimeoutSeconds, () => 600, { DEPLOY_MIGRATE_TIMEOUT: '30' }, () => 30],
    ['DEPLOY_WORKERS', (c) => c.workers, () => [], { DEPLOY_WORKERS: 'queue:2=node w.js' }, () => [{ name: 'queue', count: 2, command: 'node w.js' }]],
    ['DEPLOY_WORKER_UP_SECONDS', (c) => c.workerUpSeconds, () => 2, { DEPLOY_WORKERS: 'q=node w.js', DEPLOY_WORKER_UP_SECONDS: '5' }, () => 5],
    ['BACKUP_PATHS', (c) => c.backup.paths, () => [], { BACKUP_PATHS: 'uploads' }, () => ['uploads']],
    ['BACKUP_SQLITE', (c) => c.backup.sqlite, () => [], { BACKUP_SQLITE: 'data/app.db' }, () => ['data/app.db']],
    ['BACKUP_KEEP', (c) => c.backup.keep, () => 10, { BACKUP_KEEP: '30' }, () => 30],
  ];

  it('has a row for every key with a default', () => {
    expect(rows.map(([key]) => key).sort()).toEqual(keysWithDefault.sort());
  });

  it.each(defaults)('the default of $key passes its own schema', ({ spec }) => {
    expect(spec.schema.safeParse(spec.default).success).toBe(true);
  });

  it.each(rows)('%s absent takes its default', (key, field, absent) => {
    // APP_DIR absent means the default folder, which this root has; the other rows keep BASE's APP_DIR.
    expect(field(load({ ...BASE, [key]: undefined }))).toEqual(absent());
  });

  it.each(rows)('%s given overrides the default', (_key, field, _absent, given, expected) => {
    expect(field(load({ ...BASE, ...given }))).toEqual(expected());
  });
});

describe('parseConfig: a bad value with a default', () => {
  // The checks across keys use the default in place of a bad value: one issue for the bad key, and
  // those the default itself brings, nothing more.
  beforeAll(fresh);

  it.each<[string, EnvLines, string[]]>([
    ['a bad DEPLOY_RUNTIME still needs DEPLOY_START (process)', { DEPLOY_RUNTIME: 'k8s', DEPLOY_START: undefined }, ['DEPLOY_RUNTIME', 'DEPLOY_START']],
    ['a bad DEPLOY_PROXY asks for one port and no URL (none)', { DEPLOY_PROXY: 'traefik' }, ['DEPLOY_PROXY']],
    ['a bad DEPLOY_HOSTS expands ~ in DEPLOY_PATH (local)', { DEPLOY_HOSTS: 'not a host', DEPLOY_PATH: '~/x' }, ['DEPLOY_HOSTS']],
    ['an empty APP_DIR is one issue, the default folder is not checked', { APP_DIR: '' }, ['APP_DIR']],
    ['a bad DEPLOY_RELEASE_DIR is one issue', { DEPLOY_RELEASE_DIR: '/abs' }, ['DEPLOY_RELEASE_DIR']],
  ])('%s', (_name, overrides, keys) => {
    expect(configError(() => load({ ...BASE, ...overrides })).issues.map((i) => i.key)).toEqual(keys);
  });

  it('a key without a default stays unset when its value is bad', () => {
    const e = configError(() => load({ ...BASE, DEPLOY_PORTS: 'abc', DEPLOY_PROXY: 'caddy' }));
    // No ports parsed, so no "two ports with caddy" issue on top of the bad value.
    expect(e.issues.map((i) => [i.key, i.expected])).toEqual([
      ['DEPLOY_PORTS', KEYS.DEPLOY_PORTS.expected],
      ['DEPLOY_PUBLIC_URL', 'the URL the caddy proxy serves'],
    ]);
  });
});

describe('parseConfig: unknown skiff keys', () => {
  beforeAll(fresh);

  it.each([
    ['DEPLOY_PAHT', 'did you mean DEPLOY_PATH?'],
    ['BACKUP_KEP', 'did you mean BACKUP_KEEP?'],
    ['DEPLOY_HEALTH_TIMEOT', 'did you mean DEPLOY_HEALTH_TIMEOUT?'],
    ['DEPLOY_SOMETHING_ELSE', 'see docs/configuration.md'],
  ])('%s: %s', (key, hint) => {
    const e = configError(() => load({ ...BASE, [key]: '1' }));
    expect(e.issues.map((i) => [i.key, i.hint])).toEqual([[key, hint]]);
  });
});

describe('checkEnvName', () => {
  beforeAll(() => {
    fresh();
    writeEnv('local.env', envText(BASE));
    writeEnv('staging.env.example', envText(BASE));
    writeEnv('local.secrets.env', '', 0o600);
  });

  it.each([
    ['capitals', 'Staging', 'environment name "Staging" is invalid: use a-z, 0-9 and - only (e.g. staging)'],
    ['a parent path', '../x', 'environment name "../x" is invalid'],
    ['a slash', 'a/b', 'environment name "a/b" is invalid'],
    ['empty', '', 'environment name "" is invalid'],
    ['a dot', 'local.secrets', 'environment name "local.secrets" is invalid'],
    ['an unknown name', 'nope', 'unknown environment "nope": no '],
    ['an unknown name lists the known ones', 'nope', '; known: local'],
    ['a name with only an example file', 'staging', '/env/staging.env.example to '],
  ])('%s (%j) is a one-line UsageError', (_name, env, message) => {
    const e = usageError(() => checkEnvName(env, envDir));
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain(message);
    expect(e.message).not.toContain('\n');
  });

  it('accepts a name with an env file', () => {
    expect(() => checkEnvName('local', envDir)).not.toThrow();
  });

  it('says none when the folder has no env files', () => {
    expect(usageError(() => checkEnvName('x', join(root, 'missing'))).message).toContain('; known: none');
  });
});

describe('secrets file', () => {
  beforeEach(fresh);

  it.each([
    ['0644', 0o644],
    ['0640', 0o640],
    ['0604', 0o604],
    ['0666', 0o666],
  ])('mode %s is refused with a chmod 600 hint', (_label, mode) => {
    const e = configError(() => load(BASE, { secrets: { SESSION_SECRET: 'x' }, secretsMode: mode }));
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain('env/t.secrets.env is readable by group or others');
    expect(e.message).toContain(`chmod 600 ${join(envDir, 't.secrets.env')}`);
  });

  it.each([
    ['0600', 0o600],
    ['0400', 0o400],
  ])('mode %s is accepted and its values become Secrets', (_label, mode) => {
    const cfg = load({ ...BASE, LOG_LEVEL: 'info' }, { secrets: { SESSION_SECRET: 'very-secret', API_TOKEN: "t'k" }, secretsMode: mode });
    const { SESSION_SECRET, API_TOKEN, LOG_LEVEL } = cfg.appEnv;
    expect(SESSION_SECRET).toBeInstanceOf(Secret);
    expect(API_TOKEN).toBeInstanceOf(Secret);
    expect(SESSION_SECRET instanceof Secret && SESSION_SECRET.reveal()).toBe('very-secret');
    expect(API_TOKEN instanceof Secret && API_TOKEN.reveal()).toBe("t'k");
    expect(LOG_LEVEL).toBe('info');
    expect(JSON.stringify(cfg.appEnv)).not.toContain('very-secret');
  });

  it('a key in both files takes the secret value and stays secret', () => {
    const cfg = load({ ...BASE, TOKEN: 'public' }, { secrets: { TOKEN: 'private' } });
    const token = cfg.appEnv.TOKEN;
    expect(token).toBeInstanceOf(Secret);
    expect(token instanceof Secret && token.reveal()).toBe('private');
  });

  it('no secrets file is fine', () => {
    expect(load(BASE).appEnv).toEqual({});
  });
});

describe('process environment', () => {
  beforeAll(fresh);

  it('overrides skiff keys and keys the files name, nothing else', () => {
    const cfg = load(
      { ...BASE, LOG_LEVEL: 'info' },
      {
        secrets: { TOKEN: 'from-file' },
        processEnv: { DEPLOY_PORTS: '4000', DEPLOY_KEEP_RELEASES: '7', LOG_LEVEL: 'debug', TOKEN: 'from-env', PATH: '/usr/bin', HOME: '/x', npm_config_x: 'y' },
      },
    );
    expect(cfg.ports).toEqual([4000]);
    expect(cfg.keepReleases).toBe(7);
    expect(Object.keys(cfg.appEnv).sort()).toEqual(['LOG_LEVEL', 'TOKEN']);
    expect(cfg.appEnv.LOG_LEVEL).toBe('debug');
    const token = cfg.appEnv.TOKEN;
    expect(token instanceof Secret && token.reveal()).toBe('from-env');
  });

  it('records where each value came from', () => {
    writeEnv('o.env', envText({ ...BASE, LOG_LEVEL: 'info' }));
    writeEnv('o.secrets.env', envText({ TOKEN: 'x' }), 0o600);
    const source = readLayers('o', envDir, { APP_NAME: 'other', PATH: '/bin', UNUSED: '1' });
    expect(source.origin).toMatchObject({ APP_NAME: 'environment', LOG_LEVEL: 'env/o.env', TOKEN: 'env/o.secrets.env' });
    expect(source.values.APP_NAME).toBe('other');
    expect(source.values).not.toHaveProperty('PATH');
    expect(source.values).not.toHaveProperty('UNUSED');
    expect([...source.secretKeys]).toEqual(['TOKEN']);
  });

  // Once, the deploying shell's PATH and HOME replaced the app's own (and shipped this machine's PATH).
  it("an app key named like the shell's own variables keeps the file's value", () => {
    const cfg = load({ ...BASE, HOME: '/app', PATH: '/app/bin:/usr/bin', LANG: 'C.UTF-8', GREETING: 'file' }, { processEnv: { HOME: '/root', PATH: '/usr/bin', LANG: 'de_DE', GREETING: 'env' } });
    expect(cfg.appEnv).toMatchObject({ HOME: '/app', PATH: '/app/bin:/usr/bin', LANG: 'C.UTF-8', GREETING: 'env' });
  });

  it('an unknown DEPLOY_ variable in the environment is an error naming the environment', () => {
    const e = configError(() => load(BASE, { processEnv: { DEPLOY_PORT: '1' } }));
    expect(e.message).toContain('environment: DEPLOY_PORT is not a key skiff knows (did you mean DEPLOY_PORTS?)');
  });

  // Once, `k in source.values` was true for Object.prototype's names, so variables such as
  // `constructor` or `toString` in the process environment became app keys though no file named them.
  it('does not take variables named like Object.prototype members', () => {
    const cfg = load(BASE, { processEnv: { constructor: 'x', toString: 'y' } });
    expect(Object.keys(cfg.appEnv)).toEqual([]);
  });
});

describe('loadConfig', () => {
  beforeAll(fresh);

  it('reads SKIFF_ENV_DIR and expands ~ with HOME', () => {
    writeEnv('t.env', envText({ ...BASE, APP_DIR: join(root, 'app'), DEPLOY_PATH: '~/deploy' }));
    const cfg = loadConfig('t', { HOME: home, SKIFF_ENV_DIR: envDir });
    expect(cfg.path).toBe(join(home, 'deploy'));
    expect(cfg.app.dir).toBe(join(root, 'app'));
  });

  it('checks the name before reading files', () => {
    expect(usageError(() => loadConfig('../t', { HOME: home, SKIFF_ENV_DIR: envDir })).exitCode).toBe(2);
  });
});

describe('parseConfig: BACKUP_PATHS and BACKUP_SQLITE name things inside shared/', () => {
  // A path naming all of shared/ (or .env, backed up already) made every restore fail and leave the app stopped.
  beforeAll(fresh);

  it.each(['./', '.', './.', 'uploads/..', 'uploads/../', '.env', './.env', 'uploads,./uploads/', 'uploads,uploads/big', '/etc', '../x'])(
    'refuses BACKUP_PATHS=%s with a line naming the key (exit 2)',
    (value) => {
      const e = configError(() => load({ ...BASE, BACKUP_PATHS: value }));
      expect(e.exitCode).toBe(2);
      expect(e.issues.map((i) => i.key)).toEqual(['BACKUP_PATHS']);
      expect(e.message).toContain(`BACKUP_PATHS is "${value}", expected comma-separated files or folders inside shared/`);
    },
  );

  it.each(['.', './', 'data/app.db,./data/app.db'])('refuses BACKUP_SQLITE=%s', (value) => {
    expect(configError(() => load({ ...BASE, BACKUP_SQLITE: value })).issues.map((i) => i.key)).toEqual(['BACKUP_SQLITE']);
  });

  it.each([
    ['data', 'data/app.db'],
    ['data/app.db', 'data/app.db'],
    ['uploads,data', 'data/sub/app.db'],
  ])('refuses BACKUP_PATHS=%s holding BACKUP_SQLITE=%s: the raw file would be put back over its copy', (paths, sqlite) => {
    const e = configError(() => load({ ...BASE, BACKUP_PATHS: paths, BACKUP_SQLITE: sqlite }));
    expect(e.issues.map((i) => i.key)).toEqual(['BACKUP_PATHS']);
    expect(e.message).toMatch(/paths that hold no BACKUP_SQLITE database \(data\S* holds data\S*app\.db\)/);
  });

  it('takes a folder beside the database', () => {
    expect(load({ ...BASE, BACKUP_PATHS: 'data/uploads,database', BACKUP_SQLITE: 'data/app.db' }).backup.paths).toEqual(['data/uploads', 'database']);
  });

  it('keeps each path in its plain form', () => {
    const c = load({ ...BASE, BACKUP_PATHS: './uploads/, data/./files, .well-known', BACKUP_SQLITE: './data/app.db' });
    expect(c.backup.paths).toEqual(['uploads', 'data/files', '.well-known']);
    expect(c.backup.sqlite).toEqual(['data/app.db']);
  });
});

describe('parseConfig: BACKUP_POSTGRES_URL is read as libpq reads it', () => {
  beforeAll(fresh);

  it.each(['postgres://app:pw@h/d?host=/var/run/postgresql', 'postgres://app@/app?host=%2Ftmp', 'postgresql://a:p%40ss@[::1]/d?sslmode=verify-full&sslrootcert=/ca.pem'])('accepts %s', (url) => {
    expect(load(BASE, { secrets: { BACKUP_POSTGRES_URL: url } }).backup.postgresUrl?.reveal()).toBe(url);
  });

  it.each(['postgres://app:hunter2secret@h:99999/d', 'postgres://app:hunter2secret@h/d?sslmod=require', 'postgres://app:hunter2%zzsecret@h/d'])('refuses %s in one line that names the key and not the password (exit 2)', (url) => {
    const e = configError(() => load(BASE, { secrets: { BACKUP_POSTGRES_URL: url } }));
    expect(e.exitCode).toBe(2);
    expect(e.issues.map((i) => i.key)).toEqual(['BACKUP_POSTGRES_URL']);
    expect(e.message).toContain('BACKUP_POSTGRES_URL');
    expect(e.message).toContain('a postgres:// URL as libpq reads it');
    expect(e.message).not.toContain('hunter2');
  });
});
