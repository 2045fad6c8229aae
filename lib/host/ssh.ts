/**
 * The SSH Host, and the only module that imports ssh2. One connection serves the whole run; each
 * command gets its own exec channel. The host key is checked against known_hosts before any key is
 * offered, and every failure to connect is one line that names the host and the cause.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import ssh2 from 'ssh2';
import type { ClientChannel, ClientErrorExtensions, ConnectConfig, ParsedKey, ServerHostKeyAlgorithm } from 'ssh2';
import { quote, render, renderForExec, script, type Cmd } from '../core/cmd.ts';
import { EXIT, RemoteCommandError, SkiffError } from '../core/errors.ts';
import { DEADLINE, DeadlineError, OutputBuffer, deadlineOf, type AttachOptions, type ExecOptions, type ExecResult, type Host, type PutOptions, type Terminal } from './host.ts';
import { checkHostKey, fingerprint, hostName, keyTypeOf, knownKeyTypes, readKnownHosts, type KnownHost } from './known-hosts.ts';

// ssh2 is CommonJS without static exports: Node refuses `import { Client } from 'ssh2'`.
const { Client, utils } = ssh2;
type SshClient = InstanceType<typeof Client>;
type SshError = Error & ClientErrorExtensions & { code?: string };

/** Where to connect: one `user@host:port` of DEPLOY_HOSTS. */
export interface SshTarget {
  readonly user: string;
  readonly host: string;
  readonly port: number;
}

/** How to authenticate and whom to trust. */
export interface SshOptions {
  /** Private key file (DEPLOY_SSH_KEY); without it, the keys of ssh-agent (SSH_AUTH_SOCK). */
  readonly keyFile?: string;
  /** known_hosts file (DEPLOY_KNOWN_HOSTS); default ~/.ssh/known_hosts. */
  readonly knownHostsFile?: string;
  /** Time for connecting, the handshake and authentication (default 20 s). */
  readonly timeoutMs?: number;
}

const KEEPALIVE_MS = 10_000;
const DEFAULT_TIMEOUT_MS = 20_000;
// OpenSSH allows 10 sessions per connection (MaxSessions); more parallel commands wait for a free one.
const MAX_CHANNELS = 8;
const MISSING = 44;
const GET_SCRIPT = `[ -e "$1" ] || exit ${MISSING}; exec cat -- "$1"`;
// The temp file reaches the disk before the rename (a crash leaves the old file or the new one,
// never an empty one); `sync FILE` needs coreutils 8.24, a plain `sync` where it is older.
const PUT_SCRIPT = 'umask 077; cat > "$2" && chmod "$3" "$2" && { sync -- "$2" 2>/dev/null || sync; } && mv -f -- "$2" "$1" || { s=$?; rm -f -- "$2"; exit "$s"; }';

/** ssh2's host key algorithms in its default order; `ssh-dss` left out, as OpenSSH does. */
const HOST_KEY_ALGORITHMS: readonly ServerHostKeyAlgorithm[] = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/** Connects, verifies the host key and authenticates; the SkiffError says which step failed. */
export const connectSsh = async (target: SshTarget, opts: SshOptions = {}): Promise<SshHost> => {
  const name = `${target.user}@${target.host}:${target.port}`;
  const knownHostsFile = opts.knownHostsFile ?? posix.join(homedir(), '.ssh', 'known_hosts');
  const known = await readKnownHosts(knownHostsFile).catch((e: NodeJS.ErrnoException) => {
    throw new SkiffError(`known_hosts file ${knownHostsFile} cannot be read: ${e.code ?? e.message}`, EXIT.usage);
  });
  const auth = await authFor(name, opts.keyFile);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const client = new Client();
  let refusal: SkiffError | undefined;
  const config: ConnectConfig = {
    host: target.host,
    port: target.port,
    username: target.user,
    ...auth,
    readyTimeout: timeoutMs,
    keepaliveInterval: KEEPALIVE_MS,
    algorithms: { serverHostKey: hostKeyOrder(knownKeyTypes(known, target.host, target.port)) },
    hostVerifier: (key: Buffer): boolean => {
      refusal = verifyHostKey(key, target, known, knownHostsFile);
      return refusal === undefined;
    },
  };
  try {
    await new Promise<void>((resolve, reject) => {
      // Stays attached: after `ready`, a late error settles nothing but must not crash the process.
      client.on('error', (e: SshError) => reject(refusal ?? connectError(e, target, name, timeoutMs, auth)));
      client.once('close', () => reject(new SkiffError(`cannot connect to ${name}: the server closed the connection`)));
      client.once('ready', resolve);
      client.connect(config);
    });
  } catch (e) {
    client.destroy();
    throw e;
  }
  return new SshHost(name, client);
};

type Auth = { readonly privateKey: Buffer } | { readonly agent: string };

const authFor = async (name: string, keyFile: string | undefined): Promise<Auth> => {
  if (keyFile !== undefined) return { privateKey: await readPrivateKey(keyFile) };
  const agent = process.env.SSH_AUTH_SOCK;
  if (agent) return { agent };
  throw new SkiffError(`no SSH key for ${name}: set DEPLOY_SSH_KEY to a private key file, or start ssh-agent and add a key with ssh-add`, EXIT.usage);
};

/** Reads and checks the key here, so a bad key file is a clear error rather than ssh2's message. */
const readPrivateKey = async (file: string): Promise<Buffer> => {
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (e) {
    throw new SkiffError(`DEPLOY_SSH_KEY ${file} cannot be read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, EXIT.usage);
  }
  const parsed = utils.parseKey(data);
  if (parsed instanceof Error) {
    if (/passphrase/i.test(parsed.message)) {
      throw new SkiffError(
        `DEPLOY_SSH_KEY ${file} is encrypted with a passphrase, which skiff cannot ask for: add it to ssh-agent (ssh-add ${file}) and unset DEPLOY_SSH_KEY, or use a key without a passphrase`,
        EXIT.usage,
      );
    }
    throw new SkiffError(`DEPLOY_SSH_KEY ${file} is not a private key skiff can read: ${parsed.message}`, EXIT.usage);
  }
  const key = Array.isArray(parsed) ? (parsed as ParsedKey[])[0] : parsed;
  if (!key?.isPrivateKey()) {
    throw new SkiffError(`DEPLOY_SSH_KEY ${file} is a public key: point it at the private key (the file without .pub)`, EXIT.usage);
  }
  return data;
};

/** Offers the key types known_hosts has for this host first, so a server with several keys shows a known one. */
const hostKeyOrder = (knownTypes: readonly string[]): ServerHostKeyAlgorithm[] => {
  const preferred = knownTypes.flatMap((t) => (t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t]));
  return [...new Set([...HOST_KEY_ALGORITHMS.filter((a) => preferred.includes(a)), ...HOST_KEY_ALGORITHMS])];
};

/** undefined when the key is trusted, else the error that refuses it. */
const verifyHostKey = (key: Buffer, t: SshTarget, known: readonly KnownHost[], file: string): SkiffError | undefined => {
  const type = keyTypeOf(key) ?? 'unknown';
  const got = `${type} ${fingerprint(key)}`;
  const where = `${t.host}:${t.port}`;
  const shownFile = displayPath(file);
  const keyscan = `ssh-keyscan -p ${t.port} ${quote(t.host)} >> ${shownFile}`;
  const check = checkHostKey(known, t.host, t.port, type, key);
  switch (check.result) {
    case 'match':
      return undefined;
    case 'unknown':
      return new SkiffError(
        `unknown host ${where}: its key ${got} is not in ${shownFile}; compare that fingerprint with \`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub\` run on the server, then trust it with \`${keyscan}\``,
      );
    case 'changed':
      return new SkiffError(
        `WARNING: the host key of ${where} has CHANGED (someone may be intercepting the connection): expected ${check.expected}, got ${got}; if you changed it on purpose, remove the old line with \`ssh-keygen -R ${quote(hostName(t.host, t.port))} -f ${shownFile}\` and trust the new key with \`${keyscan}\``,
      );
    case 'revoked':
      return new SkiffError(`the host key of ${where} (${got}) is marked @revoked in ${shownFile}: refusing to connect`);
  }
};

/** A path as the user would type it: `~/...` under the home folder, quoted for the shell otherwise. */
const displayPath = (file: string): string => {
  const home = homedir();
  return file.startsWith(`${home}/`) ? `~/${quote(file.slice(home.length + 1))}` : quote(file);
};

const connectError = (e: SshError, t: SshTarget, name: string, timeoutMs: number, auth: Auth): SkiffError => {
  const where = `${t.host}:${t.port}`;
  switch (e.code) {
    case 'ECONNREFUSED':
      return new SkiffError(`cannot reach ${where}: connection refused (is sshd running and listening on port ${t.port}?)`);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new SkiffError(`cannot reach ${where}: no route to the host (${e.code}); check the address and the network`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new SkiffError(`cannot reach ${where}: host not found (${e.code}); check the host name in DEPLOY_HOSTS`);
    case 'ETIMEDOUT':
      return new SkiffError(`cannot reach ${where}: the connection timed out; check the address and the firewall`);
  }
  if (e.level === 'client-timeout') {
    return new SkiffError(`cannot reach ${where}: timed out after ${timeoutMs / 1000}s waiting for the SSH handshake; check the host, the port and the firewall`);
  }
  if (e.level === 'client-authentication') {
    const key = 'agent' in auth ? 'the keys of ssh-agent (SSH_AUTH_SOCK)' : 'the key';
    return new SkiffError(`${name} refused ${key}: check DEPLOY_SSH_KEY and authorized_keys`);
  }
  if (e.level === 'agent') return new SkiffError(`cannot connect to ${name}: ssh-agent (SSH_AUTH_SOCK) failed: ${e.message}`);
  return new SkiffError(`cannot connect to ${name}: ${e.message}`);
};

/** The parts of an ssh2 channel that `signal()` checks, which are not in its types. */
interface ChannelInternals {
  readonly outgoing?: { readonly id: number; readonly state: string };
  readonly _client?: { readonly _protocol?: { signal(id: number, name: string): void } };
}

/**
 * Asks sshd to signal the command. ssh2's own `signal()` sends nothing once stdin has ended, which is
 * nearly always, so this goes to its protocol. sshd refuses signals in root sessions ("requires
 * privilege separation"); closing the channel then ends the command at its next write.
 */
const signal = (channel: ClientChannel, name: string): void => {
  const { outgoing, _client } = channel as unknown as ChannelInternals;
  if (outgoing && _client?._protocol && (outgoing.state === 'open' || outgoing.state === 'eof')) _client._protocol.signal(outgoing.id, name);
  else channel.signal(name);
};

interface RawResult {
  readonly code: number | null;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
}

const isStream = (input: ExecOptions['stdin']): input is Readable => input !== undefined && typeof input !== 'string' && !Buffer.isBuffer(input);

/** Lets at most `size` callers in at once; the rest wait in order. */
class Slots {
  #free: number;
  readonly #waiting: (() => void)[] = [];
  constructor(size: number) {
    this.#free = size;
  }
  async take(): Promise<() => void> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    return () => {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    };
  }
}

/** A server over SSH as a Host: commands run with the login shell, files written through `cat`. */
export class SshHost implements Host {
  readonly name: string;
  /** Bytes written to the standard input of commands: what shipping a release costs. */
  bytesSent = 0;
  readonly #client: SshClient;
  readonly #slots = new Slots(MAX_CHANNELS);
  #lost: Error | undefined;
  #closing: Promise<void> | undefined;

  /** Wraps a connected client; use connectSsh. */
  constructor(name: string, client: SshClient) {
    this.name = name;
    this.#client = client;
    client.on('error', (e: Error) => (this.#lost ??= e));
    client.on('close', () => (this.#lost ??= new Error('the connection closed')));
  }

  async exec(command: Cmd, options: ExecOptions = {}): Promise<ExecResult> {
    const r = await this.#run(command, options);
    return { code: r.code, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  }

  async put(path: string, content: string | Buffer, options: PutOptions = {}): Promise<void> {
    const temp = posix.join(posix.dirname(path), `.${posix.basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
    const mode = (options.mode ?? 0o644).toString(8).padStart(4, '0');
    await this.#run(script(PUT_SCRIPT, path, temp, mode), { stdin: content });
  }

  async get(path: string): Promise<Buffer | undefined> {
    const command = script(GET_SCRIPT, path);
    const r = await this.#run(command, { check: false });
    if (r.code === MISSING) return undefined;
    if (r.code !== 0) throw new RemoteCommandError(this.name, render(command), r.code, r.stderr.toString());
    return r.stdout;
  }

  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      if (this.#lost) return resolve();
      this.#client.once('close', () => resolve());
      this.#client.end();
      // A server that never answers the disconnect must not hold the run open.
      setTimeout(() => this.#client.destroy(), 2000).unref();
    });
    return this.#closing;
  }

  /**
   * Runs the command with a pty of the terminal's size and type: the terminal goes raw, each key
   * is sent as typed (Ctrl-C reaches the command, not skiff), the output comes back as the pty
   * wrote it (stderr is in it), and a new window size follows. Raw mode is turned off however the
   * session ends. Past the deadline, or on `signal`, the command gets SIGTERM and the channel closes.
   */
  async attach(command: Cmd, t: Terminal, options: AttachOptions = {}): Promise<number | null> {
    const limit = deadlineOf({ timeoutMs: options.timeoutMs ?? DEADLINE.none });
    const release = await this.#slots.take();
    let cleanup = () => {};
    try {
      return await new Promise<number | null>((resolve, reject) => {
        const fail = (reason: string) => reject(new SkiffError(`${this.name}: cannot run ${render(command)}: ${reason}`));
        if (this.#closing || this.#lost) return fail('the connection is closed');
        const open = (err: Error | undefined, channel: ClientChannel) => {
          if (err) return fail(err.message);
          let code: number | null = null;
          let timer: NodeJS.Timeout | undefined;
          const type = (b: Buffer | string) => channel.write(b);
          const stopResize = t.onResize((rows, cols) => channel.setWindow(rows, cols, 0, 0));
          const abort = () => {
            signal(channel, 'TERM');
            channel.close();
          };
          cleanup = () => {
            clearTimeout(timer);
            stopResize();
            options.signal?.removeEventListener('abort', abort);
            t.input.off('data', type);
            t.input.pause();
            t.raw(false);
          };
          channel.on('data', (b: Buffer) => t.write(b));
          channel.stderr.on('data', (b: Buffer) => t.write(b));
          channel.on('exit', (status: number | null) => (code = status));
          channel.on('close', () => {
            cleanup();
            resolve(code);
          });
          if (limit !== undefined) {
            timer = setTimeout(() => {
              abort();
              cleanup();
              reject(new DeadlineError(this.name, command, limit));
            }, limit);
          }
          options.signal?.addEventListener('abort', abort, { once: true });
          t.raw(true);
          t.input.on('data', type);
          t.input.resume();
        };
        try {
          this.#client.exec(renderForExec(command), { pty: { rows: t.rows, cols: t.cols, height: 0, width: 0, term: t.term } }, open);
        } catch (e) {
          fail((e as Error).message); // ssh2 throws when the socket is gone
        }
      });
    } finally {
      cleanup();
      release();
    }
  }

  async #run(command: Cmd, options: ExecOptions): Promise<RawResult> {
    const limit = deadlineOf(options);
    if (options.signal?.aborted) return { code: null, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) };
    const release = await this.#slots.take();
    try {
      const result = await this.#open(command, (channel) => this.#collect(channel, command, options, limit));
      if ((options.check ?? true) && result.code !== 0 && !options.signal?.aborted) {
        throw new RemoteCommandError(this.name, render(command), result.code, result.stderr.toString());
      }
      return result;
    } finally {
      release();
    }
  }

  /**
   * Opens a channel for the command and hands it to `use` in ssh2's own callback: the channel's
   * output, exit status and close can arrive in the same read as its opening (a fast command on a
   * fast host), and ssh2 emits them at once, so listeners attached a tick later would miss them.
   */
  #open<T>(command: Cmd, use: (channel: ClientChannel) => Promise<T>): Promise<T> {
    return new Promise((resolve, reject) => {
      const fail = (reason: string) => reject(new SkiffError(`${this.name}: cannot run ${render(command)}: ${reason}`));
      if (this.#closing) return fail('the connection was closed');
      if (this.#lost) return fail(`the connection was lost (${this.#lost.message})`);
      try {
        this.#client.exec(renderForExec(command), (err, channel) => (err ? fail(err.message) : resolve(use(channel))));
      } catch (e) {
        fail((e as Error).message); // ssh2 throws when the socket is gone
      }
    });
  }

  /**
   * Feeds stdin, gathers output, and settles once the channel and its stderr have both closed. Past
   * the deadline the command is signalled, the channel closed, and the run rejects at once: sshd
   * answers the close only when the command has exited.
   */
  #collect(channel: ClientChannel, command: Cmd, options: ExecOptions, limit: number | undefined): Promise<RawResult> {
    return new Promise((resolve, reject) => {
      const out = new OutputBuffer(options.onStdout !== undefined);
      const err = new OutputBuffer(options.onStderr !== undefined);
      let exited = false;
      let code: number | null = null;
      let inputError: Error | undefined;
      let open = 2;
      let timer: NodeJS.Timeout | undefined;
      const result = () => ({ code, stdout: out.toBuffer(), stderr: err.toBuffer() });
      const stop = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', abort);
        signal(channel, 'TERM');
        channel.close();
      };
      // As with the deadline, an abort settles at once.
      const abort = () => {
        stop();
        resolve({ ...result(), code: null });
      };
      if (limit !== undefined) {
        timer = setTimeout(() => {
          stop();
          // Nothing reads the rest of a stream fed to the command now: let its source go.
          if (isStream(options.stdin)) options.stdin.destroy();
          reject(new DeadlineError(this.name, command, limit));
        }, limit);
      }
      const settle = () => {
        if (--open > 0) return;
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', abort);
        if (inputError) reject(inputError);
        else if (exited || options.signal?.aborted) resolve(result());
        else reject(new SkiffError(`${this.name}: the connection was lost while running ${render(command)}${this.#lost ? ` (${this.#lost.message})` : ''}`));
      };
      channel.on('data', (b: Buffer) => {
        if (!options.discardStdout) out.push(b);
        const later = options.onStdout?.(b);
        // A paused channel stops widening its SSH window: the remote command waits for the consumer.
        if (later instanceof Promise) {
          channel.pause();
          later.then(
            () => channel.resume(),
            () => channel.resume(),
          );
        }
      });
      channel.stderr.on('data', (b: Buffer) => {
        err.push(b);
        options.onStderr?.(b);
      });
      channel.on('exit', (status: number | null) => {
        exited = true;
        code = status;
      });
      channel.on('close', settle);
      channel.stderr.on('close', settle);
      options.signal?.addEventListener('abort', abort, { once: true });
      if (options.signal?.aborted) abort(); // aborted while waiting for a free channel
      this.#feed(channel, options.stdin, (e) => {
        inputError = e;
        channel.close();
      });
    });
  }

  #feed(channel: ClientChannel, input: string | Buffer | Readable | undefined, onError: (e: Error) => void): void {
    if (input === undefined) {
      channel.end();
    } else if (typeof input === 'string' || Buffer.isBuffer(input)) {
      const bytes = typeof input === 'string' ? Buffer.from(input) : input;
      this.bytesSent += bytes.length;
      channel.end(bytes);
    } else {
      input.on('data', (chunk: Buffer | string) => (this.bytesSent += Buffer.byteLength(chunk)));
      input.once('error', onError);
      input.pipe(channel);
    }
  }
}
