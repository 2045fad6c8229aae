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

  it.each([
    ['ssh2', ['lib/host/ssh.ts']],
    ['node:child_process', ['lib/host/local.ts']],
  ])('%s is imported only by %s', (pkg, doors) => {
    const users = files(join(REPO_ROOT, 'lib'))
      .filter((f) => new RegExp(`from '${pkg}'|import\\('${pkg}'\\)`).test(readFileSync(f, 'utf8')))
      .map((f) => relative(REPO_ROOT, f));
    expect(users).toEqual(doors);
  });
});
