import { describe, expect, it } from 'vitest';
import { HealthCheckError } from '../../lib/core/errors.ts';
import { askUntilOk, waitHealthy, type Clock, type GateOptions } from '../../lib/flows/health.ts';
import { probeUrl } from '../../lib/commands/proxy.ts';
import { inTurn, ok, RecordingHost } from '../support/recording-host.ts';
import { words } from './shell-words.ts';

/** A clock that only moves when the code under test sleeps. */
const fakeClock = (): Clock & { readonly sleeps: number[]; readonly elapsed: () => number } => {
  const start = 1_700_000_000_000;
  let t = start;
  const sleeps: number[] = [];
  return {
    now: () => t,
    sleep: async (ms) => {
      sleeps.push(ms);
      t += ms;
    },
    sleeps,
    elapsed: () => t - start,
  };
};

const PROBE = /http_code/;

interface Setup {
  readonly statuses: readonly string[];
  readonly alive?: readonly boolean[];
  readonly timeoutSeconds?: number;
  readonly tail?: string;
}

const gate = (s: Setup) => {
  const host = new RecordingHost([inTurn(PROBE, s.statuses.map((st) => ok(`${st}\n`)))], 'deploy@web-1:22');
  const clock = fakeClock();
  let aliveCalls = 0;
  const options: GateOptions = {
    port: 3001,
    path: '/api/health',
    timeoutSeconds: s.timeoutSeconds ?? 10,
    isAlive: async () => s.alive?.[Math.min(aliveCalls++, s.alive.length - 1)] ?? true,
    logTail: async () => s.tail ?? 'booting\nError: EADDRINUSE 3001\n',
    clock,
  };
  return { host, clock, options, probes: () => host.commands.filter((c) => PROBE.test(c)) };
};

const healthError = async (p: Promise<unknown>): Promise<HealthCheckError> => {
  try {
    await p;
  } catch (e) {
    if (e instanceof HealthCheckError) return e;
    throw e;
  }
  throw new Error('expected a HealthCheckError');
};

describe('waitHealthy', () => {
  it.each<[string, string[], number, number[]]>([
    ['the first 200', ['200'], 0, []],
    ['any 2xx', ['204'], 0, []],
    ['through no answer and 503', ['000', '503', '200'], 300, [100, 200]],
    ['an empty answer counts as no answer', ['', '', '', '200'], 700, [100, 200, 400]],
    ['redirects and client errors are not healthy', ['301', '404', '200'], 300, [100, 200]],
    ['backs off to one poll a second', ['000', '000', '000', '000', '000', '000', '000', '200'], 4500, [100, 200, 400, 800, 1000, 1000, 1000]],
  ])('succeeds on %s', async (_name, statuses, ms, sleeps) => {
    const g = gate({ statuses });
    await expect(waitHealthy(g.host, g.options)).resolves.toEqual({ ms });
    expect(g.probes()).toHaveLength(statuses.length);
    expect(g.clock.sleeps).toEqual(sleeps);
    expect(g.host.execs.every((e) => e.options.check === false)).toBe(true);
  });

  it('probes the port and path with a timeout of at most 5 s', async () => {
    const g = gate({ statuses: ['200'], timeoutSeconds: 60 });
    await waitHealthy(g.host, g.options);
    expect(words(g.probes()[0] ?? '').slice(-3)).toEqual(['3001', '/api/health', '5']);
  });

  it('fails after the deadline with the last status and the log tail', async () => {
    const g = gate({ statuses: ['000', '503'], timeoutSeconds: 2 });
    const e = await healthError(waitHealthy(g.host, g.options));
    expect(e.message).toBe(
      [
        'deploy@web-1:22: port 3001: no healthy answer from http://127.0.0.1:3001/api/health within 2s (last: HTTP 503)',
        '  last log lines:',
        '    booting',
        '    Error: EADDRINUSE 3001',
      ].join('\n'),
    );
    expect(e.exitCode).toBe(1);
    // 0, 100, 300, 700, 1500 ms: still before the deadline; 2500 ms: past it.
    expect(g.clock.sleeps).toEqual([100, 200, 400, 800, 1000]);
    expect(g.probes()).toHaveLength(6);
    // The probe's own timeout shrinks with the time left, never under 1 s.
    expect(g.probes().map((c) => words(c).at(-1))).toEqual(['2', '2', '2', '2', '1', '1']);
  });

  it.each<[string, string[], string]>([
    ['no answer', ['000'], 'no answer'],
    ['an error status', ['502'], 'HTTP 502'],
  ])('after the deadline says the last status was %s', async (_name, statuses, last) => {
    const g = gate({ statuses, timeoutSeconds: 1 });
    expect((await healthError(waitHealthy(g.host, g.options))).message).toContain(`within 1s (last: ${last})`);
  });

  it('leaves out the log section when the log is empty', async () => {
    const g = gate({ statuses: ['000'], timeoutSeconds: 1, tail: '  \n' });
    expect((await healthError(waitHealthy(g.host, g.options))).message).not.toContain('\n');
  });

  it.each<[string, string[], boolean[], number, string]>([
    ['at once when the process is gone', ['000'], [false], 1, 'the app exited before it answered its health check (no answer)'],
    ['as soon as the process dies', ['503', '503', '503'], [true, true, false], 3, 'the app exited before it answered its health check (HTTP 503)'],
  ])('fails %s', async (_name, statuses, alive, probes, why) => {
    const g = gate({ statuses, alive, timeoutSeconds: 60 });
    const e = await healthError(waitHealthy(g.host, g.options));
    expect(e.message).toBe(`deploy@web-1:22: port 3001: ${why}\n  last log lines:\n    booting\n    Error: EADDRINUSE 3001`);
    expect(g.probes()).toHaveLength(probes);
    expect(g.clock.elapsed()).toBeLessThan(1000);
  });

  it('fails at once when the host has no HTTP client', async () => {
    const g = gate({ statuses: ['no-client'] });
    const e = await healthError(waitHealthy(g.host, g.options));
    expect(e.message).toBe('deploy@web-1:22 has neither curl nor wget for the health check: install curl');
    expect(g.clock.sleeps).toEqual([]);
  });

  it('stops when aborted', async () => {
    const g = gate({ statuses: ['000'] });
    const controller = new AbortController();
    controller.abort(new Error('stopped by SIGINT'));
    await expect(waitHealthy(g.host, { ...g.options, signal: controller.signal })).rejects.toThrow('stopped by SIGINT');
    expect(g.probes()).toHaveLength(0);
  });
});

describe('deadlines of the probes', () => {
  it('each probe command has a deadline just past the time limit of its own request', async () => {
    const g = gate({ statuses: ['000', '000', '200'], timeoutSeconds: 3 });
    await waitHealthy(g.host, g.options);
    const probes = g.host.execs.filter((e) => PROBE.test(e.command));
    expect(probes.map((e) => words(e.command).at(-1))).toEqual(['3', '3', '3']); // curl -m, wget timeout
    expect(probes.map((e) => e.options.timeoutMs)).toEqual([13_000, 13_000, 13_000]);
  });

  it('askUntilOk gives each try a deadline', async () => {
    const host = new RecordingHost([inTurn(PROBE, [ok('000'), ok('200')])]);
    expect(await askUntilOk(host, probeUrl('http://127.0.0.1:8080/h', 5), fakeClock())).toBe('200');
    expect(host.execs.map((e) => e.options.timeoutMs)).toEqual([30_000, 30_000]);
  });
});
