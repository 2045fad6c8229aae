/**
 * A fake Host for unit tests: records every command as `render()` shows it (secrets redacted) and
 * answers from a list of rules. The first rule that returns a result wins; a command no rule answers
 * is a test error, so an unexpected command never passes silently. Files live in a Map.
 */
import { render, type Cmd } from '../../lib/core/cmd.ts';
import { RemoteCommandError } from '../../lib/core/errors.ts';
import type { ExecOptions, ExecResult, Host, PutOptions } from '../../lib/host/host.ts';

/** Answers a rendered command, or returns undefined to let the next rule try. */
export type Rule = (rendered: string) => ExecResult | undefined;

export interface RecordedExec {
  readonly command: string;
  readonly options: ExecOptions;
}

export interface StoredFile {
  readonly content: Buffer;
  readonly mode: number;
}

/** A successful result with this stdout. */
export const ok = (stdout = ''): ExecResult => ({ code: 0, stdout, stderr: '' });

/** A failed result. */
export const failed = (code: number, stderr = ''): ExecResult => ({ code, stdout: '', stderr });

const matches = (rendered: string, pattern: string | RegExp): boolean =>
  typeof pattern === 'string' ? rendered.includes(pattern) : pattern.test(rendered);

/** A rule for commands containing `pattern` (a substring or a RegExp): always the same result. */
export const when =
  (pattern: string | RegExp, result: ExecResult): Rule =>
  (rendered) =>
    matches(rendered, pattern) ? result : undefined;

/**
 * A rule for commands containing `pattern` that answers with the results in order, then repeats the
 * last one for ever.
 */
export const inTurn = (pattern: string | RegExp, results: readonly ExecResult[]): Rule => {
  let next = 0;
  return (rendered) => {
    if (!matches(rendered, pattern)) return undefined;
    const result = results[Math.min(next, results.length - 1)];
    next++;
    return result;
  };
};

/** Answers every command with success and no output. Put it last as a fallback. */
export const anything: Rule = () => ok();

/**
 * The needles that occur in `events` one after another, each in a later event than the one before;
 * it equals `needles` when every one is there in that order, else it stops before the first missing.
 */
export const inOrder = (events: readonly string[], needles: readonly string[]): string[] => {
  const found: string[] = [];
  let from = 0;
  for (const needle of needles) {
    const at = events.findIndex((e, i) => i >= from && e.includes(needle));
    if (at === -1) break;
    found.push(needle);
    from = at + 1;
  }
  return found;
};

export class RecordingHost implements Host {
  readonly name: string;
  readonly rules: Rule[];
  readonly execs: RecordedExec[] = [];
  readonly files = new Map<string, StoredFile>();
  /** Every file written, in order (a path written twice is here twice). */
  readonly puts: (StoredFile & { readonly path: string })[] = [];
  /** What happened, in order: `exec <command>`, `put <path>`, `get <path>`, and what a test's fakes `note()`. */
  readonly events: string[] = [];
  closed = false;

  constructor(rules: readonly Rule[] = [], name = 'fake') {
    this.rules = [...rules];
    this.name = name;
  }

  /** The rendered commands, in order. */
  get commands(): string[] {
    return this.execs.map((e) => e.command);
  }

  /** Adds something a fake did (a proxy switch) to the events, between the host's own. */
  note(event: string): void {
    this.events.push(event);
  }

  async exec(command: Cmd, options: ExecOptions = {}): Promise<ExecResult> {
    const rendered = render(command);
    this.execs.push({ command: rendered, options });
    this.events.push(`exec ${rendered}`);
    let result: ExecResult | undefined;
    for (const rule of this.rules) {
      result = rule(rendered);
      if (result) break;
    }
    if (!result) throw new Error(`RecordingHost: no rule answers: ${rendered}`);
    // Like the real hosts: a non-zero exit throws unless check is false.
    if ((options.check ?? true) && result.code !== 0) {
      throw new RemoteCommandError(this.name, rendered, result.code, result.stderr);
    }
    return result;
  }

  async put(path: string, content: string | Buffer, options: PutOptions = {}): Promise<void> {
    const file = { content: Buffer.from(content), mode: options.mode ?? 0o644 };
    this.files.set(path, file);
    this.puts.push({ path, ...file });
    this.events.push(`put ${path}`);
  }

  async get(path: string): Promise<Buffer | undefined> {
    this.events.push(`get ${path}`);
    return this.files.get(path)?.content;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
