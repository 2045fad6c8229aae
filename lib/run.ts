/**
 * The shared start of every script that acts on an environment: load the config once, connect to
 * the host, build the context, take the lock around the task list, and close the host at the end.
 */
import type { ListrTask, ListrTaskWrapper } from 'listr2';
import { render } from './cmd.ts';
import { confirm, interrupted } from './cli.ts';
import { checkSupported, connect } from './connect.ts';
import { loadConfig, type Config } from './config.ts';
import type { DeployCtx } from './deploy.ts';
import type { ExecOptions, ExecResult, Host, PutOptions } from './host.ts';
import { UsageError } from './errors.ts';
import { withLock } from './lock.ts';
import { layout } from './paths.ts';
import { proxyFor } from './proxy.ts';
import { say, taskList, whoAmI } from './ui.ts';
import { formatVersion, readGitFacts } from './version.ts';
import type { Cmd } from './cmd.ts';

/** A host that prints what it would change. Reads (get) go to the real host; exec prints and succeeds. */
export class DryRunHost implements Host {
  readonly name: string;
  readonly #inner: Host;
  readonly #print: (line: string) => void;
  constructor(inner: Host, print: (line: string) => void) {
    this.#inner = inner;
    this.name = inner.name;
    this.#print = print;
  }
  async exec(command: Cmd, options: ExecOptions = {}): Promise<ExecResult> {
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
}

/** Loads config and connects; returns the pieces a script needs. */
export const prepareRun = async (env: string, options: RunOptions) => {
  const waitSeconds = options.lockWait === undefined ? 0 : Number(options.lockWait);
  if (!Number.isInteger(waitSeconds) || waitSeconds < 0) {
    throw new UsageError(`--lock-wait takes whole seconds, not ${JSON.stringify(options.lockWait)}`);
  }
  const cfg: Config = loadConfig(env);
  checkSupported(cfg);
  const facts = options.needsVersion === false ? undefined : await readGitFacts(cfg.app.dir, cfg.root);
  const version = facts ? formatVersion(facts) : '';
  const dryRun = options.dryRun ?? false;
  const target = cfg.hosts[0];
  if (!target) throw new Error('no host');
  const realHost = await connect(target, cfg);
  const host = dryRun ? new DryRunHost(realHost, (line) => say(line)) : realHost;
  const l = layout(cfg.path);
  const port = cfg.ports[0] as number;
  const url = cfg.publicUrl ?? `http://${target.kind === 'local' ? '127.0.0.1' : target.host}:${port}/`;
  const ctx: DeployCtx = {
    cfg,
    host,
    l,
    version,
    gitSha: facts?.sha,
    who: whoAmI(),
    now: () => new Date(),
    signal: interrupted.signal,
    log: () => {},
    id: '',
    previous: undefined,
    durations: {},
    switched: false,
    proxy: proxyFor(cfg),
    action: options.command === 'rollback' ? 'rollback' : 'deploy',
    start: cfg.start,
  };

  let failure: unknown;
  /** A listr2 list whose tasks send ctx.log lines to their own output. */
  const list = (tasks: ListrTask<DeployCtx>[]) =>
    taskList<DeployCtx>(
      tasks.map((t) => ({
        ...t,
        task: async (c: DeployCtx, w: ListrTaskWrapper<DeployCtx, never, never>) => {
          c.log = (line) => {
            w.output = line;
          };
          try {
            return await (t.task as (c: DeployCtx, w: unknown) => unknown)(c, w);
          } catch (error) {
            // The list shows the first line beside the task; the one handler prints the whole error.
            failure ??= error;
            throw new Error(error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error));
          }
        },
        rendererOptions: { persistentOutput: true },
      })) as ListrTask<DeployCtx>[],
    );

  return {
    cfg,
    version,
    host,
    ctx,
    url,
    dryRun,
    /** Production (or DEPLOY_CONFIRM=true) asks first, before any progress is drawn. */
    confirmIf: (question: string, yes: boolean) => (cfg.confirm && !dryRun ? confirm(question, yes) : Promise.resolve()),
    /** Runs `fn` holding the deploy lock on the host (no lock in a dry run), then closes the host. */
    withHostLock: async (fn: (c: DeployCtx, makeList: typeof list) => Promise<void>): Promise<void> => {
      try {
        if (dryRun) return await fn(ctx, list);
        const lockOptions = { command: options.command, version, now: ctx.now, log: say, forceUnlock: options.forceUnlock ?? false, waitSeconds };
        await withLock(host, l, lockOptions, () => fn(ctx, list));
      } catch (error) {
        throw failure ?? error;
      } finally {
        await host.close();
      }
    },
    done: (line: string) => say(dryRun ? `dry run: nothing was changed (${line.replace(/^deployed/, 'would deploy')})` : line),
  };
};
