/**
 * Proxies written by hand for bench/switch-clients.ts, whose configs nobody changes once they run:
 * the seeds' Caddy (one static upstream) and two prototypes of a switch with no reload, Caddy and
 * nginx with both slots configured once, choosing the slot that listens.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

/** A front end the clients talk to. */
export interface Front {
  readonly name: string;
  readonly port: number;
  start(dir: string): Promise<void>;
  stop(): void | Promise<void>;
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
export const staticCaddy = (name: string, port: number, handler: Record<string, unknown>): Front => {
  let child: ChildProcess | undefined;
  return {
    name,
    port,
    async start(dir) {
      const home = join(dir, name);
      mkdirSync(home, { recursive: true });
      const config = {
        admin: { disabled: true },
        apps: { http: { servers: { [name]: { listen: [`127.0.0.1:${port}`], automatic_https: { disable: true }, routes: [{ handle: [handler] }] } } } },
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
  staticCaddy('caddy-first', port, {
    handler: 'reverse_proxy',
    upstreams: slots.map((p) => ({ dial: `127.0.0.1:${p}` })),
    load_balancing: { selection_policy: { policy: 'first' }, try_duration: '5s', try_interval: '50ms' },
    health_checks: { passive: { fail_duration: '2s', max_fails: 1 }, active: { uri: '/api/health', interval: '250ms', timeout: '1s' } },
  });

/** nginx 1.22 with both slots configured once: the first slot, the second as `backup`, tried when the first refuses. */
export const nginxBackup = (port: number, slots: readonly [number, number]): Front => {
  let cmd = '';
  return {
    name: 'nginx-backup',
    port,
    async start(dir) {
      const conf = join(dir, 'nginx-backup');
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
          '  upstream slots {',
          `    server 127.0.0.1:${slots[0]} max_fails=1 fail_timeout=2s;`,
          `    server 127.0.0.1:${slots[1]} backup;`,
          '    keepalive 16;',
          '  }',
          '  server {',
          `    listen 127.0.0.1:${port};`,
          '    location / {',
          '      proxy_pass http://slots;',
          '      proxy_http_version 1.1;',
          '      proxy_set_header Upgrade $http_upgrade;',
          '      proxy_set_header Connection $connection_upgrade;',
          '      proxy_set_header Host $host;',
          '      proxy_next_upstream error timeout;',
          '    }',
          '  }',
          '}',
          '',
        ].join('\n'),
      );
      cmd = `nginx -p ${conf} -c ${conf}/nginx.conf`;
      const r = spawnSync('sh', ['-c', cmd]);
      if (r.status !== 0) throw new Error(`nginx-backup did not start: ${r.stderr.toString()}`);
      await until(() => accepts(port), `nginx-backup on ${port}`);
    },
    stop: () => void spawnSync('sh', ['-c', `${cmd} -s stop`]),
  };
};
