/**
 * How lib/ modules load one another: no cycle among the imports Node runs (static and dynamic;
 * `import type` is erased and loads nothing), and only the doors named in the README import what
 * they wrap.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../lib/core/paths.ts';

const files = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));

const VALUE_IMPORT = /^\s*import\s+(?!type\b)[^;]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/gm;

/** Each module of lib/ and the lib/ modules it loads at run time. */
const graph = (): Map<string, string[]> => {
  const g = new Map<string, string[]>();
  for (const file of files(join(REPO_ROOT, 'lib'))) {
    const text = readFileSync(file, 'utf8');
    const deps = [...text.matchAll(VALUE_IMPORT)]
      .map((m) => m[1] ?? m[2] ?? '')
      .filter((s) => s.startsWith('.'))
      .map((s) => relative(REPO_ROOT, resolve(dirname(file), s)));
    g.set(relative(REPO_ROOT, file), deps);
  }
  return g;
};

/** The first cycle found, as a path of modules, or undefined. */
const findCycle = (g: ReadonlyMap<string, readonly string[]>): string[] | undefined => {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (m: string): string[] | undefined => {
    if (state.get(m) === 'done') return undefined;
    if (state.get(m) === 'open') return [...path.slice(path.indexOf(m)), m];
    state.set(m, 'open');
    path.push(m);
    for (const d of g.get(m) ?? []) {
      const found = visit(d);
      if (found) return found;
    }
    path.pop();
    state.set(m, 'done');
    return undefined;
  };
  for (const m of g.keys()) {
    const found = visit(m);
    if (found) return found;
  }
  return undefined;
};

describe('lib/ imports', () => {
  it('have no cycle', () => {
    const g = graph();
    expect(g.get('lib/flows/deploy.ts')).toContain('lib/commands/release.ts'); // the graph is read, not empty
    expect(g.get('lib/host/connect.ts')).toContain('lib/host/ssh.ts'); // dynamic imports count
    expect(findCycle(g)).toBeUndefined();
  });

  it('finds a cycle when there is one (the checker itself)', () => {
    expect(findCycle(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]]))).toEqual(['a', 'b', 'c', 'a']);
  });

  // Processes on this machine start in one place, lib/host/local.ts, through zx; scripts/ and the
  // Taskfile go through it too. bench/ and test/ start their own helpers and are not held to this.
  const doorFiles = (): string[] => [...files(join(REPO_ROOT, 'lib')), ...files(join(REPO_ROOT, 'scripts')), join(REPO_ROOT, 'Taskfile.ts')];
  const importers = (pattern: string): string[] =>
    doorFiles()
      .filter((f) => new RegExp(`from '${pattern}'|import\\(\\s*'${pattern}'\\s*\\)`).test(readFileSync(f, 'utf8')))
      .map((f) => relative(REPO_ROOT, f));

  it.each([
    ['ssh2', ['lib/host/ssh.ts']],
    ['zx', ['lib/host/local.ts']],
    ['(node:)?child_process', []],
  ])('%s is imported only by %j', (pattern, doors) => {
    expect(importers(pattern)).toEqual(doors);
  });

  it('finds the importers it is asked about (the checker itself)', () => {
    expect(importers('\\.\\./host/local\\.ts')).toContain('lib/release/git.ts'); // static, in lib/
    expect(importers('\\./lib/host/local\\.ts')).toEqual(['Taskfile.ts']); // dynamic, in the Taskfile
  });

  it('zx loads on first use, so --help and --list never pay for it', () => {
    const text = readFileSync(join(REPO_ROOT, 'lib/host/local.ts'), 'utf8');
    expect(text).toMatch(/import\('zx'\)/);
    expect(text.match(/^\s*import\s+(?!type\b)[^;]*?from\s+'zx'/m)).toBeNull();
  });
});
