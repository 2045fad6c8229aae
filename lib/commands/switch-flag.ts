/**
 * The flag file that picks the live slot behind Caddy and nginx (lib/proxy/switch-flag.ts): both
 * slots are in the proxy's config, and the proxy sends a request to the second slot when the flag
 * is there, else to the first. Creating it (by rename) or removing it is the switch: atomic, and no
 * reload, so no client connection is closed.
 */
import { reads, script, type Cmd } from '../core/cmd.ts';

/** The flag's name in its folder: there, the second slot (DEPLOY_PORTS' second port) is live. */
export const FLAG = 'live-second';

/**
 * Makes the flag say `second` (the flag there) or not: the folder made if missing (mode 755: the
 * proxy's user must search it, nobody else may write it), the flag made under a temporary name and
 * renamed, or removed; each is one atomic step for a proxy that stats it. Prints nothing.
 */
export const setFlag = (dir: string, second: boolean): Cmd =>
  second
    ? script(`mkdir -p "$1" && chmod 755 "$1" && : >"$1/.${FLAG}.tmp" && mv -f "$1/.${FLAG}.tmp" "$1/${FLAG}"`, dir)
    : script(`if [ -d "$1" ]; then rm -f "$1/${FLAG}"; else mkdir -p "$1" && chmod 755 "$1"; fi`, dir);

/** What the flag says now: `second`, `first` (the folder without the flag), or `none` (no folder yet). */
export const readFlag = (dir: string): Cmd =>
  reads(script(`if [ -e "$1/${FLAG}" ]; then echo second; elif [ -d "$1" ]; then echo first; else echo none; fi`, dir));

/**
 * Whether the flag folder can be used: prints `ok`, or `write <folder>` when this user can neither
 * write it nor create it, or `search <user> <folder> <mode>` for the first folder on its path that
 * one of `users` (the proxy's, e.g. www-data, nobody, caddy) cannot search, so cannot stat the flag.
 * Owner, group and other bits as the kernel reads them (ACLs aside); root searches everything.
 */
export const flagReach = (dir: string, users: readonly string[]): Cmd =>
  reads(script(
    [
      'dir=$1; shift',
      'p=$dir; while [ ! -e "$p" ]; do p=$(dirname "$p"); done',
      'if [ ! -d "$p" ] || [ ! -w "$p" ] || [ ! -x "$p" ]; then echo "write $p"; exit 0; fi',
      'for u in "$@"; do',
      '  uid=$(id -u "$u" 2>/dev/null) || continue; [ "$uid" = 0 ] && continue; gids=" $(id -G "$u") "',
      '  d=$p; while :; do',
      '    set -- $(stat -c "%u %g %a" "$d"); m=$((0$3))',
      '    if [ "$1" = "$uid" ]; then b=$((m >> 6 & 1)); else case "$gids" in *" $2 "*) b=$((m >> 3 & 1));; *) b=$((m & 1));; esac; fi',
      '    if [ "$b" != 1 ]; then echo "search $u $d $3"; exit 0; fi',
      '    [ "$d" = / ] && break; d=$(dirname "$d")',
      '  done',
      'done',
      'echo ok',
    ].join('\n'),
    dir,
    ...users,
  ));

/** The users the proxy's request handlers run as: nginx's workers (children of its master), or every running caddy. */
export const workerUsers = (proxy: 'caddy' | 'nginx', master = ''): Cmd =>
  reads(proxy === 'caddy'
    ? script('ps -C caddy -o user= 2>/dev/null | sort -u; exit 0')
    : script('if [ -n "$1" ]; then ps -o user= --ppid "$1" 2>/dev/null | sort -u; else ps -C nginx -o user= 2>/dev/null | sort -u; fi; exit 0', master));

