/**
 * `exec`: a command in the live release of an environment, with the app's environment, its output
 * streamed and its exit status passed on. It takes no deploy lock: it reads which release is live
 * once, before it runs, and runs in that release (docs/exec.md says what a deploy meanwhile does).
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { quote, render, redactKnown, type Cmd } from '../core/cmd.ts';
import { parsePgUrl, PG_CONNECT_TIMEOUT, PG_VARIABLES } from '../config/pg-url.ts';
import { EXIT, firstLine, NotDeployedError, SkiffError, UsageError } from '../core/errors.ts';
import type { Config, Target } from '../config/config.ts';
import { psqlConsole, removeFile, shownWords, sqliteConsole, type ExecWords } from '../commands/exec.ts';
import { DeadlineError, type Terminal } from '../host/host.ts';
import { liveSlot, readState, audit, type SlotState } from '../state/state.ts';
import type { Session } from './session.ts';

/** Exit status when the deadline stopped the command (as timeout(1) has it). */
export const EXEC_DEADLINE_EXIT = 124;
/** Exit status when SIGINT or SIGTERM stopped the command (128 + SIGINT). */
export const EXEC_INTERRUPTED_EXIT = 130;

/** The name a host of DEPLOY_HOSTS has in messages (as lib/host/connect.ts names it). */
export const targetName = (t: Target): string => (t.kind === 'local' ? 'local' : `${t.user}@${t.host}:${t.port}`);

/** The ways `--host` may name a host: `local`, or `user@host:port`, `user@host`, `host:port`, `host`. */
const namesOf = (t: Target): string[] => (t.kind === 'local' ? ['local'] : [targetName(t), `${t.user}@${t.host}`, `${t.host}:${t.port}`, t.host]);

/**
 * The hosts exec runs on: the one `--host` names, every one with `--all` (in DEPLOY_HOSTS order),
 * or the only one. Several hosts and neither flag, a name that fits none or several, or `--tty`
 * with `--all` over several hosts: a UsageError, before any host is reached.
 */
export const pickTargets = (cfg: Pick<Config, 'env' | 'hosts'>, opts: { readonly host: string | undefined; readonly all: boolean; readonly tty: boolean }): readonly Target[] => {
  const all = cfg.hosts.map(targetName).join(', ');
  if (opts.host !== undefined) {
    if (opts.all) throw new UsageError('exec takes --host or --all, not both');
    const wanted = opts.host;
    const found = cfg.hosts.filter((t) => namesOf(t).includes(wanted));
    if (found.length === 0) throw new UsageError(`--host ${JSON.stringify(wanted)} is no host of ${cfg.env}: DEPLOY_HOSTS has ${all}`);
    if (found.length > 1) throw new UsageError(`--host ${JSON.stringify(wanted)} fits several hosts of ${cfg.env} (${found.map(targetName).join(', ')}): name one as user@host:port`);
    return found;
  }
  if (cfg.hosts.length > 1 && !opts.all) {
    throw new UsageError(`${cfg.env} has ${cfg.hosts.length} hosts (${all}): name one with --host, or run on each in turn with --all`);
  }
  if (cfg.hosts.length > 1 && opts.tty) throw new UsageError(`--tty runs on one host: name it with --host (${all})`);
  return cfg.hosts;
};

/** What a host runs for exec: the live release's id, and the command built by the runtime. */
export interface ExecPlan {
  readonly session: Session;
  readonly release: SlotState;
  readonly command: Cmd;
  /** What runs, as the user reads it (the words, or `psql`), for the dry run and the audit log. */
  readonly shown: string;
  /** Where it runs, for the dry run: `in release ... with its env file`, `on the host`. */
  readonly where: string;
  /** Run just before the command (a private file written), and after it however it ended. */
  readonly prepare?: () => Promise<void>;
  /** Never rejects: what it could not undo, as a line for the user. */
  readonly cleanup?: () => Promise<string | undefined>;
}

/**
 * Reads what is live on a host and builds the command that runs the words in it; refuses (exit 2)
 * when nothing is deployed, and (docker) when the live container does not run. Changes nothing.
 */
export const planExec = async (s: Session, words: ExecWords, tty: boolean): Promise<ExecPlan> => {
  const live = liveSlot(await readState(s.host, s.l));
  if (!live) throw new NotDeployedError(s.cfg.env, s.host.name);
  const command = await s.runtime.execIn(s.host, s.l, live, words, tty);
  const { release, version } = live.release;
  // The command itself where it is one the user reads (`docker exec ...`), not the release folder's script.
  const where = `in release ${release} (version ${version})${command.kind === 'script' ? ' with its env file' : `: ${render(command)}`}`;
  return { session: s, release: live.release, command, shown: shownWords(words), where };
};

/**
 * The database console on a host (`exec --db`, `Taskfile.ts db:shell`), reached as backups reach
 * the database: psql with BACKUP_POSTGRES_URL's connection when it is set (its password in a
 * private pgpass file written just before and removed after, never in argv or the environment),
 * else sqlite3 on the first BACKUP_SQLITE file under shared/. It runs on the host, not in the
 * release or its container (which may have neither client); `args` go to the client.
 */
export const planDbConsole = async (s: Session, args: readonly string[]): Promise<ExecPlan> => {
  const live = liveSlot(await readState(s.host, s.l));
  if (!live) throw new NotDeployedError(s.cfg.env, s.host.name);
  const { postgresUrl, sqlite } = s.cfg.backup;
  const base = { session: s, release: live.release, where: 'on the host, as backups reach the database' };
  if (postgresUrl) {
    const c = parsePgUrl(postgresUrl.reveal());
    const pass = c.password === undefined ? undefined : `${s.l.skiff}/.pgpass-${randomBytes(6).toString('hex')}`;
    return {
      ...base,
      command: psqlConsole(PG_VARIABLES, c.env, pass, PG_CONNECT_TIMEOUT, args),
      shown: `psql (${c.where})${args.length ? ` ${args.map(quote).join(' ')}` : ''}`,
      ...(pass === undefined || c.password === undefined
        ? {}
        : {
            prepare: () => s.host.put(pass, `*:*:*:*:${(c.password ?? '').replace(/[\\:]/g, (ch) => `\\${ch}`)}\n`, { mode: 0o600 }),
            // Never thrown: a failed removal must not hide how the session ended; it is a line of its own.
            cleanup: () =>
              s.host.exec(removeFile(pass), { check: false }).then(
                (r) => (r.code === 0 ? undefined : `could not remove ${pass} (exit ${r.code}): remove it on the host`),
                (e: unknown) => `could not remove ${pass}: ${firstLine(e)}; remove it on the host`,
              ),
          }),
    };
  }
  const [file] = sqlite;
  if (file === undefined) {
    throw new UsageError(`${s.cfg.env} names no database: set BACKUP_SQLITE (a file under shared/) or BACKUP_POSTGRES_URL in env/${s.cfg.env}.env`);
  }
  const path = `${s.l.shared}/${file}`;
  return { ...base, command: sqliteConsole(path, args), shown: `sqlite3 ${quote(path)}${args.length ? ` ${args.map(quote).join(' ')}` : ''}` };
};

/** The dry run's line for a host: what it would run, and where, secrets redacted. */
export const dryRunLine = (p: ExecPlan): string => `dry run: ${p.session.host.name}: would run ${p.shown} ${p.where}; nothing was run`;

/** Records the run in the host's audit log (the words shown as typed, secrets redacted). */
const auditExec = (p: ExecPlan, tty: boolean): Promise<void> =>
  audit(p.session.host, p.session.l, p.session.now().toISOString(), p.session.who, redactKnown(`exec${tty ? ' --tty' : ''} in ${p.release.release}: ${p.shown.replace(/\s+/g, ' ')}`));

export interface StreamOptions {
  /** Milliseconds the command may run; DEADLINE.none for no limit. */
  readonly timeoutMs: number;
  /** Input for the command (a pipe into exec); only with one host. */
  readonly stdin?: Readable;
  readonly stdout: (chunk: Buffer) => void;
  readonly stderr: (chunk: Buffer) => void;
  /** One line about a host's end (several hosts: each status; a deadline, a signal). */
  readonly note: (line: string) => void;
}

/** A host's end: its exit status, or why it has none. */
export interface HostEnd {
  readonly host: string;
  readonly code: number;
}

/**
 * Runs each plan in turn, its output streamed as it comes (prefixed `[host] ` by line when there
 * are several), and resolves to each host's exit status: the command's own, 124 past the
 * deadline, 130 when interrupted, 1 when ended by a signal. A host the connection to fails throws.
 */
export const streamExec = async (plans: readonly ExecPlan[], o: StreamOptions): Promise<HostEnd[]> => {
  const ends: HostEnd[] = [];
  const several = plans.length > 1;
  for (const p of plans) {
    const { host, signal } = p.session;
    if (signal.aborted) break;
    await auditExec(p, false);
    await p.prepare?.();
    const out = byLine(several ? `[${host.name}] ` : undefined, o.stdout);
    const err = byLine(several ? `[${host.name}] ` : undefined, o.stderr);
    let code: number;
    try {
      const r = await host.exec(p.command, {
        check: false,
        timeoutMs: o.timeoutMs,
        signal,
        discardStdout: true,
        onStdout: out.push,
        onStderr: err.push,
        ...(o.stdin && !several ? { stdin: o.stdin } : {}),
      });
      out.flush();
      err.flush();
      code = endCode(r.code, signal, host.name, o.note);
    } catch (error) {
      out.flush();
      err.flush();
      if (!(error instanceof DeadlineError)) throw error;
      o.note(error.message);
      code = EXEC_DEADLINE_EXIT;
    } finally {
      const left = await p.cleanup?.();
      if (left) o.note(`${host.name}: ${left}`);
    }
    if (several) o.note(`[${host.name}] exit ${code}`);
    ends.push({ host: host.name, code });
  }
  return ends;
};

/**
 * Output passed on as it comes, or with a prefix before every line (a line cut between chunks is
 * held until it ends, and `flush` writes the last one, with a newline, when the command is done).
 */
const byLine = (prefix: string | undefined, write: (b: Buffer) => void): { push: (b: Buffer) => void; flush: () => void } => {
  if (prefix === undefined) return { push: write, flush: () => {} };
  let rest = '';
  return {
    push: (b) => {
      const lines = (rest + b.toString()).split('\n');
      rest = lines.pop() ?? '';
      if (lines.length > 0) write(Buffer.from(lines.map((line) => `${prefix}${line}\n`).join('')));
    },
    flush: () => {
      if (rest !== '') write(Buffer.from(`${prefix}${rest}\n`));
      rest = '';
    },
  };
};

const endCode = (code: number | null, signal: AbortSignal, host: string, note: (line: string) => void): number => {
  if (code !== null) return code;
  if (signal.aborted) {
    note(`${host}: the command was stopped (${signal.reason instanceof Error ? signal.reason.message : 'interrupted'})`);
    return EXEC_INTERRUPTED_EXIT;
  }
  note(`${host}: the command was ended by a signal`);
  return 1;
};

/**
 * Runs one plan with this terminal (a pty over SSH, `docker exec -it` in a container); resolves to
 * the command's exit status as streamExec does. The host restores the terminal however it ends.
 */
export const ttyExec = async (p: ExecPlan, t: Terminal, timeoutMs: number, note: (line: string) => void): Promise<number> => {
  const { host, signal } = p.session;
  if (!host.attach) throw new SkiffError(`${host.name} cannot run a command with a terminal`, EXIT.usage);
  await auditExec(p, true);
  await p.prepare?.();
  try {
    return endCode(await host.attach(p.command, t, { timeoutMs, signal }), signal, host.name, note);
  } catch (error) {
    if (!(error instanceof DeadlineError)) throw error;
    note(error.message);
    return EXEC_DEADLINE_EXIT;
  } finally {
    const left = await p.cleanup?.();
    if (left) note(`${host.name}: ${left}`);
  }
};

/** The exit status of exec over several hosts: 0 when each exited 0, else the first that did not. */
export const overallCode = (ends: readonly HostEnd[]): number => ends.find((e) => e.code !== 0)?.code ?? 0;
