/**
 * What each kind of client sees while skiff deploys and rolls back behind each proxy, side by side
 * with the seeds' flow, in one run.
 *
 *   flock /tmp/skiff-e2e.lock npx tsx bench/switch-clients.ts [--deploys 10] [--rollbacks 5]
 *     [--proxies caddy,nginx,haproxy] [--prototypes caddy-first,caddy-flag,nginx-backup,nginx-flag|none] [--seeds|--no-seeds]
 *     [--seeds-sleep 10] [--slow-ms 20000] [--websockets 3] [--json] [--save FILE]
 *
 * The app is bench/switch-app/server.js (a health check, GET /slow, a websocket echo on /ws), not the
 * example. For each proxy, on this machine (DEPLOY_HOSTS=local, as the end-to-end tests run): a
 * sandbox, the proxy started by hand on loopback ports of its own (Caddy 18870-18879, nginx
 * 18880-18889, HAProxy 18890-18899), a first deploy, then N deploys and M rollbacks (back and forth
 * between the two newest releases), with DEPLOY_DRAIN_SECONDS=30 and the app's SHUTDOWN_TIMEOUT_MS
 * at 30 s so that a 20 s request can finish on the old slot. Meanwhile, through the public port:
 *
 * - new connection per request: requests back to back, each on a new connection;
 * - kept-alive, never resent: ONE kept-alive connection; a failed request is never sent again;
 * - websockets: `--websockets` held open, each sending a text frame every 250 ms and expecting its
 *   echo; one that ends is recorded (closed by the proxy, closed by the app as its slot stops, or cut
 *   with no close frame) and opened again at once;
 * - 20 s requests: one GET /slow, on a new connection, started just before each deploy or rollback, so
 *   it is in flight at the switch: did it finish, and on which slot?
 *
 * Prototypes (`--prototypes`, hand-written configs in bench/switch-fronts.ts, not skiff's drivers):
 * a Caddy or an nginx of their own with both slots configured once, whose config never changes. Each
 * rides along the run of its proxy (or the last run), watching the same two slots, with the same clients:
 * - caddy-first (port 18875): both slots, `lb_policy first`, lb_try_duration, passive and active checks;
 * - caddy-flag (18876): a `file` matcher on a flag file picks the second slot, else the first;
 * - nginx-backup (18885): the first slot, the second as `backup`, max_fails=0, proxy_next_upstream;
 * - nginx-flag (18886): two upstreams, `if (-f flag)` picks one per request.
 * The first two kinds move to the slot that listens; the flag files follow skiff's switch: the
 * benchmark polls the driver's public URL every 25 ms and flips the flag when another slot answers.
 *
 * The seeds' flow (the baseline, as bench/zero-downtime.ts runs it): a Caddy with one static upstream
 * (port 18873 -> 18874, as the seeds' Caddyfiles have it); N + M times: kill what listens on the port
 * (SIGTERM), copy the app into a fresh folder, start it, sleep `--seeds-sleep` s, curl the health URL.
 *
 * A failure is a refused, reset, timed-out (5 s) or non-2xx request. Run it alone on the machine
 * (about 20 minutes with the defaults); figures in docs/benchmarks.md.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, cpSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { haproxyUnderTest, startKeptAliveProbe, type KeptAliveResult } from '../test/support/haproxy.ts';
import { startProbe, type ProbeResult } from '../test/support/probe.ts';
import { caddyUnderTest, nginxUnderTest } from '../test/support/proxies.ts';
import { localEnv, makeSandbox, ROOT } from '../test/support/sandbox.ts';
import { accepts, caddyFirst, caddyFlag, nginxBackup, nginxFlag, staticCaddy, until, type Front } from './switch-fronts.ts';
import { holdWebsockets, slowRequest, type SlowResult, type WsResult } from './switch-probes.ts';

const usage =
  'usage: npx tsx bench/switch-clients.ts [--deploys 10] [--rollbacks 5] [--proxies caddy,nginx,haproxy] [--prototypes caddy-first,caddy-flag,nginx-backup,nginx-flag|none] [--no-seeds] [--seeds-sleep 10] [--slow-ms 20000] [--websockets 3] [--json] [--save FILE]';
let parsed;
try {
  parsed = parseArgs({
    allowNegative: true,
    options: {
      deploys: { type: 'string', default: '10' },
      rollbacks: { type: 'string', default: '5' },
      proxies: { type: 'string', default: 'caddy,nginx,haproxy' },
      prototypes: { type: 'string', default: 'caddy-first,caddy-flag,nginx-backup,nginx-flag' },
      seeds: { type: 'boolean', default: true },
      'seeds-sleep': { type: 'string', default: '10' },
      'slow-ms': { type: 'string', default: '20000' },
      websockets: { type: 'string', default: '3' },
      json: { type: 'boolean', default: false },
      save: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n${usage}\n`);
  process.exit(2);
}
const { values } = parsed;
if (values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
type CountFlag = 'deploys' | 'rollbacks' | 'seeds-sleep' | 'slow-ms' | 'websockets';
const count = (name: CountFlag, max: number) => {
  const n = Number(values[name]);
  if (!/^\d+$/.test(values[name] ?? '') || n > max) {
    process.stderr.write(`--${name} takes a whole number from 0 to ${max}, not ${JSON.stringify(values[name])}\n`);
    process.exit(2);
  }
  return n;
};
const deploys = count('deploys', 100);
const rollbacks = count('rollbacks', 100);
const seedsSleep = count('seeds-sleep', 60);
const slowMs = count('slow-ms', 25_000); // DEPLOY_DRAIN_SECONDS=30 below must outlast it
const websockets = count('websockets', 20);

interface Driver {
  readonly name: string;
  readonly publicPort: number;
  readonly slots: readonly [number, number];
  start(dir: string): Promise<void>;
  stop(): void | Promise<void>;
  keys(dir: string): string;
}
const drivers: Record<string, () => Driver> = {
  caddy: () => caddyUnderTest(18870),
  nginx: () => nginxUnderTest(18880),
  haproxy: () => haproxyUnderTest(18890),
};
const list = (flag: 'proxies' | 'prototypes', known: readonly string[]) => {
  const raw = values[flag] ?? '';
  const names = raw === 'none' ? [] : raw.split(',').filter(Boolean);
  const bad = names.filter((n) => !known.includes(n));
  if (bad.length > 0 || (flag === 'proxies' && names.length === 0)) {
    process.stderr.write(`--${flag} takes a list of ${known.join(', ')}${flag === 'prototypes' ? ', or none' : ''}, not ${JSON.stringify(raw)}\n`);
    process.exit(2);
  }
  return names;
};
const chosen = list('proxies', Object.keys(drivers));
const makers: Record<string, { readonly port: number; readonly make: (port: number, slots: readonly [number, number]) => Front }> = {
  'caddy-first': { port: 18875, make: caddyFirst },
  'caddy-flag': { port: 18876, make: caddyFlag },
  'nginx-backup': { port: 18885, make: nginxBackup },
  'nginx-flag': { port: 18886, make: nginxFlag },
};
const prototypes = list('prototypes', Object.keys(makers));

// ---- the clients -----------------------------------------------------------------------------

interface Clients {
  readonly front: string;
  readonly perRequest: ProbeResult;
  readonly keptAlive: KeptAliveResult;
  readonly websockets: WsResult;
  readonly slow: readonly (SlowResult & { readonly oldPort: number | undefined; readonly newPort: number | undefined })[];
}

const startClients = (front: Front) => {
  const base = `http://127.0.0.1:${front.port}`;
  const perRequest = startProbe(`${base}/api/health`, { keepAlive: false, concurrency: 1, timeoutMs: 5000 });
  const keptAlive = startKeptAliveProbe(`${base}/api/health`, { timeoutMs: 5000 });
  const ws = holdWebsockets(front.port, '/ws', { count: websockets });
  const slow: Promise<Clients['slow'][number]>[] = [];
  return {
    /** Starts a long request; `ports()` tells, once the run is over, which slot was old and which new. */
    slowOne(ports: () => { oldPort: number | undefined; newPort: number | undefined }) {
      slow.push(slowRequest(`${base}/slow?ms=${slowMs}`, slowMs + 30_000).then((r) => ({ ...r, ...ports() })));
    },
    stop: async (): Promise<Clients> => ({
      front: front.name,
      perRequest: await perRequest.stop(),
      keptAlive: await keptAlive.stop(),
      websockets: await ws.stop(),
      slow: await Promise.all(slow),
    }),
  };
};

// ---- one proxy's run ---------------------------------------------------------------------------

interface Run {
  readonly proxy: string;
  readonly runs: string;
  readonly exitCodes: readonly number[];
  readonly medianMs: number;
  readonly switchMs: number;
  readonly starts: readonly number[];
  readonly clients: readonly Clients[];
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};
const say = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
const appEnv = [`SHUTDOWN_TIMEOUT_MS=30000`, `SLOW_MS=${slowMs}`];

const measure = async (driver: Driver, extras: readonly Front[]): Promise<Run> => {
  const s = makeSandbox(`bench-${driver.name}`);
  const fronts: Front[] = [{ name: driver.name, port: driver.publicPort, start: () => Promise.resolve(), stop: () => undefined }, ...extras];
  try {
    rmSync(s.appDir, { recursive: true, force: true });
    cpSync(join(ROOT, 'bench/switch-app'), s.appDir, { recursive: true });
    await driver.start(s.dir);
    for (const f of extras) await f.start(s.dir);
    const url = `http://127.0.0.1:${driver.publicPort}`;
    const extra = [`DEPLOY_PORTS=${driver.slots.join(',')}`, `DEPLOY_PUBLIC_URL=${url}`, 'DEPLOY_DRAIN_SECONDS=30', driver.keys(s.dir), ...appEnv];
    s.writeEnv('b.env', localEnv(s, driver.slots[0], extra.join('\n')));
    const first = await s.run('deploy-vps', ['b']);
    if (first.code !== 0) throw new Error(`${driver.name}: the first deploy failed: ${first.stderr.trim().split('\n').at(-1)}`);
    const livePort = () => {
      const st = JSON.parse(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')) as { live?: string; slots?: Record<string, { port?: number }> };
      return st.live ? st.slots?.[st.live]?.port : undefined;
    };
    // The flag-switched prototypes follow the driver: a poll of its public URL every 25 ms (a new
    // connection each) flips their flag file when another slot answers, as a driver would at its switch.
    const followers = extras.filter((f) => f.follow !== undefined);
    let following = followers.length > 0;
    let answering = livePort();
    for (const f of followers) f.follow?.(answering as number);
    const follow = (async () => {
      while (following) {
        const r = await slowRequest(`${url}/api/health`, 1000);
        if (r.port !== undefined && r.port !== answering) {
          answering = r.port;
          for (const f of followers) f.follow?.(answering);
        }
        await new Promise((res) => setTimeout(res, 25));
      }
    })();
    const clients = fronts.map(startClients);
    await new Promise((r) => setTimeout(r, 1000)); // the websockets open, the probes get going
    const codes: number[] = [];
    const times: number[] = [];
    const starts: number[] = [];
    const timed = async (script: string, args: string[], what: string) => {
      const oldPort = livePort();
      let newPort: number | undefined;
      for (const c of clients) c.slowOne(() => ({ oldPort, newPort }));
      await new Promise((r) => setTimeout(r, 200)); // the long requests reach the old slot
      const t0 = Date.now();
      starts.push(t0);
      const r = await s.run(script, args);
      newPort = livePort();
      times.push(Date.now() - t0);
      codes.push(r.code ?? 1);
      say(`${driver.name}: ${what} exited ${r.code} in ${((Date.now() - t0) / 1000).toFixed(1)} s (slot ${oldPort} -> ${newPort})`);
      if (r.code !== 0) process.stderr.write(`${driver.name}: ${script} exited ${r.code}: ${r.stderr.trim().split('\n').at(-1)}\n`);
    };
    for (let i = 1; i <= deploys; i++) {
      s.setVersion(`1.0.${i}`);
      await timed('deploy-vps', ['b'], `deploy ${i}`);
    }
    const ids = (await s.run('rollback', ['b', '--list'])).stdout.match(/\d{8}-\d{6}-[\d.]+/g) ?? [];
    const newest = ids.slice(0, 2); // newest first: [live, the one before]
    for (let i = 0; i < rollbacks; i++) await timed('rollback', ['b', newest[i % 2 === 0 ? 1 : 0] as string], `rollback ${i + 1}`);
    const records = readFileSync(join(s.deployPath, '.skiff/releases.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => JSON.parse(line) as { durations?: Record<string, number> });
    const switchMs = median(records.flatMap((r) => (r.durations?.switch === undefined ? [] : [r.durations.switch])));
    const results: Clients[] = [];
    for (const c of clients) results.push(await c.stop());
    following = false;
    await follow;
    return { proxy: driver.name, runs: `${deploys} deploys + ${rollbacks} rollbacks`, exitCodes: codes, medianMs: median(times), switchMs, starts, clients: results };
  } finally {
    for (const f of extras) await f.stop();
    await driver.stop();
    s.cleanup();
  }
};

// ---- the seeds' flow -------------------------------------------------------------------------

const measureSeeds = async (): Promise<Run> => {
  const port = 18874;
  const dir = mkdtempSync(join(tmpdir(), 'skiff-bench-seeds-'));
  const front = staticCaddy('seeds-caddy', 18873, [{ handle: [{ handler: 'reverse_proxy', upstreams: [{ dial: `127.0.0.1:${port}` }] }] }]);
  const started: ChildProcess[] = [];
  const listenerPid = (): number | undefined => {
    const m = /pid=(\d+)/.exec(spawnSync('ss', ['-ltnpH', `sport = :${port}`], { encoding: 'utf8' }).stdout);
    return m ? Number(m[1]) : undefined;
  };
  const app = join(dir, 'app');
  const startApp = () => {
    rmSync(app, { recursive: true, force: true }); // "copy the new version"
    cpSync(join(ROOT, 'bench/switch-app'), app, { recursive: true });
    const log = openSync(join(dir, 'app.log'), 'a');
    started.push(spawn('node', ['server.js'], { cwd: app, detached: true, stdio: ['ignore', log, log], env: { ...process.env, PORT: String(port), SHUTDOWN_TIMEOUT_MS: '30000', SLOW_MS: String(slowMs) } }));
    closeSync(log);
  };
  try {
    if (await accepts(port)) throw new Error(`port ${port} is taken, and the seeds' flow needs it: stop what listens there, or pass --no-seeds`);
    startApp();
    await until(() => accepts(port), "the seeds' app");
    await front.start(dir);
    const clients = startClients(front);
    await new Promise((r) => setTimeout(r, 1000));
    const codes: number[] = [];
    const times: number[] = [];
    const starts: number[] = [];
    for (let i = 1; i <= deploys + rollbacks; i++) {
      clients.slowOne(() => ({ oldPort: port, newPort: port }));
      await new Promise((r) => setTimeout(r, 200));
      const t0 = Date.now();
      starts.push(t0);
      const pid = listenerPid(); // "stop the old version"
      if (pid !== undefined) process.kill(pid, 'SIGTERM');
      while (listenerPid() !== undefined) await new Promise((r) => setTimeout(r, 50));
      startApp();
      await new Promise((r) => setTimeout(r, seedsSleep * 1000)); // "wait for it to start"
      codes.push(spawnSync('curl', ['-fsS', '-o', '/dev/null', `http://127.0.0.1:${port}/api/health`]).status ?? 1);
      times.push(Date.now() - t0);
      say(`seeds: run ${i} exited ${codes.at(-1)} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    const result = await clients.stop();
    return { proxy: "seeds' flow", runs: `${deploys + rollbacks} runs (stop, copy, start, sleep ${seedsSleep} s)`, exitCodes: codes, medianMs: median(times), switchMs: NaN, starts, clients: [result] };
  } finally {
    await front.stop();
    for (const c of started) if (c.exitCode === null && c.pid !== undefined) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
};

// ---- run and report --------------------------------------------------------------------------

const runs: Run[] = [];
// --save writes the figures so far after each run: a later run that fails leaves the earlier ones.
const save = () => values.save && writeFileSync(values.save, `${JSON.stringify(runs, null, 2)}\n`);
const attempt = async (what: string, run: () => Promise<Run>) => {
  try {
    runs.push(await run());
  } catch (e) {
    process.stderr.write(`${what}: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
  save();
};
if (values.seeds) await attempt("the seeds' flow", measureSeeds);
for (const [i, name] of chosen.entries()) {
  const driver = (drivers[name] as () => Driver)();
  // A prototype rides along the run of its own proxy (or the last run): it watches the same two slots.
  const rides = (p: string) => p.split('-')[0] === name || (i === chosen.length - 1 && !chosen.includes(p.split('-')[0] as string));
  const extras = prototypes.filter(rides).map((p) => (makers[p] as (typeof makers)[string]).make((makers[p] as (typeof makers)[string]).port, driver.slots));
  await attempt(name, () => measure(driver, extras));
}

const label: Record<string, string> = {
  "seeds' flow": "seeds' flow (Caddy, one upstream)",
  'seeds-caddy': "seeds' flow (Caddy, one upstream)",
  caddy: "Caddy (skiff's driver: flag file)",
  nginx: "nginx (skiff's driver: flag file)",
  haproxy: "HAProxy (skiff's driver: runtime API)",
  'caddy-first': 'Caddy, both slots once, lb_policy first (prototype)',
  'caddy-flag': 'Caddy, both slots once, file matcher on a flag file (prototype)',
  'nginx-backup': 'nginx, both slots once, backup server (prototype)',
  'nginx-flag': 'nginx, both slots once, if (-f flag file) (prototype)',
};

const wsCell = (w: WsResult, starts: readonly number[]) => {
  const by = (k: 'app' | 'proxy' | 'cut') => w.ends.filter((e) => e.by === k);
  const after = (ends: readonly { at: number }[]) => {
    const offsets = ends.flatMap((e) => {
      const s = [...starts].reverse().find((t) => t <= e.at);
      return s === undefined ? [] : [(e.at - s) / 1000];
    });
    return offsets.length ? ` (median ${median(offsets).toFixed(1)} s into the run)` : '';
  };
  const lost = w.ends.reduce((n, e) => n + e.lost, 0);
  if (w.opened === 0) return `${w.held} to hold: none opened in ${w.handshakeFailures} upgrades (${w.firstErrors[0] ?? 'no answer'})`;
  return [
    `${w.held} held: ${by('proxy').length} closed by the proxy${after(by('proxy'))}, ${by('cut').length} cut with no close frame${after(by('cut'))}`,
    `${by('app').length} closed by the app as its slot stopped${after(by('app'))}`,
    `${lost} echoes lost, ${w.handshakeFailures} upgrades failed, ${w.echoes} echoes`,
  ].join('; ');
};
const slowCell = (slow: Clients['slow']) => {
  const ok = slow.filter((r) => r.status === 200);
  const onOld = ok.filter((r) => r.port !== undefined && r.port === r.oldPort && r.oldPort !== r.newPort).length;
  const same = ok.filter((r) => r.oldPort === r.newPort).length;
  const onNew = ok.length - onOld - same;
  const failed = slow.filter((r) => r.status !== 200);
  const errors = [...new Set(failed.map((r) => `${r.error} after ${(r.ms / 1000).toFixed(1)} s`))].slice(0, 2);
  return [
    `${ok.length} of ${slow.length} finished`,
    same === ok.length ? (ok.length ? ' (one slot: on the old process, which the stop let finish)' : '') : `: ${onOld} on the old slot${onNew ? `, ${onNew} on the new one` : ''}`,
    same && same !== ok.length ? `, ${same} with the slot unchanged` : '',
    failed.length ? `; ${failed.length} failed (${errors.join('; ')})` : '',
  ].join('');
};

if (values.json) {
  process.stdout.write(`${JSON.stringify(runs, null, 2)}\n`);
} else {
  const cell = (failures: number, requests: number) => `${failures} failed of ${requests}`;
  const header = ['front end', 'runs (median)', 'new connection per request', 'one kept-alive connection, never resent', `websockets held open`, `${slowMs / 1000} s requests in flight at the switch`];
  const table = [header];
  for (const r of runs)
    for (const c of r.clients)
      table.push([
        label[c.front] ?? c.front,
        c.front === r.proxy || r.proxy === "seeds' flow"
          ? `${r.runs}${Number.isNaN(r.medianMs) ? '' : `: ${(r.medianMs / 1000).toFixed(1)} s`}${Number.isNaN(r.switchMs) ? '' : ` (switch ${Math.round(r.switchMs)} ms)`}${r.exitCodes.some((x) => x !== 0) ? `, ${r.exitCodes.filter((x) => x !== 0).length} failed` : ''}`
          : `the same runs as ${r.proxy}`,
        cell(c.perRequest.failures, c.perRequest.requests),
        `${cell(c.keptAlive.failures, c.keptAlive.requests)}, ${c.keptAlive.connections} connection${c.keptAlive.connections === 1 ? '' : 's'}`,
        wsCell(c.websockets, r.starts),
        slowCell(c.slow),
      ]);
  for (const row of table) process.stdout.write(`| ${row.join(' | ')} |\n`);
  for (const r of runs)
    for (const c of r.clients) {
      const errors = [
        ...c.perRequest.firstErrors.map((e) => `new connection: ${e}`),
        ...c.keptAlive.firstErrors.map((e) => `kept-alive: ${e}`),
        ...c.websockets.firstErrors.map((e) => `websocket ${e}`),
        ...[...new Set(c.websockets.ends.filter((e) => e.by !== 'app').map((e) => `websocket ended: ${e.by}, ${e.detail}`))].slice(0, 3),
      ];
      if (errors.length) process.stdout.write(`${c.front}: first errors: ${errors.join('; ')}\n`);
    }
}
