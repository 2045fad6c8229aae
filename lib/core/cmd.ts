/**
 * Commands as data. Builders in lib/commands return `Cmd` values; only `render()` turns them into
 * shell text, and only a Host executes them. Nothing here reads files, the environment or the clock.
 */

const REDACTED = '[REDACTED]';

/** A value that prints as [REDACTED] everywhere; `reveal()` is called only where a command is executed. */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
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
export type Cmd =
  | { readonly kind: 'argv'; readonly args: readonly Arg[] }
  | { readonly kind: 'join'; readonly op: '&&' | '||' | ';' | '|'; readonly parts: readonly Cmd[] }
  | { readonly kind: 'script'; readonly text: string; readonly args: readonly Arg[] };

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

/** Replaces every secret's value in free text (stderr, error messages) with [REDACTED]. */
export const redact = (text: string, secrets: readonly Secret[]): string =>
  [...secrets]
    .map((s) => s.reveal())
    .filter((v) => v.length >= 4) // shorter values would blank out ordinary words
    .sort((a, b) => b.length - a.length) // longest first: a secret containing another goes whole
    .reduce((t, v) => t.replaceAll(v, REDACTED), text);
