import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { loadConfig, type Config } from '../../lib/config/config.ts';
import { REPO_ROOT } from '../../lib/core/paths.ts';
import { UsageError } from '../../lib/core/errors.ts';
import { buildExport, checkProbe, checkReplicas, checkRuntime, checkTarget, checkVersion, kubernetesObjects, type ExportFile, type ExportOptions } from '../../lib/export/export.ts';
import { composeProblems } from '../../lib/export/validate.ts';
import { checkOut, writeExport } from '../../lib/export/write.ts';

const dir = mkdtempSync(join(tmpdir(), 'skiff-export-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SECRET = "s3cr3t-$HOME-'q\"";
const PASSWORD = 'hunter2-do-not-print';
writeFileSync(
  join(dir, 'production.env'),
  [
    'APP_NAME=hello',
    'APP_DIR=example',
    'DEPLOY_HOSTS=deploy@203.0.113.10,deploy@203.0.113.11',
    'DEPLOY_PATH=/srv/hello/production',
    'DEPLOY_RUNTIME=docker',
    'DEPLOY_PROXY=nginx',
    'DEPLOY_PORTS=3001,3002',
    'DEPLOY_PUBLIC_URL=https://example.com/api',
    'DEPLOY_HEALTH_PATH=/api/health',
    'DEPLOY_HEALTH_TIMEOUT=30',
    'DEPLOY_DRAIN_SECONDS=15',
    'DEPLOY_MEMORY_LIMIT=512M',
    'DEPLOY_CPU_LIMIT=0.5',
    'LOG_LEVEL=warn',
    "PRICE_NOTE='costs $5'",
  ].join('\n'),
);
writeFileSync(join(dir, 'production.secrets.env'), `SESSION_SECRET='${SECRET.replace(/'/g, '')}'\nDATABASE_PASSWORD=${PASSWORD}\n`, { mode: 0o600 });
chmodSync(join(dir, 'production.secrets.env'), 0o600);
writeFileSync(join(dir, 'local.env'), readFileSync(join(REPO_ROOT, 'env/local.env')));
const SESSION = SECRET.replace(/'/g, '');

const cfg: Config = loadConfig('production', { SKIFF_ENV_DIR: dir, HOME: dir });
const opts = (o: Partial<ExportOptions> = {}): ExportOptions => ({ to: 'compose', image: 'hello:1.2.3', version: '1.2.3', replicas: 2, probe: 'node', withSecrets: false, ...o });
const file = (files: readonly ExportFile[], name: string): ExportFile => {
  const f = files.find((x) => x.name === name);
  if (!f) throw new Error(`no ${name} among ${files.map((x) => x.name).join(', ')}`);
  return f;
};
const noSecretIn = (text: string) => {
  expect(text).not.toContain(PASSWORD);
  expect(text).not.toContain('s3cr3t');
};

describe('export to compose', () => {
  const out = buildExport(cfg, opts());
  const doc = parse(file(out.files, 'compose.yaml').text);
  const svc = doc.services.hello;

  it('is valid by the Compose specification, and holds no secret value', () => {
    expect(composeProblems(doc)).toEqual([]);
    expect(out.files.map((f) => f.name)).toEqual(['compose.yaml']);
    expect(out.secretKeys).toEqual(['DATABASE_PASSWORD', 'SESSION_SECRET']);
    noSecretIn(file(out.files, 'compose.yaml').text);
    expect(out.notes.join('\n')).toContain('compose.secrets.yaml must give DATABASE_PASSWORD, SESSION_SECRET');
  });

  it('runs the image with the env of a deploy, the health path, data and limits', () => {
    expect(svc.image).toBe('hello:1.2.3');
    // Compose reads $ as an interpolation: a value's own $ is doubled.
    expect(svc.environment).toEqual({ LOG_LEVEL: 'warn', PRICE_NOTE: 'costs $$5', PORT: '3001', DATA_DIR: '/data', APP_VERSION: '1.2.3', APP_ENV: 'production' });
    expect(svc.healthcheck.test).toEqual(['CMD', 'node', '-e', expect.stringContaining('fetch(process.argv[1])'), 'http://127.0.0.1:3001/api/health']);
    expect(svc.healthcheck.start_period).toBe('30s');
    expect(svc.volumes).toEqual(['data:/data']);
    expect(svc.ports).toEqual(['3001:3001']);
    expect(svc.mem_limit).toBe('512M');
    expect(svc.cpus).toBe(0.5);
    expect(svc.restart).toBe('unless-stopped');
    expect(svc.deploy).toBeUndefined();
    expect(doc.networks).toBeUndefined();
  });

  it('writes the secret values only with --with-secrets, into a file of their own marked secret', () => {
    const withSecrets = buildExport(cfg, opts({ withSecrets: true }));
    const main = file(withSecrets.files, 'compose.yaml');
    const secrets = file(withSecrets.files, 'compose.secrets.yaml');
    expect(main.secret).toBe(false);
    expect(secrets.secret).toBe(true);
    noSecretIn(main.text);
    const env = parse(secrets.text).services.hello.environment;
    expect(env).toEqual({ SESSION_SECRET: SESSION.replace(/\$/g, '$$$$'), DATABASE_PASSWORD: PASSWORD });
    expect(composeProblems(parse(secrets.text))).toEqual([]);
  });
});

describe('export to swarm', () => {
  const out = buildExport(cfg, opts({ to: 'swarm', withSecrets: true }));
  const doc = parse(file(out.files, 'stack.yaml').text);
  const deploy = doc.services.hello.deploy;

  it('is valid, with rolling start-first updates that roll back, and the limits', () => {
    expect(composeProblems(doc)).toEqual([]);
    expect(deploy.replicas).toBe(2);
    expect(deploy.update_config).toMatchObject({ parallelism: 1, order: 'start-first', failure_action: 'rollback', monitor: '30s' });
    expect(deploy.rollback_config).toMatchObject({ parallelism: 1, order: 'start-first' });
    expect(deploy.resources.limits).toEqual({ memory: '512M', cpus: '0.5' });
    expect(doc.services.hello.mem_limit).toBeUndefined();
    expect(doc.services.hello.healthcheck.test.at(-1)).toBe('http://127.0.0.1:3001/api/health');
    expect(out.notes.join('\n')).toContain('docker stack deploy -c stack.yaml -c stack.secrets.yaml hello');
  });

  it('the schema check finds a wrong key', () => {
    const bad = structuredClone(doc);
    bad.services.hello.deploy.update_config.order = 'sideways';
    bad.services.hello.deploy.replica = 2;
    const problems = composeProblems(bad).join('\n');
    expect(problems).toContain('/services/hello/deploy/update_config/order must be equal to one of the allowed values');
    expect(problems).toContain('/services/hello/deploy must NOT have additional properties: replica');
  });
});

describe('export to kubernetes', () => {
  const out = buildExport(cfg, opts({ to: 'kubernetes' }));
  const o = kubernetesObjects(cfg, opts({ to: 'kubernetes' }), out.secretKeys);

  it('validates every object by the Kubernetes schemas, and writes no secret value without --with-secrets', () => {
    for (const m of [o.deployment, o.service, o.pvc, o.ingress, o.secret]) expect(() => m?.validate()).not.toThrow();
    expect(out.files.map((f) => f.name)).toEqual(['deployment.yaml', 'service.yaml', 'pvc.yaml', 'ingress.yaml']);
    for (const f of out.files) noSecretIn(f.text);
    expect(out.notes.join('\n')).toContain('the Secret hello-production must hold DATABASE_PASSWORD, SESSION_SECRET');
  });

  it('rolls one pod at a time with none unavailable, behind readiness, liveness and startup probes', () => {
    const d = parse(file(out.files, 'deployment.yaml').text);
    expect(d.spec.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
    const c = d.spec.template.spec.containers[0];
    expect(c.image).toBe('hello:1.2.3');
    expect(c.readinessProbe.httpGet).toEqual({ path: '/api/health', port: 'http' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/api/health', port: 'http' });
    expect(c.startupProbe.failureThreshold).toBe(6);
    expect(c.resources.limits).toEqual({ memory: '512Mi', cpu: '0.5' });
    expect(c.envFrom).toEqual([{ secretRef: { name: 'hello-production' } }]);
    expect(c.env).toContainEqual({ name: 'PRICE_NOTE', value: 'costs $5' });
    expect(d.spec.template.spec.terminationGracePeriodSeconds).toBe(25);
  });

  it('routes the URL host and prefix with TLS through the Ingress', () => {
    const i = parse(file(out.files, 'ingress.yaml').text);
    expect(i.spec.tls).toEqual([{ hosts: ['example.com'], secretName: 'hello-production-tls' }]);
    expect(i.spec.rules[0].host).toBe('example.com');
    expect(i.spec.rules[0].http.paths[0]).toMatchObject({ path: '/api', pathType: 'Prefix' });
  });

  it('writes the Secret with its values only with --with-secrets, marked secret', () => {
    const withSecrets = buildExport(cfg, opts({ to: 'kubernetes', withSecrets: true }));
    const s = file(withSecrets.files, 'secret.yaml');
    expect(s.secret).toBe(true);
    expect(parse(s.text).stringData).toEqual({ SESSION_SECRET: SESSION, DATABASE_PASSWORD: PASSWORD });
    for (const f of withSecrets.files.filter((x) => !x.secret)) noSecretIn(f.text);
  });

  it('the model check refuses a wrong object', () => {
    const bad = new Deployment({ metadata: { name: 'x' }, spec: { selector: {}, template: {}, replicas: 'two' as unknown as number } });
    expect(() => bad.validate()).toThrow(/replicas/);
  });
});

describe('export inputs', () => {
  const usage = (f: () => unknown, text: RegExp) => {
    expect(f).toThrow(UsageError);
    expect(f).toThrow(text);
  };
  it('refuses what it cannot export, each in one line', () => {
    usage(() => checkTarget('nomad'), /--to "nomad" is not a target: use compose, swarm or kubernetes/);
    usage(() => checkTarget(undefined), /needs --to/);
    usage(() => checkRuntime(loadConfig('local', { SKIFF_ENV_DIR: dir, HOME: dir })), /needs a docker image.*DEPLOY_RUNTIME=process.*set DEPLOY_RUNTIME=docker/);
    usage(() => checkVersion('', '--version'), /no version/);
    usage(() => checkVersion(undefined, '--version'), /no version/);
    usage(() => checkVersion('a b', '--version'), /not a docker image tag/);
    usage(() => checkReplicas('0', 2), /--replicas "0"/);
    usage(() => checkProbe('bash', undefined), /--probe "bash"/);
  });
  it('takes the defaults from the config and the Dockerfile', () => {
    expect(checkReplicas(undefined, 3)).toBe(3);
    expect(checkProbe(undefined, readFileSync(join(REPO_ROOT, 'example/Dockerfile'), 'utf8'))).toBe('node');
    expect(checkProbe(undefined, 'FROM python:3.12-slim\n')).toBe('curl');
    expect(checkProbe('wget', 'FROM node:20')).toBe('wget');
    expect(checkVersion('1.2.3-abc1234-dirty', 'x')).toBe('1.2.3-abc1234-dirty');
  });
});

describe('writing an export', () => {
  const files = buildExport(cfg, opts({ to: 'kubernetes', withSecrets: true })).files;

  it('writes every file atomically, the secret one mode 600', () => {
    const out = join(dir, 'k8s');
    writeExport(out, files, false);
    expect(readdirSync(out).sort()).toEqual(['deployment.yaml', 'ingress.yaml', 'pvc.yaml', 'secret.yaml', 'service.yaml']);
    expect(statSync(join(out, 'secret.yaml')).mode & 0o777).toBe(0o600);
    expect(statSync(join(out, 'deployment.yaml')).mode & 0o777).toBe(0o644);
  });

  it('replaces nothing without --force, and writes nothing then', () => {
    const out = join(dir, 'partial');
    writeExport(out, files.slice(0, 1), false);
    expect(() => writeExport(out, files, false)).toThrow(/deployment.yaml exists already: pass --force/);
    expect(readdirSync(out)).toEqual(['deployment.yaml']);
    expect(writeExport(out, files, true)).toHaveLength(5);
  });

  it('refuses an out path that is a file, or lies under one', () => {
    const f = join(dir, 'a-file');
    writeFileSync(f, 'x');
    expect(() => checkOut(f, files, true)).toThrow(/is a file, not a folder/);
    expect(() => checkOut(join(f, 'sub'), files, true)).toThrow(/which is a file/);
  });
});

describe('scripts/export.ts', () => {
  const run = (...args: string[]) =>
    spawnSync(join(REPO_ROOT, 'node_modules/.bin/tsx'), [join(REPO_ROOT, 'scripts/export.ts'), ...args], { env: { ...process.env, SKIFF_ENV_DIR: dir, HOME: dir }, encoding: 'utf8', timeout: 60_000 });

  it.each([
    ['an unknown target', ['production', '--to', 'nomad'], /not a target/],
    ['an env that does not exist', ['nope', '--to', 'compose'], /unknown environment "nope"/],
    ['the process runtime', ['local', '--to', 'kubernetes'], /needs a docker image/],
    ['an empty version', ['production', '--to', 'swarm', '--version', ''], /no version/],
  ])('%s: one line, exit 2, nothing written', (_, args, text) => {
    const out = join(dir, `bad-${args[0]}-${args[2]}`);
    const r = run(...args, '--out', out);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(text);
    expect(existsSync(out)).toBe(false);
  });

  it('--dry-run prints the files, never a secret value, and writes nothing', () => {
    const out = join(dir, 'dry');
    const r = run('production', '--to', 'kubernetes', '--with-secrets', '--version', '1.2.3', '--dry-run', '--out', out);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('kind: Deployment');
    expect(r.stdout).toContain('holds the values of DATABASE_PASSWORD, SESSION_SECRET: not shown');
    noSecretIn(r.stdout + r.stderr);
    expect(existsSync(out)).toBe(false);
  });
});

describe('export of an env with an IP URL, and of one with no URL', () => {
  const env = (name: string, lines: string[]) => {
    writeFileSync(join(dir, `${name}.env`), ['APP_NAME=shop', 'APP_DIR=example', 'DEPLOY_PATH=/srv/shop', 'DEPLOY_RUNTIME=docker', ...lines].join('\n'));
    return loadConfig(name, { SKIFF_ENV_DIR: dir, HOME: dir });
  };
  it('an IP address: an Ingress rule for every host, no TLS; no URL: no Ingress', () => {
    const ip = buildExport(env('ipurl', ['DEPLOY_PROXY=caddy', 'DEPLOY_PORTS=4001,4002', 'DEPLOY_PUBLIC_URL=http://127.0.0.1:8080']), opts({ to: 'kubernetes', image: 'shop:1' }));
    const ingress = parse(file(ip.files, 'ingress.yaml').text);
    expect(ingress.spec.rules).toEqual([{ http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'shop-ipurl', port: { name: 'http' } } } } ] } }]);
    expect(ingress.spec.tls).toBeUndefined();
    const none = buildExport(env('nourl', ['DEPLOY_PORTS=4001']), opts({ to: 'kubernetes', image: 'shop:1' }));
    expect(none.files.map((f) => f.name)).toEqual(['deployment.yaml', 'service.yaml', 'pvc.yaml']);
    expect(none.notes.join('\n')).toContain('no DEPLOY_PUBLIC_URL: no Ingress');
    expect(none.secretKeys).toEqual([]);
    expect(parse(file(none.files, 'deployment.yaml').text).spec.template.spec.containers[0].envFrom).toBeUndefined();
  });
});
