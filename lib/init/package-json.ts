/**
 * Merging skiff's npm aliases and dependencies into an app's package.json without overwriting any
 * of its own, and writing it back as it was written: its indentation, line endings, key order and
 * final newline. Pure.
 */
import semver from 'semver';

/** A package.json's text layout, read from the text. */
export interface JsonStyle {
  readonly indent: string;
  readonly eol: '\n' | '\r\n';
  readonly finalNewline: boolean;
}

export const styleOf = (text: string): JsonStyle => {
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const indent = /^[{[][ \t]*\r?\n([ \t]+)\S/.exec(text)?.[1] ?? '  ';
  return { indent, eol, finalNewline: /\r?\n$/.test(text) };
};

/** JSON in that style. */
export const renderJson = (value: unknown, style: JsonStyle): string => {
  const body = JSON.stringify(value, null, style.indent);
  return `${style.eol === '\n' ? body : body.replaceAll('\n', '\r\n')}${style.finalNewline ? style.eol : ''}`;
};

export type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Parses a package.json text; a one-line reason when it is not an object of JSON. */
export const parsePackageJson = (text: string): Json => {
  let value: unknown;
  try {
    value = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (error) {
    throw new Error(`package.json is not valid JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  if (!isObject(value)) throw new Error('package.json is not a JSON object');
  return value;
};

/**
 * Keys in order, one added at the end; with `sorted` (dependencies, which npm keeps sorted) where it
 * sorts when the object was sorted.
 */
const withKey = (obj: Json, key: string, value: unknown, sorted = false): Json => {
  const keys = Object.keys(obj);
  if (!sorted || keys.length === 0 || !keys.every((k, i) => i === 0 || (keys[i - 1] as string) <= k)) return { ...obj, [key]: value };
  const out: Json = {};
  let placed = false;
  for (const k of keys) {
    if (!placed && key < k) {
      out[key] = value;
      placed = true;
    }
    out[k] = obj[k];
  }
  if (!placed) out[key] = value;
  return out;
};

/** One change or one conflict of a merge, as a line for people. */
export interface MergeResult {
  readonly pkg: Json;
  /** `scripts.deploy:staging`, `devDependencies.zod ^4.1.0` */
  readonly added: readonly string[];
  /** Entries of the app kept as they are though skiff's differ. */
  readonly conflicts: readonly string[];
  /** What was added, for the init record. */
  readonly addedScripts: Readonly<Record<string, string>>;
  readonly addedDeps: Readonly<Record<string, string>>;
}

/** Whether an app's range of a package can give a version skiff's range admits. */
const compatible = (theirs: string, ours: string): boolean => {
  try {
    return semver.intersects(theirs, ours);
  } catch {
    // A git URL, a tag or a workspace range: skiff cannot tell, and keeps the app's without a word.
    return true;
  }
};

/**
 * Adds skiff's aliases to `scripts` and its packages to `devDependencies`, never changing an entry
 * the app has. `previous` are the entries an earlier init added: one still as it was added may be
 * moved to skiff's new value (init --update); one the app changed is the app's.
 */
export const mergePackageJson = (
  pkg: Json,
  want: { readonly scripts: Readonly<Record<string, string>>; readonly deps: Readonly<Record<string, string>> },
  previous: { readonly scripts: Readonly<Record<string, string>>; readonly devDependencies: Readonly<Record<string, string>> } = { scripts: {}, devDependencies: {} },
): MergeResult => {
  const added: string[] = [];
  const conflicts: string[] = [];
  const addedScripts: Record<string, string> = {};
  const addedDeps: Record<string, string> = {};
  let out: Json = { ...pkg };

  let scripts: Json = isObject(pkg.scripts) ? { ...pkg.scripts } : {};
  for (const [name, command] of Object.entries(want.scripts)) {
    const have = scripts[name];
    if (have === undefined) {
      scripts = withKey(scripts, name, command);
      added.push(`scripts.${name}: ${command}`);
      addedScripts[name] = command;
    } else if (have === command) {
      if (previous.scripts[name] === command) addedScripts[name] = command;
    } else if (previous.scripts[name] === have) {
      scripts[name] = command;
      added.push(`scripts.${name}: ${command} (was ${String(have)}, as skiff wrote it)`);
      addedScripts[name] = command;
    } else {
      conflicts.push(`scripts.${name} is the app's own (${JSON.stringify(have)}): kept; skiff's would be ${JSON.stringify(command)}, run it as npx tsx ${command.replace(/^tsx /, '')}`);
    }
  }
  if (Object.keys(addedScripts).length > 0 || isObject(pkg.scripts)) out = { ...out, scripts };

  const sections = ['dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies'] as const;
  let dev: Json = isObject(pkg.devDependencies) ? { ...pkg.devDependencies } : {};
  for (const [name, range] of Object.entries(want.deps)) {
    const where = sections.find((s) => isObject(pkg[s]) && (pkg[s] as Json)[name] !== undefined);
    if (where === undefined) {
      dev = withKey(dev, name, range, true);
      added.push(`devDependencies.${name}: ${range}`);
      addedDeps[name] = range;
      continue;
    }
    const have = String((pkg[where] as Json)[name]);
    if (where === 'devDependencies' && previous.devDependencies[name] === have) {
      if (have !== range) {
        dev[name] = range;
        added.push(`devDependencies.${name}: ${range} (was ${have}, as skiff wrote it)`);
      }
      addedDeps[name] = range;
    } else if (!compatible(have, range)) {
      conflicts.push(`${where}.${name} is ${have}, skiff needs ${range}: kept the app's; skiff's scripts may not run until they agree`);
    }
  }
  if (Object.keys(addedDeps).length > 0 || isObject(pkg.devDependencies)) out = { ...out, devDependencies: dev };
  return { pkg: out, added, conflicts, addedScripts, addedDeps };
};
