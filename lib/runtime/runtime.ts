/**
 * Runtimes are strategies behind one interface that holds everything that differs between them:
 * what the build makes, what a ship sends, what a host must have, how a slot runs and how a release
 * is removed. The deploy, rollback, start, stop and restore flows are written once and never ask
 * which runtime they have. `process` (lib/runtime/process.ts) ships a folder and runs DEPLOY_START
 * under the pidfile or the systemd supervisor (lib/runtime/systemd.ts); `docker` (lib/runtime/docker.ts) ships an image and runs a container.
 */
import type { Config } from '../config/config.ts';
import type { Host } from '../host/host.ts';
import type { Cmd } from '../core/cmd.ts';
import type { Layout } from '../core/paths.ts';
import type { Shipped, ShipSpec } from '../ship/folder-ship.ts';
import type { ExecWords } from '../commands/exec.ts';
import type { WorkersSpec } from '../commands/workers.ts';
import type { SlotState } from '../state/state.ts';
import { dockerRuntime } from './docker.ts';
import { processRuntime } from './process.ts';

/** A slot's container, where the runtime has one. */
export interface ContainerInfo {
  readonly name: string;
  /** Image id (`sha256:...`). */
  readonly image: string;
  /** Docker's own health check: healthy, unhealthy, starting, or - without one. */
  readonly health: string;
}

/** A slot's systemd unit, with the systemd supervisor. */
export interface UnitInfo {
  readonly name: string;
  /** Whether it starts at boot (`enabled`), as `systemctl is-enabled` says. */
  readonly enabled: string;
  /** How often systemd restarted it after a crash since it was started. */
  readonly restarts: number;
}

export type SlotRun =
  | { readonly state: 'running'; readonly pid: number; readonly pidFileOk: boolean; readonly container?: ContainerInfo; readonly unit?: UnitInfo }
  | { readonly state: 'crashed'; readonly pid: number; readonly container?: ContainerInfo; readonly unit?: UnitInfo }
  | { readonly state: 'stopped'; readonly container?: ContainerInfo; readonly unit?: UnitInfo };

/** How one worker process stands. */
export interface WorkerRun {
  readonly id: string;
  readonly state: 'running' | 'crashed' | 'stopped';
  readonly pid?: number;
  /** How often its supervisor started it again after it exited (systemd, docker; the pidfile supervisor does not). */
  readonly restarts?: number;
}

/**
 * How a supervisor runs the worker processes of a release (DEPLOY_WORKERS, docs/workers.md): the
 * pidfile supervisor in sessions of their own, systemd in a unit each.
 */
export interface WorkerDriver {
  /** How each process stands. */
  find(host: Host, l: Layout, release: string, ids: readonly string[]): Promise<WorkerRun[]>;
  /** Starts the processes named in `spec`. */
  start(host: Host, l: Layout, spec: WorkersSpec): Promise<void>;
  /** Stops them together, `graceSeconds` to finish their jobs: `stopped N`, `killed N` or `not-running`. */
  stop(host: Host, l: Layout, release: string, ids: readonly string[], graceSeconds: number): Promise<string>;
  /** Stops the worker processes of every release but `keep`; returns how many were found. */
  stopStrays(host: Host, l: Layout, keep: readonly string[], graceSeconds: number): Promise<number>;
  /** The last lines a process printed. */
  logTail(host: Host, l: Layout, release: string, id: string, lines: number): Promise<string>;
  /** Where a process's log is, for messages. */
  logName(l: Layout, release: string, id: string): string;
}

/** What a slot runs: a release, on a port, with the start command it was deployed with. */
export interface LaunchSpec {
  readonly slot: string;
  readonly release: string;
  readonly version: string;
  readonly port: number;
  readonly start: string;
}

/** A command to run in a release on a host (DEPLOY_MIGRATE): in its folder, or in its slot's container. */
export interface HookRequest {
  readonly release: string;
  /** The slot the release runs in (the docker runtime runs the command in that slot's container). */
  readonly slot: string;
  readonly version: string;
  readonly command: string;
  readonly timeoutSeconds: number;
}

/** What a build is told: the version, and what its image labels record (docker). */
export interface BuildFacts {
  readonly version: string;
  readonly gitSha: string | undefined;
  readonly builtAt: string;
}

/** What a build made: a line for the user, and the fields of `build.ts --json`. */
export interface Built {
  readonly summary: string;
  readonly json: Readonly<Record<string, string>>;
}

export interface Runtime {
  /** What a slot runs, in the user's words: `process` or `container`. */
  readonly unit: string;
  /** The word before what `halt` names: `pid` (123) or `container` (hello-staging-blue). */
  readonly haltedWord: string;
  /** The titles of the build and ship steps. */
  buildTitle(version: string): string;
  readonly shipTitle: string;
  /** Why there is no build to run (no DEPLOY_BUILD), or undefined when there is one. */
  readonly noBuild: string | undefined;
  /** False when a dry run cannot say what a ship would send (a host's daemon cannot be asked). */
  readonly shipsInDryRun: boolean;
  /** Checks this machine before any host is reached (`willBuild`: this run builds). Throws a usage error. */
  checkLocal(willBuild: boolean): void;
  /** Checks a host for what this runtime needs there; changes nothing. Warnings go to `log`. */
  preflight(host: Host, log: (line: string) => void): Promise<void>;
  /** Builds the release on this machine: DEPLOY_BUILD in APP_DIR, or the image. */
  build(facts: BuildFacts, log: (text: string) => void): Promise<Built>;
  /** Ships the release to `releases/<id>` on a host (the layout exists); returns what was sent. */
  ship(host: Host, l: Layout, spec: ShipSpec, log: (line: string) => void): Promise<Shipped>;
  /** Removes releases from a host: their folders and env files, and what else they hold (image tags). */
  removeReleases(host: Host, l: Layout, ids: readonly string[]): Promise<void>;
  /** Finds what runs in a slot. */
  find(host: Host, l: Layout, slot: string): Promise<SlotRun>;
  /** Starts a release in a slot; returns what started (`pid 123`, `container hello-staging-blue`). */
  launch(host: Host, l: Layout, spec: LaunchSpec): Promise<string>;
  /** Stops a slot, giving it `graceSeconds` to drain: `stopped ...`, `killed ...` or `not-running`. */
  halt(host: Host, l: Layout, slot: string, graceSeconds: number): Promise<string>;
  /** The last lines a slot printed. */
  logTail(host: Host, l: Layout, slot: string, lines?: number): Promise<string>;
  /** Prints a slot's log: the last lines, then new ones with `follow`, until `signal` ends it. */
  showLog(host: Host, l: Layout, slot: string, lines: number, follow: boolean, write: (b: Buffer) => void, signal?: AbortSignal): Promise<void>;
  /**
   * The command that runs `command` with the release's environment under its deadline, its output
   * on stdout: in the release folder (process), or in the slot's running container (docker).
   */
  hookCommand(l: Layout, spec: HookRequest): Cmd;
  /** Where a slot's log is, for status. */
  logName(l: Layout, slot: string): string;
  /**
   * The command that runs `words` in the live release with the app's environment (`exec`): in its
   * folder with its env file (process), or in its running container (docker; refused when it does
   * not run). `tty`: the session has a terminal.
   */
  execIn(host: Host, l: Layout, live: { readonly slot: string; readonly release: SlotState }, words: ExecWords, tty: boolean): Promise<Cmd>;
  /** How the release's workers run; undefined where they are refused (docker: config says so). */
  readonly workers?: WorkerDriver;
}

/** What a supervisor does for the process runtime (pidfile or systemd). */
export type Supervisor = Pick<Runtime, 'preflight' | 'find' | 'launch' | 'halt' | 'logTail' | 'showLog' | 'logName'> & { readonly workers: WorkerDriver };

/** The runtime of an environment. */
export const runtimeFor = (cfg: Config): Runtime => (cfg.runtime === 'docker' ? dockerRuntime(cfg) : processRuntime(cfg));
