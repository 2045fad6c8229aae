/**
 * Builders for the deploy lock: the folder `.skiff/lock` with holder.json inside. Every change to it
 * (take, break, heartbeat, release) runs under `flock` on `.skiff/lock.mutex` for the few
 * milliseconds it lasts, so a contender never sees a lock half taken and a break can check that the
 * lock is still the very one judged stale. The kernel drops a flock when its process dies: a run
 * killed at any moment leaves no mutex behind. holder.json travels as an argument, not on stdin: a
 * local process killed mid-command cannot leave a truncated file.
 */
import { script, type Cmd } from '../core/cmd.ts';
import type { Layout } from '../core/paths.ts';

/** Exit status when another holder has the lock; stdout is `lockView`'s text. */
export const LOCK_HELD = 75;
/** Exit status when the host has no `flock` (util-linux). */
export const NO_FLOCK = 76;
/** Exit status of `refreshHolder` when holder.json no longer carries this run's token. */
export const LOCK_LOST = 77;

/** The file whose flock serializes changes to the lock (a file beside it: the lock folder comes and goes). */
export const mutexOf = (l: Layout): string => `${l.skiff}/lock.mutex`;

// "$M" is the mutex file. Waits up to 30 s: every holder of it is a short script.
const UNDER_MUTEX = [
  'command -v flock >/dev/null 2>&1 || exit 76',
  'exec 9>>"$M" && flock -w 30 9 || { echo "cannot flock $M" >&2; exit 1; }',
];

// What a contender is told about a held lock: a first line `lock <host now> <holder.json mtime|-> <cksum|missing>`
// (both times in the host's clock, so the heartbeat's age does not depend on any machine's clock),
// then holder.json as it is (possibly empty or garbled).
const SHOW_HELD = [
  'show_held() {',
  '  sum=$( { cksum <"$H"; } 2>/dev/null ) || sum=missing',
  '  printf "lock %s %s %s\\n" "$(date +%s)" "$(stat -c %Y "$H" 2>/dev/null || echo -)" "$(echo $sum | tr " " _)"',
  '  cat "$H" 2>/dev/null',
  '  exit 75',
  '}',
];

// Creates the lock with holder.json ($NEW) in place; the folder is removed again if the file cannot be written.
const TAKE = ['mkdir "$L" || exit 1', 'if ! { printf "%s\\n" "$NEW" >"$H.tmp" && mv "$H.tmp" "$H"; }; then rm -rf "$L"; exit 1; fi'];

const vars = 'S=$1 L=$2 H=$3 M=$4';

/** Takes the lock with `holderJson` as holder.json; if held, prints the lock's view and exits LOCK_HELD. */
export const acquireLock = (l: Layout, holderJson: string): Cmd =>
  script(
    [vars, 'NEW=$5', 'mkdir -p "$S" && chmod 700 "$S" || exit 1', ...UNDER_MUTEX, ...SHOW_HELD, '[ -e "$L" ] && show_held', ...TAKE].join('\n'),
    l.skiff,
    l.lock,
    l.holder,
    mutexOf(l),
    holderJson,
  );

/**
 * Breaks the lock and takes it, in one step under the mutex, but only if its holder.json is still
 * the one judged (`seen`: its cksum field from the lock's view, `missing` for none). Otherwise the
 * lock changed hands meanwhile: it is left alone, and the new view is printed (exit LOCK_HELD).
 * The broken folder is renamed aside under this run's token before it is deleted.
 */
export const breakAndTake = (l: Layout, seen: string, token: string, holderJson: string): Cmd =>
  script(
    [
      vars,
      'SEEN=$5 ME=$6 NEW=$7',
      ...UNDER_MUTEX,
      ...SHOW_HELD,
      'if [ -e "$L" ]; then',
      '  now=$( { cksum <"$H"; } 2>/dev/null ) || now=missing',
      '  [ "$(echo $now | tr " " _)" = "$SEEN" ] || show_held',
      '  mv "$L" "$S/lock.broken.$ME" || exit 1',
      '  rm -rf "$S/lock.broken.$ME"',
      'fi',
      ...TAKE,
    ].join('\n'),
    l.skiff,
    l.lock,
    l.holder,
    mutexOf(l),
    seen,
    token,
    holderJson,
  );

const tokenField = (token: string) => `"token": ${JSON.stringify(token)}`;

/** Releases the lock, but only if holder.json still carries this run's token. */
export const releaseLock = (l: Layout, token: string): Cmd =>
  script(
    [
      vars,
      'T=$5',
      ...UNDER_MUTEX,
      'if grep -qF "$T" "$H" 2>/dev/null; then mv "$L" "$S/lock.released.$$" && rm -rf "$S/lock.released.$$"; fi',
      'exit 0',
    ].join('\n'),
    l.skiff,
    l.lock,
    l.holder,
    mutexOf(l),
    tokenField(token),
  );

/** Rewrites holder.json (a new heartbeat), only while it still carries this run's token (else LOCK_LOST). */
export const refreshHolder = (l: Layout, token: string, holderJson: string): Cmd =>
  script(
    [vars, 'T=$5 NEW=$6', ...UNDER_MUTEX, 'grep -qF "$T" "$H" 2>/dev/null || exit 77', 'printf "%s\\n" "$NEW" >"$H.tmp" && mv "$H.tmp" "$H"'].join('\n'),
    l.skiff,
    l.lock,
    l.holder,
    mutexOf(l),
    tokenField(token),
    holderJson,
  );

/**
 * Removes what runs killed while they held the lock left half written: `releases/*.partial` and
 * `backups/*.partial`. Run only while holding the lock (no live run writes there then). Each is
 * renamed aside first, so a process of the dead run still writing on the host writes into the
 * folder being removed, never into a new run's; what cannot be removed yet is tried again next time.
 */
export const removeDeadPartials = (l: Layout, token: string): Cmd =>
  script(
    [
      'T="$3/partials.$4"',
      'mkdir -p "$T" || exit 1',
      'n=0',
      'for d in "$1"/*.partial "$2"/*.partial; do',
      '  [ -e "$d" ] || continue',
      '  n=$((n + 1)); mv "$d" "$T/$n" || exit 1',
      'done',
      'rm -rf "$3"/partials.* 2>/dev/null',
      'echo "$n"',
      'exit 0',
    ].join('\n'),
    l.releases,
    `${l.root}/backups`,
    l.skiff,
    token,
  );
