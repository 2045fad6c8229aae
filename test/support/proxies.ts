/** A real Caddy and a real nginx for end-to-end tests, each started on loopback ports of its own. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { get } from './sandbox.ts';

export interface ProxyUnderTest {
  readonly name: 'caddy' | 'nginx';
  readonly publicPort: number;
  readonly slots: readonly [number, number];
  start(dir: string): Promise<void>;
  stop(): void;
  keys(dir: string): string;
}

export const waitFor = async (check: () => boolean | Promise<boolean>, what: string): Promise<void> => {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not come up`);
};

/**
 * A Caddy on loopback: its public port, two slot ports, and its admin API on publicPort + 9. With
 * `httpPort`, its config sets Caddy's `http_port` (where its automatic HTTP->HTTPS redirects listen;
 * 80 by default), as a user's Caddy config would.
 */
export const caddyUnderTest = (publicPort = 18600, opts: { httpPort?: number } = {}): ProxyUnderTest & { readonly admin: string } => {
  let child: ChildProcess | undefined;
  return {
    name: 'caddy',
    admin: `127.0.0.1:${publicPort + 9}`,
    publicPort,
    slots: [publicPort + 1, publicPort + 2],
    async start(dir) {
      const apps = opts.httpPort === undefined ? {} : { apps: { http: { http_port: opts.httpPort } } };
      writeFileSync(join(dir, 'caddy.json'), JSON.stringify({ admin: { listen: `127.0.0.1:${publicPort + 9}` }, ...apps }));
      // Its log (stderr) goes to caddy.log in the sandbox: what it says about certificates.
      const log = openSync(join(dir, 'caddy.log'), 'a');
      child = spawn('caddy', ['run', '--config', join(dir, 'caddy.json')], { stdio: ['ignore', log, log], env: { ...process.env, HOME: dir } });
      closeSync(log);
      await waitFor(async () => (await get(`http://127.0.0.1:${publicPort + 9}/config/`)).status === 200, 'caddy');
    },
    stop: () => child?.kill('SIGKILL'),
    // The switch flag in the sandbox (Caddy runs as root here): not in /var/lib/skiff of this machine.
    keys: (dir) => `DEPLOY_PROXY=caddy\nDEPLOY_CADDY_ADMIN=127.0.0.1:${publicPort + 9}\nDEPLOY_SWITCH_DIR=${join(dir, 'caddy-switch')}`,
  };
};

/** An nginx on loopback with a conf.d that skiff writes into; its public port and two slot ports. */
export const nginxUnderTest = (publicPort = 18610): ProxyUnderTest => {
  let cmd = '';
  return {
    name: 'nginx',
    publicPort,
    slots: [publicPort + 1, publicPort + 2],
    async start(dir) {
      const conf = join(dir, 'nginx');
      mkdirSync(join(conf, 'conf.d'), { recursive: true });
      // nginx's workers (nobody) stat the switch flag in conf.d: they must be able to search the
      // sandbox (mkdtemp makes it 0700), as they search /etc/nginx on a host. Search, not list.
      chmodSync(dir, 0o711);
      writeFileSync(
        join(conf, 'nginx.conf'),
        [
          `pid ${conf}/nginx.pid;`,
          `error_log ${conf}/error.log;`,
          'events { worker_connections 256; }',
          'http {',
          '  access_log off;',
          ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${conf}/tmp-${t};`),
          `  include ${conf}/conf.d/*.conf;`,
          '}',
          '',
        ].join('\n'),
      );
      cmd = `nginx -p ${conf} -c ${conf}/nginx.conf`;
      const r = spawnSync('sh', ['-c', cmd]);
      if (r.status !== 0) throw new Error(`nginx did not start: ${r.stderr.toString()}`);
    },
    stop: () => {
      spawnSync('sh', ['-c', `${cmd} -s stop`]);
    },
    keys: (dir) => `DEPLOY_PROXY=nginx\nDEPLOY_NGINX_CONF_DIR=${join(dir, 'nginx/conf.d')}\nDEPLOY_NGINX_CMD=${cmd}`,
  };
};

