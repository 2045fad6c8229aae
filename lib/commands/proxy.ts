/** Builders for the proxy drivers: Caddy's admin API (through curl on the host) and nginx files and signals. */
import { script, type Cmd } from '../cmd.ts';

/** One request to Caddy's admin API; prints the body, then the HTTP status on a line of its own. Body on stdin. */
export const caddyRequest = (admin: string, method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string): Cmd =>
  script(
    [
      'if [ "$1" = GET ] || [ "$1" = DELETE ]; then',
      '  curl -sS -X "$1" -o - -w "\\n%{http_code}" "http://$2$3"',
      'else',
      '  curl -sS -X "$1" -H "Content-Type: application/json" --data-binary @- -o - -w "\\n%{http_code}" "http://$2$3"',
      'fi',
    ].join('\n'),
    method,
    admin,
    path,
  );

/**
 * nginx with its arguments. DEPLOY_NGINX_CMD is a command line of the user's (`nginx`, `sudo nginx`,
 * `nginx -p /srv/nginx -c /srv/nginx/nginx.conf`): split into words, never globbed or evaluated.
 */
export const nginx = (command: string, ...args: string[]): Cmd => script('set -f; cmd=$1; shift; $cmd "$@" 2>&1', command, ...args);

/** Pids of nginx workers that still accept connections (not `shutting down`), one a line. */
export const nginxWorkers = (): Cmd =>
  script('for p in $(pgrep -f "^nginx: worker process$" 2>/dev/null); do echo "$p"; done; exit 0');

/** Established connections to a local TCP port: prints their count. */
export const connectionsTo = (port: number): Cmd =>
  script(
    [
      'hex=$(printf "%04X" "$1")',
      // Column 2 is the local address:port in hex, column 4 the state; 01 is ESTABLISHED.
      "awk -v p=\"$hex\" 'NR > 1 && $4 == \"01\" { split($2, a, \":\"); if (a[length(a)] == p) n++ } END { print n + 0 }' /proc/net/tcp /proc/net/tcp6 2>/dev/null",
    ].join('\n'),
    String(port),
  );

/** One GET through the proxy, from the host; prints the HTTP status (000 when nothing answers). */
export const probeUrl = (url: string, timeoutSeconds: number): Cmd =>
  script('curl -s -o /dev/null -w "%{http_code}" -m "$2" "$1" || true', url, String(timeoutSeconds));
