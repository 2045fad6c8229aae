/**
 * The shared start of every script that acts on an environment: load the config once, connect to
 * the host, build the context, take the lock around the task list, and close the host at the end.
 */
import type { ListrTask, ListrTaskWrapper } from 'listr2';
import { realClock } from '../core/clock.ts';
import { render } from '../core/cmd.ts';
import { confirm, interrupted } from './cli.ts';
import { connect } from '../host/connect.ts';
import { loadConfig, type Config, type Target } from '../config/config.ts';
import { redirectableLog, type DeployCtx, type Session } from '../flows/session.ts';
import { observeServing } from '../flows/status.ts';
import type { ExecOptions, ExecResult, Host, PutOptions } from '../host/host.ts';
import { firstLine, HostFailedError, SkiffError, UsageError, type UndoFailure } from '../core/errors.ts';
import { withLock } from '../state/lock.ts';
import { layout } from '../core/paths.ts';
import { proxyFor } from '../proxy/proxy.ts';
import { runtimeFor, type Runtime } from '../runtime/runtime.ts';
import { say, taskList, whoAmI } from './ui.ts';
import { formatVersion, readGitFacts } from '../release/version.ts';
import type { Cmd } from '../core/cmd.ts';

/** A host that prints what it would change. Reads (get) go to the real host; exec prints and succeeds. */
export class DryRunHost implements Host {
  readonly name: string;
  readonly dryRun = true;
  readonly #inner: Host;
  readonly #print: (line: string) => void;
  constructor(inner: Host, print: (line: string) => void) {
    this.#inner = inner;
    this.name = inner.name;
    this.#print = print;
  }
  async exec(command: Cmd, options: ExecOptions = {}): Promise<ExecResult> {
    // A command that only reads runs for real: what a dry run says of the host is the host's answer.
    if (command.reads && options.stdin === undefined) return this.#inner.exec(command, options);
    this.#print(`[dry-run] ${this.name}: ${render(command)}${options.stdin !== undefined ? ' < (input)' : ''}`);
    // A stream nobody reads would block its writer (the build's tar): read it to the end.
    if (options.stdin !== undefined && typeof options.stdin === 'object' && !Buffer.isBuffer(options.stdin)) options.stdin.resume();
    return { code: 0, stdout: '', stderr: '' };
  }
  async put(path: string, content: string | Buffer, options: PutOptions = {}): Promise<void> {
    this.#print(`[dry-run] ${this.name}: write ${path} (${Buffer.byteLength(content)} bytes, mode ${(options.mode ?? 0o644).toString(8)})`);
  }
  get(path: string): Promise<Buffer | undefined> {
    return this.#inner.get(path);
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}

/** The last line of a dry run of a deploy or rollback: its line of success, as what would happen. */
export const dryRunDone = (line: string): string =>
  `dry run: nothing was changed (${line.replace(/^deployed /, 'would deploy ').replace(/^rolled (\S+) back /, 'would roll $1 back ')})`;

export interface RunOptions {
  readonly dryRun?: boolean;
  /** The command named in lock and audit lines. */
  readonly command: string;
  /** Skip reading git (status, logs, stop: they do not need the version). */
  readonly needsVersion?: boolean;
  /** --force-unlock: break a lock whose holder is gone or whose heartbeat is stale. */
  readonly forceUnlock?: boolean;
  /** --lock-wait SECONDS, as given. */
  readonly lockWait?: string | undefined;
  /** Checks on this machine before any host is reached (a missing Dockerfile, say). */
  readonly check?: (cfg: Config, runtime: Runtime) => void;
  /** The hosts to connect to, of DEPLOY_HOSTS (default every one): `exec --host` reaches one. */
  readonly hosts?: (cfg: Config) => readonly Target[];
}

/** Opens every host of the environment at once; if one cannot be reached, the others are closed. */
const connectAll = async (cfg: Config, targets: readonly Target[] = cfg.hosts): Promise<Host[]> => {
  const opened = await Promise.allSettled(targets.map((t) => connect(t, cfg)));
  const failed = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  const hosts = opened.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  if (failed) {
    await Promise.all(hosts.map((h) => h.close()));
    throw failed.reason;
  }
  return hosts;
};

export { firstLine };

/**
 * A step on every host. With one host it is the step itself. With several, each host is a subtask,
 * all at once (or one after another with `serial`, stopping at the first failure); if the step
 * failed on any host, `undo` runs on the hosts where it succeeded before the failure is thrown:
 * a deploy is all or nothing.
 */
export const onEachHost = <T extends Session>(
  ctxs: readonly T[],
  title: string,
  step: (c: T) => Promise<unknown>,
  options: {
    undo?: (c: T, reason: string) => Promise<unknown>;
    /** After an undo, what a host is seen to serve (a line): the error ends with one per host. */
    observe?: (c: T) => Promise<string>;
    serial?: boolean;
    skip?: () => string | boolean;
    enabled?: () => boolean;
  } = {},
): ListrTask<object> => ({
  title,
  ...(options.skip ? { skip: options.skip } : {}),
  ...(options.enabled ? { enabled: options.enabled } : {}),
  task: async (_c, t) => {
    const [only] = ctxs;
    if (only && ctxs.length === 1) return step(only);
    const failures = new Map<T, unknown>();
    const succeeded: T[] = [];
    await t
      .newListr(
        ctxs.map((c) => ({
          title: c.host.name,
          task: async (_x: unknown, sub: { output: string }) => {
            c.logTo((line) => {
              sub.output = line;
            });
            try {
              await step(c);
              succeeded.push(c);
            } catch (error) {
              failures.set(c, error);
              throw new Error(firstLine(error));
            }
          },
          rendererOptions: { persistentOutput: true },
        })),
        { concurrent: !options.serial, exitOnError: options.serial ?? false },
      )
      .run()
      .catch(() => undefined); // failures are in the map

    const [first] = failures.entries();
    if (!first) return;
    const [failedCtx, error] = first;
    const others = succeeded;
    if (options.undo && others.length > 0) {
      const reason = `${failedCtx.host.name} failed: ${firstLine(error)}`;
      t.output = `undoing on ${others.map((c) => c.host.name).join(', ')}`;
      const undoFailures: UndoFailure[] = [];
      // Every undo runs whatever another one does; each failure is reported beside the first error.
      await Promise.all(others.map((c) => options.undo?.(c, reason).catch((e: unknown) => void undoFailures.push({ host: c.host.name, error: e }))));
      const { observe } = options;
      // An observation that fails is a line of its own: it never replaces the error being reported.
      const seen = (c: T) => (observe ? observe(c).catch((e: unknown) => `${c.host.name} could not be asked what it serves: ${firstLine(e)}`) : '');
      const observed = observe ? await Promise.all(ctxs.map(seen)) : undefined;
      throw new HostFailedError(failedCtx.host.name, error, others.map((c) => c.host.name), undoFailures, observed);
    }
    throw new HostFailedError(failedCtx.host.name, error, []);
  },
});

/** Loads config and connects to every host; returns the pieces a script needs. */
export const prepareRun = async (env: string, options: RunOptions) => {
  const waitSeconds = options.lockWait === undefined ? 0 : Number(options.lockWait);
  if (!Number.isInteger(waitSeconds) || waitSeconds < 0) {
    throw new UsageError(`--lock-wait takes whole seconds, not ${JSON.stringify(options.lockWait)}`);
  }
  const cfg: Config = loadConfig(env);
  const runtime = runtimeFor(cfg);
  options.check?.(cfg, runtime);
  const facts = options.needsVersion === false ? undefined : await readGitFacts(cfg.app.dir, cfg.root);
  const version = facts ? formatVersion(facts) : '';
  const dryRun = options.dryRun ?? false;
  const targets = options.hosts ? options.hosts(cfg) : cfg.hosts;
  const [target] = targets;
  if (!target) throw new Error('no host');
  const hosts = (await connectAll(cfg, targets)).map((h) => (dryRun ? new DryRunHost(h, (line) => say(line)) : h));
  const l = layout(cfg.path);
  const port = cfg.ports[0] as number;
  const url = cfg.publicUrl ?? `http://${target.kind === 'local' ? '127.0.0.1' : target.host}:${port}/`;
  const sessions: Session[] = hosts.map((host) => ({
    cfg,
    host,
    l,
    who: whoAmI(),
    now: () => new Date(),
    clock: realClock,
    signal: interrupted.signal,
    proxy: proxyFor(cfg),
    runtime,
    ...redirectableLog(),
  }));
  const session = sessions[0] as Session; // connectAll opened one host per DEPLOY_HOSTS entry, and there is one at least
  const closeAll = () => Promise.all(hosts.map((h) => h.close())).then(() => undefined);

  let failure: unknown;
  /** A listr2 list whose tasks send ctx.log lines to their own output (prefixed by host when there are several). */
  const list = (tasks: ListrTask<object>[]) =>
    taskList<object>(
      tasks.map((t) => ({
        ...t,
        task: async (c: object, w: ListrTaskWrapper<object, never, never>) => {
          for (const each of sessions) {
            each.logTo((line) => {
              w.output = sessions.length > 1 ? `${each.host.name}: ${line}` : line;
            });
          }
          try {
            return await (t.task as (c: object, w: unknown) => unknown)(c, w);
          } catch (error) {
            // The list shows the first line beside the task; the one handler prints the whole error.
            failure ??= error;
            throw new Error(firstLine(error));
          }
        },
        rendererOptions: { persistentOutput: true },
      })) as ListrTask<object>[],
    );

  /** Holds the deploy lock on every host, one after another, then runs `fn`; releases them in reverse. */
  const lockAll = (i: number, fn: () => Promise<void>): Promise<void> => {
    const c = sessions[i];
    if (!c) return fn();
    const lockOptions = { command: options.command, version, now: c.now, log: say, forceUnlock: options.forceUnlock ?? false, waitSeconds };
    return withLock(c.host, l, lockOptions, () => lockAll(i + 1, fn));
  };

  return {
    cfg,
    version,
    /** The commit the version was read from (none without git). */
    gitSha: facts?.sha,
    /** The first host, for what is about one host (most environments have one). */
    host: session.host,
    session,
    /** One session per host of DEPLOY_HOSTS, in order. */
    sessions,
    url,
    dryRun,
    close: closeAll,
    /** Production (or DEPLOY_CONFIRM=true) asks first, before any progress is drawn. */
    confirmIf: (question: string, yes: boolean) => (cfg.confirm && !dryRun ? confirm(question, yes) : Promise.resolve()),
    /** Runs `fn` holding the deploy lock on every host (no lock in a dry run), then closes the hosts. */
    withHostLock: async (fn: (makeList: typeof list) => Promise<void>): Promise<void> => {
      try {
        if (dryRun) return await fn(list);
        await lockAll(0, () => fn(list));
      } catch (error) {
        throw failure ?? error;
      } finally {
        await closeAll();
      }
    },
    /**
     * Ends a deploy or rollback from what each host is seen to serve now: `line` when every host
     * serves its run's release and answers healthy (with several hosts, a line for each); else what
     * each serves, and exit 1.
     */
    doneServing: async (all: readonly DeployCtx[], line: string): Promise<void> => {
      if (dryRun) return say(dryRunDone(line));
      const seen = await Promise.all(all.map(async (c) => ({ ...(await observeServing(c)), expected: c.run.id })));
      const fine = seen.every((x) => x.healthy && x.release === x.expected);
      if (fine) return say(all.length > 1 ? [line, ...seen.map((x) => `  ${x.line}`)].join('\n') : line);
      throw new SkiffError(
        [`${line.replace(/: \S+$/, '')}, but not every host is seen serving it healthy: check with \`npx tsx scripts/status.ts ${cfg.env}\``, ...seen.map((x) => x.line)].join('\n  '),
      );
    },
  };
};
