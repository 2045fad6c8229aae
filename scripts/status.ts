#!/usr/bin/env -S npx tsx
/** Shows what runs in an environment: release, slot, port, process, health, lock and recent releases. */
import { runMain } from '../lib/cli/cli.ts';
import { specs } from '../lib/cli/specs.ts';
import { EXIT } from '../lib/core/errors.ts';

await runMain(specs.status, async ({ args: [env], flags }) => {
  const { prepareRun } = await import('../lib/cli/run.ts');
  const { gatherStatus, formatStatus } = await import('../lib/flows/status.ts');
  const run = await prepareRun(env as string, { command: 'status', needsVersion: false });
  try {
    const reports = await Promise.all(run.sessions.map((c) => gatherStatus(c, run.url)));
    // One host: one object (or text block); several: an array (or one block per host).
    const json = () => JSON.stringify(reports.length === 1 ? reports[0] : reports, null, 2);
    process.stdout.write(`${flags.json ? json() : reports.map(formatStatus).join('\n\n')}\n`);
    // Not running (or never deployed) is a state, not a failure of this command; a crash is.
    return reports.some((r) => r.process.state === 'crashed') ? EXIT.failed : EXIT.ok;
  } finally {
    await run.close();
  }
});
