/**
 * Start-up cost of the commands people type most, against tsx running an empty file.
 * `--help` and `--list` must not load listr2, zod or zx: scripts import them after parsing argv.
 *
 *   npx tsx bench/startup.ts [--runs 15] [--json]
 *
 * Each command runs through node_modules/.bin/tsx directly: `npx` alone adds ~400 ms of its own,
 * which would hide the difference being measured. Runs are interleaved (A B C, A B C, ...) so that
 * noise on this shared machine hits every command alike; medians are compared.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../lib/paths.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' }, json: { type: 'boolean', default: false } } });
const runs = Number(values.runs);
const tsx = join(REPO_ROOT, 'node_modules/.bin/tsx');
const empty = join(mkdtempSync(join(tmpdir(), 'skiff-bench-')), 'empty.ts');
writeFileSync(empty, '');

const commands: { name: string; args: string[] }[] = [
  { name: 'tsx empty.ts (baseline)', args: [empty] },
  { name: 'tsx Taskfile.ts --list', args: [join(REPO_ROOT, 'Taskfile.ts'), '--list'] },
  { name: 'tsx scripts/status.ts --help', args: [join(REPO_ROOT, 'scripts/status.ts'), '--help'] },
  { name: 'tsx scripts/deploy-vps.ts --help', args: [join(REPO_ROOT, 'scripts/deploy-vps.ts'), '--help'] },
];

const once = (args: string[]): number => {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(tsx, args, { cwd: REPO_ROOT, stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
};

const present = commands.filter((c) => existsSync(c.args[0] as string));
for (let i = 0; i < 2; i++) for (const c of present) once(c.args); // warm tsx's transform cache
const samples = new Map(present.map((c) => [c.name, [] as number[]]));
for (let i = 0; i < runs; i++) for (const c of present) samples.get(c.name)?.push(once(c.args));

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * (s.length - 1) + 0.5))] as number;
};
const baseline = quantile(samples.get(commands[0]?.name ?? '') ?? [0], 0.5);
const rows = present.map((c) => {
  const xs = samples.get(c.name) ?? [];
  const median = quantile(xs, 0.5);
  return { command: c.name, median, p90: quantile(xs, 0.9), min: Math.min(...xs), ratio: median / baseline };
});

if (values.json) {
  process.stdout.write(`${JSON.stringify({ runs, node: process.version, rows }, null, 2)}\n`);
} else {
  const ms = (x: number) => `${x.toFixed(0)} ms`.padStart(8);
  process.stdout.write(`start-up, ${runs} interleaved runs each, node ${process.version}\n`);
  process.stdout.write(`${'command'.padEnd(36)}${'median'.padStart(8)}${'p90'.padStart(8)}${'min'.padStart(8)}   ratio\n`);
  for (const r of rows) process.stdout.write(`${r.command.padEnd(36)}${ms(r.median)}${ms(r.p90)}${ms(r.min)}   ${r.ratio.toFixed(2)}x\n`);
  for (const r of rows.slice(1)) process.stdout.write(`goal <= 1.20x: ${r.ratio <= 1.2 ? 'met' : 'not met'} for ${r.command}\n`);
}
