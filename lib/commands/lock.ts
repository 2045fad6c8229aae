/** Builders for the deploy lock: a folder made with one atomic mkdir, with holder.json inside. */
import { script, type Cmd } from '../core/cmd.ts';
import type { Layout } from '../core/paths.ts';

/** Exit status of `acquireLock` when another holder has the lock; it prints that holder.json. */
export const LOCK_HELD = 75;

/** Takes the lock and writes holder.json from stdin; if held, prints the holder and exits LOCK_HELD. */
export const acquireLock = (l: Layout): Cmd =>
  script(
    [
      'mkdir -p "$3" && chmod 700 "$3" || exit 1',
      'if ! mkdir "$1" 2>/dev/null; then cat "$2" 2>/dev/null || echo "{}"; exit 75; fi',
      'cat >"$2.tmp" && mv "$2.tmp" "$2"',
    ].join('\n'),
    l.lock,
    l.holder,
    l.skiff,
  );

/** Releases the lock, but only if holder.json still carries this run's token. */
export const releaseLock = (l: Layout, token: string): Cmd =>
  script('if grep -qF "$3" "$2" 2>/dev/null; then rm -rf "$1"; fi; exit 0', l.lock, l.holder, token);

/** Rewrites holder.json from stdin (a new heartbeat), only while it still carries this run's token. */
export const refreshHolder = (l: Layout, token: string): Cmd =>
  script('grep -qF "$2" "$1" 2>/dev/null || exit 0; cat >"$1.tmp" && mv "$1.tmp" "$1"', l.holder, token);

/** Breaks a lock whatever holds it (after the caller showed that its holder is gone). */
export const breakLock = (l: Layout): Cmd => script('rm -rf "$1"', l.lock);

