/** What every proxy driver derives from the config: skiff's route id, and the public URL's host, port and path prefix. */
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

/** One segment of a path prefix: URL-safe characters that no proxy reads as pattern or syntax. */
const SEGMENT = /^[A-Za-z0-9_~-][A-Za-z0-9._~-]*$/;

/** The path of a URL as written, before any parser normalises `..`, spaces or `%`; undefined when there is no `scheme://`. */
const rawPath = (url: string): string | undefined => /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*(.*)$/s.exec(url)?.[1];

/**
 * Why DEPLOY_PUBLIC_URL cannot be an env's route, read from the text as written; undefined when it
 * can. Its path is the env's prefix: `/seg/seg` with letters, digits and `-._~` in each segment, no
 * `.` or `..` segment, no trailing `/` (one spelling per prefix, so `/api` and `/api/` can never be
 * two routes), no query and no fragment.
 */
export const prefixProblem = (url: string): string | undefined => {
  const path = rawPath(url);
  if (path === undefined) return undefined;
  if (/[?#]/.test(path)) return 'a URL without a query or fragment (?, #): the proxy routes by host and path only';
  if (path === '' || path === '/') return undefined;
  if (path.endsWith('/')) return `a path prefix without a trailing / (${path.replace(/\/+$/, '')}, not ${path})`;
  const segments = path.slice(1).split('/');
  if (segments.some((s) => s === '.' || s === '..')) return `a path prefix without . or .. segments (${path})`;
  const bad = segments.find((s) => !SEGMENT.test(s));
  if (bad !== undefined) return `a path prefix of letters, digits and - . _ ~ between slashes (${JSON.stringify(bad)} in ${JSON.stringify(path)}: no spaces, %, *, regex or shell characters)`;
  return undefined;
};

/** The path prefix of the env's route: '' for the whole host, else `/api`-like (checked by prefixProblem when the config loads). */
export const publicPrefix = (cfg: Config): string => {
  const path = cfg.publicUrl === undefined ? '' : new URL(cfg.publicUrl).pathname;
  return path === '/' ? '' : path.replace(/\/+$/, '');
};

/** Whether a request path belongs to a prefix: the prefix itself or below it (`/api`, `/api/x`; not `/apix`). */
export const underPrefix = (path: string, prefix: string): boolean => prefix === '' || path === prefix || path.startsWith(`${prefix}/`);
