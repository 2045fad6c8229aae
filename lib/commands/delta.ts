/**
 * Builders for shipping a release as a delta against the live one. Lists of paths travel on stdin,
 * NUL-separated, and reach `rm`/`ln` through `xargs -0`: a file name is never part of a command line
 * the shell reads.
 */
import { reads, script, type Cmd } from '../core/cmd.ts';

/**
 * Starts `<release>.partial` as a copy of the live release made of hard links (`cp -al`, or a plain
 * copy where the filesystem has no hard links), then deletes the paths listed on stdin from it.
 * Folders are new in the copy; files share their inode with the live release until replaced.
 */
export const seedFromLive = (liveDir: string, partial: string): Cmd =>
  script(
    [
      'rm -rf "$2" && mkdir -p "$2" || exit 1',
      'if ! cp -al "$1/." "$2/" 2>/dev/null; then rm -rf "$2" && mkdir -p "$2" && cp -a "$1/." "$2/" || exit 1; fi',
      'cd "$2" && xargs -0 -r rm -rf --',
    ].join('\n'),
    liveDir,
    partial,
  );

/** How a ship stream is packed (lib/ship/compress.ts). */
export type Packing = 'zstd' | 'gzip' | 'none';

/** The tar flag that unpacks a packed stream: tar runs the decompressor and fails when it does. */
const TAR_FLAG: Record<Packing, string> = { zstd: '--zstd', gzip: '-z', none: '' };

/** Unpacks the tar stream on stdin (zstd- or gzip-packed, or plain) into a folder that exists. */
export const unpackInto = (dir: string, packing: Packing = 'none'): Cmd =>
  packing === 'none' ? script('tar -x -f - -C "$1"', dir) : script('tar -x "$2" -f - -C "$1"', dir, TAR_FLAG[packing]);

/**
 * Prints `zstd`, `tar-zstd` and `tar-gzip`, one per line, for what the host can unpack. Each is
 * tried for real on an archive of an empty folder (busybox tar refuses an archive of nothing), so a
 * tar without the flag or a missing program says no.
 */
export const unpackersProbe = (): Cmd =>
  reads(script(
    [
      'command -v zstd >/dev/null 2>&1 && echo zstd',
      'd=$(mktemp -d) || exit 0',
      'tar --zstd -cf - -C "$d" . 2>/dev/null | tar --zstd -tf - >/dev/null 2>&1 && echo tar-zstd',
      'tar -czf - -C "$d" . 2>/dev/null | tar -tzf - >/dev/null 2>&1 && echo tar-gzip',
      'rmdir "$d"',
      'exit 0',
    ].join('\n'),
  ));

/**
 * Links content the live release has into the new one at another path: stdin holds NUL-separated
 * pairs (absolute source, path in `dir`). A plain copy where linking fails.
 */
export const linkInto = (dir: string): Cmd =>
  script('cd "$1" && xargs -0 -r -n 2 sh -c \'ln -- "$1" "$2" 2>/dev/null || cp -p -- "$1" "$2"\' sh', dir);

/**
 * Checks that `partial` holds as many files as the manifest says, then renames it to the release:
 * a release folder is complete or does not exist.
 */
export const finishRelease = (partial: string, release: string, files: number): Cmd =>
  script(
    [
      'n=$(find "$1" -type f | wc -l)',
      'if [ "$n" -ne "$3" ]; then echo "the new release has $n files, its manifest $3" >&2; exit 1; fi',
      'mv -T "$1" "$2"',
    ].join('\n'),
    partial,
    release,
    String(files),
  );

/**
 * Writes the new release's manifest from the live one and the changes on stdin (manifestChanges):
 * paths to drop, a line `#`, lines to add. Under a temporary name, then renamed.
 */
export const updateManifest = (liveManifest: string, manifest: string): Cmd =>
  script(
    [
      ': >"$2.tmp" || exit 1',
      `awk -F '\t' -v out="$2.tmp" 'FNR == NR { if ($0 == "#") adding = 1; else if (adding) print >> out; else drop[$0] = 1; next } !($1 in drop) { print >> out }' - "$1" || exit 1`,
      'mv "$2.tmp" "$2"',
    ].join('\n'),
    liveManifest,
    manifest,
  );

/**
 * Prints the live release's stored manifest, a NUL, then `<size>\t<path>` NUL-terminated for every
 * file of the live release folder as it is on the host; with `verify`, a NUL, then sha256sum's
 * `<sha256>  <path>` NUL-terminated for each. Nothing without a manifest. One round trip: the read of
 * the manifest the delta needs anyway. GNU find and coreutils (Debian's): `-printf`, `sha256sum -z`.
 */
export const liveManifestAndFiles = (manifest: string, liveDir: string, verify: boolean): Cmd =>
  reads(script(
    [
      'cat "$1" 2>/dev/null || exit 0',
      'printf "\\0"',
      'cd "$2" 2>/dev/null || exit 0',
      'find . -type f -printf "%s\\t%P\\0"',
      'if [ "$3" = sha256 ]; then printf "\\0"; find . -type f -printf "%P\\0" | xargs -0 -r sha256sum -z -- || exit 1; fi',
    ].join('\n'),
    manifest,
    liveDir,
    verify ? 'sha256' : 'size',
  ));
