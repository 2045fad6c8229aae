/**
 * The record of what `init` copied into an app: `.skiff/init.json` at the app's root, with the
 * sha256 of each copied file as written, so a later `init --update` tells a file the user edited
 * from one only a newer skiff changes. The release walk reads it too: the files it names are
 * skiff's, and never ship (lib/ship/manifest.ts).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Where the record lies, relative to the app's root. */
export const INIT_MANIFEST = '.skiff/init.json';

export interface InitManifest {
  readonly version: 1;
  /** skiff's package version that wrote it. */
  readonly skiff: string;
  /** Copied file -> sha256 of the bytes written. */
  readonly files: Readonly<Record<string, string>>;
  /** package.json entries init added, as it added them (dependency -> range, alias -> command). */
  readonly added: { readonly devDependencies: Readonly<Record<string, string>>; readonly scripts: Readonly<Record<string, string>> };
}

export const sha256 = (content: Buffer | string): string => createHash('sha256').update(content).digest('hex');

/** A relative path inside the app, `/`-separated, without `..`: the only kind the record may name. */
export const isInsidePath = (p: string): boolean => p !== '' && !p.startsWith('/') && !p.includes('\\') && !p.split('/').some((s) => s === '..' || s === '.' || s === '');

const stringRecord = (v: unknown): Record<string, string> | undefined =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string') ? (v as Record<string, string>) : undefined;

/**
 * Reads the record of an app's root: undefined when there is none; throws a one-line reason when it
 * is not one (so init refuses rather than guess which files are skiff's).
 */
export const readInitManifest = (root: string): InitManifest | undefined => {
  const file = join(root, INIT_MANIFEST);
  if (!existsSync(file)) return undefined;
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new Error(`${INIT_MANIFEST} is not valid JSON`);
  }
  const d = (data ?? {}) as Record<string, unknown>;
  const files = stringRecord(d.files);
  const added = (d.added ?? {}) as Record<string, unknown>;
  const deps = stringRecord(added.devDependencies ?? {});
  const scripts = stringRecord(added.scripts ?? {});
  if (d.version !== 1 || typeof d.skiff !== 'string' || !files || !deps || !scripts || !Object.keys(files).every(isInsidePath)) {
    throw new Error(`${INIT_MANIFEST} is not a record written by skiff init`);
  }
  return { version: 1, skiff: d.skiff, files, added: { devDependencies: deps, scripts } };
};

/** APP_DIR when an env file does not say: the repository itself when skiff was brought into it by init, else the example app. */
export const defaultAppDir = (root: string): string => (existsSync(join(root, INIT_MANIFEST)) ? '.' : 'example');

/** The files the record names, for the release walk: none when it is missing or damaged (the walk then ships as before). */
export const recordedFiles = (root: string): string[] => {
  try {
    return Object.keys(readInitManifest(root)?.files ?? {});
  } catch {
    return [];
  }
};

/**
 * What of an app's root is skiff's and never ships: the record, and each file it names, as paths
 * relative to the root; a folder whose every file is skiff's (lib/cli, scripts when the app has
 * no scripts of its own) is named once, as a folder. Empty when there is no record.
 */
export const skiffOwnPaths = (root: string): string[] => {
  const files = recordedFiles(root);
  if (files.length === 0) return [];
  const own = new Set([INIT_MANIFEST, ...files]);
  const allOwn = new Map<string, boolean>();
  const onlySkiffs = (dir: string): boolean => {
    const known = allOwn.get(dir);
    if (known !== undefined) return known;
    let result = true;
    for (const name of readdirSync(join(root, dir))) {
      const rel = `${dir}/${name}`;
      const st = statSync(join(root, rel), { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory() ? !onlySkiffs(rel) : !own.has(rel)) result = false;
    }
    allOwn.set(dir, result);
    return result;
  };
  const out = new Set<string>();
  for (const file of own) {
    const parts = file.split('/');
    // The highest folder (below the root) that holds only skiff's files, else the file itself.
    let chosen = file;
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (existsSync(join(root, dir)) && onlySkiffs(dir)) {
        chosen = dir;
        break;
      }
    }
    out.add(chosen);
  }
  return [...out].sort();
};

/** The record as written: sorted keys, two-space JSON. */
export const renderInitManifest = (m: InitManifest): string => {
  const sorted = (r: Readonly<Record<string, string>>) => Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return `${JSON.stringify({ version: 1, skiff: m.skiff, files: sorted(m.files), added: { devDependencies: sorted(m.added.devDependencies), scripts: sorted(m.added.scripts) } }, null, 2)}\n`;
};

/** Writes a file atomically: a temporary file beside it, then a rename over it. */
export const writeAtomic = (file: string, content: Buffer | string, mode = 0o644): void => {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode });
  renameSync(tmp, file);
};
