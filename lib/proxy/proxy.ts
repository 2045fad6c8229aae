/**
 * Proxy drivers: where public traffic goes. skiff owns one route per app and environment, for the
 * host and path prefix of DEPLOY_PUBLIC_URL (Caddy: a route with `@id`, changed through the admin
 * API, lib/proxy/caddy.ts; nginx: `<app>-<env>.conf` and a route file in the site of its host,
 * `nginx -t` before every reload, lib/proxy/nginx.ts). Both slots are in that route, and after the
 * first deploy a switch with unchanged settings is a flag file (lib/proxy/switch-flag.ts), with no
 * reload; HAProxy's is its runtime API.
 */
import type { Config } from '../config/config.ts';
import type { Host } from '../host/host.ts';
import { realClock, type Clock } from '../core/clock.ts';
import { caddy } from './caddy.ts';
import { haproxyProxy } from './haproxy.ts';
import { keepingMaintenance } from './maintenance.ts';
import { nginxProxy } from './nginx.ts';

export { publicHost, publicPort, routeId } from './route.ts';

export interface Proxy {
  readonly kind: 'caddy' | 'nginx' | 'haproxy';
  /** Fails (changing nothing) when the proxy cannot be driven: admin API down, nginx -t failing. */
  check(host: Host): Promise<void>;
  /** A warning to show when the proxy can be driven but a switch may fail requests on this host. */
  switchRisk(host: Host): Promise<string | undefined>;
  /** The slot port public traffic goes to now; undefined before skiff's route exists. */
  current(host: Host): Promise<number | undefined>;
  /** Sends new requests to `port`; returns once the proxy uses the new upstream. */
  switchTo(host: Host, port: number): Promise<void>;
}

/** Picks the driver of DEPLOY_PROXY (its switches keep the maintenance page up while it is on: lib/proxy/maintenance.ts). */
export const proxyFor = (cfg: Config, clock: Clock = realClock): Proxy | undefined => {
  const driver = driverFor(cfg, clock);
  return driver ? keepingMaintenance(driver, cfg, clock) : undefined;
};

const driverFor = (cfg: Config, clock: Clock): Proxy | undefined => {
  if (cfg.proxy === 'haproxy') return haproxyProxy(cfg, clock);
  return cfg.proxy === 'caddy' ? caddy(cfg) : cfg.proxy === 'nginx' ? nginxProxy(cfg, clock) : undefined;
};
