/**
 * Builders for the commands a deploy runs on a host inside a release: DEPLOY_RELEASE_CMD (before it
 * starts) and DEPLOY_MIGRATE (once, before the switch), and the cache of what the release command
 * made (DEPLOY_RELEASE_CACHE). Every value crosses as a positional word; the app's secrets reach the
 * command through its env file, never through an argument.
 */
import { script, type Cmd } from '../core/cmd.ts';

/** The file in a release folder that records the input hash of each folder its release command made. */
export const CACHE_KEYS_FILE = '.skiff-release-cache';

/** The exit status of `timeout` when the command ran past its deadline (124), or had to be killed after it (137). */
export const TIMED_OUT = [124, 137] as const;

/** Seconds between the deadline's SIGTERM and the SIGKILL that follows when the command does not end. */
export const KILL_AFTER_SECONDS = 10;

export interface HookSpec {
  /** The release folder the command runs in. */
  readonly releaseDir: string;
  /** The release's env file (single-quoted shell words): the app's environment. */
  readonly envFile: string;
  /** shared/data, as DATA_DIR. */
  readonly dataDir: string;
  readonly version: string;
  readonly env: string;
  /** The user's command, run with `sh -c`. */
  readonly command: string;
  readonly timeoutSeconds: number;
}

/**
 * Runs a command in a release folder with the environment the app gets (its env file, then
 * DATA_DIR, APP_VERSION and APP_ENV; no PORT, it serves nothing), stderr folded into stdout so the
 * lines keep their order, no stdin. `timeout` stops it at its deadline (SIGTERM to its whole process
 * group, SIGKILL 10 s later): exit 124 or 137. No SKIFF_SLOT: a slot's stop never takes it for the app.
 */
export const runHook = (s: HookSpec): Cmd =>
  script(
    [
      'cd "$1" || exit 1',
      'if [ -f "$2" ]; then set -a; . "$2" || exit 1; set +a; fi',
      'export DATA_DIR="$3" APP_VERSION="$4" APP_ENV="$5"',
      'exec timeout -k "$7" "$6" sh -c "$8" </dev/null 2>&1',
    ].join('\n'),
    s.releaseDir,
    s.envFile,
    s.dataDir,
    s.version,
    s.env,
    String(s.timeoutSeconds),
    String(KILL_AFTER_SECONDS),
    s.command,
  );

/**
 * Runs a command in a running container (the docker runtime's new slot), with the environment the
 * container has, under the same deadline as runHook. At the deadline `timeout` ends the docker
 * client; what the command started in the container goes when the deploy stops that container.
 */
export const hookInContainer = (container: string, command: string, timeoutSeconds: number): Cmd =>
  script('exec timeout -k "$3" "$2" docker exec "$1" sh -c "$4" </dev/null 2>&1', container, String(timeoutSeconds), String(KILL_AFTER_SECONDS), command);

/**
 * Prints `<key> <folder>` for each cache entry: the sha256 of the command's text and of each input
 * file's name and content (`missing` for one that is not there), read in the release folder. A
 * changed command or a changed input changes the key.
 */
export const cacheKeys = (releaseDir: string, command: string, entries: readonly { folder: string; inputs: readonly string[] }[]): Cmd =>
  script(
    [
      'cd "$1" || exit 1; c=$2; shift 2',
      'while [ "$#" -gt 0 ]; do',
      '  folder=$1 n=$2; shift 2; acc=; i=0',
      '  while [ "$i" -lt "$n" ]; do',
      '    f=$1; shift; i=$((i + 1))',
      '    if [ -f "$f" ]; then h=$(sha256sum <"$f" | cut -c1-64) || exit 1; else h=missing; fi',
      '    acc="$acc$f $h',
      '"',
      '  done',
      '  key=$(printf "%s\\n%s" "$c" "$acc" | sha256sum | cut -c1-64) || exit 1',
      '  printf "%s %s\\n" "$key" "$folder"',
      'done',
    ].join('\n'),
    releaseDir,
    command,
    ...entries.flatMap((e) => [e.folder, String(e.inputs.length), ...e.inputs]),
  );

/** Parses `cacheKeys` output (or a CACHE_KEYS_FILE) into folder -> key. */
export const parseCacheKeys = (text: string): Map<string, string> =>
  new Map(
    text.split('\n').flatMap((line) => {
      const m = /^([0-9a-f]{64}) (.+)$/.exec(line);
      return m ? [[m[2] as string, m[1] as string] as const] : [];
    }),
  );

/**
 * Hard-links each folder from the live release into the new one (a folder the new release holds
 * already is replaced). Exit 3, changing nothing, when the live release lacks one of them.
 * Hard links are safe because the command is then skipped: nothing writes into the shared files.
 */
export const reuseFolders = (liveDir: string, newDir: string, folders: readonly string[]): Cmd =>
  script(
    [
      'live=$1 new=$2; shift 2',
      'for f in "$@"; do [ -d "$live/$f" ] || { echo "$f is not in the live release" >&2; exit 3; }; done',
      'for f in "$@"; do',
      '  rm -rf "$new/$f" && mkdir -p "$(dirname "$new/$f")" && cp -al "$live/$f" "$new/$f" || exit 1',
      'done',
    ].join('\n'),
    liveDir,
    newDir,
    ...folders,
  );
