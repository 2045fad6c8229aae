/**
 * Start-up cost of the commands people type most, against tsx running an empty file.
 * `--help` and `--list` must not load listr2, zod or zx: scripts import them after parsing argv,
 * so these commands should cost no more than tsx itself. Goal: median at most 1.2x the baseline.
 *
 *   npx tsx bench/startup.ts [--runs 15] [--npx] [--json]
 *   npx tsx bench/startup.ts --processes [--json]
 *
 * Each command runs through node_modules/.bin/tsx directly, not `npx tsx`: npx alone adds ~400 ms
 * of its own, which would swamp the difference being measured. `--npx` runs them as people type
 * them, `npx tsx ...`, for that figure too. Runs are interleaved (A B C, A B C, ...) so that noise
 * on this shared machine hits every command alike; medians are compared.
 *
 * `--processes` measures the other side of the lazy zx import, in this process: the first local
 * process through lib/host/local.ts (it loads zx), the mean of 200 more, and the rate of a 500 MB
 * stdout handed to onStdout and discarded.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const GOAL = 1.2;
const WARMUP = 2;
// Computed here rather than imported from lib/, so a broken lib/ cannot break the bench itself.
const ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
const TSX = join(ROOT, 'node_modules/.bin/tsx');

function fail(message: string): never {
  process.stderr.write(`bench/startup: ${message}\n`);
  process.exit(2);
}

let values: { runs: string; npx: boolean; processes: boolean; json: boolean };
try {
  ({ values } = parseArgs({
    options: {
      runs: { type: 'string', default: '15' },
      npx: { type: 'boolean', default: false },
      processes: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  }));
} catch (e) {
  fail(`${(e as Error).message}: usage: npx tsx bench/startup.ts [--runs N] [--npx] [--json] | --processes [--json]`);
}

if (values.processes) {
  const { run } = await import('../lib/host/local.ts');
  const PROCESSES = 200;
  const BYTES = 500_000_000;
  const t0 = performance.now();
  await run(['true'], { label: 'local' });
  const firstMs = performance.now() - t0;
  const t1 = performance.now();
  for (let i = 0; i < PROCESSES; i++) await run(['true'], { label: 'local' });
  const laterMs = (performance.now() - t1) / PROCESSES;
  let bytes = 0;
  const t2 = performance.now();
  await run(['head', '-c', String(BYTES), '/dev/zero'], { label: 'local', discardStdout: true, onStdout: (b) => void (bytes += b.length) });
  const mbPerS = bytes / 1e6 / ((performance.now() - t2) / 1000);
  const out = { node: process.version, cores: availableParallelism(), firstMs, laterMs, processes: PROCESSES, mbPerS, bytes };
  process.stdout.write(
    values.json
      ? `${JSON.stringify(out, null, 2)}\n`
      : `local processes, node ${process.version}, ${availableParallelism()} cores: first ${firstMs.toFixed(1)} ms (loads zx), ` +
          `then ${laterMs.toFixed(2)} ms each (mean of ${PROCESSES}), stdout ${mbPerS.toFixed(0)} MB/s (${bytes / 1e6} MB discarded)\n`,
  );
  process.exit(0);
}
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) fail(`--runs needs a whole number of at least 1, not ${JSON.stringify(values.runs)}`);
if (!existsSync(TSX)) fail(`${relative(ROOT, TSX)} not found: run npm install first`);

interface Command {
  readonly name: string;
  /** The file tsx runs; a missing one is skipped with a note, e.g. a Taskfile not written yet. */
  readonly file: string;
  readonly args: readonly string[];
}

interface Row {
  readonly command: string;
  readonly medianMs: number;
  readonly p90Ms: number;
  readonly minMs: number;
  readonly ratio: number;
  readonly goalMet: boolean;
  readonly samplesMs: readonly number[];
}

/** Of sorted samples; an even count averages the middle two. */
const median = (sorted: readonly number[]): number => {
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
};
/** Nearest rank, of sorted samples. */
const p90 = (sorted: readonly number[]): number => sorted[Math.max(0, Math.ceil(0.9 * sorted.length) - 1)] ?? NaN;

/** Wall time of one run, in ms; a failing command fails the bench, since its time would mean nothing. */
const once = (c: Command): number => {
  const t0 = process.hrtime.bigint();
  // stdout is ignored so that writing to the terminal is not timed; stderr is kept to explain a failure.
  const [bin, ...pre] = values.npx ? ['npx', 'tsx'] : [TSX];
  const r = spawnSync(bin ?? TSX, [...pre, c.file, ...c.args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.error) fail(`${c.name}: ${r.error.message}`);
  if (r.status !== 0) fail(`${c.name} exited ${r.status ?? r.signal}: ${r.stderr.toString().trim().split('\n')[0] ?? ''}`);
  return ms;
};

const dir = mkdtempSync(join(tmpdir(), 'skiff-bench-'));
// On 'exit' rather than in a finally: fail() exits the process, which skips finally blocks.
// Ctrl-C can still leave the dir behind: tsx SIGKILLs this process while spawnSync blocks it.
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const empty = join(dir, 'empty.ts');
writeFileSync(empty, '');
// The repo is "type": "module"; the baseline goes through the same ESM loading path as its files.
writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');

const baseline: Command = { name: 'tsx empty.ts (baseline)', file: empty, args: [] };
const targets: Command[] = [
  { name: 'tsx Taskfile.ts --list', file: join(ROOT, 'Taskfile.ts'), args: ['--list'] },
  { name: 'tsx scripts/status.ts --help', file: join(ROOT, 'scripts/status.ts'), args: ['--help'] },
  { name: 'tsx scripts/deploy-vps.ts --help', file: join(ROOT, 'scripts/deploy-vps.ts'), args: ['--help'] },
];
const skipped = targets.filter((c) => !existsSync(c.file)).map((c) => ({ command: c.name, file: relative(ROOT, c.file) }));
for (const s of skipped) process.stderr.write(`bench/startup: skipped ${s.command}: ${s.file} not found (not written yet?)\n`);
const present = [baseline, ...targets.filter((c) => existsSync(c.file))];

// Warm-up fills tsx's transform cache and the OS file cache, so run 1 is like run 15.
for (let i = 0; i < WARMUP; i++) for (const c of present) once(c);
const samples = present.map(() => [] as number[]);
for (let i = 0; i < runs; i++) present.forEach((c, j) => samples[j]?.push(once(c)));

const sorted = samples.map((xs) => [...xs].sort((a, b) => a - b));
const base = median(sorted[0] ?? []);
const rows: Row[] = present.map((c, j) => {
  const xs = sorted[j] ?? [];
  const ratio = median(xs) / base;
  return { command: c.name, medianMs: median(xs), p90Ms: p90(xs), minMs: xs[0] ?? NaN, ratio, goalMet: ratio <= GOAL, samplesMs: samples[j] ?? [] };
});

if (values.json) {
  const out = { runs, warmup: WARMUP, via: values.npx ? 'npx tsx' : 'node_modules/.bin/tsx', node: process.version, cores: availableParallelism(), goal: GOAL, rows, skipped };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
} else {
  const ms = (x: number) => `${x.toFixed(0)} ms`.padStart(9);
  const lines = [
    `start-up, ${WARMUP} warm-up + ${runs} interleaved runs each, via ${values.npx ? 'npx tsx' : 'node_modules/.bin/tsx'}, node ${process.version}, ${availableParallelism()} cores`,
    `${'command'.padEnd(36)}${'median'.padStart(9)}${'p90'.padStart(9)}${'min'.padStart(9)}    ratio`,
    ...rows.map((r) => `${r.command.padEnd(36)}${ms(r.medianMs)}${ms(r.p90Ms)}${ms(r.minMs)}    ${r.ratio.toFixed(2)}x`),
    ...skipped.map((s) => `${s.command.padEnd(36)}  skipped: ${s.file} not found`),
    ...rows.slice(1).map((r) => `goal <= ${GOAL.toFixed(2)}x: ${r.goalMet ? 'met' : 'not met'} for ${r.command}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
