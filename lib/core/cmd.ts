/**
 * Commands as data. Builders in lib/commands return `Cmd` values; only `render()` turns them into
 * shell text, and only a Host executes them. Nothing here reads files, the environment or the clock.
 * Every Secret made in this process is remembered, so `redactKnown` can scrub free text (a remote
 * command's stderr, an error message, a line of output) of every secret value the config holds.
 */

const REDACTED = '[REDACTED]';

/** Values shorter than this are not replaced in free text: they would blank out ordinary words. */
const MIN_REDACTED = 4;

/** A flag or a plain number: as a needle it would blank out ordinary output (`true` in JSON, a port). */
const ORDINARY = /^(true|false|yes|no|on|off|[+-]?\d+(\.\d+)?)$/i;

/**
 * Whether a value is replaced wherever it appears in free text: four characters or more, and
 * neither a flag (`true`, `off`, ...) nor a plain number. The value still prints as [REDACTED] as a
 * Secret; only the scrubbing of other text skips it.
 */
export const isRedactable = (value: string): boolean => value.length >= MIN_REDACTED && !ORDINARY.test(value.trim());

/** A scheme (perhaps mistyped, perhaps without its colon) and `//`: what reads as a URL. */
const URL_LIKE = /^[A-Za-z][A-Za-z0-9+.-]*:?\/\//;

/** Every secret value this process holds, and the passwords inside secret URLs. */
const known = new Set<string>();

/**
 * The passwords a value may carry, unfiltered: for each URL-like part (`scheme://user:password@host`,
 * also when the scheme is mistyped or the password holds `@` or spaces) the text between the
 * userinfo's first `:` and an `@` of the authority (which ends at the first `/`, `?` or `#`), and
 * the value of a `password=` query parameter. `https://user@host` and `https://host/@alice` carry none.
 */
const passwordCandidates = (value: string): string[] => {
  const parts: string[] = [];
  if (URL_LIKE.test(value)) {
    // After the scheme and its slashes (however mistyped), up to the path, query or fragment. A
    // password may hold an @ of its own, so the text up to each @ past the first : is a candidate.
    const authority = value.replace(/^[A-Za-z][A-Za-z0-9+.-]*:?\/*/, '').split(/[/?#]/, 1)[0] ?? '';
    const colon = authority.indexOf(':');
    for (let at = authority.indexOf('@'); at > 0; at = authority.indexOf('@', at + 1)) {
      if (colon >= 0 && colon < at) parts.push(authority.slice(colon + 1, at));
    }
  }
  for (const m of value.matchAll(/[?&]password=([^&#\s]+)/gi)) parts.push(m[1] ?? '');
  return parts.filter((p) => p.length > 0);
};

/** Whether a value is a URL with a password in it, or has a `password=` parameter (however short). */
export const carriesPassword = (value: string): boolean => passwordCandidates(value).length > 0;

/**
 * The passwords inside a value (see `passwordCandidates`), raw and percent-decoded, that are worth
 * replacing in free text (`isRedactable`): a tool's error may quote a password without its URL.
 */
export const secretParts = (value: string): string[] => {
  const parts = passwordCandidates(value);
  const decoded = parts.map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  return [...new Set([...parts, ...decoded])].filter(isRedactable);
};

/** A value that prints as [REDACTED] everywhere; `reveal()` is called only where a command is executed. */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
    if (isRedactable(value)) known.add(value);
    for (const part of secretParts(value)) known.add(part);
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return REDACTED;
  }
  toJSON(): string {
    return REDACTED;
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return REDACTED;
  }
}

/** An argument: a literal word, a secret word, or raw shell syntax that builders insert on purpose. */
export type Arg = string | Secret | Raw;

/** Shell syntax passed through unquoted (operators, redirections, `$var`). Only builders create it. */
export class Raw {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

/** Marks shell syntax that must not be quoted, such as `>` or `2>/dev/null`. */
export const raw = (text: string): Raw => new Raw(text);

/** One simple command (argv), or commands joined by a shell operator. */
export type Cmd = (
  | { readonly kind: 'argv'; readonly args: readonly Arg[] }
  | { readonly kind: 'join'; readonly op: '&&' | '||' | ';' | '|'; readonly parts: readonly Cmd[] }
  | { readonly kind: 'script'; readonly text: string; readonly args: readonly Arg[] }
) & {
  /** Changes nothing on the host (marked by `reads`): a dry run runs it for real. */
  readonly reads?: true;
};

/** Marks a command that only reads: a dry run runs it, so what it reports is the host's answer. */
export const reads = (command: Cmd): Cmd => ({ ...command, reads: true });

/** A simple command from its words. */
export const cmd = (...args: readonly Arg[]): Cmd => ({ kind: 'argv', args });

/** Runs each command only if the previous one succeeded. */
export const seq = (...parts: readonly (Cmd | readonly Arg[])[]): Cmd => join('&&', parts);

/** Runs the second command only if the first failed. */
export const or = (...parts: readonly (Cmd | readonly Arg[])[]): Cmd => join('||', parts);

/** Pipes the commands together. */
export const pipe = (...parts: readonly (Cmd | readonly Arg[])[]): Cmd => join('|', parts);

/**
 * A small POSIX sh script run as `sh -c SCRIPT sh ARG...`: its arguments arrive quoted as $1, $2...,
 * so a builder can write loops and conditions while every value still crosses as one quoted word.
 */
export const script = (text: string, ...args: readonly Arg[]): Cmd => ({ kind: 'script', text, args });

const join = (op: '&&' | '||' | ';' | '|', parts: readonly (Cmd | readonly Arg[])[]): Cmd => ({
  kind: 'join',
  op,
  parts: parts.map((p) => (isCmd(p) ? p : cmd(...p))),
});

const isCmd = (value: Cmd | readonly Arg[]): value is Cmd => !Array.isArray(value);

const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Quotes one word for a POSIX shell: left bare when safe, else in single quotes ('\'' for a quote). */
export const quote = (word: string): string =>
  SAFE_WORD.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;

type Mode = 'display' | 'exec';

const renderArg = (arg: Arg, mode: Mode): string => {
  if (arg instanceof Raw) return arg.text;
  if (arg instanceof Secret) return mode === 'exec' ? quote(arg.reveal()) : REDACTED;
  return quote(arg);
};

const renderIn = (c: Cmd, mode: Mode): string => {
  switch (c.kind) {
    case 'argv':
      return c.args.map((a) => renderArg(a, mode)).join(' ');
    case 'script':
      return ['sh', '-c', quote(c.text), 'sh', ...c.args.map((a) => renderArg(a, mode))].join(' ');
    case 'join':
      return c.parts
        .map((p) => (p.kind === 'join' && p.op !== c.op ? `{ ${renderIn(p, mode)}; }` : renderIn(p, mode)))
        .join(` ${c.op} `);
  }
};

/** Shell text for display and logs: secrets appear as [REDACTED]. */
export const render = (c: Cmd): string => renderIn(c, 'display');

/** Shell text for execution only: secrets revealed. Never log the result. */
export const renderForExec = (c: Cmd): string => renderIn(c, 'exec');

const redactValues = (text: string, values: Iterable<string>): string =>
  [...values]
    .filter(isRedactable) // short values, flags and numbers would blank out ordinary words
    .sort((a, b) => b.length - a.length) // longest first: a secret containing another goes whole
    .reduce((t, v) => (t.includes(v) ? t.replaceAll(v, REDACTED) : t), text);

/** Replaces every secret's value in free text (stderr, error messages) with [REDACTED]. */
export const redact = (text: string, secrets: readonly Secret[]): string => redactValues(text, secrets.map((s) => s.reveal()));

/**
 * Replaces every secret value this process knows (each Secret made so far, and the passwords in
 * secret URLs) with [REDACTED]: for any text on its way to the user, a log or a host's audit file.
 */
export const redactKnown = (text: string): string => (known.size === 0 ? text : redactValues(text, known));

/** Whether any secret value is known yet (once one is, it stays known). */
export const knowsSecrets = (): boolean => known.size > 0;

/** Whether a chunk of output holds a known secret value (checked before a Buffer is decoded). */
export const holdsKnownSecret = (chunk: string | Uint8Array): boolean => {
  if (known.size === 0) return false;
  const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  for (const v of known) if (text.includes(v)) return true;
  return false;
};

/**
 * How many characters at the end of `text` could be the start of a known secret value that the
 * next chunk of output completes: the length of its longest suffix that is a proper prefix of one.
 * 0 for most text, so a stream holds back only what it must.
 */
export const knownSecretStartAtEnd = (text: string): number => {
  let longest = 0;
  for (const v of known) {
    for (let k = Math.min(v.length - 1, text.length); k > longest; k--) {
      if (text.endsWith(v.slice(0, k))) {
        longest = k;
        break;
      }
    }
  }
  return longest;
};

/**
 * A secret value shown so its shape can be checked and nothing of it read: a URL with its password
 * replaced (`postgress://u:[REDACTED]@db/x`), else nothing at all.
 */
export const maskedForDisplay = (value: string): string | undefined => {
  if (!URL_LIKE.test(value)) return undefined;
  const parts = secretParts(value);
  if (parts.length === 0) return undefined;
  const masked = redactValues(value, parts);
  return masked === value ? undefined : masked;
};
