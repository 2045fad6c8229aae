/**
 * Builders for the `pidfile` supervisor: a slot's process runs in its own session (setsid), with a
 * pid file, a log file, and a marker in its environment (SKIFF_SLOT) so it can be found even when
 * the pid file is gone and told apart from an unrelated process that reuses the pid.
 */
import { reads, script, type Cmd } from '../core/cmd.ts';
import type { Layout } from '../core/paths.ts';

export interface SlotSpec {
  readonly slot: string;
  readonly releaseDir: string;
  readonly port: number;
  readonly start: string;
  readonly version: string;
  readonly env: string;
  /** The env file to source: the release's own snapshot. */
  readonly envFile: string;
}

/** The value of SKIFF_SLOT: unique per DEPLOY_PATH and slot. */
export const slotMarker = (l: Layout, slot: string): string => `${l.root}#${slot}`;

/**
 * Finds a slot's process. Prints `running PID pidfile`, `running PID found` (pid file missing or
 * stale, process found by its marker), `crashed PID` (pid file names a dead process) or `stopped`.
 */
export const slotStatus = (l: Layout, slot: string): Cmd =>
  reads(script(
    [
      'pid=$(cat "$1" 2>/dev/null); mark="SKIFF_SLOT=$2"',
      // A zombie or a reused pid has another environment, so the marker decides, not kill -0.
      'if [ -n "$pid" ] && grep -qzxF "$mark" "/proc/$pid/environ" 2>/dev/null; then echo "running $pid pidfile"; exit 0; fi',
      'for f in $(grep -lzxF "$mark" /proc/[0-9]*/environ 2>/dev/null); do',
      '  p=${f#/proc/}; p=${p%/environ}; s=$(cat "/proc/$p/stat" 2>/dev/null) || continue',
      // The session leader is the process skiff started: its pid is its session id (field 6 of stat).
      '  rest=${s##*) }; set -- $rest',
      '  if [ "$4" = "$p" ]; then echo "running $p found"; exit 0; fi',
      'done',
      'if [ -n "$pid" ]; then echo "crashed $pid"; else echo stopped; fi',
    ].join('\n'),
    l.pidFile(slot),
    slotMarker(l, slot),
  ));

/**
 * Starts a slot in the background and prints its pid. The app environment comes from the env file,
 * whose values are single-quoted shell words, so sourcing it runs nothing; PORT and the rest are set
 * after it, so the env file cannot override them.
 */
export const startSlot = (l: Layout, s: SlotSpec): Cmd =>
  script(
    [
      'cd "$1" || exit 1',
      'if [ -f "$2" ]; then set -a; . "$2"; set +a; fi',
      'export PORT="$3" DATA_DIR="$4" APP_VERSION="$5" APP_ENV="$6" SKIFF_SLOT="$7"',
      'echo "--- $(date -u +%Y-%m-%dT%H:%M:%SZ) start $5 on port $3" >>"$9"',
      'nohup setsid sh -c "$8" >>"$9" 2>&1 </dev/null &',
      'echo $! >"${10}.tmp" && mv "${10}.tmp" "${10}" && echo $!',
    ].join('\n'),
    s.releaseDir,
    s.envFile,
    String(s.port),
    l.data,
    s.version,
    s.env,
    slotMarker(l, s.slot),
    s.start,
    l.log(s.slot),
    l.pidFile(s.slot),
  );

/**
 * Stops a slot: SIGTERM to its session and to every process carrying its marker, waits up to
 * `graceSeconds` for them to finish in-flight work, then SIGKILL. Removes the pid file. Prints
 * `stopped PID`, `killed PID` or `not-running`.
 */
export const stopSlot = (l: Layout, slot: string, graceSeconds: number): Cmd =>
  script(
    [
      'mark="SKIFF_SLOT=$2"',
      'pids() { grep -lzxF "$mark" /proc/[0-9]*/environ 2>/dev/null | sed "s#/proc/\\([0-9]*\\)/environ#\\1#"; }',
      'found=$(pids)',
      'if [ -z "$found" ]; then rm -f "$1"; echo not-running; exit 0; fi',
      'first=$(echo $found | cut -d" " -f1)',
      'for p in $found; do kill -TERM "-$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done',
      // Poll every 0.1 s up to the grace period: the app drains and exits on its own.
      'i=0; while [ -n "$(pids)" ] && [ "$i" -lt $(( $3 * 10 )) ]; do sleep 0.1; i=$((i + 1)); done',
      'left=$(pids)',
      'if [ -n "$left" ]; then for p in $left; do kill -KILL "-$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done; rm -f "$1"; echo "killed $first"; exit 0; fi',
      'rm -f "$1"; echo "stopped $first"',
    ].join('\n'),
    l.pidFile(slot),
    slotMarker(l, slot),
    String(graceSeconds),
  );

/** Whether something listens on a TCP port on this host: prints `in-use` or `free`. */
export const portStatus = (port: number): Cmd =>
  reads(script(
    [
      'hex=$(printf "%04X" "$1")',
      // Column 2 is local address:port in hex, column 4 the state; 0A is LISTEN.
      "if awk -v p=\"$hex\" 'NR > 1 && $4 == \"0A\" { split($2, a, \":\"); if (a[length(a)] == p) found = 1 } END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null; then echo in-use; else echo free; fi",
    ].join('\n'),
    String(port),
  ));

/**
 * One GET of the health URL on the host itself; prints the HTTP status, 000 when nothing answers or
 * the answer does not end within `timeoutSeconds`. The limit is on the whole request, so an endpoint
 * that trickles a byte a second cannot hold the probe: curl's -m; wget's -T only bounds each read,
 * so wget runs under `timeout` where the host has it.
 */
export const probeHealth = (port: number, path: string, timeoutSeconds: number): Cmd =>
  reads(script(
    [
      'url="http://127.0.0.1:$1$2"',
      'if command -v curl >/dev/null 2>&1; then',
      '  c=$(curl -g -s -o /dev/null -w "%{http_code}" -m "$3" "$url") || c=000; echo "$c"',
      'elif command -v wget >/dev/null 2>&1; then',
      '  if command -v timeout >/dev/null 2>&1; then h=$(timeout "$3" wget -q -S -O /dev/null -T "$3" "$url" 2>&1); s=$?',
      '  else h=$(wget -q -S -O /dev/null -T "$3" "$url" 2>&1); s=$?; fi',
      // Only a whole answer counts: 0, or 8 (the server answered with an error status). A cut one (4,
      // 124 or 143 from a timeout) is none. wget prints the headers of each answer (redirects too): the last counts.
      '  case "$s" in 0 | 8) ;; *) h= ;; esac',
      '  printf "%s\\n" "$h" | awk "/^  HTTP/ { c = \\$2 } END { print c ? c : \\"000\\" }"',
      'else echo "no-client"; fi',
    ].join('\n'),
    String(port),
    path,
    String(timeoutSeconds),
  ));

/** Whether a status printed by `probeHealth` or `probeUrl` is a success (2xx). */
export const isOkStatus = (status: string): boolean => /^2\d\d$/.test(status.trim());
