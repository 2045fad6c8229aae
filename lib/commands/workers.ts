/**
 * Builders for a release's workers (DEPLOY_WORKERS, docs/workers.md) under the pidfile supervisor:
 * each process runs in its own session (setsid) like a slot, with a pid file and a marker
 * (SKIFF_SLOT=<root>#worker-<id>@<release>) that tells it apart from a slot and from the same worker
 * of another release, so the new release's workers can start while the old ones still finish their
 * jobs. A worker gets the release's env file, DATA_DIR, APP_VERSION and APP_ENV, and no PORT.
 */
import { reads, script, type Cmd } from '../core/cmd.ts';
import type { Layout } from '../core/paths.ts';
import { slotMarker } from './supervisor.ts';

/** One process of a worker of a release: its id (`queue.1`) and its command. */
export interface WorkerProc {
  readonly id: string;
  readonly command: string;
}

export interface WorkersSpec {
  readonly release: string;
  readonly releaseDir: string;
  readonly envFile: string;
  readonly version: string;
  readonly env: string;
  readonly procs: readonly WorkerProc[];
}

/** The name a worker process goes by in file names and its marker: `worker-queue.1@<release>`. */
export const workerSlot = (release: string, id: string): string => `worker-${id}@${release}`;

/** A worker's log: one per worker name, shared by its releases (each start line names the release). */
export const workerLog = (l: Layout, id: string): string => l.log(`worker-${id.replace(/\.\d+$/, '')}`);

/**
 * Starts every process of a release's workers in the background; prints `<id> <pid>` for each. The
 * env file is sourced first (single-quoted words: it runs nothing), then skiff's own variables.
 */
export const startWorkers = (l: Layout, s: WorkersSpec): Cmd =>
  script(
    [
      'cd "$1" || exit 1',
      'if [ -f "$2" ]; then set -a; . "$2"; set +a; fi',
      'unset PORT; export DATA_DIR="$3" APP_VERSION="$4" APP_ENV="$5"',
      'shift 5',
      // Four words per process: id, marker, command, log; then its pid file.
      'while [ "$#" -ge 5 ]; do',
      '  echo "--- $(date -u +%Y-%m-%dT%H:%M:%SZ) start $APP_VERSION worker $1" >>"$4"',
      '  SKIFF_SLOT="$2" nohup setsid sh -c "$3" >>"$4" 2>&1 </dev/null &',
      '  echo $! >"$5.tmp" && mv "$5.tmp" "$5" && echo "$1 $!"',
      '  shift 5',
      'done',
    ].join('\n'),
    s.releaseDir,
    s.envFile,
    l.data,
    s.version,
    s.env,
    ...s.procs.flatMap((p) => [p.id, slotMarker(l, workerSlot(s.release, p.id)), p.command, workerLog(l, p.id), l.pidFile(workerSlot(s.release, p.id))]),
  );

/**
 * How each process of a release's workers stands; prints `<id> running PID`, `<id> crashed PID`
 * (its pid file names a process that is gone) or `<id> stopped`, one line each. The marker decides,
 * as for a slot: a reused pid has another environment.
 */
export const workerStatus = (l: Layout, release: string, ids: readonly string[]): Cmd =>
  reads(script(
    [
      'while [ "$#" -ge 3 ]; do',
      '  id=$1; mark="SKIFF_SLOT=$2"; pid=$(cat "$3" 2>/dev/null); shift 3',
      '  if [ -n "$pid" ] && grep -qzxF "$mark" "/proc/$pid/environ" 2>/dev/null; then echo "$id running $pid"; continue; fi',
      '  found=$(grep -lzxF "$mark" /proc/[0-9]*/environ 2>/dev/null | head -n 1 | sed "s#/proc/\\([0-9]*\\)/environ#\\1#")',
      '  if [ -n "$found" ]; then echo "$id running $found"; elif [ -n "$pid" ]; then echo "$id crashed $pid"; else echo "$id stopped"; fi',
      'done',
    ].join('\n'),
    ...ids.flatMap((id) => [id, slotMarker(l, workerSlot(release, id)), l.pidFile(workerSlot(release, id))]),
  ));

/**
 * Stops a release's workers together: SIGTERM once to every process carrying a marker, up to
 * `graceSeconds` to finish the job it took, then SIGKILL (to each one's process group too).
 * Removes their pid files.
 * Prints `stopped N` (N worker processes ran), `killed N` (N were still up at the end of the grace) or `not-running`.
 */
export const stopWorkers = (l: Layout, release: string, ids: readonly string[], graceSeconds: number): Cmd =>
  script(
    [
      'grace=$1; shift',
      // The rest are pairs of marker and pid file: one grep per marker, so no word is split.
      'pids() { while [ "$#" -ge 2 ]; do grep -lzxF "SKIFF_SLOT=$1" /proc/[0-9]*/environ 2>/dev/null; shift 2; done | sed "s#/proc/\\([0-9]*\\)/environ#\\1#" | sort -u; }',
      'unpid() { while [ "$#" -ge 2 ]; do rm -f "$2"; shift 2; done; }',
      // How many of the worker processes have a process left (a worker's children carry its marker too).
      'up() { n=0; while [ "$#" -ge 2 ]; do if grep -qzxF "SKIFF_SLOT=$1" /proc/[0-9]*/environ 2>/dev/null; then n=$((n + 1)); fi; shift 2; done; echo "$n"; }',
      'found=$(pids "$@"); had=$(up "$@")',
      'if [ -z "$found" ]; then unpid "$@"; echo not-running; exit 0; fi',
      // One SIGTERM to each process that carries a marker (children inherit it): a second one, through
      // its process group, could cut short the job that the first one lets the worker finish.
      'for p in $found; do kill -TERM "$p" 2>/dev/null; done',
      // Poll every 0.1 s up to the grace: a worker finishes the job it took and exits on its own.
      'i=0; while [ -n "$(pids "$@")" ] && [ "$i" -lt $(( grace * 10 )) ]; do sleep 0.1; i=$((i + 1)); done',
      'left=$(pids "$@")',
      'if [ -n "$left" ]; then n=$(up "$@"); for p in $left; do kill -KILL "-$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done; unpid "$@"; echo "killed $n"; exit 0; fi',
      'unpid "$@"; echo "stopped $had"',
    ].join('\n'),
    String(graceSeconds),
    ...ids.flatMap((id) => [slotMarker(l, workerSlot(release, id)), l.pidFile(workerSlot(release, id))]),
  );

/**
 * Stops every worker process of this DEPLOY_PATH that belongs to none of the `keep` releases: those
 * a run killed after it started its workers and before it recorded the release left behind.
 * SIGTERM, up to `graceSeconds`, SIGKILL. Prints the number of worker processes found (0: none).
 */
export const stopStrayWorkers = (l: Layout, keep: readonly string[], graceSeconds: number): Cmd =>
  script(
    [
      'root=$1; grace=$2; shift 2',
      // Prints `<pid> <marker>` for each process of a worker whose release is not one of the arguments.
      'strays() {',
      '  for f in $(grep -lzF "SKIFF_SLOT=$root#worker-" /proc/[0-9]*/environ 2>/dev/null); do',
      '    v=$({ tr "\\000" "\\n" <"$f"; } 2>/dev/null | grep -m 1 "^SKIFF_SLOT=") || continue; v=${v#SKIFF_SLOT=}',
      '    case "$v" in "$root#worker-"*@*) ;; *) continue ;; esac',
      '    rel=${v##*@}; mine=no; for r in "$@"; do if [ "$r" = "$rel" ]; then mine=yes; fi; done',
      '    if [ "$mine" = no ]; then p=${f#/proc/}; echo "${p%/environ} $v"; fi',
      '  done',
      '}',
      'found=$(strays "$@")',
      'if [ -z "$found" ]; then echo 0; exit 0; fi',
      'for p in $(echo "$found" | cut -d" " -f1); do kill -TERM "$p" 2>/dev/null; done',
      'i=0; while [ -n "$(strays "$@")" ] && [ "$i" -lt $(( grace * 10 )) ]; do sleep 0.1; i=$((i + 1)); done',
      'for p in $(strays "$@" | cut -d" " -f1); do kill -KILL "-$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done',
      'echo "$found" | cut -d" " -f2- | sort -u | wc -l',
    ].join('\n'),
    l.root,
    String(graceSeconds),
    ...keep,
  );
