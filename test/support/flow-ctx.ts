/**
 * Sessions and deploy contexts for flow tests: the test app's config, a recording host that starts
 * with the files a test gives it, a clock that moves only when the code sleeps, a proxy fake that
 * notes its switches among the host's events, and the distinctive pieces of the commands the flows
 * send, to match rules and to assert order by.
 */
import { parseConfig, type Config } from '../../lib/config/config.ts';
import type { Clock } from '../../lib/core/clock.ts';
import { REPO_ROOT, layout } from '../../lib/core/paths.ts';
import { targetSlot } from '../../lib/flows/deploy.ts';
import { redirectableLog, withRun, type DeployCtx, type Going, type Plan, type Session } from '../../lib/flows/session.ts';
import type { Proxy } from '../../lib/proxy/proxy.ts';
import { processRuntime } from '../../lib/runtime/process.ts';
import type { Runtime } from '../../lib/runtime/runtime.ts';
import { liveSlot, type HostState, type ReleaseRecord, type SlotState, type StatusEvent } from '../../lib/state/state.ts';
import { anything, ok, RecordingHost, when, type Rule } from './recording-host.ts';

/** The test app: blue-green behind Caddy on 3001/3002, a 1 s health timeout. */
export const BASE_VALUES: Readonly<Record<string, string>> = {
  APP_NAME: 'hello',
  DEPLOY_PATH: '/srv/hello',
  DEPLOY_START: 'node server.js',
  DEPLOY_PROXY: 'caddy',
  DEPLOY_PORTS: '3001,3002',
  DEPLOY_PUBLIC_URL: 'http://127.0.0.1:8080',
  DEPLOY_HEALTH_TIMEOUT: '1',
};

/** The config of the test app, with `values` over the base ones (an empty string removes a key). */
export const testConfig = (values: Readonly<Record<string, string>> = {}, env = 'staging'): Config => {
  const merged = Object.fromEntries(Object.entries({ ...BASE_VALUES, ...values }).filter(([, v]) => v !== ''));
  return parseConfig(env, { values: merged, origin: {}, secretKeys: new Set() }, { root: REPO_ROOT, home: '/home/me' });
};

/** What the flows send, by a piece of the rendered command no other command has. */
export const CMD = {
  tools: 'command -v "$c"',
  find: 'grep -qzxF',
  stop: 'kill -TERM',
  start: 'nohup setsid',
  port: 'echo in-use',
  probe: 'url="http://127.0.0.1:$1$2"',
  publicProbe: '-m "$2" "$1"',
  connections: '$4 == "01"',
  logTail: 'tail -n "$2" "$1"',
  append: 'tail -c 1',
  exists: 'if [ -e "$1" ]',
  listReleases: '*.partial) ;;',
  prepare: 'mkdir -p /srv/hello/releases',
  removePartials: 'rm -rf "$1"/*.partial',
  switchCurrent: 'ln -sfn releases/',
  publishEnv: 'shared/.env.tmp',
  space: 'df -Pk',
  snapshot: '.backup $i.db',
  seal: 'mv -T "$1" "$2" || exit 1',
  listBackups: 'manifest.json" ] && echo',
  check: 'for f in sqlite/*.db files.tar env postgres.dump',
  swap: '.restore-tmp',
  drill: 'trap ',
} as const;

const SLOT_PIDFILE = (slot: string) => `/srv/hello/.skiff/${slot}.pid`;

/** A rule for a slot's command (`CMD.find`, `CMD.stop`): it names the slot's pid file. */
export const forSlot = (piece: string, slot: string, result: ReturnType<typeof ok>): Rule => (c) =>
  c.includes(piece) && c.includes(SLOT_PIDFILE(slot)) ? result : undefined;

/** A rule for the commands of one port: the port check, the direct health probe, the connection count. */
export const forPort = (piece: string, port: number, result: ReturnType<typeof ok>): Rule => (c) =>
  c.includes(piece) && new RegExp(`' sh ${port}( |$)`).test(c) ? result : undefined;

/** Answers of a healthy host where nothing runs yet: the rules of a test go before these. */
export const HAPPY: readonly Rule[] = [
  when(CMD.find, ok('stopped')),
  when(CMD.stop, ok('not-running')),
  when(CMD.start, ok('4242')),
  when(CMD.port, ok('free')),
  when(CMD.probe, ok('200')),
  when(CMD.publicProbe, ok('200')),
  when(CMD.connections, ok('0')),
];

/** A clock that only moves when the code under test sleeps. */
export interface FakeClock extends Clock {
  readonly sleeps: number[];
  readonly elapsed: () => number;
}

export const fakeClock = (): FakeClock => {
  let t = 0;
  const sleeps: number[] = [];
  return {
    now: () => t,
    sleep: async (ms) => {
      sleeps.push(ms);
      t += ms;
    },
    sleeps,
    elapsed: () => t,
  };
};

/** A proxy driver that keeps its port in memory and notes `switch <port>` among the host's events. */
export interface FakeProxy extends Proxy {
  readonly switches: number[];
  port: number | undefined;
}

export const fakeProxy = (
  host: RecordingHost,
  o: { at?: number; failSwitchTo?: readonly number[]; failCurrent?: string; risk?: string } = {},
): FakeProxy => {
  const proxy: FakeProxy = {
    kind: 'caddy',
    switches: [],
    port: o.at,
    check: async () => {},
    switchRisk: async () => o.risk,
    current: async () => {
      if (o.failCurrent) throw new Error(o.failCurrent);
      return proxy.port;
    },
    switchTo: async (_h, port) => {
      proxy.switches.push(port);
      host.note(`switch ${port}`);
      if (o.failSwitchTo?.includes(port)) throw new Error('admin API down');
      proxy.port = port;
    },
  };
  return proxy;
};

export const NOW = new Date('2026-12-01T10:00:00Z');

/** A slot of state.json. */
export const slot = (release: string, port: number, start = 'node server.js'): SlotState => ({
  release,
  version: release.split('-').slice(2).join('-'),
  port,
  start,
  startedAt: '2026-11-30T09:00:00.000Z',
});

/** A state.json with `live` and its slots. */
export const hostState = (live: string | undefined, slots: Record<string, SlotState>): HostState => ({
  app: 'hello',
  env: 'staging',
  live,
  slots,
  updatedAt: '2026-11-30T09:00:00.000Z',
});

/** A release record of releases.jsonl. */
export const release = (id: string, status: ReleaseRecord['status'] = 'live', extra: Partial<ReleaseRecord> = {}): ReleaseRecord => ({
  id,
  version: id.split('-').slice(2).join('-'),
  gitSha: 'abc1234',
  who: 'me@here',
  at: '2026-11-30T09:00:00.000Z',
  status,
  ...extra,
});

export interface FlowSetup {
  readonly cfg?: Config;
  /** Rules of the test: they go before HAPPY. */
  readonly rules?: readonly Rule[];
  readonly state?: HostState;
  readonly history?: readonly (ReleaseRecord | StatusEvent)[];
  /** Other files on the host, by path. */
  readonly files?: Readonly<Record<string, string>>;
  /** The proxy: made with the host (default: a fakeProxy at the live slot's port; none with DEPLOY_PROXY=none). */
  readonly proxy?: (host: RecordingHost) => Proxy | undefined;
  /** Changes to the process runtime (a ship that sends nothing). */
  readonly runtime?: (base: Runtime, host: RecordingHost) => Runtime;
  readonly hostName?: string;
}

export interface FlowSession {
  readonly session: Session;
  readonly host: RecordingHost;
  readonly proxy: Proxy | undefined;
  /** The ports a fake proxy was switched to, in order. */
  readonly switches: readonly number[];
  readonly clock: FakeClock;
  /** The progress lines the flow wrote. */
  readonly logs: string[];
}

/** A session on a recording host that holds the given state, history and files. */
export const flowSession = (s: FlowSetup = {}): FlowSession => {
  const cfg = s.cfg ?? testConfig();
  const l = layout(cfg.path);
  const host = new RecordingHost([...(s.rules ?? []), ...HAPPY, anything], s.hostName ?? 'web1');
  const put = (path: string, text: string) => host.files.set(path, { content: Buffer.from(text), mode: 0o600 });
  if (s.state) put(l.state, `${JSON.stringify(s.state, null, 2)}\n`);
  if (s.history) put(l.history, s.history.map((r) => `${JSON.stringify(r)}\n`).join(''));
  for (const [path, text] of Object.entries(s.files ?? {})) put(path, text);
  const live = liveSlot(s.state);
  const proxy = s.proxy ? s.proxy(host) : cfg.proxy === 'none' ? undefined : fakeProxy(host, { ...(live ? { at: live.release.port } : {}) });
  const base = processRuntime(cfg);
  const clock = fakeClock();
  const logs: string[] = [];
  const session: Session = {
    cfg,
    host,
    l,
    who: 'me@here',
    now: () => NOW,
    clock,
    signal: new AbortController().signal,
    proxy,
    runtime: s.runtime ? s.runtime(base, host) : base,
    ...redirectableLog(),
  };
  session.logTo((line) => logs.push(line));
  const switches = proxy && 'switches' in proxy ? (proxy as FakeProxy).switches : [];
  return { session, host, proxy, switches, clock, logs };
};

export const DEPLOY_ID = '20261201-100000-1.2.0';

export interface FlowCtx extends FlowSession {
  readonly ctx: DeployCtx;
}

/**
 * A deploy's (or with `going`, a rollback's) context. Its plan is what preflight would fix from the
 * state given; `plan: 'unfixed'` leaves it to preflight.
 */
export const deployCtx = (s: FlowSetup & { going?: Partial<Going>; plan?: Plan | 'unfixed' } = {}): FlowCtx => {
  const fs = flowSession(s);
  const cfg = fs.session.cfg;
  const going: Going = { action: 'deploy', id: DEPLOY_ID, version: '1.2.0', gitSha: 'abc1234', start: cfg.start, ...s.going };
  const [ctx] = withRun([fs.session], going);
  if (!ctx) throw new Error('withRun made no context');
  if (s.plan !== 'unfixed') {
    const live = liveSlot(s.state);
    const previous = s.state && live ? { state: s.state, slot: live.release } : undefined;
    ctx.run.fix(s.plan ?? { previous, target: targetSlot(cfg, previous) });
  }
  return { ...fs, ctx };
};

/** What the flow appended to a file of .skiff (releases.jsonl, audit.log), a line each. */
export const appendedTo = (host: RecordingHost, file: string): string[] =>
  host.execs.filter((e) => e.command.includes(CMD.append) && e.command.endsWith(` ${file}`)).map((e) => String(e.options.stdin));

/** The records the flow appended to releases.jsonl. */
export const historyAppended = (host: RecordingHost): Record<string, unknown>[] =>
  appendedTo(host, '/srv/hello/.skiff/releases.jsonl').map((line) => JSON.parse(line) as Record<string, unknown>);

/** The lines the flow appended to audit.log, without their time and who. */
export const auditAppended = (host: RecordingHost): string[] =>
  appendedTo(host, '/srv/hello/.skiff/audit.log').map((line) => line.replace(/^\S+ me@here /, '').trimEnd());

/** The error a promise rejects with (a test error when it resolves). */
export const rejection = async (p: Promise<unknown>): Promise<Error> => {
  try {
    await p;
  } catch (error) {
    if (error instanceof Error) return error;
    throw new Error(`rejected with a non-Error: ${String(error)}`);
  }
  throw new Error('expected a rejection');
};

/** The error a function throws (a test error when it returns). */
export const thrown = (fn: () => unknown): Error => {
  try {
    fn();
  } catch (error) {
    if (error instanceof Error) return error;
    throw new Error(`threw a non-Error: ${String(error)}`);
  }
  throw new Error('expected a throw');
};
