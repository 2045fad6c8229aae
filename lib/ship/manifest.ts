/**
 * The manifest of a release folder on this machine: every folder, file and symbolic link with its
 * mode, size and sha256, leaving out what never ships and what `.skiffignore` names
 * (lib/ship/ignore.ts). The release tar sends exactly the manifest's entries, so the two agree.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { localBackupsRoot } from '../core/paths.ts';
import type { Config } from '../config/config.ts';
import { envDir } from '../config/env-files.ts';
import { EXIT, SkiffError } from '../core/errors.ts';
import type { Entry, Manifest } from './delta.ts';
import { leftOut, shipRules, type LeftOut, type ShipRules } from './ignore.ts';
import { skiffOwnPaths } from '../init/manifest.ts';

/** The file at a release folder's root that names more of what stays out (gitignore syntax). */
export const SKIFFIGNORE = '.skiffignore';

/** Whether a top-level name never ships, whatever `.skiffignore` says (.git, data, .env, .env.*, *.secrets.env). */
export const isExcludedTop = (name: string): boolean => leftOut({ never: shipRules(undefined).never, ignore: [] }, name, false) !== undefined;

/** The `.skiffignore` of a release folder, if it has one; exit 2 when it cannot be read (nothing has travelled). */
export const readSkiffignore = async (root: string): Promise<string | undefined> => {
  const file = join(root, SKIFFIGNORE);
  if (!existsSync(file)) return undefined;
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const reason = error instanceof Error && 'code' in error ? String(error.code) : String(error);
    throw new SkiffError(`cannot read ${file} (${reason}): make it a readable file, or remove it; nothing was shipped`, EXIT.usage);
  }
};

/**
 * The rules of the release folder of an environment: its `.skiffignore`, and skiff's own folders
 * when they lie inside it (the env folder, and the folder `backup --download` writes copies to:
 * localBackupsRoot in lib/core/paths.ts), skiff's own folder when the app holds it, and what
 * `init` copied when skiff is inside the app's repository (the files `.skiff/init.json` names).
 */
export const releaseRules = async (cfg: Config, processEnv: NodeJS.ProcessEnv = process.env): Promise<ShipRules> => {
  const root = cfg.app.releaseDir;
  const inside = (folder: string): string | undefined => {
    const rel = relative(root, resolve(folder));
    return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel.split('\\').join('/') : undefined;
  };
  // skiff inside the app's repository (scripts/init.ts): the files it copied and its record never
  // ship, one by one, since the app may have files of its own in scripts/ and lib/. skiff in a
  // folder of the app (a checkout at app/deploy): that folder never ships.
  const own = skiffOwnPaths(cfg.root).map((f) => ({ folder: join(cfg.root, f), what: "skiff's own (copied by init)" }));
  const folders = [
    { folder: envDir(processEnv), what: "skiff's env folder" },
    { folder: localBackupsRoot(cfg.root, processEnv), what: "skiff's local backups" },
    { folder: cfg.root, what: 'skiff itself' },
    ...own,
  ].flatMap(({ folder, what }) => {
    const path = inside(folder);
    return path === undefined ? [] : [{ path, what }];
  });
  // An env folder that is the release root itself is not left out whole (nothing would ship); its secrets files still are.
  return shipRules(await readSkiffignore(root), folders);
};

const sha256Of = async (file: string): Promise<string> => {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
};

/** A release folder walked: its manifest, and what stayed out of it (a folder once, not its contents). */
export interface ReleaseWalk {
  readonly manifest: Manifest;
  readonly leftOut: readonly LeftOut[];
}

/** Walks `root` (sorted, so a folder comes before its contents), hashes every file, and leaves out what the rules say. */
export const walkRelease = async (root: string, rules: ShipRules): Promise<ReleaseWalk> => {
  const entries: Entry[] = [];
  const out: LeftOut[] = [];
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(root, rel))).sort();
    for (const name of names) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const abs = join(root, path);
      const st = await lstat(abs);
      const reason = leftOut(rules, path, st.isDirectory());
      if (reason !== undefined) {
        out.push({ path: st.isDirectory() ? `${path}/` : path, reason });
        continue;
      }
      const mode = st.mode & 0o7777;
      if (st.isDirectory()) {
        entries.push({ path, type: 'dir', mode });
        await walk(path);
      } else if (st.isSymbolicLink()) {
        entries.push({ path, type: 'link', target: await readlink(abs) });
      } else if (st.isFile()) {
        entries.push({ path, type: 'file', mode, size: st.size, sha256: await sha256Of(abs) });
      }
      // Sockets, fifos and devices are not part of a release.
    }
  };
  await walk('');
  return { manifest: { version: 1, entries }, leftOut: out };
};

/** The manifest of a release folder, with the fixed rules and its own `.skiffignore` unless `rules` are given. */
export const buildManifest = async (root: string, rules?: ShipRules): Promise<Manifest> =>
  (await walkRelease(root, rules ?? shipRules(await readSkiffignore(root)))).manifest;
