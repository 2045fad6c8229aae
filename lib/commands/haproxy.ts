/**
 * Builders for the HAProxy driver: runtime API commands (as the API's own text, and sent through
 * socat on the host), the config check, the reload, what the running HAProxy loads, and what else
 * binds skiff's port. Pure: nothing here reads files, the environment or the clock.
 */
import { reads, script, type Cmd } from '../core/cmd.ts';
import { nginx } from './proxy.ts';

/** Seconds socat waits for HAProxy's runtime API: to connect and write (-t), and for silence (-T). */
export const API_SECONDS = 5;

/** A proxy or server name as HAProxy takes it: letters, digits, `-`, `_`, `.` and `:`. */
const NAME = /^[A-Za-z0-9_.:-]+$/;

const checkedName = (name: string): string => {
  // The runtime API splits its line on spaces and `;`: a name must never carry either.
  if (!NAME.test(name)) throw new RangeError(`not an HAProxy name: ${JSON.stringify(name)}`);
  return name;
};

/** The runtime API command that sets a server's administrative state. */
export const setServerState = (backend: string, server: string, state: 'ready' | 'drain' | 'maint'): string =>
  `set server ${checkedName(backend)}/${checkedName(server)} state ${state}`;

/** The runtime API command that lists a backend's servers with their states and ports. */
export const showServersState = (backend: string): string => `show servers state ${checkedName(backend)}`;

/**
 * socat's address of a unix socket. socat reads `:`, `,`, `!`, quotes, brackets and braces in an
 * address as its own syntax; a backslash before each makes it literal (socat 1.7.4, Debian 12).
 */
export const socatUnix = (path: string): string => `UNIX-CONNECT:${path.replace(/[\][\\,:!"'(){}]/g, '\\$&')}`;

/**
 * One line of runtime API commands, `;`-separated, sent to the socket: prints HAProxy's answer. The
 * API answers and closes the connection; socat gives up after API_SECONDS of silence. A line made only
 * of `show` commands changes nothing, and is marked as a read.
 */
export const haproxyApi = (socket: string, commands: readonly string[]): Cmd => {
  const command = script('printf "%s\\n" "$2" | socat -t "$3" -T "$3" stdio "$1"', socatUnix(socket), commands.join('; '), String(API_SECONDS));
  return commands.length > 0 && commands.every((c) => /^show /.test(c)) ? reads(command) : command;
};

/**
 * What the socket is: prints `no-socat` (the host lacks socat), `missing` (nothing there),
 * `not-a-socket`, `not-writable` (by this user), or `ok`.
 */
export const socketState = (socket: string): Cmd =>
  reads(script(
    [
      'command -v socat >/dev/null 2>&1 || { echo no-socat; exit 0; }',
      'if [ ! -e "$1" ]; then echo missing',
      'elif [ ! -S "$1" ]; then echo not-a-socket',
      'elif [ ! -w "$1" ]; then echo not-writable',
      'else echo ok; fi',
    ].join('\n'),
    socket,
  ));

/**
 * What the running HAProxy loads: the pid of the process behind the socket (`show info`), its working
 * folder when this user may read it, and its command line, one word a line (`pid N`, `cwd DIR`,
 * `arg WORD`). Nothing when the socket does not answer.
 */
export const haproxyProcess = (socket: string): Cmd =>
  reads(script(
    [
      `pid=$(printf 'show info\\n' | socat -t "$2" -T "$2" stdio "$1" 2>/dev/null | sed -n 's/^Pid: *//p')`,
      'case $pid in "" | *[!0-9]*) exit 0 ;; esac',
      'echo "pid $pid"',
      'cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) && echo "cwd $cwd"',
      `[ -r "/proc/$pid/cmdline" ] && tr '\\0' '\\n' < "/proc/$pid/cmdline" | sed 's/^/arg /'`,
      'exit 0',
    ].join('\n'),
    socatUnix(socket),
    String(API_SECONDS),
  ));

/**
 * A command line of the user's (DEPLOY_HAPROXY_CMD, DEPLOY_HAPROXY_RELOAD) with more arguments:
 * split into words, never globbed or evaluated, exactly as DEPLOY_NGINX_CMD is (lib/commands/proxy.ts).
 */
export const userCommand = (command: string, ...args: string[]): Cmd => nginx(command, ...args);

/** `haproxy -c` of the files the running HAProxy loads (`-C` as it was given, when it was). */
export const haproxyCheck = (command: string, files: readonly string[], chdir?: string): Cmd =>
  userCommand(command, '-c', ...(chdir === undefined ? [] : ['-C', chdir]), ...files.flatMap((f) => ['-f', f]));

/**
 * skiff's other HAProxy files in `confDir` (not `own`) with a `bind` on `port`, one a line: two
 * frontends on one port would each get a share of its connections, at random.
 */
export const filesBindingPort = (confDir: string, own: string, port: number): Cmd =>
  reads(script(
    [
      'for f in "$1"/skiff-*.cfg; do',
      '  [ -f "$f" ] && [ "$f" != "$2" ] || continue',
      '  grep -Eq "^[[:space:]]*bind [^[:space:]]*:$3([[:space:]]|\\$)" "$f" && echo "$f"',
      'done',
      'exit 0',
    ].join('\n'),
    confDir,
    own,
    String(port),
  ));

/** Links `link` to `target` (the certificate and key HAProxy loads by their names beside each other). */
export const linkFile = (target: string, link: string): Cmd => script('ln -sfn "$1" "$2"', target, link);

/** Whether a folder exists and this user may write in it: prints `ok`, `missing` or `not-writable`. */
export const folderState = (dir: string): Cmd =>
  reads(script('if [ ! -d "$1" ]; then echo missing; elif [ ! -w "$1" ]; then echo not-writable; else echo ok; fi', dir));

/** Where a link points (nothing when it is not a link): the certificate a frontend's folder holds for a host. */
export const readLink = (path: string): Cmd => reads(script('readlink "$1" || true', path));

/** Makes a folder (and its parents) when it is missing: a frontend's certificate folder. */
export const makeFolder = (dir: string): Cmd => script('mkdir -p "$1"', dir);

/** Removes files, when they are there. */
export const removeFiles = (paths: readonly string[]): Cmd => script('rm -f "$@"', ...paths);
