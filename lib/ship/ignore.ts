/**
 * What never ships, and what a `.skiffignore` leaves out. The manifest walk (lib/ship/manifest.ts)
 * asks `leftOut` of every entry, and the release tar sends exactly the manifest's entries, so the
 * two cannot disagree. Pure: the caller reads `.skiffignore` and says where the env and backup
 * folders are.
 *
 * Three kinds of rule, asked in this order:
 * - never: `.git`, `.env` and `.env.*`, `*.secrets.env` at any depth, `data` at the top, and
 *   skiff's own env and backup folders when they lie inside the release. No `!` ships them.
 * - `.skiffignore` at the release root, in gitignore syntax: `#` comments, `!` negation, a leading
 *   or inner `/` anchors a pattern to the root, `*` and `?` stop at `/`, `**` crosses folders, a
 *   trailing `/` matches folders only; the last line that matches decides.
 * - defaults, as if written before the first line of `.skiffignore`: `.npmrc` and key files
 *   (`*.pem`, `*.key`, `id_rsa*`, `id_dsa*`, `id_ecdsa*`, `id_ed25519*`) at any depth. A `!` line
 *   ships one (`!certs/chain.pem`).
 */

/** One line of gitignore syntax, compiled. */
export interface IgnoreRule {
  /** The line as written (for the dry run's list). */
  readonly line: string;
  readonly negate: boolean;
  readonly dirOnly: boolean;
  readonly regex: RegExp;
}

/** Why an entry stays out of a release. */
export interface LeftOut {
  readonly path: string;
  readonly reason: string;
}

/** The rules of one release folder. */
export interface ShipRules {
  readonly never: readonly (IgnoreRule & { readonly reason: string })[];
  /** Defaults first, then the lines of `.skiffignore`: the last match decides. */
  readonly ignore: readonly (IgnoreRule & { readonly reason: string })[];
}

const escapeChar = (c: string): string => (/[\\^$.|?*+()[\]{}]/.test(c) ? `\\${c}` : c);

/** A glob of gitignore syntax as a regex body: `*` and `?` within a name, `**` across folders. */
const globToRegex = (glob: string): string => {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob.charAt(i);
    if (c === '\\' && i + 1 < glob.length) {
      out += escapeChar(glob.charAt(++i));
    } else if (c === '*') {
      if (glob[i + 1] === '*') {
        const atStart = i === 0 || glob[i - 1] === '/';
        const next = glob[i + 2];
        i++;
        if (atStart && next === '/') {
          // `**/` : no folder or any folders.
          out += '(?:.*/)?';
          i++;
        } else if (atStart && next === undefined) {
          // a trailing `/**`: everything inside.
          out += '.*';
        } else out += '[^/]*'; // `**` inside a name is a plain `*`
      } else out += '[^/]*';
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const close = glob.indexOf(']', i + 2);
      if (close < 0) out += '\\[';
      else {
        // A class as written, `!` for negation as in gitignore; a backslash inside stays literal.
        const body = glob.slice(i + 1, close).replaceAll('\\', '\\\\');
        out += body.startsWith('!') ? `[^/${body.slice(1)}]` : `[${body}]`;
        i = close;
      }
    } else out += escapeChar(c);
  }
  return out;
};

/** Compiles one line of gitignore syntax; undefined for a blank line or a comment. */
export const compileLine = (raw: string): IgnoreRule | undefined => {
  // Trailing spaces are dropped unless escaped with a backslash.
  let text = raw.replace(/(?<!\\)\s+$/, '').replace(/\\(\s)$/, '$1');
  if (text === '' || text.startsWith('#')) return undefined;
  const negate = text.startsWith('!');
  if (negate) text = text.slice(1);
  else if (text.startsWith('\\!') || text.startsWith('\\#')) text = text.slice(1);
  const dirOnly = text.endsWith('/');
  if (dirOnly) text = text.replace(/\/+$/, '');
  if (text === '') return undefined;
  // A slash at the start or in the middle anchors the pattern to the root; else it matches at any depth.
  const anchored = text.includes('/');
  const body = globToRegex(text.replace(/^\//, ''));
  return { line: raw.trim(), negate, dirOnly, regex: new RegExp(`^${anchored ? '' : '(?:.*/)?'}${body}$`, 's') };
};

/** The rules of a gitignore-syntax text, in order, blank lines and comments left out. */
export const parseIgnore = (text: string): IgnoreRule[] =>
  text.split(/\r?\n/).flatMap((line) => {
    const rule = compileLine(line);
    return rule ? [rule] : [];
  });

const matches = (rule: IgnoreRule, path: string, isDir: boolean): boolean => (!rule.dirOnly || isDir) && rule.regex.test(path);

const NEVER: readonly (readonly [string, string])[] = [
  ['.git', 'never ships: git data'],
  ['.env', 'never ships: an env file'],
  ['.env.*', 'never ships: an env file'],
  ['*.secrets.env', 'never ships: a secrets file'],
  ['/data', 'never ships: data lives in shared/data on the host'],
];

const DEFAULTS: readonly string[] = ['.npmrc', '*.pem', '*.key', 'id_rsa*', 'id_dsa*', 'id_ecdsa*', 'id_ed25519*'];

const compiled = (line: string, reason: string): IgnoreRule & { reason: string } => {
  const rule = compileLine(line);
  if (!rule) throw new Error(`not a pattern: ${line}`);
  return { ...rule, reason };
};

/** A path inside the release as an anchored pattern, its special characters escaped. */
const literal = (rel: string): string => `/${rel.replace(/[\\*?[\]!#]/g, (c) => `\\${c}`)}`;

/**
 * The rules of a release folder: the fixed ones, the defaults, and the text of its `.skiffignore`
 * (if any). `folders` are skiff's own folders inside the release, as paths relative to its root
 * (the env folder, the local backups), each with what it is.
 */
export const shipRules = (skiffignore: string | undefined, folders: readonly { readonly path: string; readonly what: string }[] = []): ShipRules => ({
  never: [...NEVER.map(([line, reason]) => compiled(line, reason)), ...folders.map((f) => compiled(literal(f.path), `never ships: ${f.what}`))],
  ignore: [
    ...DEFAULTS.map((line) => compiled(line, 'a key or credentials file; a ! line in .skiffignore ships it')),
    ...(skiffignore === undefined ? [] : parseIgnore(skiffignore).map((r) => ({ ...r, reason: `.skiffignore: ${r.line}` }))),
  ],
});

/** Why an entry stays out of the release, or undefined when it ships. `path` is relative, `/`-separated. */
export const leftOut = (rules: ShipRules, path: string, isDir: boolean): string | undefined => {
  const never = rules.never.find((r) => matches(r, path, isDir));
  if (never) return never.reason;
  const last = rules.ignore.findLast((r) => matches(r, path, isDir));
  return last && !last.negate ? last.reason : undefined;
};

/** The dry run's line: what stays out and why, grouped by reason; at most `max` paths named. */
export const describeLeftOut = (entries: readonly LeftOut[], max = 12): string => {
  if (entries.length === 0) return 'left out: nothing';
  const shown = entries.slice(0, max).map((e) => `${e.path} (${e.reason})`);
  const more = entries.length > max ? `; and ${entries.length - max} more` : '';
  return `left out ${entries.length}: ${shown.join(', ')}${more}`;
};
