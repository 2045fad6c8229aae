/**
 * The maintenance page through each proxy (scripts/maintenance.ts): a 503 with Retry-After in front
 * of skiff's route, while the slots behind it stay reachable directly for skiff's own health checks.
 * - Caddy: a `static_response` route with its own @id, right before skiff's route, through the admin API.
 * - nginx: a snippet file skiff owns, which the env's locations include while it exists; `nginx -t`, reload.
 * - HAProxy: a map skiff owns, read by a rule in the env's backend; changed through the runtime API,
 *   with no reload, and written to its file so a reload or restart keeps it.
 * `keepingMaintenance` wraps a driver so that every switch (deploy, rollback, start putting back a
 * lost route) puts the page back up when the host's record says maintenance is on.
 */
import { haproxyApi } from '../commands/haproxy.ts';
import { removeFile } from '../commands/maintenance.ts';
import { nginx, nginxMaster, nginxWorkers } from '../commands/proxy.ts';
import type { Config } from '../config/config.ts';
import type { Clock } from '../core/clock.ts';
import { layout } from '../core/paths.ts';
import { SkiffError } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import { readMaintenance } from '../state/maintenance.ts';
import { caddyApi } from './caddy.ts';
import {
  caddyMaintenanceId,
  caddyMaintenanceRoute,
  haproxyMaintenanceEntries,
  haproxyMaintenanceMap,
  haproxyMaintenanceMapFile,
  haproxyMaintenanceProblem,
  haproxyMapCommands,
  nginxMaintenanceFile,
  nginxMaintenanceInclude,
  nginxMaintenanceProblem,
  nginxMaintenanceSnippet,
  parseMapEntries,
} from './maintenance-page.ts';
import { nginxNames } from './nginx.ts';
import type { Proxy } from './proxy.ts';
import { routeId } from './route.ts';

/** What the page shows and says. */
export interface PageSettings {
  readonly message: string;
  readonly retryAfter: number;
}

/** How one proxy serves the maintenance page. */
export interface MaintenanceDriver {
  /** Why this config cannot have the page with this proxy; undefined when it can. */
  readonly problem: string | undefined;
  /** Serves the page (again, or with new settings); nothing when it already serves exactly that. */
  apply(host: Host, page: PageSettings): Promise<void>;
  /** Stops serving the page; nothing when it does not. */
  remove(host: Host): Promise<void>;
  /** Whether the proxy serves the page now. */
  serving(host: Host): Promise<boolean>;
  /** What turning it on (`true`) or off would change, for --dry-run. */
  describe(on: boolean): string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const canon = (v: unknown): string =>
  Array.isArray(v) ? `[${v.map(canon).join(',')}]` : isObj(v) ? `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canon(v[k])}`).join(',')}}` : JSON.stringify(v);

/** A route by its @id: its server, its index there, and the route. */
const findRoute = (config: unknown, id: string): { server: string; index: number; route: Obj } | undefined => {
  const servers = isObj(config) && isObj(config.apps) && isObj(config.apps.http) && isObj(config.apps.http.servers) ? config.apps.http.servers : {};
  for (const [server, s] of Object.entries(servers)) {
    const routes = isObj(s) && Array.isArray(s.routes) ? s.routes : [];
    const index = routes.findIndex((r) => isObj(r) && r['@id'] === id);
    if (index >= 0) return { server, index, route: routes[index] as Obj };
  }
  return undefined;
};

const caddyMaintenance = (cfg: Config): MaintenanceDriver => {
  const id = caddyMaintenanceId(cfg);
  const call = async (host: Host, method: 'GET' | 'PUT' | 'PATCH' | 'DELETE', path: string, what: string, body?: unknown) => {
    const r = await caddyApi(host, cfg, method, path, body);
    if (r.status !== 200) throw new SkiffError(`${host.name}: Caddy refused to ${what} (HTTP ${r.status}): ${r.body.trim().slice(0, 300)}`);
    return r.body;
  };
  return {
    problem: undefined,
    async apply(host, page) {
      const config: unknown = JSON.parse((await call(host, 'GET', '/config/', 'show its config')) || 'null');
      const route = findRoute(config, routeId(cfg));
      if (!route) throw new SkiffError(`${host.name}: Caddy has no route ${routeId(cfg)} to put the maintenance page before: run \`npx tsx scripts/start.ts ${cfg.env}\` to put it back`);
      const want = caddyMaintenanceRoute(cfg, route.route.match, page.message, page.retryAfter);
      const have = findRoute(config, id);
      const placed = have !== undefined && have.server === route.server && have.index < route.index;
      if (placed && canon(have.route) === canon(want)) return;
      if (placed) {
        await call(host, 'PATCH', `/id/${id}`, `change the maintenance route ${id}`, want);
        return;
      }
      // Elsewhere (after the route, or in another server): it goes. Neither moves skiff's route in its list.
      if (have) await call(host, 'DELETE', `/id/${id}`, `move the maintenance route ${id}`);
      const path = `/config/apps/http/servers/${encodeURIComponent(route.server)}/routes/${route.index}`;
      // A PUT at an index inserts there: right before skiff's route.
      await call(host, 'PUT', path, `add the maintenance route ${id}`, want);
    },
    async remove(host) {
      if (!(await this.serving(host))) return;
      await call(host, 'DELETE', `/id/${id}`, `remove the maintenance route ${id}`);
    },
    async serving(host) {
      return (await caddyApi(host, cfg, 'GET', `/id/${id}`)).status === 200;
    },
    describe: (on) =>
      on
        ? `would put the route ${id} (503 with Retry-After) before ${routeId(cfg)} through Caddy's admin API at ${cfg.caddyAdmin}`
        : `would remove the route ${id} through Caddy's admin API at ${cfg.caddyAdmin}`,
  };
};

/** Seconds nginx may take to replace its workers after a reload. */
const NGINX_RELOAD_MS = 10_000;

const nginxMaintenance = (cfg: Config, proxy: Proxy, clock: Clock): MaintenanceDriver => {
  const file = nginxMaintenanceFile(cfg);
  const { routeFile } = nginxNames(cfg);
  const include = nginxMaintenanceInclude(cfg)[0] ?? '';

  /** Writes (or removes) the snippet, checks, reloads and waits for new workers; on any failure the old snippet is back. */
  const change = async (host: Host, content: string | undefined): Promise<void> => {
    const old = await host.get(file);
    const putBack = async () => {
      if (old) await host.put(file, old);
      else await host.exec(removeFile(file));
    };
    if (content === undefined) await host.exec(removeFile(file));
    else await host.put(file, content);
    const test = await host.exec(nginx(cfg.nginxCmd, '-t'), { check: false });
    if (test.code !== 0) {
      await putBack();
      const why = test.stdout.trim().split('\n').filter((l) => !/test failed/.test(l)).at(-1) ?? 'nginx -t failed';
      throw new SkiffError(`${host.name}: nginx -t fails with the maintenance page: ${why}; the old config is in place`);
    }
    const master = (await host.exec(nginxMaster(cfg.nginxCmd))).stdout.trim();
    const before = new Set((await host.exec(nginxWorkers(master))).stdout.split('\n').filter(Boolean));
    const reload = await host.exec(nginx(cfg.nginxCmd, '-s', 'reload'), { check: false });
    if (reload.code !== 0) {
      await putBack();
      throw new SkiffError(`${host.name}: nginx -s reload failed: ${reload.stdout.trim().split('\n').at(-1)}; the old config is in place`);
    }
    // A reload is asynchronous: the page is up (or gone) once every accepting worker is a new one.
    const deadline = clock.now() + NGINX_RELOAD_MS;
    while (clock.now() < deadline) {
      const workers = (await host.exec(nginxWorkers(master))).stdout.split('\n').filter(Boolean);
      if (workers.length > 0 && workers.every((w) => !before.has(w))) return;
      await clock.sleep(50);
    }
    await putBack();
    throw new SkiffError(`${host.name}: nginx did not start new workers within ${NGINX_RELOAD_MS / 1000}s of the reload (its error log says why); the old snippet is back`);
  };

  /** Whether the env's route file (its locations) includes the snippet. */
  const included = async (host: Host) => (await host.get(routeFile))?.toString().includes(include) === true;

  return {
    problem: nginxMaintenanceProblem(cfg),
    async apply(host, page) {
      if (!(await included(host))) {
        // A conf file written before skiff had maintenance: the driver's switch to the port it
        // serves rewrites it as this version writes it (with the include), checks and reloads.
        const port = await proxy.current(host);
        if (port !== undefined) await proxy.switchTo(host, port);
        if (!(await included(host))) throw new SkiffError(`${host.name}: skiff's ${routeFile} does not include ${file}: run \`npx tsx scripts/start.ts ${cfg.env}\`, then turn maintenance on again`);
      }
      const want = nginxMaintenanceSnippet(cfg, page.message, page.retryAfter);
      if ((await host.get(file))?.toString() === want) return;
      await change(host, want);
    },
    async remove(host) {
      if ((await host.get(file)) === undefined) return;
      await change(host, undefined);
    },
    async serving(host) {
      return (await host.get(file)) !== undefined && (await included(host));
    },
    describe: (on) => `would ${on ? 'write' : 'remove'} ${file}, run \`${cfg.nginxCmd} -t\` and reload nginx`,
  };
};

const haproxyMaintenance = (cfg: Config, proxy: Proxy): MaintenanceDriver => {
  const map = haproxyMaintenanceMap(cfg);
  const api = async (host: Host, commands: readonly string[]): Promise<string> => {
    const r = await host.exec(haproxyApi(cfg.haproxy.socket, commands), { check: false, timeoutMs: 30_000 });
    if (r.code !== 0) throw new SkiffError(`${host.name}: HAProxy's runtime API at ${cfg.haproxy.socket} does not answer: start HAProxy, or fix DEPLOY_HAPROXY_SOCKET`);
    return r.stdout;
  };
  /** Whether the running HAProxy has skiff's map (it loads skiff's file of this version). */
  const loaded = async (host: Host) => (await api(host, ['show map'])).includes(`(${map})`);
  const entries = async (host: Host) => parseMapEntries(await api(host, [`show map ${map}`]));
  const set = async (host: Host, want: readonly [string, string][]) => {
    const old = await host.get(map);
    // The file first: a reload or restart from now on loads what the runtime API is about to hold.
    await host.put(map, haproxyMaintenanceMapFile(want));
    const have = await entries(host);
    if (have.size === want.length && want.every(([k, v]) => have.get(k) === v)) return;
    const answer = (await api(host, haproxyMapCommands(cfg, want, have.has('page')))).trim();
    if (answer !== '') {
      if (old) await host.put(map, old);
      throw new SkiffError(`${host.name}: HAProxy refused to change ${map}: ${answer.split('\n')[0]}`);
    }
  };
  return {
    problem: haproxyMaintenanceProblem(cfg),
    async apply(host, page) {
      if (!(await loaded(host))) {
        // skiff's file of an earlier version, without the rule: the driver's switch to the port it
        // serves rewrites it, checks it and reloads HAProxy (once; later changes need no reload).
        const port = await proxy.current(host);
        if (port !== undefined) await proxy.switchTo(host, port);
        if (!(await loaded(host))) throw new SkiffError(`${host.name}: HAProxy does not load skiff's ${map}: check that it loads ${cfg.haproxy.confDir} (-f), then turn maintenance on again`);
      }
      await set(host, haproxyMaintenanceEntries(page.message, page.retryAfter));
    },
    async remove(host) {
      if (!(await loaded(host))) {
        await host.put(map, '');
        return;
      }
      await set(host, []);
    },
    async serving(host) {
      return (await loaded(host)) && (await entries(host)).has('page');
    },
    describe: (on) => `would ${on ? 'write the page into' : 'empty'} ${map} and ${on ? 'set it' : 'clear it'} through HAProxy's runtime API at ${cfg.haproxy.socket} (no reload)`,
  };
};

/** The drivers `keepingMaintenance` wrapped, by the wrapper: the page's own changes go to them directly. */
const unwrapped = new WeakMap<Proxy, Proxy>();

/** How the proxy of DEPLOY_PROXY serves the page; undefined with proxy none. */
export const maintenanceFor = (cfg: Config, proxy: Proxy | undefined, clock: Clock): MaintenanceDriver | undefined => {
  if (!proxy) return undefined;
  const inner = unwrapped.get(proxy) ?? proxy;
  if (cfg.proxy === 'caddy') return caddyMaintenance(cfg);
  if (cfg.proxy === 'nginx') return nginxMaintenance(cfg, inner, clock);
  if (cfg.proxy === 'haproxy') return haproxyMaintenance(cfg, inner);
  return undefined;
};

/**
 * The driver, with every switch followed by the page when the host's record says maintenance is on:
 * a deploy, a rollback or `start` behind the page keep it up, whatever the switch rewrote.
 */
export const keepingMaintenance = (proxy: Proxy, cfg: Config, clock: Clock): Proxy => {
  const l = layout(cfg.path);
  const page = maintenanceFor(cfg, proxy, clock);
  const wrapped: Proxy = {
    kind: proxy.kind,
    check: (host) => proxy.check(host),
    switchRisk: (host) => proxy.switchRisk(host),
    current: (host) => proxy.current(host),
    async switchTo(host, port) {
      await proxy.switchTo(host, port);
      // The switch has happened: a damaged record must not undo it. The page is left as the switch
      // left it; `status` and `maintenance on|off` name the record and mend it.
      const record = await readMaintenance(host, l).catch(() => undefined);
      if (record && page && !page.problem) await page.apply(host, record);
    },
  };
  unwrapped.set(wrapped, proxy);
  return wrapped;
};
