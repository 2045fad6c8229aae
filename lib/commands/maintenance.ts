/** Builders for the maintenance page: the probe of the page through the proxy, and the files it keeps. Pure. */
import { script, type Cmd } from '../core/cmd.ts';

/**
 * One GET through the proxy, from the host: prints the status line and the headers of the answer
 * (`000` alone when nothing answers within `timeoutSeconds`). Read with `parseProbeAnswer`.
 */
export const probeHeaders = (url: string, timeoutSeconds: number): Cmd =>
  script('h=$(curl -g -s -D - -o /dev/null -m "$2" "$1") || { echo 000; exit 0; }; printf "%s\\n" "$h"', url, String(timeoutSeconds));

/** The status and the Retry-After header of a `probeHeaders` answer (`000` when nothing answered). */
export const parseProbeAnswer = (answer: string): { status: string; retryAfter: string | undefined } => {
  const lines = answer.split(/\r?\n/);
  const status = /^HTTP\/\S+ (\d{3})/.exec(lines[0] ?? '')?.[1] ?? '000';
  const retry = lines.map((l) => /^retry-after:\s*(.*?)\s*$/i.exec(l)).find((m) => m !== null)?.[1];
  return { status, retryAfter: retry };
};

/** Makes the file if it is missing, leaving one that exists as it is (the map HAProxy loads must exist). */
export const ensureFile = (path: string): Cmd => script(': >> "$1"', path);

/** Removes a file; nothing when it is not there. */
export const removeFile = (path: string): Cmd => script('rm -f "$1"', path);
