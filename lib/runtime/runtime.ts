/**
 * Runtimes are strategies behind one small interface: the deploy, rollback, start, stop and
 * restore flows are written once and run a slot with either. `process` (lib/runtime/process.ts)
 * runs DEPLOY_START under the pidfile supervisor; `docker` (lib/runtime/docker.ts) runs a container.
 */
import type { Config } from '../config/config.ts';
import type { Host } from '../host/host.ts';
import type { Layout } from '../core/paths.ts';
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

export type SlotRun =
  | { readonly state: 'running'; readonly pid: number; readonly pidFileOk: boolean; readonly container?: ContainerInfo }
  | { readonly state: 'crashed'; readonly pid: number; readonly container?: ContainerInfo }
  | { readonly state: 'stopped'; readonly container?: ContainerInfo };

/** What a slot runs: a release, on a port, with the start command it was deployed with. */
export interface LaunchSpec {
  readonly slot: string;
  readonly release: string;
  readonly version: string;
  readonly port: number;
  readonly start: string;
}

export interface Runtime {
  readonly kind: Config['runtime'];
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
  /** Where a slot's log is, for status. */
  logName(l: Layout, slot: string): string;
}

/** The runtime of an environment. */
export const runtimeFor = (cfg: Config): Runtime => (cfg.runtime === 'docker' ? dockerRuntime(cfg) : processRuntime(cfg.env));
