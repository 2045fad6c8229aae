/** What every proxy driver derives from the config: skiff's route id, and the public URL's host and port. */
import type { Config } from '../config/config.ts';

/** The name of skiff's route of an app and env (Caddy's `@id`). */
export const routeId = (cfg: Config) => `skiff-${cfg.app.name}-${cfg.env}`;
/** The host of DEPLOY_PUBLIC_URL, without an IPv6 address's brackets. */
export const publicHost = (cfg: Config) => new URL(cfg.publicUrl ?? 'http://127.0.0.1').hostname.replace(/^\[|\]$/g, '');
/** The port of DEPLOY_PUBLIC_URL, 443 or 80 by its scheme when it names none. */
export const publicPort = (cfg: Config) => {
  const u = new URL(cfg.publicUrl ?? 'http://127.0.0.1');
  return Number(u.port || (u.protocol === 'https:' ? 443 : 80));
};
