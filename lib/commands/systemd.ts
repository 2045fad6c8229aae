/**
 * Builders for the `systemd` supervisor: each slot is a service of its own,
 * `skiff-<app>-<env>-<slot>.service`, written by skiff when the slot starts. Root hosts get system
 * units (/etc/systemd/system); any other user gets user units (~/.config/systemd/user, run by the
 * user's own manager, which lingering keeps alive across logouts and starts at boot).
 *
 * A unit per slot rather than a template (`skiff-<app>-<env>@.service`): a slot's release folder,
 * port and start command change with every deploy, and a template would need a file per instance
 * for them anyway. Generated units say all of it in one place, so `systemctl cat` shows exactly what
 * runs, and a unit is only rewritten when its slot starts a new release.
 */
import { reads, script, type Cmd } from '../core/cmd.ts';

/** What a slot's unit runs: the same launcher the pidfile supervisor uses, under systemd. */
export interface UnitSpec {
  readonly app: string;
  readonly env: string;
  readonly slot: string;
  readonly root: string;
  readonly releaseDir: string;
  readonly envFile: string;
  readonly port: number;
  readonly dataDir: string;
  readonly version: string;
  readonly release: string;
  readonly marker: string;
  readonly start: string;
  /** Seconds a stop gives the app to finish its requests (DEPLOY_DRAIN_SECONDS). */
  readonly drainSeconds: number;
  /** MemoryMax= (bytes, or with K, M, G, T), from DEPLOY_MEMORY_LIMIT. */
  readonly memory: string | undefined;
  /** CPUs (0.5, 2), from DEPLOY_CPU_LIMIT: CPUQuota= of 100% per CPU. */
  readonly cpus: number | undefined;
}

/** The first line of every unit skiff writes: a unit without it is someone else's and never touched. */
export const UNIT_MARK = '# written by skiff: ';

/** The unit of a slot (app and env names are a-z, 0-9 and -, so the name needs no escaping). */
export const unitName = (app: string, env: string, slot: string): string => `skiff-${app}-${env}-${slot}.service`;

/**
 * One word of a unit file's command line: double-quoted, with C escapes for `\`, `"` and control
 * characters, `%%` for specifiers and `$$` for variables, so systemd passes it on exactly.
 */
export const unitWord = (s: string): string =>
  `"${s
    .replace(/\\/g, '\\\\')
    .replace(/"/g, '\\"')
    .replace(/\n/g, '\\n')
    .replace(/\t/g, '\\t')
    .replace(/\r/g, '\\r')
    .replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
    .replace(/%/g, '%%')
    .replace(/\$/g, '$$$$')}"`;

/** A comment line: no control characters, so a path cannot start a directive of its own. */
const commentText = (s: string): string => s.replace(/[\u0000-\u001f\u007f]/g, '?');

/**
 * The launcher a unit runs: the release's env file sourced (single-quoted words, so it runs nothing),
 * then PORT and the rest set after it so the file cannot override them, then the start command.
 */
const LAUNCHER = [
  'cd "$1" || exit 1',
  'if [ -f "$2" ]; then set -a; . "$2"; set +a; fi',
  'export PORT="$3" DATA_DIR="$4" APP_VERSION="$5" APP_ENV="$6" SKIFF_SLOT="$7"',
  'echo "--- start $5 on port $3"',
  'exec sh -c "$8"',
].join('; ');

/** The unit file of a slot. */
export const unitFile = (u: UnitSpec): string => {
  const exec = [
    '/bin/sh',
    '-c',
    LAUNCHER,
    'skiff',
    u.releaseDir,
    u.envFile,
    String(u.port),
    u.dataDir,
    u.version,
    u.env,
    u.marker,
    u.start,
  ];
  return [
    `${UNIT_MARK}${u.app} ${u.env}, slot ${u.slot}, in ${commentText(u.root)}`,
    '# Rewritten when this slot starts a release; the live slot is enabled, the idle one is not.',
    '[Unit]',
    `Description=${u.app} ${u.env} (${u.slot} slot, release ${u.release})`,
    'After=network.target',
    // Restarts are not capped: a crash loop retries every second instead of giving up for good.
    'StartLimitIntervalSec=0',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${exec.map((w, i) => (i === 0 ? w : unitWord(w))).join(' ')}`,
    'Restart=on-failure',
    'RestartSec=1',
    // SIGTERM to every process of the slot, as the pidfile supervisor does; SIGKILL for what is left
    // after the drain. skiff's own stop kills at DEPLOY_DRAIN_SECONDS; this is the limit at shutdown.
    'KillMode=control-group',
    `TimeoutStopSec=${u.drainSeconds + 5}`,
    'StandardOutput=journal',
    'StandardError=journal',
    `SyslogIdentifier=${unitName(u.app, u.env, u.slot).replace(/\.service$/, '')}`,
    ...(u.memory !== undefined ? [`MemoryMax=${u.memory}`] : []),
    ...(u.cpus !== undefined ? [`CPUQuota=${Math.round(u.cpus * 100)}%`] : []),
    '',
    '[Install]',
    'WantedBy=default.target',
    '',
  ].join('\n');
};

/** What a worker process's unit runs (DEPLOY_WORKERS, docs/workers.md): a process of a release with no port. */
export interface WorkerUnitSpec {
  readonly app: string;
  readonly env: string;
  /** The process: `queue.1`. */
  readonly id: string;
  readonly root: string;
  readonly release: string;
  readonly releaseDir: string;
  readonly envFile: string;
  readonly dataDir: string;
  readonly version: string;
  readonly marker: string;
  readonly command: string;
  /** Seconds a stop at shutdown gives the worker to finish its job (DEPLOY_WORKER_GRACE_SECONDS). */
  readonly graceSeconds: number;
  readonly memory: string | undefined;
  readonly cpus: number | undefined;
}

/**
 * The unit of a worker process of a release: `skiff-<app>-<env>-worker-<name>.<n>-<release>.service`.
 * The release is in the name, so a new release's workers start while the old ones finish their jobs.
 * Worker names are a-z, 0-9 and - and release ids A-Z, a-z, 0-9, `.`, `_` and `-`: no escaping.
 */
export const workerUnitName = (app: string, env: string, release: string, id: string): string => `skiff-${app}-${env}-worker-${id}-${release}.service`;

/**
 * The worker process and release a unit name of this app and env stands for; undefined for any other
 * name. A worker name has no `.`, so the first `.<n>-` ends the process id.
 */
export const parseWorkerUnitName = (app: string, env: string, name: string): { readonly id: string; readonly release: string } | undefined => {
  const prefix = `skiff-${app}-${env}-worker-`;
  if (!name.startsWith(prefix) || !name.endsWith('.service')) return undefined;
  const m = /^([a-z0-9][a-z0-9-]*\.[0-9]+)-([0-9]{8}-[0-9]{6}-[A-Za-z0-9._-]+)$/.exec(name.slice(prefix.length, -'.service'.length));
  return m?.[1] && m[2] ? { id: m[1], release: m[2] } : undefined;
};

/** What a worker's unit runs: the release's env file sourced, no PORT, skiff's variables after it, then the command. */
const WORKER_LAUNCHER = [
  'cd "$1" || exit 1',
  'if [ -f "$2" ]; then set -a; . "$2"; set +a; fi',
  'unset PORT; export DATA_DIR="$3" APP_VERSION="$4" APP_ENV="$5" SKIFF_SLOT="$6"',
  'echo "--- start $4 worker $7"',
  'exec sh -c "$8"',
].join('; ');

/** The unit file of a worker process: restarted when it fails, started at boot while its release is live. */
export const workerUnitFile = (u: WorkerUnitSpec): string => {
  const exec = ['/bin/sh', '-c', WORKER_LAUNCHER, 'skiff', u.releaseDir, u.envFile, u.dataDir, u.version, u.env, u.marker, u.id, u.command];
  return [
    `${UNIT_MARK}${u.app} ${u.env}, worker ${u.id} of release ${u.release}, in ${commentText(u.root)}`,
    '# Written when the release starts its workers, removed when they stop.',
    '[Unit]',
    `Description=${u.app} ${u.env} (worker ${u.id}, release ${u.release})`,
    'After=network.target',
    'StartLimitIntervalSec=0',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${exec.map((w, i) => (i === 0 ? w : unitWord(w))).join(' ')}`,
    'Restart=on-failure',
    'RestartSec=1',
    // SIGTERM once to every process of the worker; SIGKILL for what is left after its grace.
    'KillMode=control-group',
    `TimeoutStopSec=${u.graceSeconds + 5}`,
    'StandardOutput=journal',
    'StandardError=journal',
    `SyslogIdentifier=skiff-${u.app}-${u.env}-worker-${u.id.replace(/\.[0-9]+$/, '')}`,
    ...(u.memory !== undefined ? [`MemoryMax=${u.memory}`] : []),
    ...(u.cpus !== undefined ? [`CPUQuota=${Math.round(u.cpus * 100)}%`] : []),
    '',
    '[Install]',
    'WantedBy=default.target',
    '',
  ].join('\n');
};

/**
 * What every systemd builder starts with: `sc` is systemctl for this user's units (`--user` unless
 * root), `jc` journalctl the same way, `dir` where its unit files go. A user's manager is reached
 * through XDG_RUNTIME_DIR, which a non-login SSH session may lack.
 */
const PRELUDE = [
  'if [ "$(id -u)" = 0 ]; then sc="systemctl"; jc="journalctl"; dir=/etc/systemd/system',
  'else sc="systemctl --user"; jc="journalctl --user"; dir="$HOME/.config/systemd/user"',
  '  XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/run/user/$(id -u)}; export XDG_RUNTIME_DIR; fi',
].join('\n');

/**
 * What a host offers the systemd supervisor; prints one line: `ok system`, `ok user`, `no-systemd`
 * (systemd is not the init), `no-linger USER` (a user's units would stop at logout and not start at
 * boot) or `no-manager USER` (the user's manager does not answer).
 */
export const systemdCheck = (): Cmd =>
  reads(script(
    [
      PRELUDE,
      'if [ ! -d /run/systemd/system ] || ! command -v systemctl >/dev/null 2>&1; then echo no-systemd; exit 0; fi',
      'if [ "$(id -u)" = 0 ]; then echo "ok system"; exit 0; fi',
      'me=$(id -un)',
      'if [ ! -e "/var/lib/systemd/linger/$me" ]; then echo "no-linger $me"; exit 0; fi',
      'if ! timeout 10 $sc show-environment >/dev/null 2>&1; then echo "no-manager $me"; exit 0; fi',
      'echo "ok user"',
    ].join('\n'),
  ));

/**
 * For each unit name, where systemd loads it from when the file there is not one skiff wrote
 * (`NAME PATH`, one a line), or `NAME masked`; nothing when every name is free or skiff's.
 */
export const foreignUnits = (names: readonly string[]): Cmd =>
  reads(script(
    [
      PRELUDE,
      'mark=$1; shift',
      'for u in "$@"; do',
      // A masked unit (a link to /dev/null) is the administrator's word that it must not run.
      '  if [ "$($sc show -p LoadState --value "$u" 2>/dev/null)" = masked ] || [ -L "$dir/$u" ]; then echo "$u masked"; continue; fi',
      '  f=$($sc show -p FragmentPath --value "$u" 2>/dev/null)',
      '  [ -n "$f" ] && [ -f "$f" ] || continue',
      '  head -n 1 "$f" | grep -qF "$mark" || echo "$u $f"',
      'done',
    ].join('\n'),
    UNIT_MARK,
    ...names,
  ));

/**
 * Writes a slot's unit (stdin) atomically, refusing a unit of that name skiff did not write, then
 * reloads systemd, enables the unit (so it starts at boot) and starts it. Prints the main pid.
 */
export const startUnit = (unit: string): Cmd =>
  script(
    [
      PRELUDE,
      'mkdir -p "$dir" || exit 1',
      'if [ "$($sc show -p LoadState --value "$1" 2>/dev/null)" = masked ] || [ -L "$dir/$1" ]; then echo "refused: $1 is masked (systemctl unmask $1 lets skiff use it)" >&2; exit 3; fi',
      'f=$($sc show -p FragmentPath --value "$1" 2>/dev/null)',
      'if [ -n "$f" ] && [ -f "$f" ] && ! head -n 1 "$f" | grep -qF "$2"; then echo "refused: $f is not a unit skiff wrote" >&2; exit 3; fi',
      'cat >"$dir/$1.tmp" && mv -f "$dir/$1.tmp" "$dir/$1" || exit 1',
      '$sc daemon-reload || exit 1',
      '$sc reset-failed "$1" 2>/dev/null',
      '$sc enable --quiet "$1" || exit 1',
      '$sc start "$1" || { $sc disable --quiet "$1" 2>/dev/null; exit 1; }',
      '$sc show -p MainPID --value "$1"',
    ].join('\n'),
    unit,
    UNIT_MARK,
  );

/**
 * A unit's state, one line: `ACTIVE SUB MAINPID EXECMAINPID NRESTARTS ENABLED`, or `none` when
 * systemd has no unit of that name.
 */
export const unitStatus = (unit: string): Cmd =>
  reads(script(
    [
      PRELUDE,
      'load=$($sc show -p LoadState --value "$1" 2>/dev/null)',
      'if [ "$load" != loaded ]; then echo none; exit 0; fi',
      'v() { $sc show -p "$1" --value "$2" 2>/dev/null; }',
      'enabled=$($sc is-enabled "$1" 2>/dev/null) || enabled=${enabled:-disabled}',
      'echo "$(v ActiveState "$1") $(v SubState "$1") $(v MainPID "$1") $(v ExecMainPID "$1") $(v NRestarts "$1") $enabled"',
    ].join('\n'),
    unit,
  ));

/**
 * Stops a slot's unit: disabled first (it must not come back at boot), then stopped, giving it
 * `graceSeconds` to drain before SIGKILL. Prints `stopped PID`, `killed PID` or `not-running`.
 */
export const stopUnit = (unit: string, graceSeconds: number): Cmd =>
  script(
    [
      PRELUDE,
      'load=$($sc show -p LoadState --value "$1" 2>/dev/null)',
      'if [ "$load" != loaded ]; then echo not-running; exit 0; fi',
      '$sc disable --quiet "$1" 2>/dev/null',
      'pid=$($sc show -p MainPID --value "$1" 2>/dev/null); [ "$pid" != 0 ] || pid=$($sc show -p ExecMainPID --value "$1" 2>/dev/null)',
      'state=$($sc show -p ActiveState --value "$1" 2>/dev/null)',
      // A unit between two restarts (activating) or failed has nothing to drain.
      'if [ "$state" != active ] && [ "$state" != deactivating ]; then $sc stop "$1" 2>/dev/null; $sc reset-failed "$1" 2>/dev/null; echo not-running; exit 0; fi',
      'if [ "$2" -eq 0 ]; then $sc kill -s KILL "$1" 2>/dev/null; fi',
      '$sc stop --no-block "$1" || exit 1',
      'i=0; while [ "$($sc show -p ActiveState --value "$1")" = deactivating ] || [ "$($sc show -p ActiveState --value "$1")" = active ]; do',
      '  if [ "$i" -ge $(( $2 * 10 )) ]; then $sc kill -s KILL "$1" 2>/dev/null; killed=1; break; fi',
      '  sleep 0.1; i=$((i + 1))',
      'done',
      'j=0; while [ "$($sc show -p ActiveState --value "$1")" = deactivating ] && [ "$j" -lt 100 ]; do sleep 0.1; j=$((j + 1)); done',
      '$sc reset-failed "$1" 2>/dev/null',
      'if [ -n "${killed:-}" ] || [ "$2" -eq 0 ]; then echo "killed $pid"; else echo "stopped $pid"; fi',
    ].join('\n'),
    unit,
    String(graceSeconds),
  );

/**
 * The state of several units, one line each: `NAME ACTIVE SUB MAINPID EXECMAINPID NRESTARTS ENABLED`,
 * or `NAME none` when systemd has no unit of that name (the fields of `unitStatus`, named).
 */
export const unitsStatus = (units: readonly string[]): Cmd =>
  reads(script(
    [
      PRELUDE,
      'v() { $sc show -p "$1" --value "$2" 2>/dev/null; }',
      'for u in "$@"; do',
      '  if [ "$(v LoadState "$u")" != loaded ]; then echo "$u none"; continue; fi',
      '  enabled=$($sc is-enabled "$u" 2>/dev/null) || enabled=${enabled:-disabled}',
      '  echo "$u $(v ActiveState "$u") $(v SubState "$u") $(v MainPID "$u") $(v ExecMainPID "$u") $(v NRestarts "$u") $enabled"',
      'done',
      'exit 0',
    ].join('\n'),
    ...units,
  ));

/**
 * Stops several units together and removes them: each disabled first (none comes back at boot), all
 * stopped at once, up to `graceSeconds` to finish the job they took before SIGKILL, then their files
 * removed. Prints `stopped N` (N of them ran), `killed N` (N were still up after the grace) or
 * `not-running`. Only units whose file skiff wrote are touched.
 */
export const stopAndRemoveUnits = (units: readonly string[], graceSeconds: number): Cmd =>
  script(
    [
      PRELUDE,
      'grace=$1; mark=$2; shift 2',
      // The units skiff wrote, of those named.
      'set -- $(for u in "$@"; do f="$dir/$u"; [ -f "$f" ] && [ ! -L "$f" ] && head -n 1 "$f" | grep -qF "$mark" && echo "$u"; done)',
      '[ "$#" -gt 0 ] || { echo not-running; exit 0; }',
      'up() { n=0; for u in "$@"; do case $($sc show -p ActiveState --value "$u" 2>/dev/null) in active | deactivating | reloading) n=$((n + 1)) ;; esac; done; echo "$n"; }',
      'had=$(up "$@")',
      'for u in "$@"; do $sc disable --quiet "$u" 2>/dev/null; done',
      // SIGTERM to every process of each unit (systemd's stop), then the grace by the clock, then SIGKILL.
      '$sc stop --no-block "$@" 2>/dev/null',
      'end=$(( $(date +%s) + grace ))',
      // Whole seconds: waits on while the clock is at most `end`, so the grace is never cut short.
      'while [ "$(up "$@")" -gt 0 ] && [ "$(date +%s)" -le "$end" ]; do sleep 0.1; done',
      'left=$(up "$@")',
      'if [ "$left" -gt 0 ]; then for u in "$@"; do $sc kill -s KILL "$u" 2>/dev/null; done; fi',
      'j=0; while [ "$(up "$@")" -gt 0 ] && [ "$j" -lt 100 ]; do sleep 0.1; j=$((j + 1)); done',
      'for u in "$@"; do rm -f "$dir/$u"; done',
      '$sc daemon-reload',
      'for u in "$@"; do $sc reset-failed "$u" 2>/dev/null; done',
      'if [ "$had" -eq 0 ]; then echo not-running; elif [ "$left" -gt 0 ]; then echo "killed $left"; else echo "stopped $had"; fi',
    ].join('\n'),
    String(graceSeconds),
    UNIT_MARK,
    ...units,
  );

/**
 * The units skiff wrote for an app and env (`skiff-<app>-<env>-*.service` in the unit folder), one
 * a line: `NAME ACTIVE ENABLED`.
 */
export const envUnits = (prefix: string): Cmd =>
  reads(script(
    [
      PRELUDE,
      'for f in "$dir/$1"*.service; do',
      '  [ -f "$f" ] || continue',
      '  u=${f##*/}; head -n 1 "$f" | grep -qF "$2" || continue',
      '  a=$($sc is-active "$u" 2>/dev/null); e=$($sc is-enabled "$u" 2>/dev/null)',
      '  echo "$u ${a:-unknown} ${e:-unknown}"',
      'done',
      'exit 0',
    ].join('\n'),
    prefix,
    UNIT_MARK,
  ));

/** Removes the unit files of slots that no longer exist (the config names other ports or slots). */
export const removeUnit = (unit: string): Cmd =>
  script([PRELUDE, '$sc disable --quiet "$1" 2>/dev/null', '$sc stop "$1" 2>/dev/null', 'rm -f "$dir/$1"', '$sc daemon-reload', '$sc reset-failed "$1" 2>/dev/null; exit 0'].join('\n'), unit);

/** The last `lines` of a unit's journal, then new ones with `follow`. */
export const unitLog = (unit: string, lines: number, follow: boolean): Cmd =>
  script(
    [
      PRELUDE,
      // -o cat: the app's own lines, as the pidfile supervisor's log file has them.
      `exec $jc -u "$1" -n "$2" -o cat --no-pager${follow ? ' -f' : ''}`,
    ].join('\n'),
    unit,
    String(lines),
  );

/**
 * When the host last booted, in seconds since the epoch to the millisecond: when its PID 1 started
 * (now, less the uptime, plus PID 1's start in clock ticks after the kernel's boot), which is also
 * right in a container. The kernel's own btime is whole seconds, too coarse to tell a release started
 * in the second of the boot from one started just before it; it is the answer only where `date`
 * has no fractions. Prints nothing when it cannot be told.
 */
export const bootedAt = (): Cmd =>
  reads(script(
    [
      'ticks=$(getconf CLK_TCK 2>/dev/null || echo 100)',
      // Field 22 of stat is the start time; the command name (field 2) may hold spaces, so count after its ")".
      'start=$(sed \'s/.*) //\' /proc/1/stat 2>/dev/null | cut -d" " -f20)',
      '[ -n "$start" ] || exit 0',
      'now=$(date +%s.%N 2>/dev/null)',
      'case $now in *.[0-9]*) ;; *) now=; esac',
      'if [ -n "$now" ]; then',
      '  LC_ALL=C awk -v now="$now" -v s="$start" -v t="$ticks" \'{ printf "%.3f\\n", now - $1 + s / t }\' /proc/uptime 2>/dev/null',
      'else',
      '  btime=$(awk \'$1 == "btime" { print $2 }\' /proc/stat 2>/dev/null)',
      '  [ -n "$btime" ] && echo $(( btime + start / ticks ))',
      'fi',
      'exit 0',
    ].join('\n'),
  ));
