/**
 * `build.ts` with DEPLOY_RUNTIME=docker against a real Docker engine (test/infra/docker.sh): the
 * example's Dockerfile on a base image made from this machine's Node.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, localEnv, makeSandbox, ROOT, type Sandbox } from '../support/sandbox.ts';

const PORT = 18801;
const APP = 'hello-dtest';

describe('docker build', () => {
  let s: Sandbox;
  const env = (extra = '') => localEnv(s, PORT, ['DEPLOY_RUNTIME=docker', 'DEPLOY_DOCKER_BUILD_ARGS=BASE=local/node-base:20', extra].join('\n')).replace('APP_NAME=hello', `APP_NAME=${APP}`);
  const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8' }).trim();

  beforeAll(() => {
    // Fails (rather than skips) when Docker cannot be had: CI starts it with test/infra/docker.sh.
    execFileSync('bash', [join(ROOT, 'test/infra/docker.sh')], { stdio: 'ignore' });
    s = makeSandbox('docker-build');
    s.writeEnv('t.env', env());
  });
  afterAll(() => {
    spawnSync('docker', ['rm', '-f', `${APP}-probe`]);
    const images = spawnSync('docker', ['images', '-q', APP], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    if (images.length) spawnSync('docker', ['rmi', '-f', ...images]);
    s?.cleanup();
  });

  it('builds <app>:<version> with labels, and the image serves as a user without privileges', async () => {
    s.setVersion('2.1.0');
    const r = await s.run('build', ['t', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as { version: string; image: string; imageId: string };
    expect(out).toMatchObject({ version: '2.1.0', image: `${APP}:2.1.0` });
    expect(out.imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
    const labels = JSON.parse(docker('image', 'inspect', '--format', '{{json .Config.Labels}}', `${APP}:2.1.0`)) as Record<string, string>;
    expect(labels['org.opencontainers.image.version']).toBe('2.1.0');
    expect(labels['org.opencontainers.image.created']).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(docker('image', 'inspect', '--format', '{{.Config.User}}', `${APP}:2.1.0`)).toBe('1000:1000');
    expect(docker('image', 'inspect', '--format', '{{json .Config.Healthcheck.Test}}', `${APP}:2.1.0`)).toContain('/api/health');
    const data = join(s.dir, 'container-data');
    mkdirSync(data);
    chownSync(data, 1000, 1000);
    docker('run', '-d', '--name', `${APP}-probe`, '--network', 'host', '-e', `PORT=${PORT}`, '-v', `${data}:/data`, `${APP}:2.1.0`);
    let health = { status: 0, text: '' };
    for (let i = 0; i < 50 && health.status !== 200; i++) {
      await new Promise((r2) => setTimeout(r2, 100));
      health = await get(`http://127.0.0.1:${PORT}/api/health`);
    }
    expect(health.status).toBe(200);
    expect(JSON.parse(health.text)).toMatchObject({ status: 'ok', version: '2.1.0' });
  });

  it('a missing Dockerfile: one line, exit 2, nothing built', async () => {
    s.writeEnv('t.env', env('DEPLOY_DOCKERFILE=Dockerfile.missing'));
    const r = await s.run('build', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('Dockerfile.missing does not exist: write a Dockerfile for the app, or point DEPLOY_DOCKERFILE at it');
  });

  it('a build that fails: exit 1 with the last lines of docker build', async () => {
    writeFileSync(join(s.appDir, 'Dockerfile.broken'), 'FROM local/node-base:20\nRUN ["node", "-e", "console.error(\'broken on purpose\'); process.exit(3)"]\n');
    s.writeEnv('t.env', env('DEPLOY_DOCKERFILE=Dockerfile.broken'));
    const r = await s.run('build', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/docker build of hello-dtest:2\.1\.0 failed \(exit \d+\); nothing was shipped/);
    expect(r.stderr).toContain('broken on purpose');
  });

  it('deploy --no-build without an image of this version: the hint to build, exit 2, nothing started', async () => {
    spawnSync('docker', ['rm', '-f', `${APP}-probe`]); // the first test's container holds the port
    s.setVersion('9.9.9');
    const r = await s.run('deploy-vps', ['t', '--no-build']);
    s.setVersion('2.1.0');
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`there is no image ${APP}:9.9.9 on this machine: run \`npx tsx scripts/build.ts t\` first`);
    expect(spawnSync('docker', ['ps', '-aq', '--filter', `label=skiff.app=${APP}`], { encoding: 'utf8' }).stdout.trim()).toBe('');
  });
});
