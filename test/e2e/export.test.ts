/**
 * scripts/export.ts as a user runs it, on the example's env files: the docker env exports, the
 * process env is refused; the Compose and Swarm files it writes are read by Debian's docker-compose
 * (`config` only parses and merges: nothing is started, no network is made, no Swarm).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { REPO_ROOT } from '../../lib/core/paths.ts';

const dir = mkdtempSync(join(tmpdir(), 'skiff-export-e2e-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
copyFileSync(join(REPO_ROOT, 'env/production.env.example'), join(dir, 'production.env'));
copyFileSync(join(REPO_ROOT, 'env/local.env'), join(dir, 'local.env'));
writeFileSync(join(dir, 'production.env'), `${readFileSync(join(dir, 'production.env'), 'utf8')}\nDEPLOY_MEMORY_LIMIT=256M\nDEPLOY_CPU_LIMIT=1\nGREETING='a $dollar and a "quote"'\n`);
const secrets = join(dir, 'production.secrets.env');
writeFileSync(secrets, "SESSION_SECRET='e2e-secret-$x'\n", { mode: 0o600 });
chmodSync(secrets, 0o600);

const hasCompose = spawnSync('docker-compose', ['version'], { encoding: 'utf8' }).status === 0;
// On CI the package is installed by test/infra/up.sh: a missing one fails there, never skips.
const needsCompose = hasCompose || process.env.CI ? it : it.skip;

const exportTo = (...args: string[]) =>
  spawnSync(join(REPO_ROOT, 'node_modules/.bin/tsx'), [join(REPO_ROOT, 'scripts/export.ts'), ...args], { env: { ...process.env, SKIFF_ENV_DIR: dir }, encoding: 'utf8', timeout: 60_000 });

const composeConfig = (cwd: string, files: string[]) =>
  spawnSync('docker-compose', [...files.flatMap((f) => ['-f', f]), 'config'], { cwd, encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });

describe('export', () => {
  it('refuses the process example: the engines run images', () => {
    const r = exportTo('local', '--to', 'compose', '--out', join(dir, 'local'));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/needs a docker image.*set DEPLOY_RUNTIME=docker/);
  });

  needsCompose.each(['compose', 'swarm'] as const)('%s: written, valid by the schema, read by docker-compose config', (to) => {
    expect(hasCompose, 'docker-compose is missing: test/infra/up.sh installs it').toBe(true);
    const out = join(dir, to);
    const r = exportTo('production', '--to', to, '--with-secrets', '--version', '2.0.0', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    const base = to === 'swarm' ? 'stack' : 'compose';
    expect(statSync(join(out, `${base}.secrets.yaml`)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(out, `${base}.yaml`), 'utf8')).not.toContain('e2e-secret');
    const c = composeConfig(out, [`${base}.yaml`, `${base}.secrets.yaml`]);
    expect(c.status, c.stderr).toBe(0);
    const merged = parse(c.stdout);
    const svc = merged.services.hello;
    expect(svc.image).toBe('hello:2.0.0');
    // docker-compose prints the merged file escaped again: what the container gets is one $.
    expect(svc.environment.SESSION_SECRET).toBe('e2e-secret-$$x');
    expect(svc.environment.GREETING).toBe('a $$dollar and a "quote"');
    expect(svc.environment.PORT).toBe('3001');
    expect(svc.healthcheck.test.at(-1)).toBe('http://127.0.0.1:3001/api/health');
    if (to === 'swarm') {
      expect(svc.deploy.update_config.order).toBe('start-first');
      expect(svc.deploy.resources.limits).toMatchObject({ memory: '256M' });
    }
    // Again into the same folder: refused without --force, and the files are as they were.
    const before = readFileSync(join(out, `${base}.yaml`), 'utf8');
    const again = exportTo('production', '--to', to, '--version', '2.0.1', '--out', out);
    expect(again.status).toBe(2);
    expect(again.stderr).toMatch(/exists already: pass --force/);
    expect(readFileSync(join(out, `${base}.yaml`), 'utf8')).toBe(before);
  });

  it('kubernetes: the manifests of the docker example, checked by their models', () => {
    const out = join(dir, 'kubernetes');
    const r = exportTo('production', '--to', 'kubernetes', '--version', '2.0.0', '--out', out, '--json');
    expect(r.status, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}');
    expect(result.files.map((f: string) => f.slice(out.length + 1))).toEqual(['deployment.yaml', 'service.yaml', 'pvc.yaml', 'ingress.yaml']);
    expect(result.secretKeys).toEqual(['SESSION_SECRET']);
    const ingress = parse(readFileSync(join(out, 'ingress.yaml'), 'utf8'));
    expect(ingress.spec.tls[0].hosts).toEqual(['example.com']);
  });
});
