/** The Caddy driver: skiff's route, with `@id`, set and switched through Caddy's admin API. */
import { CADDY_ANSWER_SECONDS, caddyRequest, tcpMigrateReq } from '../commands/proxy.ts';
import type { Config } from '../config/config.ts';
import { SkiffError } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import type { Proxy } from './proxy.ts';
import { publicHost, publicPort, routeId } from './route.ts';

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

export const caddy = (cfg: Config): Proxy => {
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
