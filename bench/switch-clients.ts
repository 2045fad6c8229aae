/**
 * Failed requests during blue-green switches behind each proxy, by kind of client, side by side.
 *
 *   npx tsx bench/switch-clients.ts [--deploys 10] [--rollbacks 5] [--proxies caddy,nginx,haproxy] [--json]
 *
 * For each proxy, on this machine (DEPLOY_HOSTS=local, as the end-to-end tests run): a sandbox with
 * the example app, the proxy started by hand on loopback ports of its own (Caddy 18870-18879, nginx
 * 18880-18882, HAProxy 18890-18892), a first deploy, then N deploys and M rollbacks (back and forth
 * between the two newest releases) while these clients send requests back to back to the health URL:
 *
 * - a new connection per request (`Connection: close`);
 * - ONE kept-alive connection that never sends a failed request again (a new one is opened only
 *   when the proxy closed the old one between two requests: counted as connections);
 * - websockets: the example app has no websocket endpoint, so there is no such column.
 *
 * A failure is a refused, reset, timed-out (5 s) or non-2xx request. Run it alone on the machine:
 * `flock /tmp/skiff-e2e.lock npm run bench:switch`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { haproxyUnderTest, startKeptAliveProbe, type KeptAliveResult } from '../test/support/haproxy.ts';
import { startProbe, type ProbeResult } from '../test/support/probe.ts';
import { caddyUnderTest, nginxUnderTest } from '../test/support/proxies.ts';
import { localEnv, makeSandbox } from '../test/support/sandbox.ts';

const { values } = parseArgs({
  options: {
    deploys: { type: 'string', default: '10' },
    rollbacks: { type: 'string', default: '5' },
    proxies: { type: 'string', default: 'caddy,nginx,haproxy' },
    json: { type: 'boolean', default: false },
  },
});
const count = (name: 'deploys' | 'rollbacks') => {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`--${name} takes a whole number, not ${JSON.stringify(values[name])}\n`);
    process.exit(2);
  }
  return n;
};
const deploys = count('deploys');
const rollbacks = count('rollbacks');

interface UnderTest {
  readonly name: string;
  readonly publicPort: number;
  readonly slots: readonly [number, number];
  start(dir: string): Promise<void>;
  stop(): void | Promise<void>;
  keys(dir: string): string;
}
const all: Record<string, () => UnderTest> = {
  caddy: () => caddyUnderTest(18870),
  nginx: () => nginxUnderTest(18880),
  haproxy: () => haproxyUnderTest(18890),
};
const chosen = (values.proxies ?? '').split(',').filter(Boolean);
const unknown = chosen.filter((p) => !(p in all));
if (unknown.length > 0 || chosen.length === 0) {
  process.stderr.write(`--proxies takes a list of ${Object.keys(all).join(', ')}, not ${JSON.stringify(values.proxies)}\n`);
  process.exit(2);
}

interface Row {
  readonly proxy: string;
  readonly runs: string;
  readonly exitCodes: readonly number[];
  readonly medianMs: number;
  readonly switchMs: number;
  readonly drainMs: number;
  readonly perRequest: ProbeResult;
  readonly keptAlive: KeptAliveResult;
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

const measure = async (proxy: UnderTest): Promise<Row> => {
  const s = makeSandbox(`bench-${proxy.name}`);
  try {
    await proxy.start(s.dir);
    const url = `http://127.0.0.1:${proxy.publicPort}`;
    s.writeEnv('b.env', localEnv(s, proxy.slots[0], [`DEPLOY_PORTS=${proxy.slots.join(',')}`, `DEPLOY_PUBLIC_URL=${url}`, 'DEPLOY_DRAIN_SECONDS=3', proxy.keys(s.dir)].join('\n')));
    const first = await s.run('deploy-vps', ['b']);
    if (first.code !== 0) throw new Error(`${proxy.name}: the first deploy failed: ${first.stderr.trim().split('\n').at(-1)}`);
    const health = `${url}/api/health`;
    const perRequest = startProbe(health, { keepAlive: false, concurrency: 1, timeoutMs: 5000 });
    const keptAlive = startKeptAliveProbe(health, { timeoutMs: 5000 });
    const codes: number[] = [];
    const times: number[] = [];
    const timed = async (script: string, args: string[]) => {
      const t0 = Date.now();
      const r = await s.run(script, args);
      times.push(Date.now() - t0);
      codes.push(r.code ?? 1);
      if (r.code !== 0) process.stderr.write(`${proxy.name}: ${script} exited ${r.code}: ${r.stderr.trim().split('\n').at(-1)}\n`);
    };
    for (let i = 1; i <= deploys; i++) {
      s.setVersion(`1.0.${i}`);
      await timed('deploy-vps', ['b']);
    }
    const ids = (await s.run('rollback', ['b', '--list'])).stdout.match(/\d{8}-\d{6}-[\d.]+/g) ?? [];
    const newest = ids.slice(0, 2); // newest first: [live, the one before]
    for (let i = 0; i < rollbacks; i++) await timed('rollback', ['b', newest[i % 2 === 0 ? 1 : 0] as string]);
    // What each run spent switching the proxy and draining the old slot, as its history records it.
    const records = readFileSync(join(s.deployPath, '.skiff/releases.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => JSON.parse(line) as { durations?: Record<string, number> });
    const step = (name: string) => median(records.flatMap((r) => (r.durations?.[name] === undefined ? [] : [r.durations[name] as number])));
    return {
      proxy: proxy.name,
      runs: `${deploys} deploys + ${rollbacks} rollbacks`,
      exitCodes: codes,
      medianMs: median(times),
      switchMs: step('switch'),
      drainMs: step('drain'),
      perRequest: await perRequest.stop(),
      keptAlive: await keptAlive.stop(),
    };
  } finally {
    await proxy.stop();
    s.cleanup();
  }
};

const rows: Row[] = [];
for (const name of chosen) rows.push(await measure((all[name] as () => UnderTest)()));

if (values.json) {
  process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
} else {
  const cell = (failures: number, requests: number) => `${failures} failed of ${requests}`;
  const table = [
    ['proxy', 'runs (median of each; its switch, its drain)', 'new connection per request', 'one kept-alive connection, never resent', 'websockets held open'],
    ...rows.map((r) => [
      r.proxy,
      `${r.runs} (${Math.round(r.medianMs)} ms; ${Math.round(r.switchMs)} ms, ${Math.round(r.drainMs)} ms)${r.exitCodes.some((c) => c !== 0) ? `, ${r.exitCodes.filter((c) => c !== 0).length} failed` : ''}`,
      cell(r.perRequest.failures, r.perRequest.requests),
      `${cell(r.keptAlive.failures, r.keptAlive.requests)}, ${r.keptAlive.connections} connection${r.keptAlive.connections === 1 ? '' : 's'}`,
      'n/a: the example app has none',
    ]),
  ];
  const widths = (table[0] as string[]).map((_, i) => Math.max(...table.map((row) => (row[i] as string).length)));
  for (const row of table) process.stdout.write(`| ${row.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |\n`);
  for (const r of rows) {
    const errors = [...r.perRequest.firstErrors.map((e) => `new connection: ${e}`), ...r.keptAlive.firstErrors.map((e) => `kept-alive: ${e}`)];
    if (errors.length) process.stdout.write(`${r.proxy}: first errors: ${errors.join('; ')}\n`);
  }
}
