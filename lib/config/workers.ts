/**
 * DEPLOY_WORKERS: the processes of a release that serve no HTTP (a queue consumer, a mailer), as
 * one key of `;`-separated `name[:count]=command` entries, e.g. `queue:2=node worker.js;mailer=node mail.js`.
 *
 * One key rather than a key per worker (DEPLOY_WORKER_<NAME>): every DEPLOY_ key is in the table
 * of lib/config/config.ts, so a mistyped one is caught with a "did you mean"; a family of keys
 * named by the user would need an exception to that check, and would read worse in `env-check`.
 * The cost: a command cannot hold `;` (put a longer one in a script of the app).
 */
/** One worker: its name, how many processes of it run, and the command each runs in the release folder. */
export interface WorkerSpec {
  readonly name: string;
  readonly count: number;
  readonly command: string;
}

/** A worker's name: a-z, 0-9 and -, starting with a letter or digit, at most 32 characters (it is part of file names). */
export const WORKER_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;
/** The most processes of one worker. */
export const MAX_WORKER_COUNT = 16;

/** Why an entry is bad, in a few words, or undefined when it is good. */
const entryProblem = (entry: string): string | undefined => {
  const eq = entry.indexOf('=');
  if (eq < 0) return `"${entry.trim()}" has no "=": write name=command`;
  const [name = '', count] = entry.slice(0, eq).trim().split(':');
  const command = entry.slice(eq + 1).trim();
  if (!WORKER_NAME.test(name)) return `the worker name "${name}" is not a-z, 0-9 and - (at most 32, no spaces or slashes)`;
  if (count !== undefined && !(/^\d{1,2}$/.test(count) && Number(count) >= 1 && Number(count) <= MAX_WORKER_COUNT)) {
    return `the count of ${name} ("${count}") is not 1-${MAX_WORKER_COUNT}`;
  }
  if (command === '') return `the worker ${name} has an empty command`;
  if (/[\u0000-\u001f\u007f]/.test(command)) return `the command of ${name} holds a control character`;
  return undefined;
};

/** Parses DEPLOY_WORKERS; throws the first problem as one line. Empty entries (a trailing `;`) are ignored. */
export const parseWorkers = (value: string): WorkerSpec[] => {
  const entries = value.split(';').filter((e) => e.trim() !== '');
  const workers: WorkerSpec[] = [];
  for (const entry of entries) {
    const problem = entryProblem(entry);
    if (problem) throw new Error(problem);
    const eq = entry.indexOf('=');
    const [name = '', count = '1'] = entry.slice(0, eq).trim().split(':');
    if (workers.some((w) => w.name === name)) throw new Error(`the worker name ${name} is given twice`);
    workers.push({ name, count: Number(count), command: entry.slice(eq + 1).trim() });
  }
  return workers;
};

/** The processes of a release's workers, one per count: `queue.1`, `queue.2`, `mailer.1`. */
export const workerInstances = (workers: readonly WorkerSpec[]): { readonly id: string; readonly worker: WorkerSpec }[] =>
  workers.flatMap((worker) => Array.from({ length: worker.count }, (_, i) => ({ id: `${worker.name}.${i + 1}`, worker })));
