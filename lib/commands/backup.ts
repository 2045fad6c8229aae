/**
 * Builders for backups on a host. A backup is a folder `backups/<name>/` (0700): `manifest.json`,
 * `sqlite/<n>.db` (online copies), `files.tar` (BACKUP_PATHS) and `env` (shared/.env). It is made
 * in `backups/<name>.partial/`, synced, then renamed.
 */
import { script, type Cmd } from '../core/cmd.ts';
import { FREE_KB } from '../core/disk.ts';
import { PG_CONNECT_TIMEOUT, PG_VARIABLES } from '../config/pg-url.ts';

/** sha256 of a file: OpenSSL where it is installed (several times faster), else coreutils. */
const SUM = 'sha() { if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r <"$1" | cut -d" " -f1; else sha256sum <"$1" | cut -d" " -f1; fi; }';

/** Free space (KB) where backups go, and what the data to copy takes (KB): two numbers. */
export const backupSpace = (backups: string, shared: string, sources: readonly string[]): Cmd =>
  script(
    [
      FREE_KB,
      'mkdir -p "$1" && chmod 700 "$1" || exit 1',
      'free=$(free_kb "$1")',
      'cd "$2" || exit 1; shift 2',
      'need=0; for p in "$@"; do [ -e "$p" ] && need=$((need + $(du -sk -- "$p" | cut -f1))); done',
      'echo "$free $need"',
    ].join('\n'),
    backups,
    shared,
    ...sources,
  );

/**
 * Makes the snapshot in `stage`: each SQLite file through the online backup API (`.backup`, never a
 * file copy of a live database) with `PRAGMA integrity_check` on the copy, BACKUP_PATHS in one tar,
 * shared/.env; then prints `sha256 size name` per entry, and `missing <path>` for each of
 * BACKUP_PATHS that does not exist (left out). `stage` is the backup's folder with `.partial`
 * added. Exit 3: a database is missing; 4: a copy fails its integrity check; 6: the backup or its
 * stage exists already (nothing is touched).
 */
export const takeSnapshot = (shared: string, stage: string, sqlite: readonly string[], paths: readonly string[]): Cmd =>
  script(
    [
      'shared=$1; stage=$2; n=$3; shift 3',
      'umask 077',
      SUM,
      // A name in use is left alone (exit 6): another backup's folder, or one being made.
      'if [ -e "${stage%.partial}" ] || [ -e "$stage" ]; then echo "$stage exists" >&2; exit 6; fi',
      'mkdir "$stage" && mkdir "$stage/sqlite" || exit 1',
      'i=0',
      'while [ "$i" -lt "$n" ]; do',
      '  src=$1; shift',
      '  if [ ! -f "$shared/$src" ]; then echo "BACKUP_SQLITE: $src is not a file under $shared" >&2; exit 3; fi',
      '  (cd "$stage/sqlite" && sqlite3 "$shared/$src" ".backup $i.db") || exit 1',
      // The check reads the copy while the next steps run: two cores, half the wait. quick_check, not
      // integrity_check: every page and b-tree of the copy, not whether each index matches its table,
      // which is a property of the database the app wrote, not of the copy (O(N) against O(N log N):
      // 0.9 s against 9.8 s for 2.4 GB with an index on a blob column). `restore --test` and the check
      // before a restore run the full integrity_check.
      '  (r=$(sqlite3 "$stage/sqlite/$i.db" "PRAGMA quick_check;" 2>&1); [ "$r" = ok ] || echo "the copy of $src fails its integrity check: $r" >"$stage/sqlite/$i.failed") &',
      '  i=$((i + 1))',
      'done',
      // A path the app has not created yet (no uploads so far) is left out and reported.
      'for p in "$@"; do shift; if [ -e "$shared/$p" ]; then set -- "$@" "$p"; else echo "missing $p"; fi; done',
      // The archive's sha256 is taken as it is written (one pass over the files, not a second read).
      // A pipe keeps only its last status, so tar and tee say on stderr when they fail (a full disk).
      'tarsum=',
      'if [ "$#" -gt 0 ]; then',
      '  out=$({ { tar -c -f - -C "$shared" -- "$@" || echo "skiff-failed: tar" >&2; } | { tee "$stage/files.tar" || echo "skiff-failed: tee" >&2; } | sha /dev/stdin; } 2>&1)',
      '  case $out in *skiff-failed:*) printf "%s\\n" "$out" | grep -v -e "^skiff-failed:" -e "^[0-9a-f]\\\\{64\\\\}$" | tail -n 3 >&2; echo "the archive of BACKUP_PATHS could not be written in $stage" >&2; exit 1 ;; esac',
      '  tarsum=$(printf "%s\\n" "$out" | grep -e "^[0-9a-f]\\\\{64\\\\}$" | tail -n 1)',
      'fi',
      'if [ -f "$shared/.env" ]; then cp "$shared/.env" "$stage/env" || exit 1; fi',
      'cd "$stage" && for f in sqlite/*.db files.tar env; do',
      '  [ -f "$f" ] || continue',
      '  if [ "$f" = files.tar ]; then h=$tarsum; else h=$(sha "$f"); fi',
      '  echo "$h $(wc -c <"$f" | tr -d " ") $f"',
      'done',
      'wait',
      'for f in sqlite/*.failed; do [ -f "$f" ] && { cat "$f" >&2; exit 4; }; done; exit 0',
    ].join('\n'),
    shared,
    stage,
    String(sqlite.length),
    ...sqlite,
    ...paths,
  );

/**
 * Syncs the staged backup to disk and renames it into place: a backup is whole or absent. Never over
 * another backup of that name; exit 0 only when the sealed folder holds its manifest.
 */
export const sealBackup = (stage: string, final: string): Cmd =>
  // A rename that fails is a failed backup: the half-made one must not look sealed.
  script(
    [
      'if [ -e "$2" ]; then echo "$2 exists already: not replaced" >&2; exit 1; fi',
      // Only the backup's own files and folders go to disk (fsync), not every dirty page of the
      // machine; a `sync` that takes no names (BusyBox's older ones) syncs everything instead.
      'for f in "$1"/* "$1"/sqlite/* "$1"; do [ -e "$f" ] || continue; sync -- "$f" 2>/dev/null || { sync; break; }; done',
      'mv -T "$1" "$2" || exit 1',
      'sync -- "$(dirname -- "$2")" 2>/dev/null || sync',
      '[ -f "$2/manifest.json" ] && [ ! -e "$1" ] || { echo "$2 is not sealed after the rename" >&2; exit 1; }',
    ].join('\n'),
    stage,
    final,
  );

/** Backup names, one a line, sorted (names start with their UTC time). Half-made ones are skipped. */
export const listBackups = (backups: string): Cmd =>
  script('cd "$1" 2>/dev/null || exit 0; for d in *; do case $d in *.partial) continue ;; esac; [ -f "$d/manifest.json" ] && echo "$d"; done; exit 0', backups);

/**
 * Prints `sha256 size name` for each entry of a backup, `ok` or the problem for each SQLite copy, and
 * `member <tar -tv line>` for each member of files.tar, then `members ok` (or `members unreadable`).
 */
export const checkBackup = (dir: string): Cmd =>
  script(
    [
      'cd "$1" || exit 1',
      SUM,
      'for f in sqlite/*.db files.tar env postgres.dump; do [ -f "$f" ] && echo "$(sha "$f") $(wc -c <"$f" | tr -d " ") $f"; done',
      'if [ -f postgres.dump ]; then if pg_restore -l postgres.dump >/dev/null 2>&1; then echo "integrity postgres.dump ok"; else echo "integrity postgres.dump pg_restore cannot read it"; fi; fi',
      'for f in sqlite/*.db; do [ -f "$f" ] && echo "integrity $f $(sqlite3 "$f" "PRAGMA integrity_check;" 2>&1 | head -n 1)"; done',
      // Every member of files.tar with its type and link target, one a line (C-quoted: a name with a
      // newline stays on its line), for the checks before anything is unpacked.
      'if [ -f files.tar ]; then',
      '  if LC_ALL=C tar -t -v --numeric-owner --quoting-style=c -f files.tar >members.$$ 2>/dev/null; then sed "s/^/member /" members.$$; echo "members ok"; else echo "members unreadable"; fi',
      '  rm -f members.$$',
      'fi',
      'exit 0',
    ].join('\n'),
    dir,
  );

/** `folder_of SHARED PATH`: prints where PATH's folder leads after links when that is outside SHARED, else nothing. */
const INSIDE = [
  'folder_of() {',
  '  root=$(realpath -- "$1") && d=$(realpath -m -- "$(dirname -- "$1/$2")") || return 1',
  '  case $d/ in "$root"/*) ;; *) echo "$d" ;; esac',
  '}',
].join('\n');

/**
 * Prints `outside <path> <where>` for each path under shared/ whose folder leads outside it through
 * a link: asked before a restore stops anything, as the swap asks again before it writes.
 */
export const targetsOutside = (shared: string, paths: readonly string[]): Cmd =>
  script([INSIDE, 'shared=$1; shift', 'for a in "$@"; do d=$(folder_of "$shared" "$a") || exit 1; [ -z "$d" ] || printf \'outside %s\\t%s\\n\' "$a" "$d"; done; exit 0'].join('\n'), shared, ...paths);

/**
 * Puts the data of a backup in place: each SQLite copy beside its file then renamed over it (stale
 * -wal and -shm removed), each path of files.tar unpacked beside shared/ and swapped in. The app
 * must be stopped. Arguments: backup folder, shared, n, then n pairs (copy, target), then paths.
 * Exit 7, before anything is written: a target's folder leads outside shared/ through a link.
 */
export const swapInData = (dir: string, shared: string, dbs: readonly (readonly [string, string])[], paths: readonly string[]): Cmd =>
  script(
    [
      'dir=$1; shared=$2; n=$3; shift 3',
      'umask 077',
      // Before anything is written: every target's folder, after links, is inside shared/ (a link
      // there to elsewhere would send the restore's writes outside it). Exit 7 names it.
      INSIDE,
      'i=0; for a in "$@"; do',
      '  i=$((i + 1)); [ "$i" -le $((2 * n)) ] && [ $((i % 2)) -eq 1 ] && continue',
      '  d=$(folder_of "$shared" "$a") || exit 1',
      '  [ -z "$d" ] || { echo "$a: its folder in shared/ leads to $d, outside shared/: refused" >&2; exit 7; }',
      'done',
      'i=0',
      'while [ "$i" -lt "$n" ]; do',
      '  copy=$1; target=$2; shift 2',
      '  mkdir -p "$(dirname "$shared/$target")" || exit 1',
      // -T: a link to a folder where the database should be is replaced, never followed into the folder.
      '  rm -f "$shared/$target.restore" && cp "$dir/$copy" "$shared/$target.restore" && mv -f -T "$shared/$target.restore" "$shared/$target" || exit 1',
      '  rm -f "$shared/$target-wal" "$shared/$target-shm"',
      '  i=$((i + 1))',
      'done',
      'if [ "$#" -gt 0 ]; then',
      '  tmp="$shared/.restore-tmp"; rm -rf "$tmp" && mkdir -p "$tmp" && tar -x --no-same-owner -f "$dir/files.tar" -C "$tmp" -- "$@" || exit 1',
      '  for p in "$@"; do',
      // A link where a path should be would send the app's writes outside shared/.
      '    if [ -L "$tmp/$p" ]; then echo "$p is a symbolic link in the backup: refused" >&2; exit 1; fi',
      '    rm -rf "$shared/$p.before-restore"',
      '    if [ -e "$shared/$p" ]; then mv "$shared/$p" "$shared/$p.before-restore" || exit 1; fi',
      '    mkdir -p "$(dirname "$shared/$p")" && mv "$tmp/$p" "$shared/$p" || exit 1',
      '    rm -rf "$shared/$p.before-restore"',
      '  done',
      '  rm -rf "$tmp"',
      'fi',
    ].join('\n'),
    dir,
    shared,
    String(dbs.length),
    ...dbs.flat(),
    ...paths,
  );

/**
 * A restore drill that touches nothing live: the backup's data is restored into `scratch`, each
 * database checked (`integrity <entry> <result>`, `tables <entry> <count>`), files.tar unpacked
 * (`files <count>`); then the scratch folder is removed.
 */
export const drillRestore = (dir: string, scratch: string): Cmd =>
  script(
    [
      'rm -rf "$2" && mkdir -p "$2" || exit 1',
      'trap \'rm -rf "$2"\' EXIT',
      'if [ -d "$1/sqlite" ]; then cp -r "$1/sqlite" "$2/sqlite" || exit 1; fi',
      'for f in "$2"/sqlite/*.db; do',
      '  [ -f "$f" ] || continue',
      '  e=sqlite/${f##*/}',
      '  echo "integrity $e $(sqlite3 "$f" "PRAGMA integrity_check;" 2>&1 | head -n 1)"',
      '  echo "tables $e $(sqlite3 "$f" "SELECT count(*) FROM sqlite_master WHERE type = \'table\';" 2>&1)"',
      'done',
      'if [ -f "$1/files.tar" ]; then mkdir "$2/files" && tar -x -f "$1/files.tar" -C "$2/files" && echo "files $(find "$2/files" -type f | wc -l | tr -d " ")" || exit 1; fi',
      'if [ -f "$1/postgres.dump" ]; then echo "pgobjects $(pg_restore -l "$1/postgres.dump" | grep -vc "^;")"; fi',
    ].join('\n'),
    dir,
    scratch,
  );

/**
 * Runs a PostgreSQL client with the connection read from stdin (pgStdin in lib/config/pg-url.ts):
 * each `PG*=value` line exported, the password into a private pgpass file, every other PG* variable
 * of the host's environment unset, and a connect timeout unless the URL set one. Never the password
 * in argv or the environment.
 */
const withConnection = (lines: readonly string[]): string =>
  [
    'umask 077',
    `unset PGPASSWORD PGPASSFILE PGSERVICEFILE ${PG_VARIABLES.join(' ')}`,
    'pass=$(mktemp) || exit 1',
    'trap \'rm -f "$pass"\' EXIT',
    `export PGPASSFILE="$pass" PGCONNECT_TIMEOUT=${PG_CONNECT_TIMEOUT}`,
    'while IFS= read -r line; do',
    '  case $line in',
    '    PASSWORD=*) printf \'*:*:*:*:%s\\n\' "${line#PASSWORD=}" >"$pass" || exit 1 ;;',
    `    ${PG_VARIABLES.map((v) => `${v}=*`).join('|')}) export "$line" ;;`,
    '    *) echo "a connection line skiff does not send" >&2; exit 2 ;;',
    '  esac',
    'done',
    ...lines,
  ].join('\n');

/**
 * `pg_dump -Fc` into the staged backup, checked with `pg_restore -l`; prints the dump's
 * `sha256 size postgres.dump`. The connection comes on stdin. Exit 5: pg_dump failed (its first line on stderr).
 */
export const dumpPostgres = (stage: string): Cmd =>
  script(
    withConnection([
      SUM,
      'pg_dump -Fc -f "$1/postgres.dump" 2>"$1/pg.err" || { head -n 1 "$1/pg.err" >&2; rm -f "$1/pg.err"; exit 5; }',
      'rm -f "$1/pg.err"',
      'pg_restore -l "$1/postgres.dump" >/dev/null || { echo "pg_restore -l cannot read the dump" >&2; exit 4; }',
      'cd "$1" && echo "$(sha postgres.dump) $(wc -c <postgres.dump | tr -d " ") postgres.dump"',
    ]),
    stage,
  );

/** Restores a dump in one transaction: the database ends as in the dump, or as it was. The connection comes on stdin. */
export const restorePostgres = (dump: string): Cmd =>
  // pg_restore takes the database from -d only; PGDATABASE names it (the user's name when unset, as libpq does).
  script(withConnection(['pg_restore --clean --if-exists --single-transaction --no-owner -d "${PGDATABASE:-${PGUSER:-$(id -un)}}" "$1"']), dump);
