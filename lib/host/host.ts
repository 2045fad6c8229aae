/**
 * One Host interface for every place skiff runs commands: this machine (lib/host/local.ts) or a server
 * over SSH. Flows are written once against it and run unchanged on both.
 */
import type { Readable } from 'node:stream';
import type { Cmd } from '../core/cmd.ts';

export interface ExecOptions {
  /** Bytes for the command's standard input: how file contents and secrets travel (never argv). */
  readonly stdin?: string | Buffer | Readable;
  /** Throw RemoteCommandError on a non-zero exit (default true). */
  readonly check?: boolean;
  /** Called with output as it arrives (logs --follow); the result still holds all of it. */
  readonly onStdout?: (chunk: Buffer) => void;
  /** Keep no stdout in the result (a download handed to onStdout can be larger than memory). */
  readonly discardStdout?: boolean;
  readonly onStderr?: (chunk: Buffer) => void;
  /** Ends the command (SIGTERM locally, channel close over SSH). */
  readonly signal?: AbortSignal;
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

export interface Host {
  /** `local`, or `user@host:port`; used in messages. */
  readonly name: string;
  /** Bytes written to commands' standard input so far, where the host counts them (SSH: at the channel). */
  readonly bytesSent?: number;
  /** Runs a command with the host's POSIX shell. */
  exec(command: Cmd, options?: ExecOptions): Promise<ExecResult>;
  /** Writes a file atomically: a temporary name beside it, then rename. Parent folders must exist. */
  put(path: string, content: string | Buffer, options?: PutOptions): Promise<void>;
  /** Reads a file; undefined when it does not exist. */
  get(path: string): Promise<Buffer | undefined>;
  /** Ends the connection; safe to call twice. */
  close(): Promise<void>;
}
