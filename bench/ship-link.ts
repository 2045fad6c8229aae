/**
 * First deploys of the example over SSH on a slow link and on plain loopback, with the ship stream
 * packed (DEPLOY_SHIP_COMPRESSION=auto: zstd here) and not (`none`, the stream as it was before).
 *
 *   npx tsx bench/ship-link.ts [--runs 3] [--mbit 20] [--rtt-ms 30] [--json]
 *
 * Starts its own sshd on 127.0.0.11:2231 (test/infra/sshd.sh) and, in this process, a relay on
 * 127.0.0.11:2232 that shapes both directions in user space: each chunk leaves no earlier than half
 * the round trip after it came, and no faster than the rate (a bottleneck with a 256 KB queue; the
 * kernel here has no netem). Each run is a first deploy into an empty DEPLOY_PATH (everything
 * travels), timed at the CLI; the ship step's own time and bytes come from the release record. The
 * app is stopped and its folder removed after each run. Goals: on the slow link the packed first
 * deploy at least 3x faster than the plain one; on loopback no slower.
 */
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatBytes } from '../lib/ship/delta.ts';
import { REPO_ROOT } from '../lib/core/paths.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    mbit: { type: 'string', default: '20' },
    'rtt-ms': { type: 'string', default: '30' },
    json: { type: 'boolean', default: false },
  },
});
const whole = (name: string, text: string | undefined, min: number): number => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`--${name} takes a whole number of at least ${min}, not ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return n;
};
const runs = whole('runs', values.runs, 1);
const mbit = whole('mbit', values.mbit, 1);
const rttMs = whole('rtt-ms', values['rtt-ms'], 0);
if (!existsSync(join(REPO_ROOT, 'example/node_modules'))) {
  process.stderr.write('the example has no node_modules: run `(cd example && npm ci --omit=dev)` first\n');
  process.exit(2);
}

const SSH = { ip: '127.0.0.11', port: 2231, relay: 2232 };
const APP_PORT = 18691;
const QUEUE = 256 * 1024;

/**
 * Pipes `from` into `to` as a link of `bytesPerMs` with `delayMs` one way: a chunk is written when
 * the link has carried what came before it and its delay has passed. Reading pauses while more
 * than QUEUE bytes wait, so the sender feels the bottleneck as TCP would.
 */
const shape = (from: Socket, to: Socket, bytesPerMs: number, delayMs: number): void => {
  let free = 0; // when the link is next free, in ms on performance.now()'s clock
  let queued = 0;
  let ended = false;
  // In order, always: timers of nearly the same moment may fire out of order, and SSH would see a scrambled stream.
  const queue: { readonly chunk: Buffer; readonly at: number }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const pump = (): void => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && (queue[0]?.at ?? 0) <= now) {
      const { chunk } = queue.shift() as { chunk: Buffer; at: number };
      queued -= chunk.length;
      if (!to.destroyed) to.write(chunk);
    }
    if (queued <= QUEUE && from.isPaused()) from.resume();
    if (queue.length > 0) timer = setTimeout(pump, Math.max(0, (queue[0]?.at ?? now) - now));
    else if (ended) to.end();
  };
  from.on('data', (chunk: Buffer) => {
    const now = performance.now();
    free = Math.max(now, free) + chunk.length / bytesPerMs;
    queue.push({ chunk, at: free + delayMs });
    queued += chunk.length;
    if (queued > QUEUE) from.pause();
    timer ??= setTimeout(pump, Math.max(0, free + delayMs - now));
  });
  from.on('end', () => {
    ended = true;
    timer ??= setTimeout(pump, 0);
  });
  from.on('error', () => to.destroy());
};

const relay = createServer((client) => {
  const server = connect(SSH.port, SSH.ip);
  const bytesPerMs = (mbit * 1e6) / 8 / 1000;
  shape(client, server, bytesPerMs, rttMs / 2);
  shape(server, client, bytesPerMs, rttMs / 2);
  server.on('error', () => client.destroy());
  client.on('error', () => server.destroy());
});

const dir = mkdtempSync(join(tmpdir(), 'skiff-ship-link-'));
const sshDir = join(dir, 'sshd');
const app = join(dir, 'app');
const envDir = join(dir, 'env');

type Link = 'slow' | 'loopback';
type Packing = 'auto' | 'none';
interface Run {
  readonly link: Link;
  readonly packing: Packing;
  readonly wallMs: number;
  readonly shipMs: number;
  readonly bytes: number;
}

const writeEnv = (link: Link, packing: Packing, deployPath: string): void =>
  writeFileSync(
    join(envDir, 'link.env'),
    [
      'APP_NAME=hello',
      `APP_DIR=${app}`,
      `DEPLOY_HOSTS=${userInfo().username}@${SSH.ip}:${link === 'slow' ? SSH.relay : SSH.port}`,
      `DEPLOY_SSH_KEY=${join(sshDir, 'id_ed25519')}`,
      `DEPLOY_KNOWN_HOSTS=${join(sshDir, 'known_hosts')}`,
      `DEPLOY_PATH=${deployPath}`,
      `DEPLOY_PORTS=${APP_PORT}`,
      'DEPLOY_START=node server.js',
      `DEPLOY_SHIP_COMPRESSION=${packing}`,
      '',
    ].join('\n'),
  );

const tsx = join(REPO_ROOT, 'node_modules/.bin/tsx');
/** The CLI as a child process: spawnSync would block this process, and with it the relay. */
const cli = (script: string): Promise<{ code: number | null; stderr: string }> =>
  new Promise((resolve) => {
    const child = spawn(tsx, [join(REPO_ROOT, 'scripts', script), 'link', '--yes'], { env: { ...process.env, SKIFF_ENV_DIR: envDir } });
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('close', (code) => resolve({ code, stderr }));
  });

const oneRun = async (link: Link, packing: Packing, n: number): Promise<Run> => {
  const deployPath = join(dir, `srv-${link}-${packing}-${n}`);
  writeEnv(link, packing, deployPath);
  const t0 = performance.now();
  const r = await cli('deploy-vps.ts');
  const wallMs = performance.now() - t0;
  if (r.code !== 0) throw new Error(`deploy on the ${link} link (${packing}) failed: ${r.stderr}`);
  const last = JSON.parse(readFileSync(join(deployPath, '.skiff/releases.jsonl'), 'utf8').trim().split('\n').at(-1) as string) as {
    shipped?: { bytes: number };
    durations?: Record<string, number>;
  };
  await cli('stop.ts');
  rmSync(deployPath, { recursive: true, force: true });
  return { link, packing, wallMs, shipMs: last.durations?.ship ?? Number.NaN, bytes: last.shipped?.bytes ?? Number.NaN };
};

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

const main = async (): Promise<void> => {
  execFileSync('bash', [join(REPO_ROOT, 'test/infra/sshd.sh'), sshDir, SSH.ip, String(SSH.port)], { stdio: 'ignore' });
  // The relay's address carries the same host key.
  const key = readFileSync(join(sshDir, 'known_hosts'), 'utf8').trim().split(' ').slice(1).join(' ');
  appendFileSync(join(sshDir, 'known_hosts'), `[${SSH.ip}]:${SSH.relay} ${key}\n`);
  cpSync(join(REPO_ROOT, 'example'), app, { recursive: true, filter: (src) => !src.endsWith('/example/data') });
  mkdirSync(envDir);
  await new Promise<void>((resolve) => relay.listen(SSH.relay, SSH.ip, resolve));
  const all: Run[] = [];
  // Interleaved, so a slow minute of the machine falls on both sides of a comparison.
  for (let n = 0; n < runs; n++) {
    for (const link of ['slow', 'loopback'] as const) for (const packing of ['none', 'auto'] as const) all.push(await oneRun(link, packing, n));
  }
  const cell = (link: Link, packing: Packing) => {
    const these = all.filter((r) => r.link === link && r.packing === packing);
    return { wallMs: median(these.map((r) => r.wallMs)), shipMs: median(these.map((r) => r.shipMs)), bytes: median(these.map((r) => r.bytes)), runs: these.map((r) => Math.round(r.wallMs)) };
  };
  const table = (['slow', 'loopback'] as const).map((link) => ({ link, plain: cell(link, 'none'), packed: cell(link, 'auto') }));
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ mbit, rttMs, runs, table }, null, 2)}\n`);
    return;
  }
  process.stdout.write(`first deploy of the example over SSH, medians of ${runs} runs; plain = DEPLOY_SHIP_COMPRESSION=none, packed = auto (zstd --adapt, level 1 to 15)\n`);
  for (const { link, plain, packed } of table) {
    const name = link === 'slow' ? `${mbit} Mbit/s, ${rttMs} ms RTT` : 'loopback';
    process.stdout.write(
      `${name.padEnd(24)} shipped ${formatBytes(plain.bytes).padStart(8)} -> ${formatBytes(packed.bytes).padStart(8)}; ` +
        `ship step ${s(plain.shipMs)} -> ${s(packed.shipMs)} (${(plain.shipMs / packed.shipMs).toFixed(2)}x); ` +
        `deploy ${s(plain.wallMs)} -> ${s(packed.wallMs)} (${(plain.wallMs / packed.wallMs).toFixed(2)}x)\n`,
    );
  }
  const slow = table[0];
  const loop = table[1];
  if (slow && loop) {
    process.stdout.write(
      `goal: slow-link first deploy >= 3x faster packed: ${slow.plain.wallMs / slow.packed.wallMs >= 3 ? 'met' : 'NOT met'} (deploy ${(slow.plain.wallMs / slow.packed.wallMs).toFixed(2)}x, ship step ${(slow.plain.shipMs / slow.packed.shipMs).toFixed(2)}x); ` +
        `loopback no slower: ${loop.packed.wallMs <= loop.plain.wallMs * 1.05 ? 'met' : 'NOT met'} (within 5%)\n`,
    );
  }
};

try {
  await main();
} finally {
  relay.close();
  const pid = join(sshDir, 'sshd.pid');
  if (existsSync(pid)) process.kill(Number(readFileSync(pid, 'utf8')), 'SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
