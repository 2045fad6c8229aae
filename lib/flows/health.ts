/** The health gate: poll the slot's health URL on its host until it answers 2xx or a deadline passes. */
import { isOkStatus, probeHealth } from '../commands/supervisor.ts';
import { realClock, type Clock } from '../core/clock.ts';
import { HealthCheckError } from '../core/errors.ts';
import type { Config } from '../config/config.ts';
import type { Cmd } from '../core/cmd.ts';
import type { Host } from '../host/host.ts';

export type { Clock };

/**
 * A probe limits its own request (curl -m, timeout wget); the deadline of its command is that plus
 * this, for a host where neither limit holds (a wget without `timeout`, a slow login).
 */
const PROBE_SLACK_MS = 10_000;
/** The deadline of one probe of askUntilOk, whose probes limit their requests to a few seconds. */
const ASK_DEADLINE_MS = 30_000;

export interface GateOptions {
  readonly port: number;
  readonly path: string;
  readonly timeoutSeconds: number;
  /** False once the process has exited: the gate fails at once instead of waiting out the deadline. */
  readonly isAlive: () => Promise<boolean>;
  /** The last lines of the slot's log, shown when the gate fails. */
  readonly logTail: () => Promise<string>;
  readonly clock?: Clock;
  readonly signal?: AbortSignal;
}

/** Waits for a 2xx from the health URL; throws HealthCheckError with the reason and the log tail. */
export const waitHealthy = async (host: Host, o: GateOptions): Promise<{ ms: number }> => {
  const clock = o.clock ?? realClock;
  const started = clock.now();
  const deadline = started + o.timeoutSeconds * 1000;
  let last = 'no answer';
  for (let attempt = 0; ; attempt++) {
    o.signal?.throwIfAborted();
    const left = Math.max(1, Math.ceil((deadline - clock.now()) / 1000));
    const seconds = Math.min(5, left);
    const status = (await host.exec(probeHealth(o.port, o.path, seconds), { check: false, timeoutMs: seconds * 1000 + PROBE_SLACK_MS })).stdout.trim();
    if (status === 'no-client') throw new HealthCheckError(`${host.name} has neither curl nor wget for the health check: install curl`);
    if (isOkStatus(status)) return { ms: clock.now() - started };
    last = status === '000' || status === '' ? 'no answer' : `HTTP ${status}`;
    if (!(await o.isAlive())) throw failure(host, o, `the app exited before it answered its health check (${last})`, await o.logTail());
    if (clock.now() >= deadline) {
      throw failure(host, o, `no healthy answer from http://127.0.0.1:${o.port}${o.path} within ${o.timeoutSeconds}s (last: ${last})`, await o.logTail());
    }
    await clock.sleep(Math.min(100 * 2 ** attempt, 1000)); // 100, 200, 400 ms ... then every second
  }
};

const failure = (host: Host, o: GateOptions, why: string, tail: string): HealthCheckError =>
  new HealthCheckError(`${host.name}: port ${o.port}: ${why}${tail.trim() ? `\n  last log lines:\n    ${tail.trim().split('\n').join('\n    ')}` : ''}`);

/**
 * The health URL as the public sees it: DEPLOY_HEALTH_PATH on DEPLOY_PUBLIC_URL's origin. A URL's
 * path prefix reaches the app unchanged, so the health path (under the prefix) is already the whole path.
 */
export const publicHealthUrl = (cfg: Config): string => (cfg.publicUrl === undefined ? cfg.health.path : `${new URL(cfg.publicUrl).origin}${cfg.health.path}`);

/**
 * Runs a probe that prints an HTTP status up to `tries` times, 200 ms apart, until it is 2xx; returns
 * the last status. One slow answer right after a switch is not a release that does not serve.
 */
export const askUntilOk = async (host: Host, probe: Cmd, clock: Clock, tries = 5): Promise<string> => {
  let status = '';
  for (let attempt = 0; attempt < tries; attempt++) {
    status = (await host.exec(probe, { check: false, timeoutMs: ASK_DEADLINE_MS })).stdout.trim();
    if (isOkStatus(status)) return status;
    await clock.sleep(200);
  }
  return status;
};
