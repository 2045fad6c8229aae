/** Builders for the proxy drivers: Caddy's admin API (through curl on the host) and nginx files and signals. */
import { reads, script, type Cmd } from '../core/cmd.ts';

/** Seconds curl waits for Caddy's admin API: to connect, and for the whole answer. */
export const CADDY_CONNECT_SECONDS = 5;
export const CADDY_ANSWER_SECONDS = 15;

/**
 * One request to Caddy's admin API; prints the body, then the HTTP status on a line of its own. Body
 * on stdin. An API that accepts the connection and never answers fails curl (exit 28) in
 * `answerSeconds`.
 */
export const caddyRequest = (
  admin: string,
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  path: string,
  answerSeconds: number = CADDY_ANSWER_SECONDS,
): Cmd =>
  script(
    [
      'if [ "$1" = GET ] || [ "$1" = DELETE ]; then',
      '  curl -sS --connect-timeout "$4" --max-time "$5" -X "$1" -o - -w "\\n%{http_code}" "http://$2$3"',
      'else',
      '  curl -sS --connect-timeout "$4" --max-time "$5" -X "$1" -H "Content-Type: application/json" --data-binary @- -o - -w "\\n%{http_code}" "http://$2$3"',
      'fi',
    ].join('\n'),
    method,
    admin,
    path,
    String(Math.min(CADDY_CONNECT_SECONDS, answerSeconds)),
    String(answerSeconds),
  );

/**
 * nginx with its arguments. DEPLOY_NGINX_CMD is a command line of the user's (`nginx`, `sudo nginx`,
 * `nginx -p /srv/nginx -c /srv/nginx/nginx.conf`): split into words, never globbed or evaluated.
 */
export const nginx = (command: string, ...args: string[]): Cmd => script('set -f; cmd=$1; shift; $cmd "$@" 2>&1', command, ...args);

/**
 * The pid of the nginx master that DEPLOY_NGINX_CMD controls, from the pid file its config names
 * (`pid` in `nginx -T`, else the compiled-in `--pid-path`); nothing when it cannot be told. Marked
 * as a read: `nginx -T` tests and prints the config and changes no site, though like any config
 * test it may open (and so create) the log files the config names.
 */
export const nginxMaster = (command: string): Cmd =>
  reads(script(
    [
      'set -f; cmd=$1',
      `file=$($cmd -T 2>/dev/null | awk '$1 == "pid" { p = $2; sub(/;$/, "", p); print p; exit }')`,
      `[ -n "$file" ] || file=$($cmd -V 2>&1 | tr ' ' '\n' | sed -n 's/^--pid-path=//p')`,
      'master=$(cat "$file" 2>/dev/null) || exit 0',
      'case $master in *[!0-9]* | "") exit 0 ;; esac',
      '[ -d "/proc/$master" ] && echo "$master"; exit 0',
    ].join('\n'),
    command,
  ));

/**
 * Pids of the nginx workers that still accept connections (not `shutting down`), one a line: those
 * of `master` when it is known (another nginx on the host has workers of its own), else all.
 */
export const nginxWorkers = (master: string): Cmd =>
  reads(script('if [ -n "$1" ]; then pgrep -P "$1" -f "^nginx: worker process$"; else pgrep -f "^nginx: worker process$"; fi; exit 0', master));

/** Established connections to a local TCP port: prints their count. */
export const connectionsTo = (port: number): Cmd =>
  reads(script(
    [
      'hex=$(printf "%04X" "$1")',
      // Column 2 is the local address:port in hex, column 4 the state; 01 is ESTABLISHED.
      "awk -v p=\"$hex\" 'NR > 1 && $4 == \"01\" { split($2, a, \":\"); if (a[length(a)] == p) n++ } END { print n + 0 }' /proc/net/tcp /proc/net/tcp6 2>/dev/null",
    ].join('\n'),
    String(port),
  ));

/**
 * One GET through the proxy, from the host; prints the HTTP status, 000 when nothing answers or the
 * answer does not end within `timeoutSeconds` (curl prints the status of a cut answer too).
 */
export const probeUrl = (url: string, timeoutSeconds: number): Cmd =>
  reads(script('c=$(curl -g -s -o /dev/null -w "%{http_code}" -m "$2" "$1") || c=000; echo "$c"', url, String(timeoutSeconds)));

/** Linux's net.ipv4.tcp_migrate_req (0 or 1; nothing on older kernels). */
export const tcpMigrateReq = (): Cmd => reads(script('cat /proc/sys/net/ipv4/tcp_migrate_req 2>/dev/null; exit 0'));

/** The response headers of DEPLOY_HEADERS, with the value each proxy sets (HSTS only with https). */
export const RESPONSE_HEADERS = {
  hsts: ['Strict-Transport-Security', 'max-age=31536000'],
  nosniff: ['X-Content-Type-Options', 'nosniff'],
  frame: ['X-Frame-Options', 'SAMEORIGIN'],
  referrer: ['Referrer-Policy', 'strict-origin-when-cross-origin'],
} as const satisfies Record<string, readonly [string, string]>;

/** Responses shorter than this are sent as they are: compressing them costs more than it saves (Caddy's own default). */
export const COMPRESS_MIN_BYTES = 512;

/**
 * Whether a TLS listener has a certificate for `name`: one HTTPS request to `address:port` with
 * `name` as SNI and Host, the certificate not checked (only whether there is one). Prints curl's exit
 * status: 0 for an answer, 35 while the proxy has no certificate for the name, 7 when nothing listens.
 */
export const tlsAnswers = (name: string, port: number, address: string, seconds: number): Cmd =>
  reads(script(
    'curl -k -sS -o /dev/null --resolve "$1:$2:$3" --connect-timeout "$4" --max-time "$4" "https://$1:$2/" 2>&1; echo "exit=$?"',
    name,
    String(port),
    address,
    String(seconds),
  ));

/**
 * The directory of an ACME server, asked from the host (where Caddy asks it): prints its JSON. With
 * `root`, only that CA is trusted for the directory's own HTTPS, as Caddy's `trusted_roots_pem_files` does.
 */
export const acmeDirectory = (url: string, root: string | undefined, seconds: number): Cmd =>
  reads(script(
    'if [ -n "$3" ]; then curl -sS --max-time "$2" --cacert "$3" "$1"; else curl -sS --max-time "$2" "$1"; fi',
    url,
    String(seconds),
    root ?? '',
  ));

/**
 * skiff's nginx sites in `confDir`, for the driver to see which envs share a host: a line
 * `site<TAB>file<TAB>its first line` for each `skiff-site-*.conf`, then `route<TAB>file<TAB>its first
 * line` for each route in its folder. Nothing when the folder is missing.
 */
export const nginxSites = (confDir: string): Cmd =>
  reads(script(
    [
      'cd "$1" 2>/dev/null || exit 0',
      'for s in skiff-site-*.conf; do',
      '  [ -f "$s" ] || continue',
      '  printf "site\\t%s\\t%s\\n" "$1/$s" "$(head -n 1 "$s")"',
      '  for r in "${s%.conf}.d"/*.locations; do',
      '    [ -f "$r" ] && printf "route\\t%s\\t%s\\n" "$1/$r" "$(head -n 1 "$r")"',
      '  done',
      'done',
      'exit 0',
    ].join('\n'),
    confDir,
  ));
