/**
 * Shipping only what a host lacks. A manifest lists every entry of a release folder (path, type,
 * mode, size, sha256). Against the live release's manifest, `planDelta` says what the new release
 * can take from the live one and what must travel. Pure: the walker that hashes files is in
 * lib/ship/manifest.ts, the remote commands in lib/commands/delta.ts.
 */

export type Entry =
  | { readonly path: string; readonly type: 'dir'; readonly mode: number }
  | { readonly path: string; readonly type: 'file'; readonly mode: number; readonly size: number; readonly sha256: string }
  | { readonly path: string; readonly type: 'link'; readonly target: string };

export interface Manifest {
  readonly version: 1;
  /** Sorted by path; a folder comes before what it holds. Paths are relative, `/`-separated. */
  readonly entries: readonly Entry[];
}

export interface DeltaPlan {
  /**
   * Paths to delete from a hard-linked copy of the live release: gone from the new release, or
   * changed (they arrive anew, so a changed file never writes through a link into the live one).
   * Only the topmost of a removed folder is listed.
   */
  readonly remove: readonly string[];
  /** Entries to send: changed and new files, links, and folders that are new or changed mode. */
  readonly send: readonly string[];
  /** [path in the live release, path in the new one]: content the host has, at another path. */
  readonly link: readonly (readonly [string, string])[];
  readonly sendBytes: number;
  /** Files the new release takes from the live one (same path or moved). */
  readonly reused: number;
  readonly files: number;
  readonly totalBytes: number;
}

const byPath = (m: Manifest): Map<string, Entry> => new Map(m.entries.map((e) => [e.path, e]));
const contentKey = (e: { mode: number; sha256: string }) => `${e.sha256}:${e.mode}`;

const sameEntry = (a: Entry, b: Entry): boolean => {
  if (a.type === 'file' && b.type === 'file') return a.sha256 === b.sha256 && a.mode === b.mode;
  if (a.type === 'link' && b.type === 'link') return a.target === b.target;
  return a.type === 'dir' && b.type === 'dir';
};

/** The parent folders of a path, nearest last: `a/b/c` -> `a`, `a/b`. */
const parents = (path: string): string[] => {
  const parts = path.split('/');
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
};

/**
 * What the new release takes from the live one, and what travels. A file whose content and mode
 * the live release has (at any path) is reused, never sent; a mode change sends the file again
 * (a hard link shares its mode with the live copy).
 */
export const planDelta = (live: Manifest, next: Manifest): DeltaPlan => {
  const was = byPath(live);
  const now = byPath(next);
  const contentAt = new Map<string, string>();
  for (const e of live.entries) if (e.type === 'file' && !contentAt.has(contentKey(e))) contentAt.set(contentKey(e), e.path);

  const removed = new Set<string>();
  for (const e of live.entries) {
    const n = now.get(e.path);
    if (!n || n.type !== e.type || (e.type !== 'dir' && !sameEntry(e, n))) removed.add(e.path);
  }
  const remove = [...removed].filter((p) => !parents(p).some((d) => removed.has(d))).sort();

  const send: string[] = [];
  const link: [string, string][] = [];
  let sendBytes = 0;
  let reused = 0;
  let files = 0;
  let totalBytes = 0;
  for (const e of next.entries) {
    const old = was.get(e.path);
    const gone = old === undefined || removed.has(e.path) || parents(e.path).some((d) => removed.has(d));
    if (e.type === 'file') {
      files++;
      totalBytes += e.size;
      if (!gone) {
        reused++;
        continue;
      }
      const from = contentAt.get(contentKey(e));
      if (from !== undefined) {
        link.push([from, e.path]);
        reused++;
      } else {
        send.push(e.path);
        sendBytes += e.size;
      }
    } else if (e.type === 'link') {
      if (gone) send.push(e.path);
    } else if (gone || (old?.type === 'dir' && old.mode !== e.mode)) {
      send.push(e.path);
    }
  }
  return { remove, send, link, sendBytes, reused, files, totalBytes };
};

/** Files and bytes of a whole release: what a ship without a live manifest sends. */
export const manifestTotals = (m: Manifest): { files: number; bytes: number } => {
  let files = 0;
  let bytes = 0;
  for (const e of m.entries) {
    if (e.type !== 'file') continue;
    files++;
    bytes += e.size;
  }
  return { files, bytes };
};

/**
 * A manifest as stored on a host: one entry a line, the JSON-encoded path, a tab, then the rest as
 * JSON. JSON escapes tabs and newlines, so any file name fits on one line, and the host can update
 * a manifest line by line with awk (see `manifestChanges`).
 */
export const serializeManifest = (m: Manifest): string => m.entries.map(manifestLine).join('');

const manifestLine = (e: Entry): string => {
  const { path, ...rest } = e;
  return `${JSON.stringify(path)}\t${JSON.stringify(rest)}\n`;
};

/** Reads a stored manifest, sorted by path; undefined when it is missing or not one. */
export const parseManifest = (text: string | undefined): Manifest | undefined => {
  if (!text) return undefined;
  try {
    const entries = text
      .split('\n')
      .filter(Boolean)
      .map((line): Entry => {
        const tab = line.indexOf('\t');
        const rest = JSON.parse(line.slice(tab + 1)) as Omit<Entry, 'path'>;
        return { path: JSON.parse(line.slice(0, tab)) as string, ...rest } as Entry;
      });
    if (!entries.every((e) => typeof e.path === 'string' && ['dir', 'file', 'link'].includes(e.type))) return undefined;
    return { version: 1, entries: entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)) };
  } catch {
    return undefined;
  }
};

/**
 * The new release's manifest as a change of the live one, for the host to apply (updateManifest):
 * the JSON-encoded paths to drop, a line `#`, then the lines to add. Only changed entries travel.
 */
export const manifestChanges = (live: Manifest, next: Manifest): string => {
  const was = byPath(live);
  const same = new Set(next.entries.filter((e) => {
    const old = was.get(e.path);
    return old !== undefined && old.type === e.type && (e.type === 'dir' ? old.type === 'dir' && old.mode === e.mode : sameEntry(old, e));
  }).map((e) => e.path));
  const drop = live.entries.filter((e) => !same.has(e.path)).map((e) => `${JSON.stringify(e.path)}\n`);
  const add = next.entries.filter((e) => !same.has(e.path)).map(manifestLine);
  return `${drop.join('')}#\n${add.join('')}`;
};

/** The files of the live release as they are on its host (liveManifestAndFiles): sizes, and sha256 with --verify. */
export interface LiveListing {
  readonly manifest: Manifest | undefined;
  readonly sizes: ReadonlyMap<string, number>;
  readonly hashes: ReadonlyMap<string, string> | undefined;
}

/** Reads what liveManifestAndFiles printed; no manifest when it printed nothing (or a dry run). */
export const parseLiveListing = (out: string): LiveListing => {
  const [manifestText, ...records] = out.split('\0');
  const sizes = new Map<string, number>();
  let hashes: Map<string, string> | undefined;
  for (const record of records) {
    if (record === '') {
      hashes ??= new Map(); // the separator before the hashes (or the end of the output)
      continue;
    }
    if (hashes) {
      // sha256sum -z: 64 hex digits, two spaces (or a space and `*`), the path.
      const m = /^([0-9a-f]{64}) [ *](.*)$/s.exec(record);
      if (m?.[1] && m[2] !== undefined) hashes.set(m[2], m[1]);
    } else {
      const tab = record.indexOf('\t');
      if (tab > 0) sizes.set(record.slice(tab + 1), Number(record.slice(0, tab)));
    }
  }
  // Without the hash part the last NUL only ends the size records.
  const verified = hashes && hashes.size > 0 ? hashes : undefined;
  return { manifest: parseManifest(manifestText), sizes, hashes: verified };
};

/** The sha256 of an entry that cannot be taken from the live release: no content has it. */
const NOT_ON_HOST = 'differs-on-host';

/**
 * The live manifest as far as the host bears it out: a file whose size (or, with hashes, sha256)
 * on the host differs from its record, or that is gone, is marked so that planDelta removes it
 * from the copy and sends it again, and never links other paths to it. `extra` are files the host
 * has and the manifest does not: they are removed from the copy too.
 */
export const checkLiveAgainstHost = (live: Manifest, listing: LiveListing): { manifest: Manifest; differ: string[]; extra: string[] } => {
  const differ: string[] = [];
  const entries = live.entries.map((e): Entry => {
    if (e.type !== 'file') return e;
    const size = listing.sizes.get(e.path);
    const hash = listing.hashes?.get(e.path);
    const same = size === e.size && (listing.hashes === undefined || hash === e.sha256);
    if (same) return e;
    differ.push(e.path);
    return { ...e, sha256: NOT_ON_HOST };
  });
  const known = new Set(live.entries.map((e) => e.path));
  const extra = [...listing.sizes.keys()].filter((p) => !known.has(p)).sort();
  return { manifest: { version: 1, entries }, differ, extra };
};

/** NUL-separated list, the only separator a file name cannot contain. */
export const nulList = (items: readonly string[]): Buffer => Buffer.from(items.map((i) => `${i}\0`).join(''));

/** Bytes as people read them: 512 B, 12.3 KB, 38.1 MB. */
export const formatBytes = (n: number): string => {
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
};
