/**
 * Writes an export's files into its folder: all or none refused before the first is written (a file
 * that exists needs --force, an out path that is a file is refused), each file atomically, and every
 * file that holds a secret value with mode 600 (its folder 700).
 */
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UsageError } from '../core/errors.ts';
import { writeAtomic } from '../init/manifest.ts';
import type { ExportFile } from './export.ts';

/** What writing would do: the files to write and those it would replace. Throws when the folder cannot take them. */
export const checkOut = (out: string, files: readonly ExportFile[], force: boolean): { replaced: string[] } => {
  if (existsSync(out) && !statSync(out).isDirectory()) throw new UsageError(`--out ${out} is a file, not a folder: give a folder (it is made if missing)`);
  // The folder is made with its parents: the nearest one that exists must be a folder too.
  let parent = dirname(out);
  while (!existsSync(parent) && dirname(parent) !== parent) parent = dirname(parent);
  if (!statSync(parent).isDirectory()) throw new UsageError(`--out ${out} lies under ${parent}, which is a file: give a folder`);
  const replaced = files.map((f) => join(out, f.name)).filter((p) => existsSync(p));
  const notFiles = replaced.filter((p) => !statSync(p).isFile());
  if (notFiles.length > 0) throw new UsageError(`${notFiles.join(', ')} is not a file: move it away`);
  if (replaced.length > 0 && !force) throw new UsageError(`${replaced.join(', ')} exists already: pass --force to replace it, or choose another --out`);
  return { replaced };
};

/** Writes the files (checkOut first). Returns the paths written. */
export const writeExport = (out: string, files: readonly ExportFile[], force: boolean): string[] => {
  checkOut(out, files, force);
  const secret = files.some((f) => f.secret);
  mkdirSync(out, { recursive: true, mode: secret ? 0o700 : 0o755 });
  const written: string[] = [];
  for (const f of files) {
    const path = join(out, f.name);
    writeAtomic(path, f.text, f.secret ? 0o600 : 0o644);
    // writeFileSync's mode is masked by the umask; the mode asked for is the mode it has.
    chmodSync(path, f.secret ? 0o600 : 0o644);
    written.push(path);
  }
  return written;
};
