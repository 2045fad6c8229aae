/**
 * Builders for `exec`: a command run in the live release with the environment the app has. The
 * words after `--` cross as data: one word is a shell command line (`sh -c WORD`), several are a
 * command and its arguments, each quoted as it was given. The app's values are read from the
 * release's env file on the host, never passed as arguments.
 */
import { cmd, quote, script, type Cmd } from '../core/cmd.ts';
import type { Layout } from '../core/paths.ts';

/**
 * The words a command line stands for when the shell would do nothing to it but split it: plain
 * words (letters, digits and `_ . / : = , @ % + -`), with parts in single quotes (anything but `'`)
 * or double quotes (anything but `"`, `$`, `` ` `` and `\`). Undefined for anything the shell would
 * act on (`$`, `;`, `|`, `&`, redirections, globs, `~`, `#`, backslashes, a leading `NAME=`), which
 * needs `sh -c`. So an image without a shell can run `node worker.js --queue "a b"`.
 */
/** POSIX shell builtins and reserved words that a command line may start with: only a shell runs them. */
const SHELL_WORDS = new Set(
  ['.', ':', 'break', 'case', 'cd', 'command', 'continue', 'do', 'done', 'elif', 'else', 'esac', 'eval', 'exec', 'exit', 'export', 'fi', 'for', 'if', 'read', 'readonly', 'return', 'set', 'shift', 'source', 'then', 'time', 'times', 'trap', 'ulimit', 'umask', 'unset', 'until', 'wait', 'while', '!', '{', '}'],
);

export const wordsWithoutShell = (line: string): string[] | undefined => {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ' || line[i] === '\t') i++;
    if (i >= line.length) break;
    const start = i;
    let word = '';
    while (i < line.length && line[i] !== ' ' && line[i] !== '\t') {
      const c = line.charAt(i);
      if (c === "'" || c === '"') {
        const end = line.indexOf(c, i + 1);
        if (end === -1) return undefined;
        const part = line.slice(i + 1, end);
        if (c === '"' && /[$`\\]/.test(part)) return undefined;
        word += part;
        i = end + 1;
      } else if (/[A-Za-z0-9_./:=,@%+-]/.test(c)) {
        word += c;
        i++;
      } else {
        return undefined;
      }
    }
    // `NAME=value cmd` is an assignment to the shell, and `cd x` a builtin of it: not a program's name.
    if (words.length === 0 && (/^[A-Za-z_][A-Za-z0-9_]*=/.test(line.slice(start, i)) || (SHELL_WORDS.has(word) && word !== 'exec'))) return undefined;
    words.push(word);
  }
  // `exec cmd ...` is the shell replacing itself with cmd: with no shell, cmd runs as it would.
  if (words[0] === 'exec') return words.length > 1 && !words[1]?.startsWith('-') ? words.slice(1) : undefined;
  return words.length > 0 ? words : undefined;
};

/** What the words after `--` mean: a line for the shell, or a command and its arguments. */
export type ExecWords = { readonly kind: 'shell'; readonly line: string } | { readonly kind: 'argv'; readonly words: readonly string[] };

/**
 * One word is run by the shell (`-- 'alembic upgrade head && echo done'`), several are a command
 * and its arguments, word by word (`-- ls -la 'my file'`). undefined when there is none.
 */
export const execWords = (words: readonly string[]): ExecWords | undefined => {
  if (words.length === 0) return undefined;
  const [only] = words;
  return words.length === 1 && only !== undefined ? { kind: 'shell', line: only } : { kind: 'argv', words };
};

/** The argv that runs the words: `sh -c LINE` for a line, else the words themselves. */
export const argvOf = (w: ExecWords): readonly string[] => (w.kind === 'shell' ? ['sh', '-c', w.line] : w.words);

/** The words as a user would read them (for titles and the dry run): a line as it is, else each word quoted. */
export const shownWords = (w: ExecWords): string => (w.kind === 'shell' ? w.line : w.words.map(quote).join(' '));

/** Where and as what the live release of the process runtime runs. */
export interface LiveProcess {
  /** The release folder. */
  readonly releaseDir: string;
  /** The release's env file (single-quoted shell words, so sourcing it runs nothing). */
  readonly envFile: string;
  readonly port: number;
  readonly version: string;
  /** The environment's name (APP_ENV). */
  readonly env: string;
}

/** Exit status when the release folder is gone (a deploy pruned it meanwhile): the shell's "cannot run". */
export const NO_RELEASE_DIR = 126;

/**
 * Runs the words in a live release of the process runtime, as the supervisors start the app: in
 * the release folder, its env file sourced, then PORT, DATA_DIR, APP_VERSION and APP_ENV set after
 * it. SKIFF_SLOT is not set: the slot's process is found by it, and this is not that process.
 * `exec` replaces the shell, so the command's exit status and signals are its own.
 */
export const execInRelease = (l: Layout, live: LiveProcess, w: ExecWords): Cmd =>
  script(
    [
      `cd "$1" 2>/dev/null || { echo "skiff: the release folder $1 is gone (a deploy removed it): run the command again" >&2; exit ${NO_RELEASE_DIR}; }`,
      'if [ -f "$2" ]; then set -a; . "$2" || exit 1; set +a; fi',
      'export PORT="$3" DATA_DIR="$4" APP_VERSION="$5" APP_ENV="$6"',
      'shift 6',
      'exec "$@"',
    ].join('\n'),
    live.releaseDir,
    live.envFile,
    String(live.port),
    l.data,
    live.version,
    live.env,
    ...argvOf(w),
  );

/**
 * Runs the words in a slot's running container (`docker exec`), which has the app's environment
 * already: `-i` keeps its stdin open for input piped to exec, `-t` (with `tty`) gives it a
 * terminal, the one the SSH session's pty provides.
 */
export const execInContainer = (container: string, w: ExecWords, tty: boolean): Cmd => cmd('docker', 'exec', tty ? '-it' : '-i', container, ...argvOf(w));

/**
 * The SQLite console on a database file of the host (BACKUP_SQLITE, under shared/), refused when
 * the file is not there: sqlite3 would make an empty database of a mistyped path. Exit 2 then.
 * `args` go to sqlite3 after the file (`-readonly` before it is not offered: they follow it).
 */
export const sqliteConsole = (file: string, args: readonly string[]): Cmd =>
  script(
    [
      'if [ ! -f "$1" ]; then echo "skiff: no database at $1 (BACKUP_SQLITE): deploy, or check the path" >&2; exit 2; fi',
      'command -v sqlite3 >/dev/null 2>&1 || { echo "skiff: sqlite3 is not installed on this host: apt-get install sqlite3 (or run scripts/setup.ts)" >&2; exit 127; }',
      'exec sqlite3 "$@"',
    ].join('\n'),
    file,
    ...args,
  );

/**
 * psql with a connection: its PG* variables (no password) as `NAME=value` words, validated
 * against `pgVariables`, every other PG* variable of the host unset; the password, when there is
 * one, in the private pgpass file `passFile` (written before, 0600), removed when psql exits. The
 * shell catches SIGINT and SIGQUIT with a no-op (a caught signal is default again in psql), so a
 * Ctrl-C that reaches the whole terminal's group leaves it waiting to remove the file.
 */
export const psqlConsole = (pgVariables: readonly string[], env: Readonly<Record<string, string>>, passFile: string | undefined, connectTimeout: number, args: readonly string[]): Cmd =>
  script(
    [
      `unset PGPASSWORD PGPASSFILE PGSERVICEFILE ${pgVariables.join(' ')}`,
      'pass=$1 n=$2; shift 2',
      '[ -n "$pass" ] && export PGPASSFILE="$pass"',
      `export PGCONNECT_TIMEOUT=${connectTimeout}`,
      'while [ "$n" -gt 0 ]; do',
      `  case $1 in ${pgVariables.map((v) => `${v}=*`).join('|')}) export "$1" ;; *) echo "skiff: not a connection variable: \${1%%=*}" >&2; exit 2 ;; esac`,
      '  shift; n=$((n - 1))',
      'done',
      'command -v psql >/dev/null 2>&1 || { [ -n "$pass" ] && rm -f "$pass"; echo "skiff: psql is not installed on this host: apt-get install postgresql-client" >&2; exit 127; }',
      'trap : INT QUIT',
      'psql "$@"; s=$?',
      '[ -n "$pass" ] && rm -f "$pass"',
      'exit "$s"',
    ].join('\n'),
    passFile ?? '',
    String(Object.keys(env).length),
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    ...args,
  );

/** Removes a pgpass file psqlConsole was given (after a session the connection cut short). */
export const removeFile = (file: string): Cmd => cmd('rm', '-f', '--', file);
