/**
 * Proxy drivers: where public traffic goes. skiff owns one route per app and environment (Caddy: a
 * route with `@id`, changed through the admin API; nginx: `<app>-<env>.conf` and an upstream file,
 * `nginx -t` before every reload) and changes only the upstream after the first deploy.
 */
import { script } from '../core/cmd.ts';
import { CADDY_ANSWER_SECONDS, caddyRequest, nginx, nginxMaster, nginxWorkers, tcpMigrateReq } from '../commands/proxy.ts';
import type { Config } from '../config/config.ts';
import { SkiffError } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import { realClock, type Clock } from '../core/clock.ts';

export interface Proxy {
  readonly kind: 'caddy' | 'nginx';
  /** Fails (changing nothing) when the proxy cannot be driven: admin API down, nginx -t failing. */
  check(host: Host): Promise<void>;
  /** A warning to show when the proxy can be driven but a switch may fail requests on this host. */
  switchRisk(host: Host): Promise<string | undefined>;
  /** The slot port public traffic goes to now; undefined before skiff's route exists. */
  current(host: Host): Promise<number | undefined>;
  /** Sends new requests to `port`; returns once the proxy uses the new upstream. */
  switchTo(host: Host, port: number): Promise<void>;
}

const routeId = (cfg: Config) => `skiff-${cfg.app.name}-${cfg.env}`;
const publicHost = (cfg: Config) => new URL(cfg.publicUrl ?? 'http://127.0.0.1').hostname.replace(/^\[|\]$/g, '');
const publicPort = (cfg: Config) => {
  const u = new URL(cfg.publicUrl ?? 'http://127.0.0.1');
  return Number(u.port || (u.protocol === 'https:' ? 443 : 80));
};

/** Picks the driver of DEPLOY_PROXY. */
export const proxyFor = (cfg: Config, clock: Clock = realClock): Proxy | undefined =>
  cfg.proxy === 'caddy' ? caddy(cfg) : cfg.proxy === 'nginx' ? nginxProxy(cfg, clock) : undefined;

// ---- Caddy --------------------------------------------------------------------------------------

interface CaddyServer {
  listen?: string[];
  routes?: unknown[];
}

const caddyApi = async (host: Host, cfg: Config, method: 'GET' | 'POST' | 'PUT' | 'PATCH', path: string, body?: unknown) => {
  const r = await host.exec(caddyRequest(cfg.caddyAdmin, method, path, CADDY_ANSWER_SECONDS), {
    check: false,
    // curl gives up first (--max-time); this is for a host where curl itself does not come back.
    timeoutMs: (CADDY_ANSWER_SECONDS + 15) * 1000,
    ...(body === undefined ? {} : { stdin: JSON.stringify(body) }),
  });
  const lines = r.stdout.split('\n');
  const status = Number(lines.pop());
  const why = r.stderr.trim().split('\n').at(-1) ?? '';
  // curl's 28: connected (or tried to) but no whole answer within its limits.
  if (r.code === 28) {
    throw new SkiffError(
      `${host.name}: Caddy's admin API at ${cfg.caddyAdmin} did not answer ${method} ${path} within ${CADDY_ANSWER_SECONDS}s: check that Caddy is not stuck (its log) and that DEPLOY_CADDY_ADMIN is its admin address (${why})`,
    );
  }
  if (r.code !== 0 || !status) {
    throw new SkiffError(`${host.name}: Caddy's admin API at ${cfg.caddyAdmin} does not answer: start Caddy, or fix DEPLOY_CADDY_ADMIN (${why})`);
  }
  return { status, body: lines.join('\n') };
};

const caddy = (cfg: Config): Proxy => {
  const id = routeId(cfg);
  const route = (port: number) => ({
    '@id': id,
    match: [{ host: [publicHost(cfg)] }],
    handle: [{ handler: 'reverse_proxy', upstreams: [{ dial: `127.0.0.1:${port}` }] }],
    terminal: true,
  });
  const fail = (what: string, r: { status: number; body: string }) =>
    new SkiffError(`Caddy refused to ${what} (HTTP ${r.status}): ${r.body.trim().slice(0, 300)}`);

  return {
    kind: 'caddy',
    async check(host) {
      const r = await caddyApi(host, cfg, 'GET', '/config/');
      if (r.status !== 200) throw fail('show its config', r);
    },
    async switchRisk(host) {
      // Every admin API change is a config reload: Caddy opens a new SO_REUSEPORT listener and closes
      // the old one, and Linux resets the connections still queued on the old one unless it moves
      // them (net.ipv4.tcp_migrate_req, Linux 5.14+). No Caddy setting avoids it; measured on Caddy
      // 2.6.2: about one new connection in four switches reset with 0, none in 500 with 1.
      const migrate = (await host.exec(tcpMigrateReq(), { check: false })).stdout.trim();
      return migrate === '0'
        ? `${host.name}: net.ipv4.tcp_migrate_req is 0, so Caddy may reset a new connection at the switch: ` +
            `set it to 1 for switches without a failed request: \`npx tsx scripts/setup.ts ${cfg.env}\` does (or sysctl -w net.ipv4.tcp_migrate_req=1, and a file in /etc/sysctl.d)`
        : undefined;
    },
    async current(host) {
      const r = await caddyApi(host, cfg, 'GET', `/id/${id}/handle/0/upstreams/0/dial`);
      if (r.status !== 200) return undefined;
      const port = Number(String(JSON.parse(r.body)).split(':').at(-1));
      return Number.isInteger(port) ? port : undefined;
    },
    async switchTo(host, port) {
      // The route exists after the first deploy: only its upstream changes, atomically (Caddy still
      // reloads its config; see switchRisk).
      if ((await this.current(host)) !== undefined) {
        const patched = await caddyApi(host, cfg, 'PATCH', `/id/${id}/handle/0/upstreams`, [{ dial: `127.0.0.1:${port}` }]);
        if (patched.status !== 200) throw fail(`switch ${id} to port ${port}`, patched);
        return;
      }
      const config = JSON.parse((await caddyApi(host, cfg, 'GET', '/config/')).body || 'null') as {
        apps?: { http?: { servers?: Record<string, CaddyServer> } };
      } | null;
      const listen = `:${publicPort(cfg)}`;
      const servers = config?.apps?.http?.servers ?? {};
      const existing = Object.entries(servers).find(([, s]) => (s.listen ?? []).some((l) => l.endsWith(listen)));
      const server: CaddyServer & Record<string, unknown> = {
        listen: [listen],
        routes: [route(port)],
        ...(cfg.publicUrl?.startsWith('http:') ? { automatic_https: { disable: true } } : {}),
      };
      const [path, body]: [string, unknown] = existing
        ? existing[1].routes
          ? [`/config/apps/http/servers/${existing[0]}/routes/0`, route(port)] // first, before any catch-all
          : [`/config/apps/http/servers/${existing[0]}/routes`, [route(port)]]
        : config?.apps?.http
          ? [`/config/apps/http/servers/skiff_${publicPort(cfg)}`, server]
          : config?.apps
            ? ['/config/apps/http', { servers: { [`skiff_${publicPort(cfg)}`]: server } }]
            : ['/config/apps', { http: { servers: { [`skiff_${publicPort(cfg)}`]: server } } }];
      const created = await caddyApi(host, cfg, 'PUT', path, body);
      if (created.status !== 200) throw fail(`add the route ${id}`, created);
    },
  };
};

// ---- nginx --------------------------------------------------------------------------------------

const nginxProxy = (cfg: Config, clock: Clock): Proxy => {
  const base = `${cfg.nginxConfDir}/${cfg.app.name}-${cfg.env}`;
  const confFile = `${base}.conf`;
  const upstreamFile = `${base}.upstream`;
  const upstreamName = `skiff_${cfg.app.name}_${cfg.env}`.replace(/-/g, '_');
  const upstream = (port: number) => `# written by skiff: the live slot of ${cfg.app.name} ${cfg.env}\nserver 127.0.0.1:${port};\n`;
  const serverBlock = [
    `# written by skiff for ${cfg.app.name} ${cfg.env}; the upstream lives in ${upstreamFile}`,
    `upstream ${upstreamName} {`,
    `    include ${upstreamFile};`,
    '    keepalive 16;',
    '}',
    'server {',
    `    listen ${publicHost(cfg).includes(':') ? `[${publicHost(cfg)}]` : publicHost(cfg)}:${publicPort(cfg)};`,
    `    server_name ${publicHost(cfg)};`,
    '    location / {',
    `        proxy_pass http://${upstreamName};`,
    '        proxy_http_version 1.1;',
    '        proxy_set_header Connection "";',
    '        proxy_set_header Host $host;',
    '        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '        proxy_set_header X-Forwarded-Proto $scheme;',
    '    }',
    '}',
    '',
  ].join('\n');

  const test = async (host: Host): Promise<string | undefined> => {
    const r = await host.exec(nginx(cfg.nginxCmd, '-t'), { check: false });
    return r.code === 0 ? undefined : r.stdout.trim().split('\n').filter((l) => !/test failed/.test(l)).at(-1) ?? 'nginx -t failed';
  };

  return {
    kind: 'nginx',
    async check(host) {
      const problem = await test(host);
      if (problem) throw new SkiffError(`${host.name}: nginx -t fails before any change: ${problem}; fix the nginx config first`);
    },
    // nginx keeps its listening socket across reloads: new workers take over from the same queue.
    switchRisk: () => Promise.resolve(undefined),
    async current(host) {
      const text = (await host.get(upstreamFile))?.toString();
      const m = text ? /server 127\.0\.0\.1:(\d+);/.exec(text) : null;
      return m ? Number(m[1]) : undefined;
    },
    async switchTo(host, port) {
      const oldUpstream = await host.get(upstreamFile);
      const oldConf = await host.get(confFile);
      await host.put(upstreamFile, upstream(port));
      if (oldConf?.toString() !== serverBlock) await host.put(confFile, serverBlock);
      const problem = await test(host);
      if (problem) {
        // Put back exactly what was there, so the running nginx and its files agree again.
        await restore(host, upstreamFile, oldUpstream);
        await restore(host, confFile, oldConf);
        throw new SkiffError(`${host.name}: nginx -t fails with the new upstream: ${problem}; the old config is in place`);
      }
      const master = (await host.exec(nginxMaster(cfg.nginxCmd))).stdout.trim();
      const before = new Set((await host.exec(nginxWorkers(master))).stdout.split('\n').filter(Boolean));
      const reload = await host.exec(nginx(cfg.nginxCmd, '-s', 'reload'), { check: false });
      if (reload.code !== 0) throw new SkiffError(`${host.name}: nginx -s reload failed: ${reload.stdout.trim().split('\n').at(-1)}`);
      // A reload is asynchronous: wait until every worker accepting connections is a new one.
      const deadline = clock.now() + 10_000;
      while (clock.now() < deadline) {
        const workers = (await host.exec(nginxWorkers(master))).stdout.split('\n').filter(Boolean);
        if (workers.length > 0 && workers.every((w) => !before.has(w))) return;
        await clock.sleep(50);
      }
      throw new SkiffError(`${host.name}: nginx did not start new workers within 10s of the reload`);
    },
  };
};

const restore = async (host: Host, path: string, content: Buffer | undefined): Promise<void> => {
  if (content) await host.put(path, content);
  else await host.exec(script('rm -f "$1"', path));
};

