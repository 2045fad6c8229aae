/**
 * A downtime probe: requests back to back to a URL until stopped, counting failures (refused, reset,
 * timed out, non-2xx) and the longest stretch in which every request failed.
 *
 * With `keepAlive` the probe reuses connections, as browsers do. A proxy that applies a new config
 * closes its idle client connections; a request written on such a connection at that instant gets
 * no answer. HTTP lets a client send such a GET again (RFC 9112, 9.3.1) and browsers, curl and Go do
 * so. The probe sends it again once, on a new connection, and counts these in `closedWhileIdle`: a
 * failure is a request that failed after that (or at once, on a new connection).
 */
import http from 'node:http';

export interface ProbeResult {
  readonly requests: number;
  readonly failures: number;
  /** Requests sent on a reused connection that the server had just closed, and sent again. */
  readonly closedWhileIdle: number;
  readonly longestOutageMs: number;
  readonly firstErrors: readonly string[];
}

export interface ProbeOptions {
  readonly concurrency?: number;
  readonly timeoutMs?: number;
  /** Reuse connections (default); false opens a new connection per request (`Connection: close`). */
  readonly keepAlive?: boolean;
  readonly headers?: Record<string, string>;
}

type Outcome = { ok: true } | { ok: false; error: string; reusedAndClosed: boolean };

const once = (url: URL, agent: http.Agent, opts: ProbeOptions): Promise<Outcome> =>
  new Promise((resolve) => {
    const req = http.get(url, { agent, timeout: opts.timeoutMs ?? 2000, headers: opts.headers ?? {} }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode && res.statusCode >= 200 && res.statusCode < 300 ? { ok: true } : { ok: false, error: `HTTP ${res.statusCode}`, reusedAndClosed: false }));
      res.on('error', (e) => resolve({ ok: false, error: e.message, reusedAndClosed: false }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e: NodeJS.ErrnoException) =>
      resolve({ ok: false, error: `${e.code ?? ''} ${e.message}`.trim(), reusedAndClosed: req.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE') }),
    );
  });

export const startProbe = (url: string, opts: ProbeOptions = {}) => {
  const target = new URL(url);
  const keepAlive = opts.keepAlive ?? opts.headers?.connection !== 'close';
  const agent = new http.Agent({ keepAlive, maxSockets: opts.concurrency ?? 2 });
  const fresh = new http.Agent({ keepAlive: false });
  const headers = keepAlive ? opts.headers : { ...opts.headers, connection: 'close' };
  const o = { ...opts, ...(headers ? { headers } : {}) };
  let running = true;
  let requests = 0;
  let failures = 0;
  let closedWhileIdle = 0;
  let outageStart: number | undefined;
  let longest = 0;
  const errors: string[] = [];
  const worker = async () => {
    while (running) {
      const t = Date.now();
      let outcome = await once(target, agent, o);
      if (!outcome.ok && outcome.reusedAndClosed) {
        closedWhileIdle++;
        outcome = await once(target, fresh, o);
      }
      requests++;
      if (outcome.ok) {
        if (outageStart !== undefined) longest = Math.max(longest, Date.now() - outageStart);
        outageStart = undefined;
      } else {
        failures++;
        if (errors.length < 5) errors.push(outcome.error);
        outageStart ??= t;
      }
    }
  };
  const workers = Array.from({ length: opts.concurrency ?? 2 }, () => worker());
  return {
    stop: async (): Promise<ProbeResult> => {
      running = false;
      await Promise.all(workers);
      agent.destroy();
      fresh.destroy();
      if (outageStart !== undefined) longest = Math.max(longest, Date.now() - outageStart);
      return { requests, failures, closedWhileIdle, longestOutageMs: longest, firstErrors: errors };
    },
  };
};
