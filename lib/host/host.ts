/**
 * One Host interface for every place skiff runs commands: this machine (lib/host/local.ts) or a server
 * over SSH. Flows are written once against it and run unchanged on both.
 */
import type { Readable } from 'node:stream';
import { render, script, type Cmd } from '../core/cmd.ts';
import { SkiffError } from '../core/errors.ts';

/**
 * Deadlines of Host.exec in milliseconds. Nothing may hang forever while it holds the deploy lock,
 * so every command has one: `command` unless the step names another.
 */
export const DEADLINE = {
  /** Any command that names none: checks, starts, stops, proxy changes, state writes. */
  command: 5 * 60_000,
  /** Work that grows with the data: shipping a release, loading an image, a backup, a restore, a download. */
  transfer: 2 * 60 * 60_000,
  /** No deadline: only `logs --follow`, which runs until the user stops it. */
  none: Number.POSITIVE_INFINITY,
} as const;

/** The deadline of a stop that may take its whole grace (a drain, a worker's job) before the command's own counts. */
export const afterGrace = (graceSeconds: number): { readonly timeoutMs: number } => ({ timeoutMs: graceSeconds * 1000 + DEADLINE.command });

/** An answer of one line per name (`<name> ...`, as `unitsStatus` and `containersStatus` print), by its name. */
export const linesByName = (stdout: string): Map<string, string> => new Map(stdout.split('\n').filter(Boolean).map((line) => [line.split(' ')[0] ?? '', line] as const));

/** What a streamed output (onStdout, onStderr) keeps in the result: its last 64 KiB. */
export const STREAM_TAIL_BYTES = 64 * 1024;

export interface ExecOptions {
  /** Bytes for the command's standard input: how file contents and secrets travel (never argv). */
  readonly stdin?: string | Buffer | Readable;
  /** Throw RemoteCommandError on a non-zero exit (default true). */
  readonly check?: boolean;
  /**
   * Called with output as it arrives (logs --follow); the result then holds only the last
   * STREAM_TAIL_BYTES of stdout, so a stream that never ends keeps memory bounded. A promise
   * returned (not merely a value: callers may return anything) pauses the output until it settles:
   * back-pressure from a slower consumer (a download written to disk) reaches the command.
   */
  readonly onStdout?: (chunk: Buffer) => void | Promise<void>;
  /** Keep no stdout in the result (a download handed to onStdout can be larger than memory). */
  readonly discardStdout?: boolean;
  /** As onStdout, for stderr: the result holds its last STREAM_TAIL_BYTES. */
  readonly onStderr?: (chunk: Buffer) => void;
  /** Ends the command (SIGTERM locally, channel close over SSH). */
  readonly signal?: AbortSignal;
  /**
   * Milliseconds the command may run (default DEADLINE.command; DEADLINE.none for no limit). Past
   * it the command is stopped and exec rejects with DeadlineError.
   */
  readonly timeoutMs?: number;
}

export interface ExecResult {
  /** Exit status; null when ended by a signal. */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface PutOptions {
  /** File mode, applied before the file appears under its name (default 0o644). */
  readonly mode?: number;
}

/**
 * This machine's terminal, handed to a command that runs with one (`exec --tty`): its size and
 * type, the keys typed, where the command's output goes, and raw mode, which a host that relays
 * the keys (SSH) turns on while the command runs and off again however it ends.
 */
export interface Terminal {
  readonly rows: number;
  readonly cols: number;
  /** TERM, e.g. xterm-256color. */
  readonly term: string;
  /** The keys typed (raw mode: every byte as it comes, Ctrl-C included). */
  readonly input: Readable;
  readonly write: (chunk: Buffer) => void;
  /** Raw mode on or off. */
  readonly raw: (on: boolean) => void;
  /** Calls `listener` when the window's size changes; returns what stops that. */
  readonly onResize: (listener: (rows: number, cols: number) => void) => () => void;
}

export interface AttachOptions {
  /** Milliseconds the command may run (default DEADLINE.none: an interactive session lasts what the user wants). */
  readonly timeoutMs?: number;
  /** Ends the command (SIGTERM to this process). */
  readonly signal?: AbortSignal;
}

export interface Host {
  /** `local`, or `user@host:port`; used in messages. */
  readonly name: string;
  /** Bytes written to commands' standard input so far, where the host counts them (SSH: at the channel). */
  readonly bytesSent?: number;
  /** A dry run's host: what changes something is printed, not run, and reports say "would". */
  readonly dryRun?: true;
  /** Runs a command with the host's POSIX shell. */
  exec(command: Cmd, options?: ExecOptions): Promise<ExecResult>;
  /** Writes a file atomically: a temporary name beside it, then rename. Parent folders must exist. */
  put(path: string, content: string | Buffer, options?: PutOptions): Promise<void>;
  /** Reads a file; undefined when it does not exist. */
  get(path: string): Promise<Buffer | undefined>;
  /** Ends the connection; safe to call twice. */
  close(): Promise<void>;
  /**
   * Runs a command with a terminal (a pty over SSH, this terminal itself locally) until it exits;
   * resolves to its exit status, null when a signal ended it. Hosts that cannot (a dry run's) have none.
   */
  attach?(command: Cmd, terminal: Terminal, options?: AttachOptions): Promise<number | null>;
}

/** A command that ran past its deadline and was stopped. One line: the host, the command (shortened, redacted), the deadline. */
export class DeadlineError extends SkiffError {
  readonly host: string;
  readonly command: string;
  readonly timeoutMs: number;
  constructor(host: string, command: Cmd, timeoutMs: number) {
    super(
      `${host}: stopped a command still running after ${showMs(timeoutMs)}, its deadline: ${shortCommand(command)}; ` +
        'check what it waits for on the host (an app, the proxy, a database, the network), then run again',
    );
    this.host = host;
    this.command = render(command);
    this.timeoutMs = timeoutMs;
  }
}

const showMs = (ms: number): string => (ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(1)}s`);

const cut = (text: string, max: number): string => (text.length <= max ? text : `${text.slice(0, max - 1)}…`);

/**
 * A command as one short line for messages: secrets redacted, white space (the newlines of a
 * script) folded, a script's text cut to its start so that its arguments, which say what it
 * worked on, still show.
 */
export const shortCommand = (command: Cmd, max = 160): string => {
  const fold = (text: string) => text.replace(/\s+/g, ' ').trim();
  const shown = command.kind === 'script' ? script(cut(fold(command.text), 48), ...command.args) : command;
  return cut(fold(render(shown)), max);
};

/** Validates a deadline of ExecOptions; undefined means none. */
export const deadlineOf = (options: ExecOptions): number | undefined => {
  const ms = options.timeoutMs ?? DEADLINE.command;
  if (ms === Number.POSITIVE_INFINITY) return undefined;
  // setTimeout fires at once for values it cannot hold (above 2^31 - 1 ms, or not a number).
  if (!Number.isFinite(ms) || ms <= 0 || ms > 2 ** 31 - 1) throw new RangeError(`timeoutMs must be 1 to ${2 ** 31 - 1} ms or DEADLINE.none, not ${ms}`);
  return ms;
};

/**
 * The output of one stream of a command: all of it, or with `tailOnly` (the stream is also handed
 * to a callback) only its last `limit` bytes, starting at a whole UTF-8 character.
 */
export class OutputBuffer {
  readonly #tailOnly: boolean;
  readonly #limit: number;
  #chunks: Buffer[] = [];
  #size = 0;
  constructor(tailOnly: boolean, limit = STREAM_TAIL_BYTES) {
    this.#tailOnly = tailOnly;
    this.#limit = limit;
  }
  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    // Compacting at twice the limit copies each byte at most twice.
    if (this.#tailOnly && this.#size > 2 * this.#limit) {
      const tail = this.#tail();
      this.#chunks = [tail];
      this.#size = tail.length;
    }
  }
  toBuffer(): Buffer {
    return this.#tailOnly ? this.#tail() : Buffer.concat(this.#chunks);
  }
  #tail(): Buffer {
    const all = Buffer.concat(this.#chunks);
    if (all.length <= this.#limit) return all;
    let start = all.length - this.#limit;
    // Skip UTF-8 continuation bytes (10xxxxxx): a character cut in two would decode as U+FFFD.
    for (let i = 0; i < 3 && start < all.length && ((all[start] ?? 0) & 0xc0) === 0x80; i++) start++;
    return Buffer.from(all.subarray(start)); // a copy: the big buffer can go
  }
}
