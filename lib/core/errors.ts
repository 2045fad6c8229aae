/**
 * Typed errors and the exit codes of the contract. Each message is one line that names the problem
 * and what to do; `runMain` in lib/cli/cli.ts is the one place that prints them and exits. Every
 * message is scrubbed of the secret values the config holds when the error is made, so a secret a
 * failing command printed reaches neither the output nor a host's history and audit lines.
 */
import { maskedForDisplay, redactKnown } from './cmd.ts';

/** 0 done; 1 failed but still serving a healthy version; 2 usage or configuration; 3 locked. */
export const EXIT = { ok: 0, failed: 1, usage: 2, locked: 3 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** Base class: an error the user can act on, with the exit code it maps to. */
export class SkiffError extends Error {
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode = EXIT.failed) {
    super(redactKnown(message));
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** Bad argv: unknown flag, missing argument. Nothing was touched. */
export class UsageError extends SkiffError {
  constructor(message: string) {
    super(message, EXIT.usage);
  }
}

/** One problem with one configuration key. */
export interface ConfigIssue {
  readonly key: string;
  readonly file: string;
  readonly value: string | undefined;
  readonly expected: string;
  readonly hint?: string;
  /** The value came from a secrets file: say that it is set, never what it is. */
  readonly secret?: boolean;
  /** Replaces "is <value>, expected <expected>" where the key's name itself is the problem. */
  readonly problem?: string;
}

const showValue = (value: string | undefined): string =>
  value === undefined ? 'missing' : value === '' ? 'empty' : JSON.stringify(value);

/** A secret value: a URL with its password masked, so a mistyped scheme can still be seen; else not shown. */
const showSecret = (value: string | undefined): string => {
  if (value === undefined || value === '') return showValue(value);
  const masked = maskedForDisplay(value);
  return masked === undefined ? 'a secret value (not shown)' : `${JSON.stringify(masked)} (a secret: its password not shown)`;
};

/** Invalid env files. Lists every bad key with its file, its value, what was expected and a hint. */
export class ConfigError extends SkiffError {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[] | string) {
    const list = typeof issues === 'string' ? [] : issues;
    super(
      typeof issues === 'string'
        ? issues
        : list
            .map((i) => `${i.file}: ${i.key} ${i.problem ?? `is ${i.secret ? showSecret(i.value) : showValue(i.value)}, expected ${i.expected}`}${i.hint ? ` (${i.hint})` : ''}`)
            .join('\n'),
      EXIT.usage,
    );
    this.issues = list;
  }
}

/** A command run on a host exited non-zero. The command is shown redacted. */
export class RemoteCommandError extends SkiffError {
  readonly host: string;
  readonly command: string;
  readonly status: number | null;
  readonly stderrTail: string;
  constructor(host: string, command: string, status: number | null, stderrTail: string) {
    const tail = stderrTail.trim().split('\n').slice(-3).join(' | ');
    super(`${host}: command failed (exit ${status ?? 'signal'}): ${command}${tail ? `: ${tail}` : ''}`);
    this.host = host;
    // Kept for callers that read them (a rethrow under another host name): scrubbed like the message.
    this.command = redactKnown(command);
    this.status = status;
    this.stderrTail = redactKnown(stderrTail);
  }
}

/** The new version did not answer its health check in time. */
export class HealthCheckError extends SkiffError {}

/** Another deploy holds the lock on a host. */
export class LockHeldError extends SkiffError {
  constructor(message: string) {
    super(message, EXIT.locked);
  }
}

/** Nothing has been deployed to this environment yet: exit 2, nothing was touched. */
export class NotDeployedError extends SkiffError {
  constructor(env: string, host: string) {
    super(`nothing deployed to ${env} on ${host} yet: run \`npx tsx scripts/deploy-vps.ts ${env}\` first`, EXIT.usage);
  }
}

/** An undo that failed on a host: which host, and why (the first line of its error). */
export interface UndoFailure {
  readonly host: string;
  readonly error: unknown;
}

/**
 * A step failed on one of several hosts. The message is that host's error (named by host when it
 * does not say), then the hosts where the step was undone, then each host whose undo failed with
 * its reason: such a host may still hold what the step did, so the message no longer claims that
 * every host serves what it served before. The exit code is the first error's.
 */
export class HostFailedError extends SkiffError {
  readonly undoFailures: readonly UndoFailure[];
  /**
   * `observed`: what each host was seen to serve after the undo, a line each. Without it, the
   * message can only say which undos ran.
   */
  constructor(host: string, cause: unknown, undone: readonly string[], undoFailures: readonly UndoFailure[] = [], observed?: readonly string[]) {
    const text = cause instanceof Error ? cause.message : String(cause);
    const named = text.includes(host) ? text : `${host}: ${text}`;
    const ok = undone.filter((h) => !undoFailures.some((f) => f.host === h));
    const claim = undoFailures.length === 0 && observed === undefined ? ': every host serves the release it served before' : '';
    const lines = [
      ...(ok.length > 0 ? [`undone on ${ok.join(', ')}${claim}`] : []),
      ...undoFailures.map((f) => `undo failed on ${f.host}: ${firstLine(f.error)}; it may not serve what it served before: check it with status`),
      ...(observed ?? []),
    ];
    super([named, ...lines].join('\n  '), cause instanceof SkiffError ? cause.exitCode : EXIT.failed);
    this.cause = cause;
    this.undoFailures = undoFailures;
  }
}

/** The first line of an error's message: what a task title, a history record or a joined message shows. */
export const firstLine = (error: unknown): string => redactKnown(error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error));
