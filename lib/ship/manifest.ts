/**
 * The manifest of a release folder on this machine: every folder, file and symbolic link with its
 * mode, size and sha256, leaving out what never ships (.git, data, .env and .env.* at the top).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Entry, Manifest } from './delta.ts';

/** Top-level names that stay out of a release: patterns of a name, or a prefix and `*`. */
export const EXCLUDED_TOP = ['.git', 'data', '.env', '.env.*'] as const;

/** Whether a top-level name stays out of a release (the manifest and the release tar agree). */
export const isExcludedTop = (name: string): boolean =>
  EXCLUDED_TOP.some((p) => (p.endsWith('*') ? name.startsWith(p.slice(0, -1)) : name === p));

/** The same exclusions as `tar --exclude` arguments, for a tar run in the release folder. */
export const tarExcludes = (): string[] => EXCLUDED_TOP.map((p) => `--exclude=./${p}`);

const sha256Of = async (file: string): Promise<string> => {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
};

/** Walks `root` (sorted, so a folder comes before its contents) and hashes every file. */
export const buildManifest = async (root: string): Promise<Manifest> => {
  const entries: Entry[] = [];
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(root, rel))).sort();
    for (const name of names) {
      if (rel === '' && isExcludedTop(name)) continue;
      const path = rel === '' ? name : `${rel}/${name}`;
      const abs = join(root, path);
      const st = await lstat(abs);
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
  return { version: 1, entries };
};
