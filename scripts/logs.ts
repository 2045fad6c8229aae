#!/usr/bin/env -S npx tsx
/** Prints the log of the live release of an environment; `--follow` keeps printing new lines. */
import { runMain, UsageErrorFor } from '../lib/cli/cli.ts';
import { specs } from '../lib/cli/specs.ts';

await runMain(specs.logs, async ({ args: [env], flags }) => {
  const lines = Number(flags.lines ?? '100');
  if (!Number.isInteger(lines) || lines < 0) throw UsageErrorFor(`--lines must be a whole number, not ${JSON.stringify(flags.lines)}`);
  const { prepareRun } = await import('../lib/cli/run.ts');
  const { showLogs, prefixLines } = await import('../lib/flows/status.ts');
  const run = await prepareRun(env as string, { command: 'logs', needsVersion: false });
  try {
    if (run.sessions.length === 1) return await showLogs(run.session, lines, flags.follow, (b) => process.stdout.write(b));
    // Several hosts: every line is prefixed with its host, and --follow follows all of them at once.
    await Promise.all(run.sessions.map((c) => showLogs(c, lines, flags.follow, prefixLines(`[${c.host.name}] `, (text) => process.stdout.write(text)))));
  } finally {
    await run.close();
  }
});
