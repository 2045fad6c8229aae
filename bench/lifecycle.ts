/**
 * Coming back by itself: how long a deployed app takes to serve again after a crash and after a
 * reboot of its host, against the app's own boot time measured in the same run.
 *
 *   npx tsx bench/lifecycle.ts [--runs 5] [--json]        # or BENCH_RUNS=5; needs root and Docker
 *
 * It makes a real systemd host (test/support/systemd-host.ts: a Debian 12 container with systemd as
 * PID 1 and Caddy, reached over real OpenSSH at 127.0.0.1:2297, container skiff-bench-lifecycle),
 * runs `setup` and deploys the example app there twice: env `t` with DEPLOY_SUPERVISOR=systemd
 * behind Caddy (public port 8080, slots 3001,3002), env `p` with DEPLOY_SUPERVISOR=pidfile (public
 * port 8084, slots 3031,3032). Then, in each of N rounds, in this order:
 *
 *   1. app boot (the baseline): `systemctl stop` of t's live unit, then `systemctl start` issued ->
 *      first 2xx on its slot port. (Not `systemctl restart`: the old process would answer while
 *      the restart waits for it to stop.)
 *   2. app boot by hand: `node server.js` started in the release folder on a spare port -> first 2xx.
 *   3. systemd, kill -9 of the app's process -> first 2xx through Caddy (the public URL). The unit's
 *      MainPID is the launcher's `sh -c "node server.js"` when that shell does not exec the app;
 *      then kill -9 of MainPID is measured as well (systemd then stops the app with SIGTERM).
 *   4. systemd, host reboot: `docker restart` issued -> first 2xx through Caddy and on the slot
 *      port, with no skiff command.
 *   5. pidfile, host reboot: `docker restart` issued, then `npx tsx scripts/start.ts p` run as soon
 *      as sshd answers (the step a human has to take) -> first 2xx through Caddy.
 *
 * Every poll runs inside the host (`docker exec` of a small Node script), a new request every 20 ms
 * with a new connection each, so SSH costs nothing in the figures. Times are wall-clock
 * milliseconds; the container shares this machine's kernel and clock, so times taken inside and
 * outside it compare. After a reboot the poller starts once `docker restart` returns; a round in
 * which its very first request already got a 2xx is flagged (its figure would be an upper bound).
 * Goal: each within 2 s of the app's boot time (median against median). Figures only, no assertions.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../lib/core/paths.ts';
import { makeSandbox, runProcess, type RunResult } from '../test/support/sandbox.ts';
import { startSystemdHost, systemdHostSkip, type SystemdHost } from '../test/support/systemd-host.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: process.env.BENCH_RUNS ?? '5' }, json: { type: 'boolean', default: false } } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write(`--runs (or BENCH_RUNS) takes a whole number of at least 1, not ${JSON.stringify(values.runs)}\n`);
  process.exit(2);
}
const skip = systemdHostSkip();
if (skip) {
  process.stderr.write(`cannot run: ${skip}\n`);
  process.exit(2);
}

const NAME = 'skiff-bench-lifecycle';
const SSH_PORT = 2297;
const T = { public: 8080, slots: [3001, 3002], path: '/srv/hello' };
const P = { public: 8084, slots: [3031, 3032], path: '/srv/hello-p' };
const BY_HAND_PORT = 3009;
const HEALTH = '/api/health';
const RESTART_SEC_MS = 1000; // RestartSec=1 in the unit (lib/commands/systemd.ts)
const GOAL_MS = 2000;
const POLLER = '/usr/local/lib/skiff-bench-poll.cjs'; // not under /tmp: systemd empties /tmp at boot

/**
 * Runs inside the host. Argument: JSON {urls, timeoutMs, kill?, run?, spawn?, cwd?, env?, afterFailure?}.
 * Takes t0, then kills `kill` (SIGKILL) or starts `run` / `spawn` (argv), and from then on sends a GET
 * to each URL every 20 ms (a new connection each, every request on its own: a slow one delays no
 * other) until each has answered 2xx once (with afterFailure: once after a failed request, so that a
 * dying process still answering is not counted). Prints the wall-clock times and counts as JSON. A
 * `spawn`ed process is killed at the end.
 */
const POLL_SCRIPT = `
const http = require('http');
const { spawn } = require('child_process');
const o = JSON.parse(process.argv[2]);
const agent = new http.Agent({ keepAlive: false });
const first = o.urls.map(() => null), firstPollOk = o.urls.map(() => false), sent = o.urls.map(() => 0), failed = o.urls.map(() => 0);
let child, runExit = null;
const t0 = Date.now();
if (o.kill) process.kill(o.kill, 'SIGKILL');
if (o.run) spawn(o.run[0], o.run.slice(1), { stdio: 'ignore' }).on('close', (c) => (runExit = c));
if (o.spawn) child = spawn(o.spawn[0], o.spawn.slice(1), { cwd: o.cwd, env: { ...process.env, ...o.env }, stdio: 'ignore' });
const pollStart = Date.now();
const tick = () => o.urls.forEach((url, i) => {
  if (first[i] !== null) return;
  const n = sent[i]++;
  const req = http.get(url, { agent, timeout: 3000 }, (res) => {
    res.resume();
    if (res.statusCode >= 200 && res.statusCode < 300) { if (first[i] === null && (!o.afterFailure || failed[i] > 0)) { first[i] = Date.now(); firstPollOk[i] = n === 0; } }
    else failed[i]++;
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', () => failed[i]++);
});
const end = () => {
  clearInterval(timer);
  if (child) child.kill('SIGKILL');
  process.stdout.write(JSON.stringify({ t0, pollStart, first, firstPollOk, sent, failed, runExit }) + '\\n');
  process.exit(0);
};
const timer = setInterval(() => { if (first.every((f) => f !== null) || Date.now() - t0 > o.timeoutMs) end(); else tick(); }, 20);
tick();
`;

interface Poll {
  readonly t0: number;
  readonly pollStart: number;
  readonly first: (number | null)[];
  readonly firstPollOk: boolean[];
  readonly sent: number[];
  readonly failed: number[];
  readonly runExit: number | null;
}
interface PollOptions {
  readonly urls: readonly string[];
  readonly timeoutMs: number;
  readonly kill?: number;
  readonly run?: readonly string[];
  readonly spawn?: readonly string[];
  readonly cwd?: string;
  readonly env?: Record<string, string>;
  readonly afterFailure?: boolean;
}

const docker = (args: readonly string[]): Promise<RunResult> => runProcess(['docker', ...args], { cwd: REPO_ROOT, env: process.env });
/** Runs the poller once; undefined when docker exec could not run it (the container is not up). */
const pollOnce = async (o: PollOptions): Promise<Poll | undefined> => {
  const r = await docker(['exec', NAME, 'node', POLLER, JSON.stringify(o)]);
  if (r.code !== 0) return undefined;
  return JSON.parse(r.stdout) as Poll;
};
const poll = async (o: PollOptions): Promise<Poll> => {
  const p = await pollOnce(o);
  if (!p) throw new Error(`the poller did not run in ${NAME}`);
  return p;
};
/** The poller as soon as docker exec works (right after a restart). */
const pollWhenUp = async (o: PollOptions): Promise<Poll> => {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const p = await pollOnce(o);
    if (p) return p;
    if (Date.now() > deadline) throw new Error(`${NAME} did not accept docker exec within 60 s`);
    await sleep(20);
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};
const must = (what: string, r: RunResult): RunResult => {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
  return r;
};
/** Docker's StartedAt (RFC 3339 with nanoseconds) in epoch milliseconds. */
const startedAt = async (): Promise<number> => {
  const iso = must('docker inspect', await docker(['inspect', '-f', '{{.State.StartedAt}}', NAME])).stdout.trim();
  return Date.parse(iso.replace(/(\.\d{3})\d*/, '$1'));
};

const s = makeSandbox('bench-lifecycle');
let host: SystemdHost | undefined;
try {
  host = await startSystemdHost({ name: NAME, port: SSH_PORT, dir: join(s.dir, 'host') });
  const h = host;
  const pollerFile = join(s.dir, 'poll.cjs');
  writeFileSync(pollerFile, POLL_SCRIPT);
  must('docker cp', await docker(['cp', pollerFile, `${NAME}:${POLLER}`]));

  const envFile = (name: string, e: typeof T, supervisor: string) =>
    s.writeEnv(
      `${name}.env`,
      [
        h.env('root'),
        'APP_NAME=hello',
        `APP_DIR=${s.appDir}`,
        `DEPLOY_PATH=${e.path}`,
        `DEPLOY_PORTS=${e.slots.join(',')}`,
        'DEPLOY_START=node server.js',
        'DEPLOY_PROXY=caddy',
        `DEPLOY_PUBLIC_URL=http://127.0.0.1:${e.public}`,
        `DEPLOY_SUPERVISOR=${supervisor}`,
        'DEPLOY_HEALTH_TIMEOUT=20',
        'DEPLOY_DRAIN_SECONDS=3',
      ].join('\n'),
    );
  envFile('t', T, 'systemd');
  envFile('p', P, 'pidfile');
  for (const env of ['t', 'p']) {
    must(`setup ${env}`, await s.run('setup', [env]));
    must(`deploy-vps ${env}`, await s.run('deploy-vps', [env]));
  }
  const status = must('status t', await s.run('status', ['t'])).stdout;
  const unit = /unit (\S+\.service)/.exec(status)?.[1];
  const tPort = Number(/proxy\s+caddy -> port (\d+)/.exec(status)?.[1]);
  const pPort = Number(/proxy\s+caddy -> port (\d+)/.exec(must('status p', await s.run('status', ['p'])).stdout)?.[1]);
  if (!unit || !tPort || !pPort) throw new Error(`cannot read the live unit and ports from status:\n${status}`);
  const url = (port: number) => `http://127.0.0.1:${port}${HEALTH}`;
  const mainPid = async () => Number(must('systemctl show', await h.exec(`systemctl show -p MainPID --value ${unit}`)).stdout.trim());
  const mainComm = (await h.exec(`ps -o args= -p ${await mainPid()}`)).stdout.trim();
  /**
   * The app's own process: the unit's main pid is the launcher's `sh -c "<DEPLOY_START>"` when that
   * shell does not exec the command, and then the app is its child. A crash is the app dying.
   */
  const appPid = async (): Promise<number> => {
    const main = await mainPid();
    const child = /^\s*(\d+)\s+node server\.js$/m.exec((await h.exec(`ps -o pid=,args= --ppid ${main}`)).stdout)?.[1];
    return child ? Number(child) : main;
  };
  const appComm = (await h.exec(`ps -o args= -p ${await appPid()}`)).stdout.trim();
  const mainIsShell = (await appPid()) !== (await mainPid());
  const releaseDir = must('readlink', await h.exec(`readlink -f ${T.path}/current`)).stdout.trim();
  const booted = async () => {
    await h.exec('systemctl is-system-running --wait', { timeoutMs: 90_000 });
    await sleep(1000);
  };
  // The same step a human types, with the sandbox's env folder and HOME.
  const humanEnv: NodeJS.ProcessEnv = { ...process.env, HOME: s.home, SKIFF_ENV_DIR: s.envDir };
  for (const k of Object.keys(humanEnv)) if (k.startsWith('DEPLOY_') || k.startsWith('BACKUP_') || k === 'APP_NAME' || k === 'APP_DIR') delete humanEnv[k];

  type Row = { ms: number[]; flagged: number };
  const rows = {
    boot: { ms: [], flagged: 0 } as Row,
    byHand: { ms: [], flagged: 0 } as Row,
    kill: { ms: [], flagged: 0 } as Row,
    killMain: { ms: [], flagged: 0 } as Row,
    rebootProxy: { ms: [], flagged: 0 } as Row,
    rebootSlot: { ms: [], flagged: 0 } as Row,
    pidfile: { ms: [], flagged: 0 } as Row,
  };
  const parts = { restartCmd: [] as number[], startToProxy: [] as number[], pStartToProxy: [] as number[], sshd: [] as number[], startScript: [] as number[] };
  const took = (p: Poll, i: number, since: number, row: Row, what: string): void => {
    const at = p.first[i];
    if (at === null || at === undefined) throw new Error(`${what}: no 2xx within the poll's time limit (${JSON.stringify(p)})`);
    row.ms.push(at - since);
    if (p.firstPollOk[i]) row.flagged++;
  };

  for (let round = 1; round <= runs; round++) {
    process.stderr.write(`round ${round}/${runs}\n`);
    // 1. the app's own boot under systemd
    must('systemctl stop', await h.exec(`systemctl stop ${unit}`));
    const boot = await poll({ urls: [url(tPort)], timeoutMs: 30_000, run: ['systemctl', 'start', unit] });
    took(boot, 0, boot.t0, rows.boot, 'systemctl start');
    // 2. the app's own boot by hand, in the release folder, on a spare port and data folder
    const byHand = await poll({
      urls: [url(BY_HAND_PORT)],
      timeoutMs: 30_000,
      spawn: ['node', 'server.js'],
      cwd: releaseDir,
      env: { PORT: String(BY_HAND_PORT), DATA_DIR: '/var/tmp/skiff-bench-by-hand' },
    });
    took(byHand, 0, byHand.t0, rows.byHand, 'node server.js by hand');
    await sleep(500);
    // 3. kill -9 of the app's process; systemd starts the unit again after RestartSec
    const kill = await poll({ urls: [url(T.public)], timeoutMs: 30_000, kill: await appPid(), afterFailure: true });
    took(kill, 0, kill.t0, rows.kill, 'kill -9 of the app');
    await sleep(500);
    // 3b. kill -9 of the unit's MainPID (the launcher's shell when it did not exec the app)
    if (mainIsShell) {
      const killMain = await poll({ urls: [url(T.public)], timeoutMs: 30_000, kill: await mainPid(), afterFailure: true });
      took(killMain, 0, killMain.t0, rows.killMain, 'kill -9 of MainPID');
      await sleep(500);
    }
    // 4. reboot, systemd supervisor: nothing but the reboot
    {
      const issued = Date.now();
      must('docker restart', await docker(['restart', NAME]));
      parts.restartCmd.push(Date.now() - issued);
      const started = await startedAt();
      const p = await pollWhenUp({ urls: [url(T.public), url(tPort)], timeoutMs: 90_000 });
      took(p, 0, issued, rows.rebootProxy, 'reboot, through Caddy');
      took(p, 1, issued, rows.rebootSlot, 'reboot, slot port');
      parts.startToProxy.push((p.first[0] as number) - started);
      await booted();
    }
    // 5. reboot, pidfile supervisor: a human runs start.ts once sshd answers
    {
      const issued = Date.now();
      must('docker restart', await docker(['restart', NAME]));
      const started = await startedAt();
      const polled = pollWhenUp({ urls: [url(P.public)], timeoutMs: 120_000 });
      for (;;) {
        if ((await h.ssh('true', 'root', { timeoutMs: 15_000 })).code === 0) break;
        await sleep(20);
      }
      parts.sshd.push(Date.now() - issued);
      const t = Date.now();
      must('npx tsx scripts/start.ts p', await runProcess(['npx', 'tsx', 'scripts/start.ts', 'p'], { cwd: REPO_ROOT, env: humanEnv }));
      parts.startScript.push(Date.now() - t);
      const p = await polled;
      took(p, 0, issued, rows.pidfile, 'pidfile reboot + start.ts');
      parts.pStartToProxy.push((p.first[0] as number) - started);
      await booted();
    }
  }

  const base = median(rows.boot.ms);
  const line = (measure: string, r: Row, compare = true) => {
    const med = median(r.ms);
    const diff = med - base;
    return { measure, medianMs: med, maxMs: Math.max(...r.ms), runsMs: r.ms, firstPollAlreadyOk: r.flagged, appBootMedianMs: base, differenceMs: compare ? diff : null, goalMet: compare ? diff <= GOAL_MS : null };
  };
  const table = [
    line('app boot: `systemctl start` -> 2xx on slot port (baseline)', rows.boot, false),
    line('app boot: `node server.js` by hand -> 2xx on a port', rows.byHand, false),
    line('systemd: kill -9 of the app process -> 2xx through Caddy', rows.kill),
    ...(mainIsShell ? [line("systemd: kill -9 of the unit's MainPID (its sh) -> 2xx through Caddy", rows.killMain)] : []),
    line('systemd: reboot -> 2xx through Caddy, no skiff command', rows.rebootProxy),
    line('systemd: reboot -> 2xx on slot port, no skiff command', rows.rebootSlot),
    line('pidfile: reboot + `npx tsx scripts/start.ts p` by a human once sshd answers -> 2xx through Caddy', rows.pidfile),
  ];
  const notes = {
    mainPidRuns: mainComm,
    killed: appComm,
    killMinusRestartSecMedianMs: median(rows.kill.ms) - RESTART_SEC_MS,
    killMinusRestartSecDifferenceMs: median(rows.kill.ms) - RESTART_SEC_MS - base,
    killMainMinusRestartSecMedianMs: mainIsShell ? median(rows.killMain.ms) - RESTART_SEC_MS : null,
    dockerRestartMedianMs: median(parts.restartCmd),
    containerStartToCaddy2xxMedianMs: median(parts.startToProxy),
    pidfileSshdAnswersMedianMs: median(parts.sshd),
    pidfileStartScriptMedianMs: median(parts.startScript),
    pidfileContainerStartToCaddy2xxMedianMs: median(parts.pStartToProxy),
  };
  if (values.json) process.stdout.write(`${JSON.stringify({ runs, node: process.version, table, notes }, null, 2)}\n`);
  else {
    const ms = (x: number) => `${Math.round(x).toLocaleString('en-US')} ms`;
    const out = [
      `${runs} rounds on ${NAME} (Debian 12, systemd as PID 1, Caddy), node ${process.version}; the unit's main pid runs \`${mainComm}\`, kill -9 goes to \`${appComm}\``,
      '',
      '| measure | median | max | app boot median | difference | goal met? |',
      '| --- | --- | --- | --- | --- | --- |',
      ...table.map(
        (r) =>
          `| ${r.measure} | ${ms(r.medianMs)} | ${ms(r.maxMs)} | ${ms(base)} | ${r.differenceMs === null ? '' : `${r.differenceMs >= 0 ? '+' : ''}${ms(r.differenceMs)}`} | ${r.goalMet === null ? 'baseline' : r.goalMet ? 'yes' : '**no**'} |`,
      ),
      '',
      ...table.map((r) => `${r.measure}: ${r.runsMs.map((x) => Math.round(x)).join(', ')} ms${r.firstPollAlreadyOk ? ` (${r.firstPollAlreadyOk} rounds answered 2xx at the first poll: upper bounds)` : ''}`),
      '',
      `kill -9 less RestartSec=1: median ${ms(notes.killMinusRestartSecMedianMs)}, ${ms(notes.killMinusRestartSecDifferenceMs)} over the app's boot${notes.killMainMinusRestartSecMedianMs === null ? '' : `; of MainPID: ${ms(notes.killMainMinusRestartSecMedianMs)}`}`,
      `reboot: docker restart (systemd's shutdown, then the container started) returned after ${ms(notes.dockerRestartMedianMs)} (median); from the container's start to the first 2xx through Caddy ${ms(notes.containerStartToCaddy2xxMedianMs)}`,
      `pidfile: sshd answered ${ms(notes.pidfileSshdAnswersMedianMs)} after the restart was issued, start.ts took ${ms(notes.pidfileStartScriptMedianMs)}; from the container's start to the first 2xx ${ms(notes.pidfileContainerStartToCaddy2xxMedianMs)} (medians)`,
      '',
    ];
    process.stdout.write(out.join('\n'));
  }
} finally {
  await host?.stop();
  s.cleanup();
}
