/**
 * The shared flags mean the same in every script (issue 16): each script offers a shared flag as
 * defined once, or refuses it with a reason its --help prints. This walks every script's --help.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { helpText, notOfferedOf, parseCommand, SHARED_FLAGS, specProblems, VERBOSE, type CommandSpec, type FlagSpec, type SharedFlag } from '../../lib/cli/cli.ts';
import { specs } from '../../lib/cli/specs.ts';
import { REPO_ROOT } from '../../lib/core/paths.ts';

type Spec = CommandSpec<Record<string, FlagSpec>>;
const all = Object.values(specs) as readonly Spec[];
const SHARED = ['yes', 'dry-run', 'json', 'verbose', 'force-unlock', 'lock-wait'] as const;

/** Which shared flags each script offers (x) and which it refuses with a reason (-). */
const TABLE: Record<string, string> = {
  //             yes dry json verb unlock wait
  backup:        '-   x   x   x    x      x',
  build:         '-   x   x   x    -      -',
  'deploy-group': 'x  x   x   x    x      x',
  'deploy-vps':  'x   x   x   x    x      x',
  init:          'x   x   -   x    -      -',
  export:        '-   x   x   x    -      -',
  exec:          '-   x   -   x    -      -',
  logs:          '-   -   -   x    -      -',
  maintenance:   '-   x   x   x    x      x',
  restore:       'x   x   -   x    x      x',
  rollback:      'x   x   x   x    x      x',
  setup:         '-   x   -   x    -      -',
  start:         '-   x   -   x    x      x',
  status:        '-   -   x   x    -      -',
  stop:          'x   x   -   x    x      x',
  'version-tag': 'x   x   x   x    -      -',
};

const offers = (s: Spec, flag: (typeof SHARED)[number]): boolean => flag === 'verbose' || flag in s.flags;

const run = (argv: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(join(REPO_ROOT, 'node_modules/.bin/tsx'), argv, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });

describe('the shared flags of every script', () => {
  it('has a spec for every script in scripts/, and a row of the table for each', () => {
    const scripts = readdirSync(join(REPO_ROOT, 'scripts')).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)).sort();
    expect(Object.keys(specs).sort()).toEqual(scripts);
    expect(Object.keys(TABLE).sort()).toEqual(scripts);
    for (const [key, s] of Object.entries(specs)) expect(s.name).toBe(key);
  });

  it.each(Object.keys(TABLE))('%s offers what the table says, and refuses the rest with a reason', (name) => {
    const s = specs[name as keyof typeof specs] as Spec;
    const row = (TABLE[name] as string).split(/\s+/);
    const seen = SHARED.map((flag) => (offers(s, flag) ? 'x' : '-'));
    expect(seen.join(' ')).toBe(row.join(' '));
    expect(specProblems(s)).toEqual([]);
    for (const [flag, why] of notOfferedOf(s)) expect(why.trim().length, `${name} --${flag}`).toBeGreaterThan(5);
  });

  it('a shared flag is the same flag wherever it is offered: one description, one type, one short form', () => {
    for (const s of all) {
      for (const flag of Object.keys(SHARED_FLAGS) as SharedFlag[]) {
        if (flag in s.flags) expect(s.flags[flag], `${s.name} --${flag}`).toEqual(SHARED_FLAGS[flag]);
      }
    }
    // And no script gives a shared short form (-y, -v) to a flag of its own.
    const shorts = new Map<string, string>([...Object.entries(SHARED_FLAGS), ['verbose', VERBOSE] as const].flatMap(([n, f]) => ('short' in f ? [[f.short, n] as [string, string]] : [])));
    for (const s of all) {
      for (const [name, f] of Object.entries(s.flags)) if (f.short && shorts.has(f.short)) expect(name, `${s.name} -${f.short}`).toBe(shorts.get(f.short));
    }
  });

  it('a flag name used by several scripts takes the same kind of value and short form in each', () => {
    const byName = new Map<string, { script: string; f: FlagSpec }[]>();
    for (const s of all) for (const [name, f] of Object.entries(s.flags)) byName.set(name, [...(byName.get(name) ?? []), { script: s.name, f }]);
    for (const [name, uses] of byName) {
      const shapes = new Set(uses.map(({ f }) => `${f.type} ${f.short ?? ''} ${f.value ?? ''}`));
      expect(shapes.size, `--${name} in ${uses.map((u) => u.script).join(', ')}`).toBe(1);
    }
  });

  it.each(all.flatMap((s) => notOfferedOf(s).map(([flag, why]) => [s.name, flag, why] as const)))('%s --%s is refused with its reason (exit 2)', (name, flag, why) => {
    const s = specs[name as keyof typeof specs] as Spec;
    const value = SHARED_FLAGS[flag].type === 'string' ? ['5'] : [];
    expect(() => parseCommand(s, ['x', `--${flag}`, ...value])).toThrow(`${name} does not offer --${flag}: ${why}`);
    const short = 'short' in SHARED_FLAGS[flag] ? (SHARED_FLAGS[flag] as { short: string }).short : undefined;
    if (short) expect(() => parseCommand(s, ['x', `-${short}`])).toThrow(`${name} does not offer --${flag}: ${why}`);
  });

  it("every script's --help is its spec's: offered flags, --verbose, and what it does not offer with why", async () => {
    const helps = await Promise.all(all.map(async (s) => ({ s, r: await run([join('scripts', `${s.name}.ts`), '--help']) })));
    for (const { s, r } of helps) {
      expect(r.code, `${s.name} --help: ${r.stderr}`).toBe(0);
      expect(r.stdout).toBe(`${helpText(s)}\n`);
      const lines = r.stdout.split('\n');
      for (const flag of SHARED) {
        const offered = lines.some((l) => new RegExp(`^  (-\\w, |    )--${flag}\\b`).test(l));
        const refused = lines.some((l) => l.startsWith(`  --${flag} `) && l.includes((s.notOffered as Record<string, string>)[flag] ?? '\0'));
        expect([s.name, flag, offered, refused]).toEqual([s.name, flag, offers(s, flag), !offers(s, flag)]);
      }
    }
  }, 60_000);

  it('a refused flag stops the real script before it reads anything: one line, exit 2', async () => {
    const r = await run(['scripts/backup.ts', 'no-such-env', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toBe(`error: backup does not offer --yes: ${specs.backup.notOffered.yes}`);
  }, 30_000);

  it('the table of docs/README.md is this one', () => {
    const doc = readFileSync(join(REPO_ROOT, 'docs/README.md'), 'utf8');
    const rows = [...doc.matchAll(/^\| \[`(\S+)`\]\(\S+\) \|(.*)\|$/gm)].map((m) => [m[1], (m[2] as string).split('|').map((c) => (c.trim() === 'yes' ? 'x' : '-')).join(' ')]);
    expect(Object.fromEntries(rows)).toEqual(Object.fromEntries(Object.entries(TABLE).map(([k, v]) => [k, v.split(/\s+/).join(' ')])));
  });
});
