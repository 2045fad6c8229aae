/**
 * What a command works with on one host. A Session is read-only: the config, the host, its layout,
 * the clock, the proxy and runtime drivers, and where progress lines go. A deploy or a rollback adds
 * its RunRecord: the release it puts live, the plan preflight fixed once (what served before, the
 * slot the release goes to), and what the run did, for its history record and its undo.
 */
import type { Config } from '../config/config.ts';
import type { Clock } from '../core/clock.ts';
import type { Layout } from '../core/paths.ts';
import type { Host } from '../host/host.ts';
import type { Proxy } from '../proxy/proxy.ts';
import type { Runtime } from '../runtime/runtime.ts';
import type { Shipped } from '../ship/folder-ship.ts';
import type { WorkerSpec } from '../config/workers.ts';
import type { HostState, MigrationRecord, ReleaseCmdRecord, SlotState } from '../state/state.ts';

export interface Session {
  readonly cfg: Config;
  readonly host: Host;
  readonly l: Layout;
  /** `user@machine`, for audit lines and history records. */
  readonly who: string;
  readonly now: () => Date;
  readonly clock: Clock;
  readonly signal: AbortSignal;
  /** The proxy driver; undefined with DEPLOY_PROXY=none. */
  readonly proxy: Proxy | undefined;
  /** What runs a slot: a supervised process or a container (DEPLOY_RUNTIME). */
  readonly runtime: Runtime;
  /** Writes a progress line where the current step shows it. */
  readonly log: (line: string) => void;
  /** Points `log` at the output of the step that runs now. */
  readonly logTo: (sink: (line: string) => void) => void;
}

/** A `log` and its `logTo`: lines go to the sink set last (nowhere until one is). */
export const redirectableLog = (): Pick<Session, 'log' | 'logTo'> => {
  let sink: (line: string) => void = () => {};
  return {
    log: (line) => sink(line),
    logTo: (next) => {
      sink = next;
    },
  };
};

/** What served before a run, to go back to. */
export interface Previous {
  readonly state: HostState;
  readonly slot: SlotState;
}

/** Where a release goes on a host: fixed once, by preflight, from what the host's state says. */
export interface Plan {
  readonly previous: Previous | undefined;
  /** The slot the release starts in, and its port: the one slot with proxy `none`, else the idle color. */
  readonly target: { readonly slot: string; readonly port: number };
}

/** The release a deploy or rollback puts live: a new build, or one still on the host. */
export interface Going {
  readonly action: 'deploy' | 'rollback';
  /** The release id the run asks for (a host where that folder exists gets a suffix). */
  readonly id: string;
  readonly version: string;
  readonly gitSha: string | undefined;
  /** The start command: DEPLOY_START, or what an older release ran with. */
  readonly start: string;
  /** Its workers: DEPLOY_WORKERS, or what an older release ran with (docs/workers.md); absent: none. */
  readonly workers?: readonly WorkerSpec[];
}

/** One deploy or rollback on one host: what it puts live, its plan, and what it did so far. */
export class RunRecord {
  readonly action: Going['action'];
  readonly version: string;
  readonly gitSha: string | undefined;
  readonly start: string;
  readonly workers: readonly WorkerSpec[];
  #id: string;
  #claimed = false;
  #plan: Plan | undefined;
  readonly durations: Record<string, number> = {};
  /** What the ship sent. */
  shipped: Shipped | undefined;
  /** The backup taken before this release started (DEPLOY_BACKUP_BEFORE), recorded with it. */
  backupId: string | undefined;
  /** How DEPLOY_RELEASE_CMD went on this host. */
  releaseCmd: ReleaseCmdRecord | undefined;
  /** How DEPLOY_MIGRATE went (the same on every host of the run: it runs on the first). */
  migration: MigrationRecord | undefined;
  /** The port the proxy sent traffic to before this run switched it (to switch back). */
  switchedFrom: number | undefined;

  constructor(going: Going) {
    this.action = going.action;
    this.version = going.version;
    this.gitSha = going.gitSha;
    this.start = going.start;
    this.workers = going.workers ?? [];
    this.#id = going.id;
  }

  /** The release id on this host. */
  get id(): string {
    return this.#id;
  }

  /** Ship claims the id on this host, once: the run's, or with a suffix when that folder exists. */
  claimId(id: string): void {
    if (this.#claimed) throw new Error('a release id is claimed once, by ship');
    this.#claimed = true;
    this.#id = id;
  }

  /** Preflight fixes the plan, once. */
  fix(plan: Plan): void {
    if (this.#plan) throw new Error('the plan of a run is fixed once, by preflight');
    this.#plan = plan;
  }

  get plan(): Plan {
    if (!this.#plan) throw new Error('no plan before preflight');
    return this.#plan;
  }

  get previous(): Previous | undefined {
    return this.plan.previous;
  }

  get target(): Plan['target'] {
    return this.plan.target;
  }
}

/** A deploy's or rollback's context on one host: its session and its run record. */
export interface DeployCtx extends Session {
  readonly run: RunRecord;
}

/** Adds a run record to each session. */
export const withRun = (sessions: readonly Session[], going: Going): DeployCtx[] => sessions.map((s) => ({ ...s, run: new RunRecord(going) }));
