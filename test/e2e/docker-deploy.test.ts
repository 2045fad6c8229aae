/**
 * Docker deploys over SSH, end to end: a real OpenSSH server on 127.0.0.10 whose sessions use a
 * Docker engine of their own (test/infra/docker-host.sh, on a small tmpfs), so every layer the host
 * lacks really travels; behind a real nginx and a real Caddy. The image is built by this machine's
 * engine from the example's Dockerfile on the base image of test/infra/docker.sh.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProbe } from '../support/probe.ts';
import { caddyUnderTest, nginxUnderTest } from '../support/proxies.ts';
import { get, localEnv, makeSandbox, ROOT, type Sandbox } from '../support/sandbox.ts';

const APP = 'hello-dk';
const SSH = { ip: '127.0.0.10', port: 2230 };
const BARE = { ip: '127.0.0.10', port: 2231 }; // a host without docker
const DOWN = { ip: '127.0.0.10', port: 2232 }; // a host whose daemon does not answer

interface Record_ {
  id: string;
  version: string;
  status: string;
  shipped?: { bytes: number; files: number; reused: number; packing?: string };
}

describe('docker runtime over SSH', () => {
  let s: Sandbox;
  let sshDir: string;
  let dockerDir: string;
  const nginx = nginxUnderTest(18700);
  const caddy = caddyUnderTest(18720);
  const url = `http://127.0.0.1:${nginx.publicPort}`;
  const docker2 = (...args: string[]) =>
    execFileSync('docker', args, { encoding: 'utf8', env: { ...process.env, DOCKER_HOST: `unix://${dockerDir}/docker.sock` } }).trim();
  const ssh = (to: { ip: string; port: number }, dir = sshDir) =>
    [
      `DEPLOY_HOSTS=${userInfo().username}@${to.ip}:${to.port}`,
      `DEPLOY_SSH_KEY=${join(dir, 'id_ed25519')}`,
      `DEPLOY_KNOWN_HOSTS=${join(dir, 'known_hosts')}`,
    ].join('\n');
  const base = (port: number, extra: string) =>
    localEnv(s, port, ['DEPLOY_RUNTIME=docker', 'DEPLOY_DOCKER_BUILD_ARGS=BASE=local/node-base:20', 'DEPLOY_HEALTH_TIMEOUT=15', extra].join('\n')).replace(
      'APP_NAME=hello',
      `APP_NAME=${APP}`,
    );
  const env = (extra = '') =>
    base(
      nginx.slots[0],
      [ssh(SSH), `DEPLOY_PORTS=${nginx.slots.join(',')}`, `DEPLOY_PUBLIC_URL=${url}`, 'DEPLOY_DRAIN_SECONDS=3', 'DEPLOY_KEEP_RELEASES=3', nginx.keys(s.dir), extra].join('\n'),
    );
  const history = (path = s.deployPath): Record_[] => {
    const byId = new Map<string, Record_>();
    for (const line of readFileSync(join(path, '.skiff/releases.jsonl'), 'utf8').trim().split('\n')) {
      const r = JSON.parse(line) as Record_;
      byId.set(r.id, { ...byId.get(r.id), ...r });
    }
    return [...byId.values()];
  };
  const releases = (path = s.deployPath) => (existsSync(join(path, 'releases')) ? readdirSync(join(path, 'releases')).sort() : []);
  const hostImages = () => docker2('image', 'ls', '--format', '{{.Repository}}:{{.Tag}}').split('\n').filter(Boolean).sort();
  const changeCode = (version: string) => {
    s.setVersion(version);
    appendFileSync(join(s.appDir, 'server.js'), `// ${version}\n`);
  };
  const throughProxy = async () => (await get(url)).text.trim();

  beforeAll(async () => {
    s = makeSandbox('docker-deploy');
    sshDir = join(s.dir, 'sshd');
    dockerDir = join(s.dir, 'docker-host');
    // Fails (rather than skips) when a component cannot be had: CI installs them (test/infra/*.sh).
    execFileSync('bash', [join(ROOT, 'test/infra/docker-host.sh'), dockerDir, '700m'], { stdio: 'ignore' });
    const sshd = (dir: string, to: { ip: string; port: number }, extra: string) =>
      execFileSync('bash', [join(ROOT, 'test/infra/sshd.sh'), dir, to.ip, String(to.port)], { stdio: 'ignore', env: { ...process.env, SSHD_EXTRA_CONFIG: extra } });
    sshd(sshDir, SSH, `SetEnv DOCKER_HOST=unix://${dockerDir}/docker.sock`);
    // A host without docker: its PATH has every command of this machine but docker's.
    const bin = join(s.dir, 'bare-bin');
    mkdirSync(bin);
    for (const d of ['/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
      if (!existsSync(d)) continue;
      for (const f of readdirSync(d)) if (!f.startsWith('docker') && !existsSync(join(bin, f))) symlinkSync(join(d, f), join(bin, f));
    }
    sshd(join(s.dir, 'sshd-bare'), BARE, `SetEnv PATH=${bin}`);
    sshd(join(s.dir, 'sshd-down'), DOWN, `SetEnv DOCKER_HOST=unix://${s.dir}/no-such-docker.sock`);
    await nginx.start(s.dir);
    await caddy.start(s.dir);
    s.writeEnv('t.env', env());
  });
  afterAll(() => {
    nginx.stop();
    caddy.stop();
    for (const dir of [sshDir, join(s.dir, 'sshd-bare'), join(s.dir, 'sshd-down')]) {
      const pid = join(dir, 'sshd.pid');
      if (existsSync(pid)) spawnSync('kill', [readFileSync(pid, 'utf8').trim()]);
    }
    spawnSync('bash', ['-c', `docker ps -aq --filter label=skiff.app=${APP} | xargs -r docker rm -f; docker images -q ${APP} | sort -u | xargs -r docker rmi -f`]);
    spawnSync('bash', [join(ROOT, 'test/infra/docker-host.sh'), '--stop', dockerDir]);
    s?.cleanup();
  });

  it('the first deploy sends the whole image to a host without its layers, and serves through nginx', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('deployed 1.0.0');
    expect(await throughProxy()).toBe('hello 1.0.0 (t)');
    const [first] = history();
    // Every layer travelled, the base one too (about 100 MB, about 44 MB through zstd).
    expect(first?.shipped).toMatchObject({ reused: 0, packing: 'zstd' });
    expect(first?.shipped?.bytes).toBeGreaterThan(25 * 1024 * 1024);
    expect(docker2('inspect', '--format', '{{.State.Status}} {{.HostConfig.NetworkMode}} {{.HostConfig.RestartPolicy.Name}}', `${APP}-t-blue`)).toBe(
      'running host unless-stopped',
    );
    const release = JSON.parse(readFileSync(join(s.deployPath, 'releases', first?.id ?? '', 'release.json'), 'utf8')) as { imageId: string };
    expect(docker2('inspect', '--format', '{{.Image}}', `${APP}-t-blue`)).toBe(release.imageId);
    expect(docker2('image', 'inspect', '--format', '{{.Id}}', `${APP}:1.0.0`)).toBe(release.imageId);
  });

  it('status shows the container, its image and health; logs shows what it printed', async () => {
    const status = await s.run('status', ['t']);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`process +running \\(container ${APP}-t-blue, image [0-9a-f]{12}, pid \\d+`));
    expect(status.stdout).toMatch(/health +ok \(HTTP 200\)/);
    expect(status.stdout).toContain(`log       docker logs ${APP}-t-blue`);
    const logs = await s.run('logs', ['t', '--lines', '5']);
    expect(logs.stdout).toContain('listening on');
  });

  it("a dry run asks the host's Docker for real and changes nothing: no container, image or record", async () => {
    const containers = () => docker2('ps', '-a', '--no-trunc', '--format', '{{.ID}} {{.Names}} {{.Image}} {{.State}}', '--filter', `label=skiff.app=${APP}`);
    const before = [containers(), docker2('images', '-q', '--no-trunc'), readFileSync(join(s.deployPath, '.skiff/releases.jsonl'), 'utf8')];
    const r = await s.run('deploy-vps', ['t', '--dry-run']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('ship stream: zstd --adapt');
    expect(r.stdout).toContain('dry run: nothing was changed (would deploy 1.0.0');
    expect([containers(), docker2('images', '-q', '--no-trunc'), readFileSync(join(s.deployPath, '.skiff/releases.jsonl'), 'utf8')]).toEqual(before);
    expect(await throughProxy()).toBe('hello 1.0.0 (t)');
  });

  it('a code-only redeploy ships the changed layer and little more, with no failed request', async () => {
    changeCode('1.0.1');
    const probe = startProbe(`${url}/api/health`, { headers: { connection: 'close' }, timeoutMs: 5000 });
    const r = await s.run('deploy-vps', ['t']);
    const result = await probe.stop();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(result.requests).toBeGreaterThan(50);
    expect(result.failures, `failed requests: ${result.firstErrors.join('; ')}`).toBe(0);
    expect(await throughProxy()).toBe('hello 1.0.1 (t)');
    const last = history().at(-1);
    // The code layer is a few KB; the archive's manifest and image config go with it.
    expect(last?.shipped?.bytes).toBeLessThan(200 * 1024);
    expect(r.stdout).toMatch(/1 of \d+ layers sent, \d+ the host had left out/);
    expect(docker2('inspect', '--format', '{{.State.Status}}', `${APP}-t-blue`)).toBe('exited'); // old slot stopped, kept for its logs
  });

  it('rollback with no argument goes back to the previous image with no failed request', async () => {
    const probe = startProbe(`${url}/api/health`, { headers: { connection: 'close' }, timeoutMs: 5000 });
    const r = await s.run('rollback', ['t']);
    const result = await probe.stop();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(result.failures, `failed requests: ${result.firstErrors.join('; ')}`).toBe(0);
    expect(await throughProxy()).toBe('hello 1.0.0 (t)');
    expect(history().find((h) => h.version === '1.0.1')?.status).toBe('bad');
  });

  it('rollback to a release id goes there', async () => {
    const id = history().find((h) => h.version === '1.0.1')?.id as string;
    const r = await s.run('rollback', ['t', id]);
    expect(r.code).toBe(0);
    expect(await throughProxy()).toBe('hello 1.0.1 (t)');
  });

  it('a container that exits at once: the old one keeps serving, exit 1, its last lines shown', async () => {
    changeCode('1.0.2');
    s.writeEnv('t.env', env('SHUTDOWN_TIMEOUT_MS=soon'));
    const r = await s.run('deploy-vps', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('SHUTDOWN_TIMEOUT_MS must be a whole number of milliseconds');
    expect(await throughProxy()).toBe('hello 1.0.1 (t)');
    expect(history().at(-1)).toMatchObject({ version: '1.0.2', status: 'failed' });
  });

  it('a container that never becomes healthy: the old one keeps serving, exit 1', async () => {
    changeCode('1.0.3');
    s.writeEnv('t.env', env('HEALTH_FAIL=1\nDEPLOY_HEALTH_TIMEOUT=2'));
    const r = await s.run('deploy-vps', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no healthy answer');
    expect(r.stderr).toContain('listening on'); // the new container's last lines
    expect(await throughProxy()).toBe('hello 1.0.1 (t)');
    expect(history().at(-1)).toMatchObject({ version: '1.0.3', status: 'failed' });
  });

  it('prune keeps DEPLOY_KEEP_RELEASES images, never the live or previous good one, and no other env or app', async () => {
    const [someImage] = hostImages().filter((t) => t.startsWith(`${APP}:`));
    docker2('tag', someImage as string, `${APP}:other-env-release`);
    docker2('tag', someImage as string, 'another-app:1.0.0');
    for (const v of ['1.0.4', '1.0.5']) {
      changeCode(v);
      const r = await s.run('deploy-vps', ['t']);
      expect(r.code, r.stderr).toBe(0);
    }
    const kept = releases();
    expect(kept).toHaveLength(3);
    const live = history().at(-1) as Record_;
    const previous = history().filter((h) => h.status === 'live' && h.id !== live.id).at(-1) as Record_;
    expect(kept).toContain(live.id);
    expect(kept).toContain(previous.id);
    const refs = hostImages().filter((t) => t.startsWith(`${APP}:t-`));
    expect(refs.sort()).toEqual(kept.map((id) => `${APP}:t-${id}`).sort());
    expect(hostImages()).toContain(`${APP}:other-env-release`);
    expect(hostImages()).toContain('another-app:1.0.0');
    for (const t of [`${APP}:other-env-release`, 'another-app:1.0.0']) docker2('rmi', t);
  });

  it('a missing Dockerfile: one line, exit 2, nothing changed on the host', async () => {
    const before = releases();
    s.writeEnv('t.env', env('DEPLOY_DOCKERFILE=Dockerfile.missing'));
    const r = await s.run('deploy-vps', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('Dockerfile.missing does not exist');
    expect(releases()).toEqual(before);
  });

  it('a build that fails: exit 1, nothing shipped', async () => {
    const before = { releases: releases(), images: hostImages() };
    writeFileSync(join(s.appDir, 'Dockerfile.broken'), 'FROM local/node-base:20\nRUN ["node", "-e", "process.exit(3)"]\n');
    s.writeEnv('t.env', env('DEPLOY_DOCKERFILE=Dockerfile.broken'));
    const r = await s.run('deploy-vps', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('failed (exit');
    expect(r.stderr).toContain('nothing was shipped');
    expect({ releases: releases(), images: hostImages() }).toEqual(before);
  });

  it('too little disk on the host for the image: refused before anything is sent (exit 1)', async () => {
    const before = { releases: releases(), images: hostImages() };
    // A 600 MB layer: loading it needs about twice that, and the host's engine has 700 MB in all.
    writeFileSync(
      join(s.appDir, 'Dockerfile.big'),
      `${readFileSync(join(s.appDir, 'Dockerfile'), 'utf8')}\nRUN ["node", "-e", "require('fs').writeFileSync('/tmp/big', Buffer.alloc(600 * 1024 * 1024, 1))"]\n`,
    );
    s.writeEnv('t.env', env('DEPLOY_DOCKERFILE=Dockerfile.big'));
    const r = await s.run('deploy-vps', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/free under .*, and loading 1 new layer of hello-dk:[^ ]+ needs about .*: free space there .*nothing was sent/);
    expect({ releases: releases(), images: hostImages() }).toEqual(before);
    expect(await throughProxy()).toBe('hello 1.0.5 (t)');
  });

  it('docker missing on the host: the install hint, exit 1, nothing changed', async () => {
    s.writeEnv('bare.env', base(18730, `${ssh(BARE, join(s.dir, 'sshd-bare'))}\nDEPLOY_PATH=${join(s.dir, 'bare-srv')}`));
    const r = await s.run('deploy-vps', ['bare']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('has no docker command: install Docker there (Debian: apt-get install docker.io)');
    expect(releases(join(s.dir, 'bare-srv'))).toEqual([]);
  });

  it('a host whose Docker daemon does not answer: one clear line, exit 1, nothing changed', async () => {
    s.writeEnv('down.env', base(18731, `${ssh(DOWN, join(s.dir, 'sshd-down'))}\nDEPLOY_PATH=${join(s.dir, 'down-srv')}`));
    const r = await s.run('deploy-vps', ['down']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the Docker daemon does not answer: start it there');
    expect(releases(join(s.dir, 'down-srv'))).toEqual([]);
  });

  it('behind Caddy: deploy, then a code-only redeploy with no failed request', async () => {
    const path = join(s.dir, 'caddy-srv');
    const cenv = base(caddy.slots[0], [ssh(SSH), `DEPLOY_PATH=${path}`, `DEPLOY_PORTS=${caddy.slots.join(',')}`, `DEPLOY_PUBLIC_URL=http://127.0.0.1:${caddy.publicPort}`, caddy.keys(s.dir)].join('\n'));
    s.writeEnv('c.env', cenv);
    expect((await s.run('deploy-vps', ['c'])).code).toBe(0);
    changeCode('1.1.0');
    const probe = startProbe(`http://127.0.0.1:${caddy.publicPort}/api/health`, { headers: { connection: 'close' }, timeoutMs: 5000 });
    const r = await s.run('deploy-vps', ['c']);
    const result = await probe.stop();
    expect(r.code, r.stderr).toBe(0);
    expect(result.failures, `failed requests: ${result.firstErrors.join('; ')}`).toBe(0);
    expect((await get(`http://127.0.0.1:${caddy.publicPort}/`)).text.trim()).toBe('hello 1.1.0 (c)');
    expect(docker2('inspect', '--format', '{{.State.Status}}', `${APP}-c-green`)).toBe('running');
  });

  it('with proxy none, one container is replaced in place; stop and start act on it', async () => {
    const path = join(s.dir, 'none-srv');
    s.writeEnv('n.env', base(18740, [ssh(SSH), `DEPLOY_PATH=${path}`].join('\n')));
    expect((await s.run('deploy-vps', ['n'])).code).toBe(0);
    changeCode('1.2.0');
    const r = await s.run('deploy-vps', ['n']);
    expect(r.code, r.stderr).toBe(0);
    expect((await get('http://127.0.0.1:18740/')).text.trim()).toBe('hello 1.2.0 (n)');
    expect(docker2('ps', '-a', '--filter', `label=skiff.env=n`, '--format', '{{.Names}}')).toBe(`${APP}-n-blue`);
    expect((await s.run('stop', ['n'])).stdout).toContain(`stopped container ${APP}-n-blue`);
    expect((await get('http://127.0.0.1:18740/')).status).toBe(0);
    expect((await s.run('start', ['n'])).code).toBe(0);
    expect((await get('http://127.0.0.1:18740/')).text.trim()).toBe('hello 1.2.0 (n)');
  });

  it('backup and restore with the docker runtime: the data comes back, the container serves and writes it', async () => {
    s.writeEnv('n.env', base(18740, [ssh(SSH), `DEPLOY_PATH=${join(s.dir, 'none-srv')}`, 'BACKUP_SQLITE=data/app.db'].join('\n')));
    const api = 'http://127.0.0.1:18740/api/notes';
    const count = async () => (JSON.parse((await get(`${api}/count`)).text) as { count: number }).count;
    for (let i = 0; i < 5; i++) expect((await fetch(api, { method: 'POST', body: JSON.stringify({ body: `note ${i}` }) })).status).toBe(201);
    const b = await s.run('backup', ['n', 'kept']);
    expect(b.code, b.stderr).toBe(0);
    const name = /backup (\d{8}-\d{6}(?:\.\d{3})?-kept) \(/.exec(b.stdout)?.[1] as string;
    const rows = await count();
    await fetch(api, { method: 'POST', body: JSON.stringify({ body: 'after the backup' }) });
    const r = await s.run('restore', ['n', name, '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(await count()).toBe(rows);
    expect((await fetch(api, { method: 'POST', body: JSON.stringify({ body: 'written after the restore' }) })).status).toBe(201);
    expect(docker2('inspect', '--format', '{{.State.Status}}', `${APP}-n-blue`)).toBe('running');
    expect((await s.run('stop', ['n'])).code).toBe(0);
  });
  it('app keys named HOME, PATH and HTTPS_PROXY reach the container, not the docker client on the host', async () => {
    // A HOME whose docker config sets a proxy: a docker client that read it would put it into the container.
    const home = join(s.dir, 'app-home');
    mkdirSync(join(home, '.docker'), { recursive: true });
    writeFileSync(join(home, '.docker', 'config.json'), '{"proxies": {"default": {"httpProxy": "http://127.0.0.1:8"}}}\n');
    const keys = [`HOME=${home}`, 'HTTPS_PROXY=http://127.0.0.1:9', 'PATH=/usr/local/bin:/usr/bin:/bin:/app-bin'];
    s.writeEnv('n.env', base(18740, [ssh(SSH), `DEPLOY_PATH=${join(s.dir, 'none-srv')}`, ...keys].join('\n')));
    const r = await s.run('deploy-vps', ['n']);
    expect(r.code, r.stderr).toBe(0);
    expect((await get('http://127.0.0.1:18740/')).text.trim()).toMatch(/^hello .* \(n\)$/);
    const inside = docker2('inspect', '--format', '{{range .Config.Env}}{{println .}}{{end}}', `${APP}-n-blue`).split('\n');
    for (const k of keys) expect(inside).toContain(k);
    expect(inside.filter((e) => /^http_proxy=/i.test(e))).toEqual([]);
    // The private env file docker read is gone once the container runs.
    expect(readdirSync(join(s.dir, 'none-srv', '.skiff', 'env')).filter((f) => f.startsWith('.run.'))).toEqual([]);
    expect((await s.run('stop', ['n'])).code).toBe(0);
  });

  it('workers: a container each of the release image with its command, replaced on deploy with their grace, gone with stop; one that exits at once fails the deploy', async () => {
    const path = join(s.dir, 'worker-srv');
    // Plain words: the test image has no shell, so the container runs them as they are.
    const script = "process.on('SIGTERM',()=>process.exit(0)),setInterval(()=>console.log('tick '+process.env.APP_VERSION),300)";
    const tick = `node -e "${script}"`;
    const wk = (workers: string) => base(18753, [ssh(SSH), `DEPLOY_PATH=${path}`, `DEPLOY_WORKERS=${workers}`, 'DEPLOY_WORKER_UP_SECONDS=2', 'DEPLOY_WORKER_GRACE_SECONDS=5'].join('\n'));
    const workers = () => docker2('ps', '-a', '--filter', 'label=skiff.env=wk', '--filter', 'label=skiff.worker', '--format', '{{.Names}} {{.State}}').split('\n').filter(Boolean).sort();
    const live = () => (JSON.parse(readFileSync(join(path, '.skiff/state.json'), 'utf8')) as { slots: { blue: { release: string } } }).slots.blue.release;
    s.writeEnv('wk.env', wk(`tick:2=${tick}`));
    const first = await s.run('deploy-vps', ['wk']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('started 2 worker processes (tick.1, tick.2), up after 2s');
    const r1 = live();
    expect(workers()).toEqual([`${APP}-wk-worker-tick.1-${r1} running`, `${APP}-wk-worker-tick.2-${r1} running`]);
    expect(JSON.parse(docker2('inspect', '--format', '{{json .Config.Cmd}}', `${APP}-wk-worker-tick.1-${r1}`))).toEqual(['node', '-e', script]);
    expect(docker2('inspect', '--format', '{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.NetworkMode}}', `${APP}-wk-worker-tick.1-${r1}`)).toBe('unless-stopped host');
    expect(docker2('logs', `${APP}-wk-worker-tick.1-${r1}`)).toMatch(/^tick \d/m);
    expect((await s.run('status', ['wk'])).stdout).toMatch(/workers +tick\.1 running \(pid \d+\), tick\.2 running \(pid \d+\)/);

    changeCode('1.3.0');
    const second = await s.run('deploy-vps', ['wk']);
    expect(second.code, second.stderr).toBe(0);
    // Each took its SIGTERM and exited within the grace: stopped, not killed.
    expect(second.stdout).toContain(`old workers: stopped 2 worker processes of ${r1}`);
    const r2 = live();
    expect(workers()).toEqual([`${APP}-wk-worker-tick.1-${r2} running`, `${APP}-wk-worker-tick.2-${r2} running`]);
    expect(docker2('logs', `${APP}-wk-worker-tick.1-${r2}`)).toContain('tick 1.3.0');

    const stop = await s.run('stop', ['wk']);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toContain(`stopped 2 worker processes of ${r2}`);
    expect(workers()).toEqual([]);
    expect((await s.run('start', ['wk'])).code).toBe(0);
    expect(workers()).toEqual([`${APP}-wk-worker-tick.1-${r2} running`, `${APP}-wk-worker-tick.2-${r2} running`]);

    // A worker that exits at once (docker starts it again and again): exit 1, nothing switched, its containers gone.
    s.writeEnv('wk.env', wk(`tick:2=${tick};broken=node -e "console.error('Error: no queue here'),process.exit(3)"`));
    changeCode('1.3.1');
    const failed = await s.run('deploy-vps', ['wk']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/worker broken\.1 of release \S+ exited within 2s of its start \(its log says: Error: no queue here\): see docker logs /);
    expect(live()).toBe(r2);
    expect(workers()).toEqual([`${APP}-wk-worker-tick.1-${r2} running`, `${APP}-wk-worker-tick.2-${r2} running`]);
    expect((await get('http://127.0.0.1:18753/')).text.trim()).toBe('hello 1.3.0 (wk)');
    expect((await s.run('stop', ['wk'])).code).toBe(0);
  });
});
