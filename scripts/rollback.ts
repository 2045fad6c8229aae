#!/usr/bin/env -S npx tsx
/** Goes back to an earlier release through the same start, health check and switch as a deploy. */
import { runMain } from '../lib/cli.ts';

const spec = {
  name: 'rollback',
  summary: 'Go back to an earlier release (default: the newest good one before the live one, which is marked bad).',
  usage: '<env> [<release>] [--list] [--yes] [--dry-run] [--force-unlock] [--lock-wait SECONDS]',
  positionals: [
    { name: '<env>', required: true, description: 'environment: the name of a file env/<env>.env' },
    { name: '<release>', required: false, description: 'a release id from --list (default: the previous good release)' },
  ],
  flags: {
    list: { type: 'boolean', short: 'l', description: 'print the releases, newest first, the live one marked *' },
    yes: { type: 'boolean', short: 'y', description: 'do not ask for confirmation (production)' },
    'force-unlock': { type: 'boolean', description: 'break a lock whose holder is gone or has not shown a heartbeat for a minute' },
    'lock-wait': { type: 'string', description: 'wait up to SECONDS for a running deploy to finish (default: refuse at once, exit 3)' },
    'dry-run': { type: 'boolean', description: 'print what would run; change nothing' },
  },
  examples: ['npx tsx scripts/rollback.ts staging', 'npx tsx scripts/rollback.ts staging --list', 'npx tsx scripts/rollback.ts staging 20261122-234512-1.2.0'],
} as const;

await runMain(spec, async ({ args: [env, requested], flags }) => {
  const { prepareRun } = await import('../lib/run.ts');
  const d = await import('../lib/deploy.ts');
  const rb = await import('../lib/rollback.ts');
  const run = await prepareRun(env as string, {
    dryRun: flags['dry-run'],
    command: 'rollback',
    needsVersion: false,
    forceUnlock: flags['force-unlock'],
    lockWait: flags['lock-wait'],
  });
  const { ctx } = run;
  const facts = await rb.readRollbackFacts(ctx);
  if (flags.list) {
    process.stdout.write(`${rb.formatHistory(facts.history, facts.liveId, facts.onHost)}\n`);
    return run.host.close();
  }
  const target = rb.chooseTarget(facts.history, facts.liveId, facts.onHost, requested, env as string);
  await run.confirmIf(`Roll ${env} back to ${target.id} (version ${target.version})`, flags.yes);
  await run.withHostLock(async (c, list) => {
    rb.aimAt(c, target);
    const tasks = await list([
      { title: `Check ${c.host.name}`, task: () => d.preflight(c) },
      {
        title: `Start ${target.id} and check its health`,
        task: () => (c.proxy ? d.startIdle(c) : d.replaceAndGate(c)),
        skip: () => run.dryRun && 'dry run',
      },
      { title: `Switch ${run.cfg.proxy} back, verify, drain`, task: () => d.switchTraffic(c, c.proxy as NonNullable<typeof c.proxy>), enabled: () => c.proxy !== undefined, skip: () => run.dryRun && 'dry run' },
      { title: 'Switch current and record', task: () => d.commit(c) },
      { title: `Mark ${facts.liveId} bad`, task: () => rb.markBad(c, facts.liveId as string), enabled: () => requested === undefined && facts.liveId !== undefined },
    ]);
    await tasks.run(c);
    run.done(`rolled ${env} back to ${target.id} (version ${target.version}): ${run.url}`);
  });
});
