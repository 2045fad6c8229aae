#!/usr/bin/env -S npx tsx
/** Starts the live release of an environment if it is not running, and waits until it is healthy. */
import { runMain } from '../lib/cli/cli.ts';

const spec = {
  name: 'start',
  summary: 'Start the live release of an environment (no second process if it already runs).',
  usage: '<env>',
  positionals: [{ name: '<env>', required: true, description: 'environment: the name of a file env/<env>.env' }],
  flags: {},
  examples: ['npx tsx scripts/start.ts local'],
} as const;

await runMain(spec, async ({ args: [env] }) => {
  const { prepareRun } = await import('../lib/cli/run.ts');
  const { startLive } = await import('../lib/flows/status.ts');
  const { say } = await import('../lib/cli/ui.ts');
  const run = await prepareRun(env as string, { command: 'start', needsVersion: false });
  await run.withHostLock(async () => {
    const all = run.sessions;
    for (const c of all) say(`${env}${all.length > 1 ? ` on ${c.host.name}` : ''}: ${await startLive(c)}: ${run.url}`);
  });
});
