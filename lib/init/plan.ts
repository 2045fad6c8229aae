/**
 * `init`'s plan: every file it would write, change or remove in an app, and why; the conflicts it
 * keeps the app's side of; the refusals. Pure: `planInit` works on what `readApp` read, and the
 * script applies the plan (each file written atomically, the record last).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { detectApp, envFileFor, type AppFacts, type Detected } from './detect.ts';
import { INIT_MANIFEST, isInsidePath, readInitManifest, renderInitManifest, sha256, type InitManifest } from './manifest.ts';
import { mergePackageJson, parsePackageJson, renderJson, styleOf, type Json } from './package-json.ts';
import type { SourceFile } from './sources.ts';

/** What skiff brings: its files, its version, its runtime packages, its tsconfig's compiler options. */
export interface SkiffSide {
  readonly version: string;
  readonly sources: readonly SourceFile[];
  readonly deps: Readonly<Record<string, string>>;
  readonly compilerOptions: Readonly<Record<string, unknown>>;
}

/** What was read from the app. */
export interface AppSide {
  readonly root: string;
  readonly packageJsonText: string | undefined;
  readonly facts: AppFacts;
  /** The bytes of a file at a relative path, undefined when there is none. */
  readonly read: (path: string) => Buffer | undefined;
  /** Relative paths of `.js` files directly under a folder (they change meaning under a "type": "module" marker). */
  readonly jsFilesIn: (folder: string) => readonly string[];
  /** Relative paths of every file below a folder (none when it does not exist). */
  readonly filesUnder: (folder: string) => readonly string[];
  readonly manifest: InitManifest | undefined;
}

export interface FileChange {
  readonly path: string;
  readonly action: 'create' | 'change' | 'remove';
  readonly content?: Buffer;
  readonly executable?: boolean;
  readonly before?: Buffer;
  /** One line: what it is, or what changes in it. */
  readonly why: string;
}

export interface InitPlan {
  readonly changes: readonly FileChange[];
  /** Lines for people: a file kept because the user edited it, one a newer skiff changes, the app's entries kept. */
  readonly kept: readonly string[];
  readonly conflicts: readonly string[];
  readonly detected: Detected;
  readonly taskfile: string;
  readonly tsconfig: string;
}

/** A refusal: one line, nothing changed (exit 2). */
export class InitRefusal extends Error {}

/** The npm aliases init adds, with the Taskfile it runs (Taskfile.ts, or .mts in a CommonJS package). */
export const aliases = (taskfile: string): Record<string, string> => ({
  'deploy:staging': 'tsx scripts/deploy-vps.ts staging',
  'deploy:production': 'tsx scripts/deploy-vps.ts production',
  'deploy:rollback': `tsx ${taskfile} rollback`,
  'deploy:setup': 'tsx scripts/setup.ts',
  'deploy:status': 'tsx scripts/status.ts',
  'deploy:logs': 'tsx scripts/logs.ts',
  'deploy:exec': 'tsx scripts/exec.ts',
  'deploy:maintenance': 'tsx scripts/maintenance.ts',
  'deploy:export': 'tsx scripts/export.ts',
  'db:migrate': `tsx ${taskfile} db:migrate`,
  'db:backup': `tsx ${taskfile} db:backup`,
  'db:restore': `tsx ${taskfile} db:restore`,
  'db:shell': `tsx ${taskfile} db:shell`,
  backup: `tsx ${taskfile} backup`,
  restore: `tsx ${taskfile} restore`,
  'version:tag': 'tsx scripts/version-tag.ts',
  'env-check': `tsx ${taskfile} env-check`,
});

const GITIGNORE_LINES: readonly (readonly [string, readonly string[]])[] = [
  ['/env/*.secrets.env', ['env/*.secrets.env', '/env/*.secrets.env', '*.secrets.env']],
  ['/backups/', ['backups/', '/backups/', 'backups', '/backups']],
  ['node_modules/', ['node_modules', 'node_modules/', '/node_modules', '/node_modules/']],
];

const MODULE_MARKER = Buffer.from('{ "type": "module" }\n');

/** `adds npm aliases deploy:staging, backup; devDependencies tsx ^4.23.15, zx ^8.8.5`, from what a merge added. */
const describeAdded = (scripts: Readonly<Record<string, string>>, deps: Readonly<Record<string, string>>, added: readonly string[]): string => {
  const s = Object.keys(scripts).filter((k) => added.some((a) => a.startsWith(`scripts.${k}:`)));
  const d = Object.entries(deps).filter(([k]) => added.some((a) => a.startsWith(`devDependencies.${k}:`))).map(([k, v]) => `${k} ${v}`);
  return ['adds', s.length ? `npm aliases ${s.join(', ')}` : '', s.length && d.length ? ';' : '', d.length ? `devDependencies ${d.join(', ')}` : ''].filter(Boolean).join(' ').replace(' ;', ';');
};

/** Reads what init needs from an app folder. Throws InitRefusal for a package.json that is not JSON or a damaged record. */
export const readApp = (root: string): AppSide => {
  const read = (p: string): Buffer | undefined => {
    const file = join(root, p);
    return existsSync(file) && statSync(file).isFile() ? readFileSync(file) : undefined;
  };
  const packageJsonText = read('package.json')?.toString('utf8');
  let packageJson: Json | undefined;
  if (packageJsonText !== undefined) {
    try {
      packageJson = parsePackageJson(packageJsonText);
    } catch (error) {
      throw new InitRefusal(`${join(root, 'package.json')}: ${error instanceof Error ? error.message : String(error)}: fix it (npx json-lint, or your editor), then run init again`);
    }
  }
  const rootFiles = new Set(readdirSync(root));
  // The files that tell the entry point and the port: the ones package.json names, and the usual names.
  const candidates = new Set<string>(['server.js', 'index.js', 'app.js', 'main.js', 'server.ts', 'index.ts', 'app.ts', 'src/index.js', 'src/server.js', 'src/index.ts', 'src/server.ts', 'src/app.ts', 'src/main.ts', 'main.py', 'app.py', 'wsgi.py', 'asgi.py', 'src/main.py', 'app/main.py', 'requirements.txt', 'pyproject.toml']);
  const main = packageJson?.main;
  if (typeof main === 'string' && isInsidePath(main.replace(/^\.\//, ''))) candidates.add(main.replace(/^\.\//, ''));
  const start = (packageJson?.scripts as Json | undefined)?.start;
  // The files the start script names: `node ./bin/www`, `tsx src/server.ts`.
  if (typeof start === 'string') for (const m of start.matchAll(/(?:\bnode\s+|\s|^)([\w./-]+(?:\.(?:[cm]?js|ts|py))?)(?=\s|$)/g)) if (isInsidePath((m[1] as string).replace(/^\.\//, ''))) candidates.add((m[1] as string).replace(/^\.\//, ''));
  const sources: Record<string, string> = {};
  for (const c of candidates) {
    const b = read(c);
    if (b && b.length < 512 * 1024) sources[c] = b.toString('utf8');
  }
  let manifest: InitManifest | undefined;
  try {
    manifest = readInitManifest(root);
  } catch (error) {
    throw new InitRefusal(`${join(root, INIT_MANIFEST)}: ${error instanceof Error ? error.message : String(error)}: restore it from git (git checkout -- ${INIT_MANIFEST})`);
  }
  return {
    root,
    packageJsonText,
    facts: { folder: basename(root), packageJson, rootFiles, sources },
    read,
    filesUnder: (folder) => {
      const out: string[] = [];
      const walk = (rel: string) => {
        const dir = join(root, rel);
        if (!existsSync(dir) || !statSync(dir).isDirectory()) return;
        for (const name of readdirSync(dir)) {
          const p = `${rel}/${name}`;
          if (statSync(join(root, p)).isDirectory()) walk(p);
          else out.push(p);
        }
      };
      walk(folder);
      return out;
    },
    jsFilesIn: (folder) => {
      const dir = join(root, folder);
      return existsSync(dir) && statSync(dir).isDirectory() ? readdirSync(dir).filter((f) => f.endsWith('.js')).map((f) => `${folder}/${f}`) : [];
    },
    manifest,
  };
};

/**
 * The plan of `init` (mode `init`: add what is missing, change nothing skiff wrote before) or
 * `init --update` (also bring the copied files to this skiff's version; a file edited since init
 * only with `force`). Throws InitRefusal when a file init would write is the app's own.
 */
export const planInit = (skiff: SkiffSide, app: AppSide, opts: { readonly update: boolean; readonly force: boolean }): InitPlan => {
  const pkg = app.facts.packageJson;
  // A package that is not "type": "module" runs .ts as CommonJS, where skiff's top-level await fails:
  // skiff's folders get a marker, and the Taskfile is .mts.
  const esm = pkg === undefined || pkg.type === 'module';
  const taskfile = esm ? 'Taskfile.ts' : 'Taskfile.mts';
  const tsconfig = app.read('tsconfig.json') === undefined || app.manifest?.files['tsconfig.json'] !== undefined ? 'tsconfig.json' : 'tsconfig.skiff.json';
  const detected = detectApp(app.facts);

  const wanted: { path: string; content: Buffer; executable: boolean; what: string }[] = skiff.sources.map((s) => ({
    path: s.path === 'Taskfile.ts' ? taskfile : s.path,
    content: s.content,
    executable: s.executable,
    what: s.path.startsWith('scripts/') ? 'a skiff script' : s.path === 'Taskfile.ts' ? "skiff's task list" : 'a skiff module',
  }));
  if (!esm) {
    const js = [...app.jsFilesIn('scripts'), ...app.jsFilesIn('lib')];
    if (js.length > 0) {
      throw new InitRefusal(
        `package.json has no "type": "module", and skiff's folders would need it: ${js.slice(0, 3).join(', ')}${js.length > 3 ? ` and ${js.length - 3} more` : ''} would turn into ES modules: rename them .cjs, or set "type": "module" in package.json`,
      );
    }
    for (const folder of ['scripts', 'lib']) wanted.push({ path: `${folder}/package.json`, content: MODULE_MARKER, executable: false, what: `makes ${folder}/ ES modules (package.json has no "type": "module")` });
  }
  const tsFiles = wanted.filter((w) => w.path.startsWith('scripts/') && w.path.endsWith('.ts')).map((w) => w.path);
  const tsconfigText = `${JSON.stringify({ compilerOptions: skiff.compilerOptions, files: [...tsFiles, taskfile] }, null, 2)}\n`;
  wanted.push({ path: tsconfig, content: Buffer.from(tsconfigText), executable: false, what: tsconfig === 'tsconfig.json' ? "skiff's TypeScript settings" : "skiff's TypeScript settings, apart from the app's tsconfig.json (npx tsc -p tsconfig.skiff.json)" });

  const changes: FileChange[] = [];
  const kept: string[] = [];
  const notOurs: string[] = [];
  const files: Record<string, string> = {};
  const recorded = app.manifest?.files ?? {};

  for (const w of wanted) {
    const have = app.read(w.path);
    const ours = sha256(w.content);
    if (have === undefined) {
      changes.push({ path: w.path, action: 'create', content: w.content, executable: w.executable, why: w.what });
      files[w.path] = ours;
      continue;
    }
    const haveHash = sha256(have);
    if (haveHash === ours) {
      files[w.path] = ours;
      continue;
    }
    const was = recorded[w.path];
    if (was === undefined) {
      notOurs.push(w.path);
      continue;
    }
    const edited = was !== haveHash;
    if (was === ours) {
      // The user's edit, and nothing new from skiff: theirs stays, with no word unless asked to update.
      if (opts.update) kept.push(`${w.path}: edited since init; this skiff has no change to it: kept`);
      files[w.path] = was;
    } else if (!opts.update) {
      kept.push(`${w.path}: ${edited ? 'edited since init' : 'differs from this skiff\'s'}: kept (init --update shows the change)`);
      files[w.path] = was;
    } else if (edited && !opts.force) {
      kept.push(`${w.path}: edited since init: kept (its diff is above; --update --force replaces it)`);
      changes.push({ path: w.path, action: 'change', content: w.content, before: have, why: 'edited since init: not replaced without --force' });
      files[w.path] = was;
    } else {
      changes.push({ path: w.path, action: 'change', content: w.content, executable: w.executable, before: have, why: edited ? 'edited since init: replaced (--force)' : 'a newer skiff changes it' });
      files[w.path] = ours;
    }
  }
  if (notOurs.length > 0) {
    throw new InitRefusal(
      `${notOurs.slice(0, 3).join(', ')}${notOurs.length > 3 ? ` and ${notOurs.length - 3} more` : ''} already exist${notOurs.length === 1 ? 's' : ''} and ${notOurs.length === 1 ? 'was' : 'were'} not made by skiff init: move ${notOurs.length === 1 ? 'it' : 'them'} away (or delete ${notOurs.length === 1 ? 'it' : 'them'}), then run init again`,
    );
  }
  // Files an earlier skiff copied that this one does not: removed by --update when the user left them as they were.
  if (opts.update) {
    for (const [path, hash] of Object.entries(recorded)) {
      if (wanted.some((w) => w.path === path)) continue;
      const have = app.read(path);
      if (have === undefined) continue;
      if (sha256(have) === hash || opts.force) changes.push({ path, action: 'remove', before: have, why: 'this skiff no longer has it' });
      else {
        kept.push(`${path}: edited since init, and this skiff no longer has it: kept`);
        files[path] = hash;
      }
    }
  }

  // package.json: skiff's aliases and packages, the app's entries kept.
  const previous = app.manifest?.added ?? { scripts: {}, devDependencies: {} };
  const base: Json = pkg ?? { name: detected.appName, version: '0.1.0', private: true, type: 'module' };
  const merged = mergePackageJson(base, { scripts: aliases(taskfile), deps: skiff.deps }, previous);
  const style = app.packageJsonText === undefined ? { indent: '  ', eol: '\n' as const, finalNewline: true } : styleOf(app.packageJsonText);
  const pkgText = renderJson(merged.pkg, style);
  if (pkgText !== app.packageJsonText) {
    changes.push({
      path: 'package.json',
      action: app.packageJsonText === undefined ? 'create' : 'change',
      content: Buffer.from(pkgText),
      before: app.packageJsonText === undefined ? undefined : Buffer.from(app.packageJsonText),
      why: `${app.packageJsonText === undefined ? 'new (the app had none): ' : ''}${describeAdded(merged.addedScripts, merged.addedDeps, merged.added)}`,
    });
  }

  // The env files: written once, from what was found; never rewritten.
  for (const env of ['staging', 'production'] as const) {
    const path = `env/${env}.env`;
    if (app.read(path) === undefined) changes.push({ path, action: 'create', content: Buffer.from(envFileFor(env, detected)), why: `the ${env} environment, from what init found` });
  }

  // .gitignore: the secrets files and local backups (and node_modules, which skiff's packages fill).
  const gitignore = app.read('.gitignore')?.toString('utf8');
  const present = new Set((gitignore ?? '').split(/\r?\n/).map((l) => l.trim()));
  const missing = GITIGNORE_LINES.filter(([, forms]) => !forms.some((f) => present.has(f))).map(([line]) => line);
  if (missing.length > 0) {
    const head = gitignore === undefined || gitignore === '' ? '' : gitignore.endsWith('\n') ? gitignore : `${gitignore}\n`;
    changes.push({
      path: '.gitignore',
      action: gitignore === undefined ? 'create' : 'change',
      content: Buffer.from(`${head}# skiff: secrets files and local backup copies never go into git\n${missing.join('\n')}\n`),
      before: gitignore === undefined ? undefined : Buffer.from(gitignore),
      why: `adds ${missing.join(', ')}`,
    });
  }

  // An app that is not a Node package does not ship the node_modules skiff's packages fill.
  if (pkg === undefined) {
    const skiffignore = app.read('.skiffignore')?.toString('utf8');
    if (!(skiffignore ?? '').split(/\r?\n/).some((l) => l.trim() === '/node_modules/')) {
      const head = skiffignore === undefined || skiffignore === '' ? '' : skiffignore.endsWith('\n') ? skiffignore : `${skiffignore}\n`;
      changes.push({
        path: '.skiffignore',
        action: skiffignore === undefined ? 'create' : 'change',
        content: Buffer.from(`${head}# skiff's own packages: the app does not need them on the host\n/node_modules/\n/package.json\n/package-lock.json\n`),
        before: skiffignore === undefined ? undefined : Buffer.from(skiffignore),
        why: "leaves skiff's packages out of releases",
      });
    }
  }

  // The docker runtime sends the app's folder to `docker build`: a Dockerfile that copies it all
  // would put skiff's files in the image, so .dockerignore names them.
  if (detected.runtime === 'docker') {
    const paths = new Set(wanted.map((w) => w.path));
    const lines = new Set<string>(['/.skiff/', '/env/', '/backups/']);
    for (const w of wanted) {
      const folder = /^(lib\/[^/]+)\//.exec(w.path)?.[1];
      // A folder of lib/ that holds only skiff's files is named once.
      if (folder && app.filesUnder(folder).every((f) => paths.has(f))) lines.add(`/${folder}/`);
      else lines.add(`/${w.path}`);
    }
    const dockerignore = app.read('.dockerignore')?.toString('utf8');
    const present = new Set((dockerignore ?? '').split(/\r?\n/).map((l) => l.trim()));
    const missing = [...lines].filter((l) => !present.has(l));
    if (missing.length > 0) {
      const head = dockerignore === undefined || dockerignore === '' ? '' : dockerignore.endsWith('\n') ? dockerignore : `${dockerignore}\n`;
      const marker = '# skiff: its own files stay out of the image';
      changes.push({
        path: '.dockerignore',
        action: dockerignore === undefined ? 'create' : 'change',
        content: Buffer.from(`${head}${present.has(marker) ? '' : `${marker}\n`}${missing.join('\n')}\n`),
        before: dockerignore === undefined ? undefined : Buffer.from(dockerignore),
        why: `leaves skiff's ${missing.length} paths out of the docker build context`,
      });
    }
  }

  const manifest: InitManifest = {
    version: 1,
    skiff: opts.update || !app.manifest ? skiff.version : app.manifest.skiff,
    files,
    added: {
      scripts: { ...Object.fromEntries(Object.entries(previous.scripts).filter(([k]) => merged.addedScripts[k] === undefined && (pkg?.scripts as Json | undefined)?.[k] === previous.scripts[k])), ...merged.addedScripts },
      devDependencies: { ...Object.fromEntries(Object.entries(previous.devDependencies).filter(([k]) => merged.addedDeps[k] === undefined && (pkg?.devDependencies as Json | undefined)?.[k] === previous.devDependencies[k])), ...merged.addedDeps },
    },
  };
  const manifestText = renderInitManifest(manifest);
  const applied = changes.filter((c) => c.why !== 'edited since init: not replaced without --force');
  if (applied.length > 0 || app.read(INIT_MANIFEST)?.toString('utf8') !== manifestText) {
    changes.push({ path: INIT_MANIFEST, action: app.read(INIT_MANIFEST) ? 'change' : 'create', content: Buffer.from(manifestText), why: 'what init copied, with the sha256 of each file (init --update reads it)' });
  }
  return { changes, kept, conflicts: merged.conflicts, detected, taskfile, tsconfig };
};

/** Whether a change is applied (an edited file shown under --update without --force is not). */
export const isApplied = (c: FileChange): boolean => c.why !== 'edited since init: not replaced without --force';
