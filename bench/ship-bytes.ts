/**
 * Bytes shipped for a one-file change of the example, counted at the SSH channel, against the full
 * release size.
 *
 *   npx tsx bench/ship-bytes.ts [--runs 3] [--json]
 *
 * Starts its own sshd on 127.0.0.10:2230 (test/infra/sshd.sh), copies the example app (with its
 * node_modules) into a temporary folder, deploys it once over SSH (everything travels), then per
 * run changes one file (appends 1 KB to server.js, or adds a 100 KB asset) and deploys again. The
 * figures are the `shipped` records of each release in `.skiff/releases.jsonl`. Goal: a one-file
 * change ships at most the changed bytes plus 64 KB.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatBytes } from '../lib/ship/delta.ts';
import { REPO_ROOT } from '../lib/core/paths.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, json: { type: 'boolean', default: false } } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write(`--runs takes a whole number of at least 1, not ${JSON.stringify(values.runs)}\n`);
  process.exit(2);
}
if (!existsSync(join(REPO_ROOT, 'example/node_modules'))) {
  process.stderr.write('the example has no node_modules: run `(cd example && npm ci --omit=dev)` first\n');
  process.exit(2);
}

const SSH = { ip: '127.0.0.10', port: 2230 };
const dir = mkdtempSync(join(tmpdir(), 'skiff-ship-bytes-'));
const sshDir = join(dir, 'sshd');
const app = join(dir, 'app');
const deployPath = join(dir, 'srv');
const envDir = join(dir, 'env');
execFileSync('bash', [join(REPO_ROOT, 'test/infra/sshd.sh'), sshDir, SSH.ip, String(SSH.port)], { stdio: 'ignore' });
cpSync(join(REPO_ROOT, 'example'), app, { recursive: true, filter: (src) => !src.endsWith('/example/data') });
mkdirSync(envDir);
writeFileSync(
  join(envDir, 'bytes.env'),
  [
    'APP_NAME=hello',
    `APP_DIR=${app}`,
    `DEPLOY_HOSTS=${userInfo().username}@${SSH.ip}:${SSH.port}`,
    `DEPLOY_SSH_KEY=${join(sshDir, 'id_ed25519')}`,
    `DEPLOY_KNOWN_HOSTS=${join(sshDir, 'known_hosts')}`,
    `DEPLOY_PATH=${deployPath}`,
    'DEPLOY_PORTS=18681',
    'DEPLOY_START=node server.js',
    'DEPLOY_KEEP_RELEASES=2',
    '',
  ].join('\n'),
);

const deploy = (): { bytes: number; files: number; reused: number } => {
  const r = spawnSync(join(REPO_ROOT, 'node_modules/.bin/tsx'), [join(REPO_ROOT, 'scripts/deploy-vps.ts'), 'bytes'], {
    env: { ...process.env, SKIFF_ENV_DIR: envDir },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`deploy failed: ${r.stderr}`);
  const records = readFileSync(join(deployPath, '.skiff/releases.jsonl'), 'utf8').trim().split('\n');
  const last = JSON.parse(records.at(-1) as string) as { shipped?: { bytes: number; files: number; reused: number } };
  if (!last.shipped) throw new Error('the release record has no shipped figures');
  return last.shipped;
};

type Row = { change: string; changedBytes: number; shippedBytes: number; filesSent: number; goalMet: boolean };
const rows: Row[] = [];
try {
  const first = deploy();
  for (let i = 0; i < runs; i++) {
    const line = `// ${'x'.repeat(1020)} ${i}\n`;
    appendFileSync(join(app, 'server.js'), line);
    const edit = deploy();
    rows.push({ change: 'append 1 KB to server.js', changedBytes: readFileSync(join(app, 'server.js')).length, shippedBytes: edit.bytes, filesSent: edit.files, goalMet: edit.bytes <= readFileSync(join(app, 'server.js')).length + 64 * 1024 });
    const asset = Buffer.alloc(100 * 1024, i + 1);
    writeFileSync(join(app, `asset-${i}.bin`), asset);
    const added = deploy();
    rows.push({ change: 'add a 100 KB file', changedBytes: asset.length, shippedBytes: added.bytes, filesSent: added.files, goalMet: added.bytes <= asset.length + 64 * 1024 });
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ firstDeploy: first, rows }, null, 2)}\n`);
  } else {
    process.stdout.write(`first deploy (everything): ${formatBytes(first.bytes)} at the SSH channel, ${first.files} files\n`);
    for (const change of ['append 1 KB to server.js', 'add a 100 KB file']) {
      const these = rows.filter((r) => r.change === change);
      process.stdout.write(
        `${change.padEnd(26)} changed file ${formatBytes(median(these.map((r) => r.changedBytes))).padStart(8)}, shipped median ${formatBytes(median(these.map((r) => r.shippedBytes))).padStart(8)} ` +
          `(${these.map((r) => formatBytes(r.shippedBytes)).join(', ')}), ${these[0]?.filesSent} file sent; goal <= changed + 64 KB: ${these.every((r) => r.goalMet) ? 'met' : 'NOT met'}\n`,
      );
    }
  }
} finally {
  spawnSync(join(REPO_ROOT, 'node_modules/.bin/tsx'), [join(REPO_ROOT, 'scripts/stop.ts'), 'bytes'], { env: { ...process.env, SKIFF_ENV_DIR: envDir } });
  const pid = join(sshDir, 'sshd.pid');
  if (existsSync(pid)) process.kill(Number(readFileSync(pid, 'utf8')), 'SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
