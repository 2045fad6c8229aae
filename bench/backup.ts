/**
 * Backup and restore of a large SQLite database, on this machine.
 *
 *   npx tsx bench/backup.ts [--size-mb 1024] [--runs 3] [--json]
 *
 * Deploys the example app (proxy none, port 18695) into a temporary folder, adds a database of
 * --size-mb at shared/data/big.db (BACKUP_SQLITE=data/big.db), then per run, in the same run:
 *   - `sqlite3 big.db ".backup copy.db"` alone (the baseline),
 *   - `scripts/backup.ts` (the online copy, its integrity check, sha256, manifest, sync, rename),
 * and `scripts/restore.ts --yes` of the last backup while a probe sends requests to the app, for
 * its wall time and the app's downtime (the longest stretch in which every request failed).
 * Each measurement starts after a `sync`, so none pays for writing back the one before.
 * Goal: backup at most 1.3x the baseline.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../lib/core/paths.ts';
import { startProbe } from '../test/support/probe.ts';

const { values } = parseArgs({ options: { 'size-mb': { type: 'string', default: '1024' }, runs: { type: 'string', default: '3' }, json: { type: 'boolean', default: false } } });
const sizeMb = Number(values['size-mb']);
const runs = Number(values.runs);
if (!Number.isInteger(sizeMb) || sizeMb < 1 || !Number.isInteger(runs) || runs < 1) {
  process.stderr.write('--size-mb and --runs take whole numbers of at least 1\n');
  process.exit(2);
}

const PORT = 18695;
const dir = mkdtempSync(join(tmpdir(), 'skiff-bench-backup-'));
const envDir = join(dir, 'env');
const app = join(dir, 'app');
const deployPath = join(dir, 'srv');
mkdirSync(envDir);
cpSync(join(REPO_ROOT, 'example'), app, { recursive: true, filter: (src) => !src.endsWith('/example/data') });
writeFileSync(
  join(envDir, 'big.env'),
  ['APP_NAME=hello', `APP_DIR=${app}`, 'DEPLOY_HOSTS=local', `DEPLOY_PATH=${deployPath}`, `DEPLOY_PORTS=${PORT}`, 'DEPLOY_START=node server.js', 'DEPLOY_DRAIN_SECONDS=2', 'BACKUP_SQLITE=data/big.db', 'BACKUP_KEEP=2', ''].join('\n'),
);
const tsx = join(REPO_ROOT, 'node_modules/.bin/tsx');
const skiff = (script: string, ...args: string[]): { ms: number; stdout: string } => {
  const t0 = performance.now();
  const r = spawnSync(tsx, [join(REPO_ROOT, 'scripts', `${script}.ts`), 'big', ...args], { env: { ...process.env, SKIFF_ENV_DIR: envDir }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${script} failed: ${r.stderr}`);
  return { ms: performance.now() - t0, stdout: r.stdout };
};
/** The same, without blocking this process: the probe keeps sending requests meanwhile. */
const skiffAsync = (script: string, ...args: string[]): Promise<number> =>
  new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(tsx, [join(REPO_ROOT, 'scripts', `${script}.ts`), 'big', ...args], { env: { ...process.env, SKIFF_ENV_DIR: envDir }, stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${script} exited ${code}`))));
  });
const timed = (fn: () => void): number => {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
};
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

try {
  skiff('deploy-vps');
  const db = join(deployPath, 'shared/data/big.db');
  const rows = Math.round((sizeMb * 1024 * 1024) / 1030);
  execFileSync('sqlite3', [db, `PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, x BLOB); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ${rows}) INSERT INTO t(x) SELECT randomblob(1000) FROM c;`]);
  const baseline: number[] = [];
  const backups: number[] = [];
  for (let i = 0; i < runs; i++) {
    // Each measurement starts with nothing left to write back from the one before.
    const copy = join(dir, 'copy.db');
    execFileSync('sync');
    baseline.push(timed(() => execFileSync('sqlite3', [db, `.backup ${copy}`])));
    rmSync(copy);
    execFileSync('sync');
    backups.push(skiff('backup').ms);
  }
  const names = skiff('backup', '--list').stdout.split('\n').slice(1).map((l) => l.split(' ')[0]).filter(Boolean);
  const probe = startProbe(`http://127.0.0.1:${PORT}/api/health`, { keepAlive: false, timeoutMs: 2000 });
  const restore = await skiffAsync('restore', names[0] as string, '--yes');
  const downtime = await probe.stop();
  const ratio = median(backups) / median(baseline);
  const result = {
    sizeMb,
    runs,
    baselineMedianMs: Math.round(median(baseline)),
    backupMedianMs: Math.round(median(backups)),
    ratio,
    restoreMs: Math.round(restore),
    restoreLongestOutageMs: downtime.longestOutageMs,
    restoreFailedRequests: downtime.failures,
  };
  if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    process.stdout.write(
      [
        `${sizeMb} MB SQLite database (WAL), ${runs} runs, node ${process.version}`,
        `sqlite3 .backup alone      median ${(result.baselineMedianMs / 1000).toFixed(2)} s  (${baseline.map((x) => (x / 1000).toFixed(2)).join(', ')})`,
        `scripts/backup.ts          median ${(result.backupMedianMs / 1000).toFixed(2)} s  (${backups.map((x) => (x / 1000).toFixed(2)).join(', ')})`,
        `ratio ${ratio.toFixed(2)}x (goal <= 1.30x: ${ratio <= 1.3 ? 'met' : 'NOT met'})`,
        `scripts/restore.ts --yes   ${(restore / 1000).toFixed(2)} s; the app did not answer for ${downtime.longestOutageMs} ms (${downtime.failures} of ${downtime.requests} requests failed)`,
        '',
      ].join('\n'),
    );
  }
} finally {
  spawnSync(tsx, [join(REPO_ROOT, 'scripts/stop.ts'), 'big'], { env: { ...process.env, SKIFF_ENV_DIR: envDir } });
  rmSync(dir, { recursive: true, force: true });
}
