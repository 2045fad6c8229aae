/**
 * Progress output. In a terminal listr2 draws its task tree; without one (CI, pipes) it prints plain
 * timestamped lines. Lists never install signal handlers: lib/cli/cli.ts owns SIGINT and SIGTERM.
 */
import { hostname, userInfo } from 'node:os';
import type { ListrTask } from 'listr2';

/** Who runs this command, for history, audit and lock lines. */
export const whoAmI = (): string => `${userInfo().username}@${hostname()}`;

/** Builds the listr2 list every script runs. */
export const taskList = async <Ctx extends object>(tasks: ListrTask<Ctx>[]) => {
  const { Listr, PRESET_TIMESTAMP } = await import('listr2');
  return new Listr<Ctx>(tasks, {
    concurrent: false,
    exitOnError: true,
    registerSignalListeners: false,
    renderer: 'default',
    fallbackRenderer: 'simple',
    rendererOptions: { collapseSubtasks: false, collapseErrors: false },
    fallbackRendererOptions: { timestamp: PRESET_TIMESTAMP },
  });
};

/** A plain line on stdout, timestamped when not in a terminal (as the list's own lines are). */
export const say = (line: string): void => {
  const stamp = process.stdout.isTTY ? '' : `[${new Date().toTimeString().slice(0, 8)}] `;
  process.stdout.write(`${stamp}${line}\n`);
};
