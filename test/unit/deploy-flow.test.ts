/**
 * The deploy flow's undo paths against a recording host: what an undo could not do is said beside
 * the failure that caused it, on the same error, and never replaces it.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/config.ts';
import { REPO_ROOT, layout } from '../../lib/core/paths.ts';
import { startIdle, switchOver, targetSlot, unstart } from '../../lib/flows/deploy.ts';
import { redirectableLog, withRun, type DeployCtx, type Session } from '../../lib/flows/session.ts';
import type { Proxy } from '../../lib/proxy/proxy.ts';
import { processRuntime } from '../../lib/runtime/process.ts';
import { anything, failed, inTurn, ok, RecordingHost, when, type Rule } from '../support/recording-host.ts';

const cfg = parseConfig(
  'staging',
  {
    values: { APP_NAME: 'hello', DEPLOY_PATH: '/srv/hello', DEPLOY_START: 'node server.js', DEPLOY_PROXY: 'caddy', DEPLOY_PORTS: '3001,3002', DEPLOY_PUBLIC_URL: 'http://127.0.0.1:8080', DEPLOY_HEALTH_TIMEOUT: '1' },
    origin: {},
    secretKeys: new Set(),
  },
  { root: REPO_ROOT, home: '/home/me' },
);

const STOP = 'kill -TERM';
const STATUS = 'grep -qzxF';
const PROBE = 'curl -s -o /dev/null';
const APPEND = 'tail -c 1';

const ctxWith = (rules: Rule[], proxy?: Proxy): { ctx: DeployCtx; host: RecordingHost } => {
  const host = new RecordingHost([...rules, anything], 'web1');
  let t = 0;
  const session: Session = {
    cfg,
    host,
    l: layout(cfg.path),
    who: 'me@here',
    now: () => new Date('2026-12-01T10:00:00Z'),
    clock: { now: () => t, sleep: async (ms) => void (t += ms) },
    signal: new AbortController().signal,
    proxy,
    runtime: processRuntime(cfg),
    ...redirectableLog(),
  };
  const [ctx] = withRun([session], { action: 'deploy', id: '20261201-100000-1.2.0', version: '1.2.0', gitSha: 'abc1234', start: cfg.start });
  if (!ctx) throw new Error('withRun made no context');
  ctx.run.fix({ previous: undefined, target: targetSlot(cfg, undefined) });
  return { ctx, host };
};

describe('deploy flow undo', () => {
  it('startIdle: a gate failure whose stop also fails says both, the gate first, and records the release failed', async () => {
    const { ctx, host } = ctxWith([inTurn(STOP, [ok('not-running'), failed(1, 'kill: permission denied')]), when(STATUS, ok('stopped')), when(PROBE, ok('000'))]);
    const error = (await startIdle(ctx).catch((e: unknown) => e)) as Error;
    const [first, ...rest] = error.message.split('\n');
    expect(first).toMatch(/^web1: port 3001: the app exited before it answered its health check/);
    expect(rest.at(-1)).toMatch(/^ {2}undoing it: could not stop the new release in slot blue: web1: command failed \(exit 1\)/);
    const appended = host.execs.filter((e) => e.command.includes(APPEND)).map((e) => String(e.options.stdin));
    expect(appended.some((line) => line.includes('"status":"failed"'))).toBe(true);
  });

  it('unstart: a stop that fails is an error naming the host, after the release is recorded failed', async () => {
    const { ctx, host } = ctxWith([when(STOP, failed(1, 'no such process group'))]);
    await expect(unstart(ctx, 'web2 failed: unhealthy')).rejects.toThrow(/^could not stop the new release in slot blue: web1: command failed/);
    expect(host.execs.some((e) => e.command.includes(APPEND) && String(e.options.stdin).includes('web2 failed: unhealthy'))).toBe(true);
  });

  it('switchOver: when the proxy cannot be switched back, the new slot keeps running and the error says so', async () => {
    const switches: number[] = [];
    const proxy: Proxy = {
      kind: 'caddy',
      check: async () => {},
      switchRisk: async () => undefined,
      current: async () => 3002,
      switchTo: async (_h, port) => {
        switches.push(port);
        if (port === 3002) throw new Error('admin API down');
      },
    };
    const { ctx, host } = ctxWith([when(/curl -s -o \/dev\/null -w .* -m/, ok('502'))], proxy);
    const error = (await switchOver(ctx, proxy).catch((e: unknown) => e)) as Error;
    expect(switches).toEqual([3001, 3002]);
    expect(error.message.split('\n')[0]).toMatch(/through the proxy; switched back$/);
    expect(error.message).toContain('undoing it: could not switch caddy back to port 3002 (it may still send traffic to the new release): admin API down');
    expect(host.commands.some((c) => c.includes(STOP))).toBe(false);
  });
});
