/** The README's module table is the map of lib/: every module is in it, and every row names a module. */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../lib/core/paths.ts';

const modules = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? modules(join(dir, e.name)) : e.name.endsWith('.ts') ? [relative(REPO_ROOT, join(dir, e.name))] : [],
  );

describe('lib/ layout', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const rows = [...readme.matchAll(/^\| `(lib\/[^`]+\.ts)` \|/gm)].map((m) => m[1] as string);

  it('lists every module of lib/ in the README, once, and nothing else', () => {
    expect([...rows].sort()).toEqual(modules(join(REPO_ROOT, 'lib')).sort());
  });

  it('keeps every module in a folder with a heading of its own in the README', () => {
    for (const row of rows) {
      const folder = row.split('/').slice(0, 2).join('/');
      expect(row.split('/').length, `${row} sits loose in lib/`).toBe(3);
      expect(readme, `no heading for ${folder}/`).toContain(`### \`${folder}/\``);
    }
  });
});
