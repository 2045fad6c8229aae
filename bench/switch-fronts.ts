/**
 * Proxies written by hand for bench/switch-clients.ts, whose configs nobody changes once they run:
 * the seeds' Caddy (one static upstream) and prototypes of a switch with no reload: Caddy and nginx
 * with both slots configured once, choosing the slot that listens (`first`, `backup`) or the slot a
 * flag file names (a `file` matcher, `if (-f ...)`).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import { join } from 'node:path';

/** A front end the clients talk to. */
export interface Front {
  readonly name: string;
  readonly port: number;
  start(dir: string): Promise<void>;
  stop(): void | Promise<void>;
  /** A front switched by a flag file: makes the slot on `port` the live one (what a driver would do at its switch). */
  follow?(port: number): void;
}

export const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
export const until = async (check: () => Promise<boolean>, what: string, ms = 10_000) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not come up within ${ms / 1000} s`);
};

/** A Caddy run from a JSON config that nobody changes afterwards (no admin API). */
export const staticCaddy = (name: string, port: number, routes: readonly Record<string, unknown>[]): Front => {
  let child: ChildProcess | undefined;
  return {
    name,
    port,
    async start(dir) {
      const home = join(dir, name);
      mkdirSync(home, { recursive: true });
      const config = {
        admin: { disabled: true },
        apps: { http: { servers: { [name]: { listen: [`127.0.0.1:${port}`], automatic_https: { disable: true }, routes } } } },
      };
      writeFileSync(join(home, 'caddy.json'), JSON.stringify(config, null, 2));
      const log = openSync(join(home, 'caddy.log'), 'a');
      child = spawn('caddy', ['run', '--config', join(home, 'caddy.json')], { stdio: ['ignore', log, log], env: { ...process.env, HOME: home } });
      closeSync(log);
      await until(() => accepts(port), `${name} (caddy on ${port})`);
    },
    stop: () => void child?.kill('SIGKILL'),
  };
};

/**
 * Caddy 2.6 with both slots configured once: `first` takes the first slot that is up; a refused
 * connection is tried on the next one (lb_try_duration) and marks the slot down for 2 s (passive
 * check); an active check every 250 ms finds a slot that came up again.
 */
export const caddyFirst = (port: number, slots: readonly [number, number]): Front =>
  staticCaddy('caddy-first', port, [
    {
      handle: [
        {
          handler: 'reverse_proxy',
          upstreams: slots.map((p) => ({ dial: `127.0.0.1:${p}` })),
          load_balancing: { selection_policy: { policy: 'first' }, try_duration: '5s', try_interval: '50ms' },
          health_checks: { passive: { fail_duration: '2s', max_fails: 1 }, active: { uri: '/api/health', interval: '250ms', timeout: '1s' } },
        },
      ],
    },
  ]);

/** The flag file of a flag-switched front: present when the second slot is live. */
const flagFollower = (file: () => string, slots: readonly [number, number]) => (port: number) => {
  if (port === slots[1]) {
    writeFileSync(`${file()}.tmp`, `${port}\n`);
    renameSync(`${file()}.tmp`, file());
  } else rmSync(file(), { force: true });
};

/**
 * Caddy 2.6 with both slots configured once and a `file` matcher: while `<dir>/live-second` exists
 * the first route proxies to the second slot, else the second route to the first. Caddy stats the
 * file for each request, so creating or removing it (a rename, atomic) switches with no config load.
 */
export const caddyFlag = (port: number, slots: readonly [number, number]): Front => {
  let dir = '';
  const upstream = (p: number) => ({ handler: 'reverse_proxy', upstreams: [{ dial: `127.0.0.1:${p}` }] });
  const front = (d: string) =>
    staticCaddy('caddy-flag', port, [
      { match: [{ file: { root: join(d, 'caddy-flag'), try_files: ['/live-second'] } }], handle: [upstream(slots[1])], terminal: true },
      { handle: [upstream(slots[0])] },
    ]);
  let inner: Front | undefined;
  return {
    name: 'caddy-flag',
    port,
    async start(d) {
      dir = d;
      inner = front(d);
      await inner.start(d);
    },
    stop: () => inner?.stop(),
    follow: flagFollower(() => join(dir, 'caddy-flag/live-second'), slots),
  };
};

/** An nginx of its own whose http block holds `lines` (and what every one needs: paths, websockets). */
const staticNginx = (name: string, port: number, lines: (conf: string) => readonly string[]): Front => {
  let cmd = '';
  return {
    name,
    port,
    async start(dir) {
      const conf = join(dir, name);
      mkdirSync(conf, { recursive: true });
      writeFileSync(
        join(conf, 'nginx.conf'),
        [
          `pid ${conf}/nginx.pid;`,
          `error_log ${conf}/error.log;`,
          'events { worker_connections 512; }',
          'http {',
          '  access_log off;',
          ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${conf}/tmp-${t};`),
          "  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }",
          ...lines(conf).map((l) => `  ${l}`),
          '}',
          '',
        ].join('\n'),
      );
      cmd = `nginx -p ${conf} -c ${conf}/nginx.conf`;
      const r = spawnSync('sh', ['-c', cmd]);
      if (r.status !== 0) throw new Error(`${name} did not start: ${r.stderr.toString()}`);
      await until(() => accepts(port), `${name} on ${port}`);
    },
    stop: () => void spawnSync('sh', ['-c', `${cmd} -s stop`]),
  };
};

const proxied = (pass: string) => [
  '    location / {',
  `      proxy_pass ${pass};`,
  '      proxy_http_version 1.1;',
  '      proxy_set_header Upgrade $http_upgrade;',
  '      proxy_set_header Connection $connection_upgrade;',
  '      proxy_set_header Host $host;',
  '    }',
];

/** nginx 1.22 with both slots configured once: the first slot, the second as `backup`, tried when the first refuses (proxy_next_upstream error); no slot is ever marked down. */
export const nginxBackup = (port: number, slots: readonly [number, number]): Front =>
  staticNginx('nginx-backup', port, () => [
    'upstream slots {',
    // max_fails=0: never mark a slot down. With max_fails=1 (the default), a slot refused while it
    // was stopped, or a kept-alive connection the stopping slot closed, put both out for moments at
    // a switch: "no live upstreams", 152 of 10,184 requests 502 in a trial run.
    `    server 127.0.0.1:${slots[0]} max_fails=0;`,
    `    server 127.0.0.1:${slots[1]} backup max_fails=0;`,
    '    keepalive 16;',
    '}',
    'server {',
    `    listen 127.0.0.1:${port};`,
    '    proxy_next_upstream error timeout;',
    ...proxied('http://slots'),
    '}',
  ]);

/**
 * nginx 1.22 with both slots configured once, as two upstreams, and the slot chosen per request by
 * `if (-f <dir>/live-second)` (a stat per request, no module needed): creating or removing the file
 * switches with no reload.
 */
export const nginxFlag = (port: number, slots: readonly [number, number]): Front => {
  // nginx's workers (user nobody here) stat the file: a folder of their own they can search, since
  // the sandbox is 0700 (a flag they cannot stat fails every request: `stat() ... failed (13: Permission denied)`).
  const flags = mkdtempSync(join(tmpdir(), 'skiff-bench-nginx-flag-'));
  chmodSync(flags, 0o755);
  const inner = staticNginx('nginx-flag', port, () => [
    `upstream slot_first { server 127.0.0.1:${slots[0]}; keepalive 16; }`,
    `upstream slot_second { server 127.0.0.1:${slots[1]}; keepalive 16; }`,
    'server {',
    `    listen 127.0.0.1:${port};`,
    '    set $slot slot_first;',
    `    if (-f ${flags}/live-second) { set $slot slot_second; }`,
    ...proxied('http://$slot'),
    '}',
  ]);
  return {
    ...inner,
    stop: () => {
      void inner.stop();
      rmSync(flags, { recursive: true, force: true });
    },
    follow: flagFollower(() => join(flags, 'live-second'), slots),
  };
};
