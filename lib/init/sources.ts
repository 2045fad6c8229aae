/**
 * What `init` copies into an app: skiff's scripts, the Taskfile and exactly the lib/ modules they
 * import (followed through every static and dynamic import), nothing else: no tests, benchmarks,
 * docs or the example app. Read from the skiff that runs `init`.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

/** Scripts that are not copied: `init` itself runs from a skiff checkout, not from the app. */
const NOT_COPIED = new Set(['scripts/init.ts']);

/** A relative import of a `.ts` module: `from './x.ts'`, `import('./x.ts')`, `import './x.ts'`. */
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)'(\.{1,2}\/[^']+\.ts)'/g;

/** The relative `.ts` imports of one module's text. Pure. */
export const importsOf = (text: string): string[] => [...text.matchAll(IMPORT)].map((m) => m[1] as string);

/** One file to copy: its path in skiff (and in the app), its bytes and whether it is executable. */
export interface SourceFile {
  readonly path: string;
  readonly content: Buffer;
  readonly executable: boolean;
}

/** The entry points: every script but init, and the Taskfile. */
export const entryPoints = (skiffRoot: string): string[] => [
  ...readdirSync(join(skiffRoot, 'scripts'))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => `scripts/${f}`)
    .filter((p) => !NOT_COPIED.has(p))
    .sort(),
  'Taskfile.ts',
];

/**
 * Every file the entry points need at run time, sorted: the entry points and the closure of their
 * imports. An import that leaves skiff's folder, or names a module that is not there, is a bug in
 * skiff and throws.
 */
export const skiffSources = (skiffRoot: string): SourceFile[] => {
  const seen = new Set<string>();
  const queue = entryPoints(skiffRoot);
  while (queue.length > 0) {
    const path = queue.pop() as string;
    if (seen.has(path)) continue;
    seen.add(path);
    const text = readFileSync(join(skiffRoot, path), 'utf8');
    for (const spec of importsOf(text)) {
      const target = normalize(join(dirname(path), spec));
      if (target.startsWith('..') || relative(skiffRoot, join(skiffRoot, target)).startsWith('..')) throw new Error(`${path} imports ${spec}, outside skiff`);
      queue.push(target.split('\\').join('/'));
    }
  }
  return [...seen].sort().map((path) => {
    const abs = join(skiffRoot, path);
    return { path, content: readFileSync(abs), executable: (statSync(abs).mode & 0o111) !== 0 };
  });
};
