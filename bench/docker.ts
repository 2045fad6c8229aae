/**
 * Docker deploys, skiff against the seeds' flow in one run: bytes shipped for a code-only change,
 * wall time per deploy, and failed requests under continuous load.
 *
 *   npx tsx bench/docker.ts [--deploys 10] [--rollbacks 5] [--seeds 3] [--seeds-sleep 10] [--json]
 *
 * It sets up what it measures on this machine (as root, like the tests): a second Docker engine
 * standing for the server's (test/infra/docker-host.sh), an OpenSSH server whose sessions use it,
 * and an nginx in front, all on loopback. The example app is built by this machine's engine.
 *
 * 1. skiff: `deploy-vps.ts` of a code-only change N times, then `rollback.ts` M times, under a
 *    probe that sends requests back to back through nginx (a new connection each).
 * 2. The seeds' flow, under the same probe, on the same port: docker build, `docker save | gzip`
 *    to a file, copy it over SSH, `gunzip | docker load` there, stop and remove the live container,
 *    `docker run` the new one, sleep, curl the health URL.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../lib/core/paths.ts';
import { startProbe, type ProbeResult } from '../test/support/probe.ts';
import { nginxUnderTest } from '../test/support/proxies.ts';

const { values } = parseArgs({
  options: {
    deploys: { type: 'string', default: '10' },
    rollbacks: { type: 'string', default: '5' },
    seeds: { type: 'string', default: '3' },
    'seeds-sleep': { type: 'string', default: '10' },
    json: { type: 'boolean', default: false },
  },
});
const count = (name: 'deploys' | 'rollbacks' | 'seeds' | 'seeds-sleep') => {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`--${name} takes a whole number, not ${JSON.stringify(values[name])}\n`);
    process.exit(2);
  }
  return n;
};
const [deploysN, rollbacksN, seedsN, seedsSleep] = [count('deploys'), count('rollbacks'), count('seeds'), count('seeds-sleep')];

const APP = 'hello-dbench';
const SSH = { ip: '127.0.0.11', port: 2240 };
const dir = mkdtempSync(join(tmpdir(), 'skiff-bench-docker-'));
const [appDir, envDir, sshDir, dockerDir, deployPath] = ['app', 'env', 'sshd', 'docker-host', 'srv'].map((d) => join(dir, d)) as [string, string, string, string, string];
const sock = `unix://${dockerDir}/docker.sock`;
const nginx = nginxUnderTest(18760);
const url = `http://127.0.0.1:${nginx.publicPort}`;
const tsx = join(REPO_ROOT, 'node_modules/.bin/tsx');
const sshArgs = ['-i', join(sshDir, 'id_ed25519'), '-o', `UserKnownHostsFile=${join(sshDir, 'known_hosts')}`, '-o', 'BatchMode=yes', '-p', String(SSH.port), `${userInfo().username}@${SSH.ip}`];
const onHost = (command: string, input?: Buffer) => execFileSync('ssh', [...sshArgs, command], { ...(input ? { input } : {}), encoding: 'utf8', maxBuffer: 1 << 30 });

const cleanup = () => {
  nginx.stop();
  spawnSync('bash', ['-c', `kill "$(cat '${sshDir}/sshd.pid')" 2>/dev/null`]);
  spawnSync('bash', [join(REPO_ROOT, 'test/infra/docker-host.sh'), '--stop', dockerDir]);
  spawnSync('bash', ['-c', `docker images -q ${APP} | sort -u | xargs -r docker rmi -f >/dev/null 2>&1`]);
  rmSync(dir, { recursive: true, force: true });
};

try {
  execFileSync('bash', [join(REPO_ROOT, 'test/infra/docker-host.sh'), dockerDir, '2g'], { stdio: 'ignore' });
  execFileSync('bash', [join(REPO_ROOT, 'test/infra/sshd.sh'), sshDir, SSH.ip, String(SSH.port)], {
    stdio: 'ignore',
    env: { ...process.env, SSHD_EXTRA_CONFIG: `SetEnv DOCKER_HOST=${sock}` },
  });
  mkdirSync(envDir);
  cpSync(join(REPO_ROOT, 'example'), appDir, { recursive: true, filter: (src) => !src.endsWith('/example/data') });
  await nginx.start(dir);
  writeFileSync(
    join(envDir, 'bench.env'),
    [
      `APP_NAME=${APP}`,
      `APP_DIR=${appDir}`,
      `DEPLOY_HOSTS=${userInfo().username}@${SSH.ip}:${SSH.port}`,
      `DEPLOY_SSH_KEY=${join(sshDir, 'id_ed25519')}`,
      `DEPLOY_KNOWN_HOSTS=${join(sshDir, 'known_hosts')}`,
      `DEPLOY_PATH=${deployPath}`,
      'DEPLOY_RUNTIME=docker',
      'DEPLOY_DOCKER_BUILD_ARGS=BASE=local/node-base:20',
      `DEPLOY_PORTS=${nginx.slots.join(',')}`,
      `DEPLOY_PUBLIC_URL=${url}`,
      'DEPLOY_DRAIN_SECONDS=3',
      nginx.keys(dir),
    ].join('\n'),
  );
  const script = (name: string, ...args: string[]) =>
    new Promise<number>((resolve, reject) => {
      const child = spawn(tsx, [join(REPO_ROOT, 'scripts', `${name}.ts`), 'bench', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SKIFF_ENV_DIR: envDir } });
      let err = '';
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      child.on('error', reject);
      child.on('close', (code) => {
        if (code !== 0) process.stderr.write(`${name} exited ${code}: ${err.trim().split('\n').at(-1) ?? ''}\n`);
        resolve(code ?? 1);
      });
    });
  let n = 0;
  const changeCode = () => {
    n++;
    const pkg = JSON.parse(readFileSync(join(appDir, 'package.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(appDir, 'package.json'), `${JSON.stringify({ ...pkg, version: `1.0.${n}` }, null, 2)}\n`);
    appendFileSync(join(appDir, 'server.js'), `// change ${n}\n`);
  };
  const timed = async (fn: () => Promise<unknown>) => {
    const t0 = Date.now();
    await fn();
    return Date.now() - t0;
  };
  const history = () => {
    const byId = new Map<string, { id: string; status: string; shipped?: { bytes: number }; durations?: Record<string, number> }>();
    for (const line of readFileSync(join(deployPath, '.skiff/releases.jsonl'), 'utf8').trim().split('\n')) {
      const r = JSON.parse(line) as { id: string; status: string };
      byId.set(r.id, { ...byId.get(r.id), ...r });
    }
    return [...byId.values()];
  };

  const median = (xs: readonly number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const mid = Math.floor(s.length / 2);
    return s.length === 0 ? NaN : s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
  };
  if ((await script('deploy-vps')) !== 0) throw new Error('the first deploy failed');
  const firstBytes = history().at(-1)?.shipped?.bytes ?? NaN;

  // ---- 1. skiff ------------------------------------------------------------------------------
  const probeOptions = { keepAlive: false, timeoutMs: 5000 };
  let probe = startProbe(`${url}/api/health`, probeOptions);
  const deploys: number[] = [];
  const deployBytes: number[] = [];
  for (let i = 0; i < deploysN; i++) {
    changeCode();
    deploys.push(await timed(() => script('deploy-vps')));
    deployBytes.push(history().at(-1)?.shipped?.bytes ?? NaN);
  }
  const good = history().filter((r) => r.status === 'live').map((r) => r.id).slice(-2);
  const rollbacks: number[] = [];
  for (let i = 0; i < rollbacksN; i++) rollbacks.push(await timed(() => script('rollback', good[i % 2 === 0 ? 0 : 1] as string)));
  const skiff = await probe.stop();
  const steps = Object.fromEntries(
    ['build', 'ship', 'start', 'switch', 'drain'].map((k) => [k, median(history().slice(-deploysN - 1).flatMap((h) => (h.durations?.[k] !== undefined ? [h.durations[k]] : [])))]),
  );
  const codeLayer = Number(execFileSync('docker', ['history', '--human=false', '--format', '{{.Size}}', `${APP}:1.0.${n}`], { encoding: 'utf8' }).split('\n').find((x) => Number(x) > 0));

  // ---- 2. the seeds' flow ---------------------------------------------------------------------
  const state = JSON.parse(readFileSync(join(deployPath, '.skiff/state.json'), 'utf8')) as { live: string; slots: Record<string, { port: number }> };
  const port = state.slots[state.live]?.port as number;
  const seedsBytes: number[] = [];
  const seedsDeploy = async () => {
    changeCode();
    const tag = `${APP}:seeds-${n}`;
    execFileSync('docker', ['build', '-q', '--build-arg', 'BASE=local/node-base:20', '-t', tag, appDir], { stdio: 'ignore' });
    const file = join(dir, 'image.tar.gz');
    execFileSync('sh', ['-c', `docker save '${tag}' | gzip > '${file}'`]);
    seedsBytes.push(statSync(file).size);
    onHost('cat > /tmp/skiff-bench-image.tar.gz', readFileSync(file)); // "copy the tarball"
    onHost(`gunzip -c /tmp/skiff-bench-image.tar.gz | docker load >/dev/null && rm -f /tmp/skiff-bench-image.tar.gz`);
    onHost(`docker ps -q --filter publish=${port} --filter label=skiff.app=${APP} | xargs -r docker stop >/dev/null; docker rm -f seeds-app >/dev/null 2>&1; true`);
    onHost(`docker run -d --name seeds-app --network host -e PORT=${port} -e APP_ENV=bench ${tag} >/dev/null`);
    await new Promise((r) => setTimeout(r, seedsSleep * 1000)); // "wait for it to start"
    spawnSync('curl', ['-fsS', '-o', '/dev/null', `http://127.0.0.1:${port}/api/health`]);
  };
  // The seeds stop whatever serves the port; skiff's live container goes first.
  onHost(`docker stop -t 0 ${APP}-bench-${state.live} >/dev/null`);
  probe = startProbe(`${url}/api/health`, probeOptions);
  const seeds: number[] = [];
  for (let i = 0; i < seedsN; i++) seeds.push(await timed(seedsDeploy));
  const seedsResult = await probe.stop();

  // ---- report ---------------------------------------------------------------------------------
  const kb = (b: number) => `${(b / 1024).toFixed(1)} KB`;
  const line = (what: string, runs: string, ms: number, bytes: number, r: ProbeResult) =>
    `${what.padEnd(12)} ${runs.padEnd(30)} median ${String(Math.round(ms)).padStart(6)} ms, ${kb(bytes).padStart(10)} shipped; ` +
    `${r.requests} requests, ${r.failures} failed, longest outage ${r.longestOutageMs} ms${r.firstErrors.length ? ` (${r.firstErrors.join('; ')})` : ''}`;
  const result = {
    firstDeployBytes: firstBytes,
    codeLayerBytes: codeLayer,
    skiff: { steps, deploys: deploys.length, rollbacks: rollbacks.length, medianDeployMs: median(deploys), medianRollbackMs: median(rollbacks), medianBytes: median(deployBytes), probe: skiff },
    seeds: { deploys: seeds.length, sleepSeconds: seedsSleep, medianDeployMs: median(seeds), medianBytes: median(seedsBytes), probe: seedsResult },
    wallTimeRatio: median(seeds) / median(deploys),
  };
  if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    process.stdout.write(`docker over SSH behind nginx; first deploy shipped ${kb(firstBytes)} (the whole image); the code layer is ${kb(codeLayer)}\n`);
    process.stdout.write(`${line('skiff', `${deploys.length} deploys + ${rollbacks.length} rollbacks`, median(deploys), median(deployBytes), skiff)}\n`);
    process.stdout.write(`${line("seeds' flow", `${seeds.length} deploys (sleep ${seedsSleep} s)`, median(seeds), median(seedsBytes), seedsResult)}\n`);
    process.stdout.write(`skiff deploy steps, median ms: ${Object.entries(steps).map(([k, v]) => `${k} ${Math.round(v)}`).join(', ')}\n`);
    process.stdout.write(`rollback median ${Math.round(median(rollbacks))} ms; seeds' flow / skiff wall time per deploy: ${result.wallTimeRatio.toFixed(1)}x\n`);
  }
} finally {
  cleanup();
}
