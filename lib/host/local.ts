/**
 * The local Host, and the only module that starts local processes: commands for `DEPLOY_HOSTS=local`,
 * the build, and git. Processes get a small fixed environment, as an SSH login would, so nothing of
 * the caller's shell (npm_*, NODE_OPTIONS, secrets) leaks into the app.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { renderForExec, render, type Cmd } from '../core/cmd.ts';
import { RemoteCommandError } from '../core/errors.ts';
import type { ExecOptions, ExecResult, Host, PutOptions } from './host.ts';

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
}

/** Runs argv (no shell) and collects its output. */
export const run = (argv: readonly string[], options: SpawnOptions): Promise<ExecResult> =>
  new Promise((resolve, reject) => {
    const [file, ...args] = argv;
    if (file === undefined) throw new Error('run: empty argv');
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env ?? baseEnv(),
      stdio: ['pipe', 'pipe', 'pipe'],
      signal: options.signal,
      killSignal: 'SIGTERM',
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => {
      if (!options.discardStdout) out.push(b);
      options.onStdout?.(b);
    });
    child.stderr.on('data', (b: Buffer) => {
      err.push(b);
      options.onStderr?.(b);
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.name === 'AbortError') return; // the close event reports the end
      reject(e.code === 'ENOENT' ? new RemoteCommandError(options.label, argv.join(' '), 127, `${file}: not found`) : e);
    });
    child.stdin.on('error', () => {}); // a command that exits before reading all stdin is judged by its status
    feed(child.stdin, options.stdin);
    child.on('close', (code) => {
      const result = { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
      if ((options.check ?? true) && code !== 0 && !options.signal?.aborted) {
        reject(new RemoteCommandError(options.label, argv.join(' '), code, result.stderr));
      } else resolve(result);
    });
  });

const feed = (stdin: NodeJS.WritableStream, input: string | Buffer | Readable | undefined): void => {
  if (input === undefined) stdin.end();
  else if (typeof input === 'string' || Buffer.isBuffer(input)) stdin.end(input);
  else {
    // A source that fails (a tar filter that meets a broken archive) ends the input; the command's status tells.
    input.on('error', (e) => (stdin as NodeJS.WritableStream & { destroy(e?: Error): void }).destroy(e));
    input.pipe(stdin);
  }
};

/** Starts argv with its stdout as a stream (a tar of the build, fed to a host's stdin). */
export const streamFrom = (
  argv: readonly string[],
  cwd: string,
  input?: Buffer,
  env: Record<string, string> = baseEnv(),
): { stdout: Readable; done: Promise<void> } => {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('streamFrom: empty argv');
  const child = spawn(file, args, { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end(input);
  const err: Buffer[] = [];
  child.stderr.on('data', (b: Buffer) => err.push(b));
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new RemoteCommandError('local', argv.join(' '), code, Buffer.concat(err).toString())),
    );
  });
  return { stdout: child.stdout, done };
};

/** This machine as a Host: commands run with /bin/sh, files written with fs. */
export class LocalHost implements Host {
  readonly name = 'local';

  exec(command: Cmd, options: ExecOptions = {}): Promise<ExecResult> {
    return run(['/bin/sh', '-c', renderForExec(command)], { ...options, label: this.name }).catch((e: unknown) => {
      // The error must show the redacted command, not the executed text.
      if (e instanceof RemoteCommandError) throw new RemoteCommandError(this.name, render(command), e.status, e.stderrTail);
      throw e;
    });
  }

  async put(path: string, content: string | Buffer, options: PutOptions = {}): Promise<void> {
    const temp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      await writeFile(temp, content, { mode: options.mode ?? 0o644, flag: 'wx' });
      await chmod(temp, options.mode ?? 0o644); // writeFile's mode is masked by the umask
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
}

/** Runs argv with this terminal as its stdio and the caller's whole environment; resolves to its exit code. */
export const runAttached = (argv: readonly string[], cwd: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const [file, ...args] = argv;
    if (file === undefined) throw new Error('runAttached: empty argv');
    const child = spawn(file, args, { cwd, stdio: 'inherit' });
    // Ctrl-C reaches the child from the terminal; this process waits for it to undo and exit.
    // A SIGTERM sent to this process alone is passed on.
    const ignoreInt = () => {};
    const forwardTerm = () => child.kill('SIGTERM');
    process.on('SIGINT', ignoreInt);
    process.on('SIGTERM', forwardTerm);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      process.off('SIGINT', ignoreInt);
      process.off('SIGTERM', forwardTerm);
      resolve(code ?? (signal ? 1 : 0));
    });
  });
