/**
 * Failed requests while deploys and rollbacks run, against the seeds' flow in the same run.
 *
 *   npx tsx bench/zero-downtime.ts <env> [--deploys 10] [--rollbacks 5] [--seeds 5] [--seeds-sleep 10] [--close] [--json]
 *
 * A probe sends requests back to back (two at a time) to the public URL and counts every refused,
 * reset, timed-out or non-2xx answer, and the longest stretch in which every request failed.
 *
 * 1. skiff: `deploy-vps.ts <env>` N times, then `rollback.ts <env> <id>` M times (back and forth
 *    between the two newest releases), under the probe.
 * 2. The seeds' flow, under the same probe, on the same proxy and port: kill what listens on the
 *    live port, copy APP_DIR into a fresh folder, start `DEPLOY_START` there, sleep a fixed time,
 *    curl the health URL. Afterwards skiff's live release is started again (`start.ts`).
 *
 * Without --close the probe reuses connections, as browsers do (see test/support/probe.ts for how a
 * connection the proxy closes while idle is counted). The env must use DEPLOY_HOSTS=local and must
 * have been deployed once.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../lib/config/config.ts';
import { layout, REPO_ROOT } from '../lib/core/paths.ts';
import { startProbe, type ProbeResult } from '../test/support/probe.ts';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    deploys: { type: 'string', default: '10' },
    rollbacks: { type: 'string', default: '5' },
    seeds: { type: 'string', default: '5' },
    'seeds-sleep': { type: 'string', default: '10' },
    close: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const env = positionals[0];
const count = (name: 'deploys' | 'rollbacks' | 'seeds' | 'seeds-sleep') => {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`--${name} takes a whole number, not ${JSON.stringify(values[name])}\n`);
    process.exit(2);
  }
  return n;
};
if (!env) {
  process.stderr.write('usage: npx tsx bench/zero-downtime.ts <env> [--deploys 10] [--rollbacks 5] [--seeds 5] [--seeds-sleep 10] [--close] [--json]\n');
  process.exit(2);
}
const cfg = loadConfig(env);
if (cfg.hosts.some((h) => h.kind !== 'local')) {
  process.stderr.write(`${env}: this benchmark runs the seeds' flow on this machine: use an env with DEPLOY_HOSTS=local\n`);
  process.exit(2);
}
const l = layout(cfg.path);
const url = `${(cfg.publicUrl ?? `http://127.0.0.1:${cfg.ports[0]}`).replace(/\/$/, '')}${cfg.health.path}`;
const tsx = join(REPO_ROOT, 'node_modules/.bin/tsx');

const script = (name: string, ...args: string[]) =>
  new Promise<number>((resolve, reject) => {
    const confirm = name === 'deploy-vps' || name === 'rollback' ? ['--yes'] : [];
    const child = spawn(tsx, [join(REPO_ROOT, 'scripts', `${name}.ts`), env, ...args, ...confirm], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });

const timedRuns = async (n: number, run: (i: number) => Promise<number>, what: string): Promise<number[]> => {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = Date.now();
    const code = await run(i);
    times.push(Date.now() - t0);
    if (code !== 0) process.stderr.write(`${what} ${i + 1} exited ${code}\n`);
  }
  return times;
};

const state = () => JSON.parse(readFileSync(l.state, 'utf8')) as { live: string; slots: Record<string, { release: string; port: number }> };
const history = () =>
  readFileSync(join(l.skiff, 'releases.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { id: string; status: string });

// ---- 1. skiff --------------------------------------------------------------------------------
const probeOptions = { keepAlive: !values.close, timeoutMs: 5000 };
let probe = startProbe(url, probeOptions);
const deploys = await timedRuns(count('deploys'), () => script('deploy-vps'), 'deploy');
const good = [...new Set(history().filter((r) => r.status === 'live').map((r) => r.id))].slice(-2);
const rollbacks = await timedRuns(count('rollbacks'), (i) => script('rollback', good[i % 2 === 0 ? 0 : 1] as string), 'rollback');
const skiff = await probe.stop();

// ---- 2. the seeds' flow ----------------------------------------------------------------------
const port = state().slots[state().live]?.port as number;
const seedsDir = join(cfg.path, 'seeds-flow');
const listenerPid = (): number | undefined => {
  const out = spawnSync('ss', ['-ltnpH', `sport = :${port}`], { encoding: 'utf8' }).stdout;
  const m = /pid=(\d+)/.exec(out);
  return m ? Number(m[1]) : undefined;
};
const killListener = async () => {
  const pid = listenerPid();
  if (pid === undefined) return;
  process.kill(pid, 'SIGTERM');
  while (listenerPid() !== undefined) await new Promise((r) => setTimeout(r, 50));
};
const seedsDeploy = async (): Promise<number> => {
  await killListener(); // "stop the old version" (the seeds kill whatever holds the port)
  rmSync(seedsDir, { recursive: true, force: true }); // "copy the new version"
  cpSync(cfg.app.releaseDir, seedsDir, { recursive: true, filter: (src) => !/\/(\.git|data)$/.test(src) });
  mkdirSync(join(seedsDir, 'data'), { recursive: true });
  const log = openSync(join(seedsDir, 'app.log'), 'a');
  spawn('/bin/sh', ['-c', cfg.start], {
    cwd: seedsDir,
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, ...cfg.appEnv, PORT: String(port), DATA_DIR: join(cfg.path, 'shared/data'), APP_VERSION: 'seeds', APP_ENV: env },
  }).unref();
  await new Promise((r) => setTimeout(r, count('seeds-sleep') * 1000)); // "wait for it to start"
  return spawnSync('curl', ['-fsS', '-o', '/dev/null', `http://127.0.0.1:${port}${cfg.health.path}`]).status ?? 1;
};
probe = startProbe(url, probeOptions);
const seeds = await timedRuns(count('seeds'), seedsDeploy, "seeds' deploy");
const seedsResult = await probe.stop();
if (seeds.length > 0) {
  await killListener();
  rmSync(seedsDir, { recursive: true, force: true });
  if ((await script('start')) !== 0) process.stderr.write(`could not start ${env} again: run npx tsx scripts/start.ts ${env}\n`);
}

// ---- report ----------------------------------------------------------------------------------
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};
const row = (what: string, runs: string, times: number[], r: ProbeResult) => ({ what, runs, medianMs: median(times), ...r });
const rows = [
  row('skiff', `${deploys.length} deploys + ${rollbacks.length} rollbacks`, [...deploys], skiff),
  row("seeds' flow", `${seeds.length} deploys (sleep ${count('seeds-sleep')} s)`, seeds, seedsResult),
];
const ratio = median(deploys) / median(seeds);
if (values.json) {
  process.stdout.write(`${JSON.stringify({ env, proxy: cfg.proxy, keepAlive: !values.close, rows, rollbackMedianMs: median(rollbacks), wallTimeRatio: ratio }, null, 2)}\n`);
} else {
  process.stdout.write(`${env} behind ${cfg.proxy}, probe ${values.close ? 'with a new connection per request' : 'with keep-alive connections'}, ${url}\n`);
  for (const r of rows) {
    process.stdout.write(
      `${r.what.padEnd(12)} ${r.runs.padEnd(28)} median ${String(Math.round(r.medianMs)).padStart(6)} ms  ${r.requests} requests, ${r.failures} failed, ` +
        `${r.closedWhileIdle} sent again after the proxy closed an idle connection, longest outage ${r.longestOutageMs} ms` +
        `${r.firstErrors.length ? `; first errors: ${r.firstErrors.join('; ')}` : ''}\n`,
    );
  }
  process.stdout.write(`rollback median ${Math.round(median(rollbacks))} ms; skiff redeploy / seeds' flow wall time: ${ratio.toFixed(2)}x\n`);
}
