/**
 * A real HAProxy for end-to-end tests and benchmarks, run by hand in master-worker mode on loopback
 * ports of its own (a reload is `kill -USR2 <master>`), and a probe that holds ONE kept-alive
 * connection and never sends a request again.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { waitFor } from './proxies.ts';

export interface HaproxyUnderTest {
  readonly name: 'haproxy';
  readonly publicPort: number;
  readonly slots: readonly [number, number];
  start(dir: string): Promise<void>;
  stop(): Promise<void>;
  /** Stops HAProxy and starts it again from the same files: what a host's restart of the service does. */
  restart(): Promise<void>;
  /** The env keys that point skiff at this HAProxy (the reload names the running master). */
  keys(dir: string): string;
  /** One line of runtime API commands; the answer. */
  api(commands: string): string;
  /** Reloads HAProxy as DEPLOY_HAPROXY_RELOAD does (a new worker takes over; returns at once). */
  reload(): void;
  /** The pid of the worker that answers the runtime API now. */
  workerPid(): number | undefined;
  /** HAProxy's output so far: its notices and the access log. */
  log(): string;
}

/** An HAProxy on loopback: its public port, two slot ports, its runtime API socket and a conf.d skiff writes into. */
export const haproxyUnderTest = (publicPort = 18820): HaproxyUnderTest => {
  let child: ChildProcess | undefined;
  let base = '';
  const paths = (dir: string) => ({ conf: join(dir, 'haproxy'), socket: join(dir, 'haproxy/admin.sock'), confDir: join(dir, 'haproxy/conf.d'), log: join(dir, 'haproxy/haproxy.log') });
  const api = (commands: string) =>
    spawnSync('socat', ['-t', '2', '-T', '5', 'stdio', `UNIX-CONNECT:${paths(base).socket}`], { input: `${commands}\n`, encoding: 'utf8' }).stdout ?? '';
  const launch = async () => {
    const p = paths(base);
    const out = openSync(p.log, 'a');
    child = spawn('haproxy', ['-W', '-db', '-f', join(p.conf, 'base.cfg'), '-f', p.confDir], { cwd: p.conf, stdio: ['ignore', out, out] });
    closeSync(out);
    await waitFor(() => /^Pid: \d+$/m.test(api('show info')), 'haproxy');
  };
  const stop = async () => {
    const c = child;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGTERM');
    await exited;
  };
  return {
    name: 'haproxy',
    publicPort,
    slots: [publicPort + 1, publicPort + 2],
    async start(dir) {
      base = dir;
      const p = paths(dir);
      mkdirSync(p.confDir, { recursive: true });
      writeFileSync(
        join(p.conf, 'base.cfg'),
        [
          'global',
          `    stats socket ${p.socket} mode 600 level admin`,
          '    log stderr format raw local0',
          'defaults',
          '    mode http',
          '    log global',
          '    timeout connect 5s',
          '    timeout client 60s',
          '    timeout server 60s',
          '',
        ].join('\n'),
      );
      await launch();
    },
    stop,
    async restart() {
      await stop();
      await launch();
    },
    keys(dir) {
      const p = paths(dir);
      return [
        'DEPLOY_PROXY=haproxy',
        `DEPLOY_HAPROXY_SOCKET=${p.socket}`,
        `DEPLOY_HAPROXY_CONF_DIR=${p.confDir}`,
        'DEPLOY_HAPROXY_CMD=haproxy',
        `DEPLOY_HAPROXY_RELOAD=kill -USR2 ${child?.pid ?? 0}`,
      ].join('\n');
    },
    api,
    reload() {
      child?.kill('SIGUSR2');
    },
    workerPid() {
      const m = /^Pid: (\d+)$/m.exec(api('show info'));
      return m ? Number(m[1]) : undefined;
    },
    log: () => readFileSync(paths(base).log, 'utf8'),
  };
};

export interface KeptAliveResult {
  readonly requests: number;
  readonly failures: number;
  /** Connections the probe had to open: 1 when nothing closed the first. */
  readonly connections: number;
  readonly firstErrors: readonly string[];
}

/**
 * Requests back to back on one kept-alive connection until stopped. A request that fails is counted
 * and never sent again (unlike test/support/probe.ts, which sends a GET again once, as browsers
 * do): every connection the server side closes while a request is on its way shows as a failure.
 * When the server closes the connection between requests, the next request opens a new one
 * (counted in `connections`).
 */
export const startKeptAliveProbe = (url: string, opts: { timeoutMs?: number } = {}) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const sockets = new WeakSet<Socket>();
  let connections = 0;
  let running = true;
  let requests = 0;
  let failures = 0;
  let lastBody = '';
  const errors: string[] = [];
  const once = () =>
    new Promise<string | undefined>((resolve) => {
      const req = http.get(url, { agent, timeout: opts.timeoutMs ?? 5000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          const good = res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300;
          if (good) lastBody = body;
          resolve(good ? undefined : `HTTP ${res.statusCode}`);
        });
        res.on('error', (e) => resolve(e.message));
      });
      req.on('socket', (s: Socket) => {
        if (!sockets.has(s)) {
          sockets.add(s);
          connections++;
        }
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (e: NodeJS.ErrnoException) => resolve(`${e.code ?? ''} ${e.message}`.trim()));
    });
  const loop = (async () => {
    while (running) {
      const error = await once();
      requests++;
      if (error !== undefined) {
        failures++;
        if (errors.length < 5) errors.push(error);
      }
    }
  })();
  return {
    /** The body of the last answer that was 2xx. */
    lastBody: () => lastBody,
    requests: () => requests,
    stop: async (): Promise<KeptAliveResult> => {
      running = false;
      await loop;
      agent.destroy();
      return { requests, failures, connections, firstErrors: errors };
    },
  };
};
