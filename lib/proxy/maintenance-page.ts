/**
 * The maintenance page (scripts/maintenance.ts): the checks of its user text, the page itself, and
 * what each proxy's config carries for it, as pure functions: Caddy's route, nginx's include line and
 * snippet, HAProxy's rule, map file and runtime API commands. The message is escaped for HTML once,
 * and the page is built so that it holds none of the characters a config language reads as syntax
 * (`"` `'`-free attributes, no `\`, `$`, `{`, `}` or `%`): each proxy gets it as a plain string.
 */
import type { Config } from '../config/config.ts';
import { UsageError } from '../core/errors.ts';
import { routeId } from './route.ts';

/** The most characters a message may have: a sentence or two, not a page. */
export const MESSAGE_MAX = 500;
export const DEFAULT_MESSAGE = 'This site is down for maintenance and will be back shortly.';
/** Seconds a client is told to wait (Retry-After) without --retry-after, and the most it may say. */
export const DEFAULT_RETRY_AFTER = 120;
export const RETRY_AFTER_MAX = 86_400;

/** Control characters (C0, DEL, C1) and the Unicode line and paragraph separators. */
const CONTROL = /[\p{Cc}\u2028\u2029]/u;

/** What is wrong with a message, in words for the error line; undefined when it is fine. */
export const messageProblem = (message: string): string | undefined => {
  if (message.trim() === '') return 'is empty: leave --message out for the default text';
  const control = CONTROL.exec(message);
  if (control) {
    const code = (control[0].codePointAt(0) ?? 0).toString(16).padStart(4, '0');
    return `holds a control character (U+${code.toUpperCase()}, at character ${[...message.slice(0, control.index)].length + 1}): write it on one line, without tabs or escapes`;
  }
  const length = [...message].length;
  if (length > MESSAGE_MAX) return `is ${length} characters long: at most ${MESSAGE_MAX}`;
  return undefined;
};

/** The message of --message (default text without one); a UsageError names what is wrong. */
export const checkMessage = (message: string | undefined): string => {
  if (message === undefined) return DEFAULT_MESSAGE;
  const problem = messageProblem(message);
  if (problem) throw new UsageError(`--message ${problem}`);
  return message.trim();
};

/** The seconds of --retry-after: a whole number from 1 to RETRY_AFTER_MAX, written in digits. */
export const checkRetryAfter = (text: string | undefined): number => {
  if (text === undefined) return DEFAULT_RETRY_AFTER;
  const n = /^[0-9]{1,6}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > RETRY_AFTER_MAX) {
    throw new UsageError(`--retry-after takes whole seconds from 1 to ${RETRY_AFTER_MAX} (a day), not ${JSON.stringify(text)}`);
  }
  return n;
};

/**
 * HTML-escapes text as numeric references: the five HTML characters, and `{ } $ \ % ; \``, which
 * Caddy (placeholders), nginx (variables, quoting) or HAProxy (log-format) would read as syntax.
 */
export const escapeHtml = (text: string): string => text.replace(/[&<>"'{}$\\%;`]/g, (c) => `&#${c.codePointAt(0)};`);

/** The page: one line, attributes in single quotes, the message escaped. */
export const maintenancePage = (message: string): string =>
  "<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width, initial-scale=1'>" +
  '<title>Down for maintenance</title></head>' +
  "<body style='font-family: system-ui, sans-serif&#59; max-width: 36rem&#59; margin: 4rem auto&#59; padding: 0 1rem&#59; color: #222'>" +
  `<h1>Down for maintenance</h1><p>${escapeHtml(message)}</p></body></html>`;

/** What a proxy's config must never see in the page (each proxy reads one of these as syntax). */
export const UNSAFE_IN_PAGE = /["\\$`{}%\n\r]/;

/** The page, checked: a page with one of those characters is a bug here, never sent to a proxy. */
export const safePage = (message: string): string => {
  const page = maintenancePage(message);
  if (UNSAFE_IN_PAGE.test(page)) throw new Error('the maintenance page holds a character a proxy config would read as syntax');
  return page;
};

/** The headers of the 503 answer besides its type. */
export const maintenanceHeaders = (retryAfter: number): [string, string][] => [
  ['Retry-After', String(retryAfter)],
  ['Cache-Control', 'no-store'],
];

export const PAGE_TYPE = 'text/html; charset=utf-8';

// ---- Caddy ----

/** The @id of the maintenance route of an app and env. */
export const caddyMaintenanceId = (cfg: Config): string => `${routeId(cfg)}-maintenance`;

/**
 * The maintenance route: the same matcher as skiff's route (so it covers exactly what that route
 * serves), a static 503 with Retry-After, terminal. It goes right before skiff's route.
 */
export const caddyMaintenanceRoute = (cfg: Config, match: unknown, message: string, retryAfter: number): Record<string, unknown> => ({
  '@id': caddyMaintenanceId(cfg),
  ...(match === undefined ? {} : { match }),
  handle: [
    {
      handler: 'static_response',
      status_code: 503,
      headers: Object.fromEntries([['Content-Type', PAGE_TYPE], ...maintenanceHeaders(retryAfter)].map(([k, v]) => [k, [v]])),
      body: safePage(message),
    },
  ],
  terminal: true,
});

// ---- nginx ----

/** skiff's maintenance snippet for an app and env: beside its conf file, not named *.conf (so no `include *.conf` loads it). */
export const nginxMaintenanceFile = (cfg: Config): string => `${cfg.nginxConfDir}/${cfg.app.name}-${cfg.env}.maintenance`;

/** Characters that make an nginx include a glob, or that the quoted path must not hold. */
const NGINX_UNSAFE_PATH = /[*?[\]"\\$]/;

/** Why this config cannot have a maintenance page with nginx; undefined when it can. */
export const nginxMaintenanceProblem = (cfg: Config): string | undefined =>
  NGINX_UNSAFE_PATH.test(cfg.nginxConfDir) ? `DEPLOY_NGINX_CONF_DIR ${cfg.nginxConfDir} holds one of * ? [ ] " \\ $, which nginx would read as syntax: use a plain folder path` : undefined;

/**
 * The line each location of the env's route file carries: it includes the snippet while it exists.
 * The last letter as a one-letter class makes the include a glob, and a glob that matches nothing is
 * no error in nginx, so the route stays valid while maintenance is off (the file is absent).
 */
export const nginxMaintenanceInclude = (cfg: Config): string[] => {
  if (nginxMaintenanceProblem(cfg)) return [];
  const file = nginxMaintenanceFile(cfg);
  return [`    include "${file.slice(0, -1)}[${file.slice(-1)}]";`];
};

/**
 * The snippet, included in the env's locations: `return` answers every request of the env's prefix
 * before it is proxied (other envs on the site are untouched); its `add_header` lines join the
 * route's own security headers, which sit at the same level.
 */
export const nginxMaintenanceSnippet = (cfg: Config, message: string, retryAfter: number): string =>
  [
    `# written by skiff: the maintenance page of ${cfg.app.name} ${cfg.env}; \`npx tsx scripts/maintenance.ts ${cfg.env} off\` removes it`,
    ...maintenanceHeaders(retryAfter).map(([name, value]) => `add_header ${name} "${value}" always;`),
    `default_type "${PAGE_TYPE}";`,
    `return 503 "${safePage(message)}";`,
    '',
  ].join('\n');

// ---- HAProxy ----

/** A path HAProxy takes unquoted inside a sample expression and on a runtime API line. */
const PLAIN_PATH = /^\/[A-Za-z0-9_./-]+$/;

/** skiff's maintenance map of an app and env, in its HAProxy folder (not *.cfg: `-f <folder>` does not load it as config). */
export const haproxyMaintenanceMap = (cfg: Config): string => `${cfg.haproxy.confDir}/${routeId(cfg)}.maintenance.map`;

/** Why this config cannot have a maintenance page with HAProxy; undefined when it can. */
export const haproxyMaintenanceProblem = (cfg: Config): string | undefined =>
  PLAIN_PATH.test(haproxyMaintenanceMap(cfg))
    ? undefined
    : `DEPLOY_HAPROXY_CONF_DIR ${cfg.haproxy.confDir} holds characters other than letters, digits and _ . / -, which HAProxy's map expressions cannot take: use a plain folder path`;

/**
 * The frontend's rule: a 503 with the page and Retry-After from the map while it has a `page` key.
 * Map entries change through the runtime API, so turning maintenance on or off needs no reload; the
 * page travels base64-encoded, so no character of it is ever read by HAProxy's parsers.
 */
export const haproxyMaintenanceRules = (cfg: Config): string[] => {
  if (haproxyMaintenanceProblem(cfg)) return [];
  const map = haproxyMaintenanceMap(cfg);
  return [
    '    # the maintenance page (scripts/maintenance.ts), on while the map below has `page`: changed through the runtime API',
    `    http-request return status 503 content-type "${PAGE_TYPE}" lf-string "%[str(page),map(${map}),b64dec]" ` +
      `hdr Retry-After "%[str(retry),map(${map})]" hdr Cache-Control no-store if { str(page),map(${map}) -m found }`,
  ];
};

/** The map's entries: the page (base64) and the seconds of Retry-After. */
export const haproxyMaintenanceEntries = (message: string, retryAfter: number): [string, string][] => [
  ['retry', String(retryAfter)],
  ['page', Buffer.from(safePage(message)).toString('base64')],
];

/** The map file: what HAProxy loads at a reload or restart, so the page survives both. Empty: off. */
export const haproxyMaintenanceMapFile = (entries: readonly [string, string][]): string => entries.map(([k, v]) => `${k} ${v}\n`).join('');

/**
 * The runtime API commands that make the loaded map hold `entries` (none: off). With the page there
 * already its entries are replaced one by one (it stays on throughout); else `page` is added last, so
 * the rule matches only once Retry-After is in place.
 */
export const haproxyMapCommands = (cfg: Config, entries: readonly [string, string][], pageLoaded: boolean): string[] => {
  const map = haproxyMaintenanceMap(cfg);
  if (entries.length === 0) return [`clear map ${map}`];
  if (pageLoaded) return entries.map(([k, v]) => `set map ${map} ${k} ${v}`);
  return [`clear map ${map}`, ...entries.map(([k, v]) => `add map ${map} ${k} ${v}`)];
};

/** The entries of a `show map <file>` answer (`0x55... key value` lines). */
export const parseMapEntries = (answer: string): Map<string, string> =>
  new Map(
    answer
      .split('\n')
      .map((l) => /^0x[0-9a-f]+ (\S+) (.*)$/.exec(l.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1] as string, m[2] as string]),
  );
