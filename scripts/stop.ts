#!/usr/bin/env -S npx tsx
/** Stops the live release of an environment, letting in-flight requests finish. */
import { runMain } from '../lib/cli/cli.ts';

const spec = {
  name: 'stop',
  summary: 'Stop the live release of an environment (it drains for DEPLOY_DRAIN_SECONDS, then is killed).',
  usage: '<env>',
  positionals: [{ name: '<env>', required: true, description: 'environment: the name of a file env/<env>.env' }],
  flags: {},
  examples: ['npx tsx scripts/stop.ts local'],
} as const;

await runMain(spec, async ({ args: [env] }) => {
  const { prepareRun } = await import('../lib/cli/run.ts');
  const { stopLive } = await import('../lib/flows/status.ts');
  const { say } = await import('../lib/cli/ui.ts');
  const run = await prepareRun(env as string, { command: 'stop', needsVersion: false });
  await run.withHostLock(async () => {
    const all = run.sessions;
    for (const c of all) say(`${env}${all.length > 1 ? ` on ${c.host.name}` : ''}: ${await stopLive(c)}`);
  });
});
