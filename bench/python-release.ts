/**
 * Code-only redeploys of the Python example (examples/python) over SSH, three ways in one run:
 * with no release command (the baseline: the start command uses the host's python3 and Debian's
 * packages directly), with DEPLOY_RELEASE_CMD and DEPLOY_RELEASE_CACHE=.venv:requirements.txt (the
 * venv is taken from the live release), and with DEPLOY_RELEASE_CMD and no cache (a full venv build
 * every deploy). Goal: the cached one at most 1.2x the baseline (median wall time).
 *
 *   npx tsx bench/python-release.ts [--runs 5] [--json]
 *
 * Starts its own sshd on 127.0.0.42:2262 (test/infra/sshd.sh); each way deploys to a DEPLOY_PATH of
 * its own with proxy `none` on its own port, once to start, then per run after appending a comment
 * to app/main.py. Runs are interleaved (A B C, A B C, ...) so that noise on a shared machine hits
 * each way alike. The venv is built from Debian's python3 packages with pip kept off the network
 * (docs/python.md#debian-packages-instead-of-pypi): test/infra/up.sh installs them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../lib/core/paths.ts';

const GOAL = 1.2;
const USAGE = 'usage: npx tsx bench/python-release.ts [--runs N] [--json]';
let values: { runs: string; json: boolean; help: boolean };
try {
  ({ values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', default: false } }, strict: true }));
} catch (e) {
  process.stderr.write(`bench/python-release: ${(e as Error).message}: ${USAGE}\n`);
  process.exit(2);
}
if (values.help) {
  process.stdout.write(`${USAGE}\nCode-only redeploys of examples/python: no release command, DEPLOY_RELEASE_CMD with its cache, and without (docs/benchmarks.md).\n`);
  process.exit(0);
}
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write(`bench/python-release: --runs takes a whole number of at least 1, not ${JSON.stringify(values.runs)}\n`);
  process.exit(2);
}
const PY = '/usr/bin/python3';
if (spawnSync(PY, ['-c', 'import fastapi, uvicorn, alembic, sqlalchemy, ensurepip']).status !== 0) {
  process.stderr.write(`bench/python-release: ${PY} lacks Debian's python3 packages of the example: run test/infra/up.sh first\n`);
  process.exit(2);
}

const SSH = { ip: '127.0.0.42', port: 2262 };
const RELEASE_CMD = `${PY} -m venv --system-site-packages .venv && .venv/bin/pip install --quiet --disable-pip-version-check --no-index --no-deps -r requirements.txt`;
const WAYS = [
  { name: 'no release command', port: 18951, keys: [`DEPLOY_START=${PY} -m app`] },
  { name: 'DEPLOY_RELEASE_CMD, cached venv', port: 18952, keys: [`DEPLOY_RELEASE_CMD=${RELEASE_CMD}`, 'DEPLOY_RELEASE_CACHE=.venv:requirements.txt', 'DEPLOY_START=.venv/bin/python -m app'] },
  { name: 'DEPLOY_RELEASE_CMD, full reinstall', port: 18953, keys: [`DEPLOY_RELEASE_CMD=${RELEASE_CMD}`, 'DEPLOY_START=.venv/bin/python -m app'] },
] as const;

const dir = mkdtempSync(join(tmpdir(), 'skiff-python-release-'));
const sshDir = join(dir, 'sshd');
const envDir = join(dir, 'env');
const cleanup = () => {
  const pid = join(sshDir, 'sshd.pid');
  if (existsSync(pid)) spawnSync('kill', [readFileSync(pid, 'utf8').trim()]);
  // The slots started by the deploys: stopped by skiff, so nothing is left listening.
  for (let i = 0; i < WAYS.length; i++) spawnSync(join(REPO_ROOT, 'node_modules/.bin/tsx'), [join(REPO_ROOT, 'scripts/stop.ts'), `w${i}`], { env: { ...process.env, SKIFF_ENV_DIR: envDir } });
  rmSync(dir, { recursive: true, force: true });
};

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

try {
  execFileSync('bash', [join(REPO_ROOT, 'test/infra/sshd.sh'), sshDir, SSH.ip, String(SSH.port)], { stdio: 'ignore' });
  mkdirSync(envDir);
  const src = join(REPO_ROOT, 'examples/python');
  WAYS.forEach((way, i) => {
    const app = join(dir, `app${i}`);
    cpSync(src, app, { recursive: true, filter: (p) => !/\/(\.venv|__pycache__|data)(\/|$)/.test(p.slice(src.length)) });
    writeFileSync(
      join(envDir, `w${i}.env`),
      [
        'APP_NAME=hello-py',
        `APP_DIR=${app}`,
        `DEPLOY_HOSTS=${userInfo().username}@${SSH.ip}:${SSH.port}`,
        `DEPLOY_SSH_KEY=${join(sshDir, 'id_ed25519')}`,
        `DEPLOY_KNOWN_HOSTS=${join(sshDir, 'known_hosts')}`,
        `DEPLOY_PATH=${join(dir, `srv${i}`)}`,
        `DEPLOY_PORTS=${way.port}`,
        'DEPLOY_HEALTH_PATH=/api/health',
        'DEPLOY_HEALTH_TIMEOUT=30',
        'DEPLOY_DRAIN_SECONDS=3',
        'DEPLOY_KEEP_RELEASES=2',
        'MIGRATE_ON_START=1',
        ...way.keys,
        '',
      ].join('\n'),
    );
  });

  const deploy = (i: number): number => {
    const t0 = performance.now();
    const r = spawnSync(join(REPO_ROOT, 'node_modules/.bin/tsx'), [join(REPO_ROOT, 'scripts/deploy-vps.ts'), `w${i}`], {
      env: { ...process.env, SKIFF_ENV_DIR: envDir },
      encoding: 'utf8',
    });
    const ms = performance.now() - t0;
    if (r.status !== 0) throw new Error(`deploy of "${WAYS[i]?.name}" failed: ${r.stderr.trim()}`);
    return ms;
  };

  if (!values.json) process.stdout.write(`first deploy of each way over ${SSH.ip}:${SSH.port}...\n`);
  WAYS.forEach((_, i) => deploy(i));
  const times: number[][] = WAYS.map(() => []);
  for (let run = 1; run <= runs; run++) {
    WAYS.forEach((_, i) => {
      appendFileSync(join(dir, `app${i}`, 'app/main.py'), `# run ${run}\n`);
      times[i]?.push(deploy(i));
    });
    if (!values.json) process.stdout.write(`run ${run}/${runs}: ${times.map((t) => `${Math.round(t.at(-1) ?? 0)} ms`).join(', ')}\n`);
  }
  const base = median(times[0] ?? []);
  const rows = WAYS.map((way, i) => ({ way: way.name, medianMs: Math.round(median(times[i] ?? [])), ratio: Number((median(times[i] ?? []) / base).toFixed(2)), runsMs: (times[i] ?? []).map(Math.round) }));
  const goalMet = (rows[1]?.ratio ?? Infinity) <= GOAL;
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ runs, goal: GOAL, goalMet, rows }, null, 2)}\n`);
  } else {
    process.stdout.write(`\ncode-only redeploy of examples/python, median of ${runs}:\n`);
    for (const r of rows) process.stdout.write(`  ${r.way.padEnd(36)} ${String(r.medianMs).padStart(6)} ms  ${r.ratio.toFixed(2)}x\n`);
    process.stdout.write(`goal: cached at most ${GOAL}x the baseline: ${goalMet ? 'met' : 'NOT met'}\n`);
  }
} catch (error) {
  process.stderr.write(`bench/python-release: ${(error as Error).message}\n`);
  process.exitCode = 1;
} finally {
  cleanup();
}
