/**
 * The local Host, and the only module that starts local processes: commands for `DEPLOY_HOSTS=local`,
 * the build, and git. Processes get a small fixed environment, as an SSH login would, so nothing of
 * the caller's shell (npm_*, NODE_OPTIONS, secrets) leaks into the app.
 *
 * Every process starts through zx, imported on first use so that `--help` and `--list` never load it
 * (`import('zx')` alone is 65-90 ms here). zx 8's `$` always hands a command string to a shell
 * (`bash -c "set -euo pipefail;..."`): bash would add PWD, SHLVL and _ to the fixed environment, a
 * missing program would become bash's own exit 127, and an abort would TERM the shell, not the
 * program. So each argv goes to zx's `spawn` option (its hook, child_process.spawn by default) as a
 * file and its arguments with `shell: false`; the string zx builds from the quoted argv only names
 * the process and is never run. zx's output store is not used either: it keeps all of stdout (a
 * download handed to onStdout can be larger than memory, a docker save stream larger still) and
 * decodes each chunk alone (a UTF-8 character split between chunks would become two U+FFFD), so
 * output is collected here, as bytes. Every zx option that a `ZX_*` variable of the caller could set
 * is fixed in `zxOptions`.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import type { Options as ZxOptions, ProcessOutput, ProcessPromise } from 'zx';
import { cmd, quote, renderForExec, render, type Cmd } from '../core/cmd.ts';
import { RemoteCommandError } from '../core/errors.ts';
import { DEADLINE, DeadlineError, OutputBuffer, deadlineOf, type AttachOptions, type ExecOptions, type ExecResult, type Host, type PutOptions, type Terminal } from './host.ts';

// DOCKER_HOST: the daemon this machine's docker commands talk to (rootless Docker, a remote engine).
const PASSED_ENV = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'SHELL', 'DOCKER_HOST'];

/** The environment of processes skiff starts: login-like, nothing else. */
export const baseEnv = (from: NodeJS.ProcessEnv = process.env): Record<string, string> =>
  Object.fromEntries(PASSED_ENV.flatMap((k) => (from[k] === undefined ? [] : [[k, from[k]]])));

interface SpawnOptions extends ExecOptions {
  readonly cwd?: string;
  readonly env?: Record<string, string>;
  /** Name for error messages. */
  readonly label: string;
  /**
   * The command as messages show it (secrets redacted); default argv. With it the process also gets
   * a process group of its own, which an abort or the deadline ends whole: what a host command
   * started (a curl under a script) goes with it, and the terminal's Ctrl-C reaches only skiff,
   * which stops at a safe point, as it does over SSH.
   */
  readonly shown?: Cmd;
}

type Zx = typeof import('zx');
let zx: Promise<Zx> | undefined;
const loadZx = (): Promise<Zx> => (zx ??= import('zx'));

type Store = NonNullable<ZxOptions['store']>;
/** A zx output store that keeps nothing (see the module comment). */
const keepNothing = (): Store => {
  const none = () => Object.assign([] as (string | Buffer)[], { push: () => 0 });
  return { stdout: none(), stderr: none(), stdall: none() };
};

interface Start {
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  readonly signal?: AbortSignal | undefined;
  readonly stdio?: 'pipe' | 'inherit';
  /** A process group of its own (setsid), ended by killGroup. */
  readonly group?: boolean;
}

/**
 * Starts argv through zx with no shell. The ProcessPromise comes wrapped, since an async function
 * would wait for a thenable it returns; it resolves to zx's ProcessOutput and never rejects.
 */
const start = async ({ argv, cwd, env, signal, stdio = 'pipe', group = false }: Start): Promise<{ readonly running: ProcessPromise }> => {
  const { $ } = await loadZx();
  const [file = '', ...args] = argv;
  const spawn = $.spawn;
  const noShell = ((_cmd: string, _args: readonly string[], opts: object) =>
    // The abort signal goes to spawn itself, not to zx: spawn kills the program with SIGTERM and lets
    // its last output through, where zx would also cut its stdout and stderr at the exit. A group's
    // abort is run's own: it signals the whole group.
    spawn(file, args, { ...opts, shell: false, killSignal: 'SIGTERM', detached: group, ...(signal && !group ? { signal } : {}) })) as ZxOptions['spawn'];
  const zxOptions: Partial<ZxOptions> = {
    cwd, // zx would otherwise use the folder it was imported in
    env,
    stdio,
    spawn: noShell,
    store: keepNothing(),
    quote, // skiff's POSIX quoting for the name; zx sets its own only where bash is installed
    prefix: '',
    postfix: '',
    nothrow: true,
    quiet: true,
    verbose: false,
    detached: false,
    preferLocal: false,
    timeout: 0,
  };
  return { running: $(zxOptions)`${argv}` };
};

// Time a process group has after SIGTERM before SIGKILL, when the deadline has passed.
const KILL_AFTER_MS = 2000;

/** Groups of processes that run now; skiff's exit ends them (a second Ctrl-C exits at once). */
const groups = new Set<number>();
let exitHook = false;
const watchGroup = (pid: number): void => {
  groups.add(pid);
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const g of groups) killGroup(g, 'SIGTERM');
  });
};

const killGroup = (pid: number, sig: NodeJS.Signals): void => {
  try {
    process.kill(-pid, sig);
  } catch {
    // ESRCH: the whole group has ended
  }
};

/** The process zx started (its type from zx: only zx's module may name child_process). */
type Child = NonNullable<ProcessPromise['child']>;

/** SIGTERM to the group, up to KILL_AFTER_MS for its leader to exit, then SIGKILL to what is left. */
const stopGroup = async (child: Child): Promise<void> => {
  const pid = child.pid;
  if (pid === undefined) return;
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  killGroup(pid, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, KILL_AFTER_MS)))]);
  clearTimeout(timer);
  killGroup(pid, 'SIGKILL');
  // A process that left the group (setsid) may still hold the pipes: stop reading them.
  child.stdout?.destroy();
  child.stderr?.destroy();
};

/**
 * Runs argv (no shell) and collects its output. `timeoutMs` here has no default (a build takes what
 * it takes); past it the process group is stopped and run rejects with DeadlineError.
 */
export const run = async (argv: readonly string[], options: SpawnOptions): Promise<ExecResult> => {
  const [file] = argv;
  if (file === undefined) throw new Error('run: empty argv');
  const limit = options.timeoutMs === undefined ? undefined : deadlineOf(options);
  const group = options.shown !== undefined || limit !== undefined;
  const { running: p } = await start({ argv, cwd: options.cwd ?? process.cwd(), env: options.env ?? baseEnv(), signal: options.signal, group });
  const out = new OutputBuffer(options.onStdout !== undefined);
  const err = new OutputBuffer(options.onStderr !== undefined);
  const child = p.child;
  child?.stdout?.on('data', (b: Buffer) => {
    if (!options.discardStdout) out.push(b);
    const later = options.onStdout?.(b);
    // A paused pipe fills, and the command blocks on its next write: back-pressure from the consumer.
    if (later instanceof Promise) {
      child.stdout?.pause();
      later.then(
        () => child.stdout?.resume(),
        () => child.stdout?.resume(),
      );
    }
  });
  child?.stderr?.on('data', (b: Buffer) => {
    err.push(b);
    options.onStderr?.(b);
  });
  if (child?.stdin) {
    child.stdin.on('error', () => {}); // a command that exits before reading all stdin is judged by its status
    feed(child.stdin, options.stdin);
  }
  const pid = group ? child?.pid : undefined;
  if (pid !== undefined) watchGroup(pid);
  const abort = () => child && void stopGroup(child);
  if (pid !== undefined) {
    options.signal?.addEventListener('abort', abort, { once: true });
    if (options.signal?.aborted) abort();
  }
  // Once the deadline has passed, the end of the process is that stop, whatever it exits with.
  let stopping: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    if (limit === undefined || !child) return;
    timer = setTimeout(() => {
      // Nothing reads the rest of a stream fed to the command now: let its source go.
      const input = options.stdin;
      if (input !== undefined && typeof input !== 'string' && !Buffer.isBuffer(input)) input.destroy();
      stopping = stopGroup(child);
      void stopping.then(resolve);
    }, limit);
  });
  let o: ProcessOutput | void;
  try {
    o = await Promise.race([p, late]);
    if (stopping) await stopping;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', abort);
    if (pid !== undefined) groups.delete(pid);
  }
  if (stopping || !o) throw new DeadlineError(options.label, options.shown ?? cmd(...argv), limit ?? 0);
  const shown = options.shown ? render(options.shown) : argv.join(' ');
  const e = o.cause as NodeJS.ErrnoException | null;
  // An abort's AbortError is no failure: the status (or the signal) reports the end.
  if (e && e.name !== 'AbortError') {
    throw e.code === 'ENOENT' ? new RemoteCommandError(options.label, shown, 127, `${file}: not found`) : e;
  }
  const result = { code: o.exitCode, stdout: out.toBuffer().toString(), stderr: err.toBuffer().toString() };
  if ((options.check ?? true) && result.code !== 0 && !options.signal?.aborted) {
    throw new RemoteCommandError(options.label, shown, result.code, result.stderr);
  }
  return result;
};

const feed = (stdin: NodeJS.WritableStream, input: string | Buffer | Readable | undefined): void => {
  if (input === undefined) stdin.end();
  else if (typeof input === 'string' || Buffer.isBuffer(input)) stdin.end(input);
  else {
    // A source that fails (a tar filter that meets a broken archive) ends the input; the command's status tells.
    input.on('error', (e) => (stdin as NodeJS.WritableStream & { destroy(e?: Error): void }).destroy(e));
    input.pipe(stdin);
  }
};

/**
 * Starts argv with its stdout as a stream (a tar of the build, fed to a host's stdin). The stream is
 * returned at once and the program starts when zx has loaded; a reader may come late, the program
 * waits for it (backpressure through the stream).
 */
export const streamFrom = (
  argv: readonly string[],
  cwd: string,
  input?: Buffer | Readable,
  env: Record<string, string> = baseEnv(),
): { stdout: Readable; done: Promise<void> } => {
  if (argv[0] === undefined) throw new Error('streamFrom: empty argv');
  const stdout = new PassThrough();
  const done = (async () => {
    try {
      const { running: p } = await start({ argv, cwd, env });
      const err: Buffer[] = [];
      const child = p.child;
      child?.stdout?.pipe(stdout);
      child?.stderr?.on('data', (b: Buffer) => err.push(b));
      child?.stdin?.on('error', () => {}); // as in run: the status tells
      // A reader that gives up (the host's end failed) destroys the stream: the program, blocked on a
      // full pipe, would wait for ever, so it is stopped and `done` settles.
      const stop = () => {
        if (!stdout.readableEnded && child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      };
      // Destroyed while the program was starting: it missed the event.
      if (stdout.destroyed) stop();
      else stdout.once('close', stop);
      if (child?.stdin) feed(child.stdin, input);
      const o: ProcessOutput = await p;
      if (o.cause) throw o.cause;
      if (o.exitCode !== 0) throw new RemoteCommandError('local', argv.join(' '), o.exitCode, Buffer.concat(err).toString());
    } finally {
      if (!stdout.writableEnded) stdout.end(); // a program that never started leaves no reader waiting
    }
  })();
  return { stdout, done };
};

/** This machine as a Host: commands run with /bin/sh, files written with fs. */
export class LocalHost implements Host {
  readonly name = 'local';

  exec(command: Cmd, options: ExecOptions = {}): Promise<ExecResult> {
    // Messages show `command` redacted, never the executed text.
    return run(['/bin/sh', '-c', renderForExec(command)], { ...options, timeoutMs: options.timeoutMs ?? DEADLINE.command, label: this.name, shown: command });
  }

  async put(path: string, content: string | Buffer, options: PutOptions = {}): Promise<void> {
    const temp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      const file = await open(temp, 'wx', options.mode ?? 0o644);
      try {
        await file.writeFile(content);
        await file.chmod(options.mode ?? 0o644); // open's mode is masked by the umask
        // On the disk before the rename: a crash then leaves the old file or the new one, never an empty one.
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(temp, path);
    } catch (e) {
      await rm(temp, { force: true });
      throw e;
    }
  }

  async get(path: string): Promise<Buffer | undefined> {
    try {
      return await readFile(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async close(): Promise<void> {}

  /**
   * Runs the command on this terminal itself (stdio inherited, with the fixed environment of
   * `exec`): it sets the terminal's modes and reads its size as any program does, so raw mode and
   * window sizes are left to it. Ctrl-C goes to the command's process group, which this process
   * shares: skiff's own SIGINT handlers are set aside while it runs, so the command decides what
   * Ctrl-C does (a Python console stays open). SIGTERM, the deadline and `signal` end it.
   */
  async attach(command: Cmd, _t: Terminal, options: AttachOptions = {}): Promise<number | null> {
    const limit = deadlineOf({ timeoutMs: options.timeoutMs ?? DEADLINE.none });
    const { running: p } = await start({ argv: ['/bin/sh', '-c', renderForExec(command)], cwd: '/', env: baseEnv(), stdio: 'inherit' });
    const saved = process.listeners('SIGINT');
    process.removeAllListeners('SIGINT');
    const ignoreInt = () => {};
    process.on('SIGINT', ignoreInt);
    const stop = () => p.child?.kill('SIGTERM');
    options.signal?.addEventListener('abort', stop, { once: true });
    let late = false;
    const timer = limit === undefined ? undefined : setTimeout(() => ((late = true), stop()), limit);
    try {
      const o: ProcessOutput = await p;
      if (late) throw new DeadlineError(this.name, command, limit ?? 0);
      if (o.cause) throw o.cause;
      return o.exitCode;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', stop);
      process.off('SIGINT', ignoreInt);
      for (const l of saved) process.on('SIGINT', l as () => void);
    }
  }
}

/** Runs argv with this terminal as its stdio and the caller's whole environment; resolves to its exit code. */
export const runAttached = async (argv: readonly string[], cwd: string): Promise<number> => {
  if (argv[0] === undefined) throw new Error('runAttached: empty argv');
  const { running: p } = await start({ argv, cwd, env: process.env, stdio: 'inherit' });
  // Ctrl-C reaches the child from the terminal; this process waits for it to undo and exit.
  // A SIGTERM sent to this process alone is passed on.
  const ignoreInt = () => {};
  const forwardTerm = () => p.child?.kill('SIGTERM');
  process.on('SIGINT', ignoreInt);
  process.on('SIGTERM', forwardTerm);
  try {
    const o: ProcessOutput = await p;
    if (o.cause) throw o.cause;
    return o.exitCode ?? (o.signal ? 1 : 0);
  } finally {
    process.off('SIGINT', ignoreInt);
    process.off('SIGTERM', forwardTerm);
  }
};
