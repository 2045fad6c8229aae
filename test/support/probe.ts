/**
 * A downtime probe: requests back to back to a URL until stopped, counting failures (refused, reset,
 * timed out, non-2xx) and the longest stretch in which every request failed.
 */
export interface ProbeResult {
  readonly requests: number;
  readonly failures: number;
  readonly longestOutageMs: number;
  readonly firstErrors: readonly string[];
}

export const startProbe = (url: string, opts: { concurrency?: number; timeoutMs?: number; headers?: Record<string, string> } = {}) => {
  let running = true;
  let requests = 0;
  let failures = 0;
  let outageStart: number | undefined;
  let longest = 0;
  const errors: string[] = [];
  const worker = async () => {
    while (running) {
      const t = Date.now();
      let ok = false;
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(opts.timeoutMs ?? 2000), ...(opts.headers ? { headers: opts.headers } : {}) });
        await res.arrayBuffer();
        ok = res.status >= 200 && res.status < 300;
        if (!ok && errors.length < 5) errors.push(`HTTP ${res.status}`);
      } catch (e) {
        if (errors.length < 5) errors.push(e instanceof Error ? `${e.message} ${(e.cause as Error | undefined)?.message ?? ''}` : String(e));
      }
      requests++;
      if (ok) {
        if (outageStart !== undefined) longest = Math.max(longest, Date.now() - outageStart);
        outageStart = undefined;
      } else {
        failures++;
        outageStart ??= t;
      }
    }
  };
  const workers = Array.from({ length: opts.concurrency ?? 2 }, () => worker());
  return {
    stop: async (): Promise<ProbeResult> => {
      running = false;
      await Promise.all(workers);
      if (outageStart !== undefined) longest = Math.max(longest, Date.now() - outageStart);
      return { requests, failures, longestOutageMs: longest, firstErrors: errors };
    },
  };
};
