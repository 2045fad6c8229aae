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

export class RecordingHost implements Host {
  readonly name: string;
  readonly rules: Rule[];
  readonly execs: RecordedExec[] = [];
  readonly files = new Map<string, StoredFile>();
  closed = false;

  constructor(rules: readonly Rule[] = [], name = 'fake') {
    this.rules = [...rules];
    this.name = name;
  }

  /** The rendered commands, in order. */
  get commands(): string[] {
    return this.execs.map((e) => e.command);
  }

  async exec(command: Cmd, options: ExecOptions = {}): Promise<ExecResult> {
    const rendered = render(command);
    this.execs.push({ command: rendered, options });
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
    this.files.set(path, { content: Buffer.from(content), mode: options.mode ?? 0o644 });
  }

  async get(path: string): Promise<Buffer | undefined> {
    return this.files.get(path)?.content;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
