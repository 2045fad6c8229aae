#!/usr/bin/env -S npx tsx
/** Deploys APP_DIR to every host of an environment: build, ship, start, health-gate, switch. */
import { runMain } from '../lib/cli.ts';

const spec = {
  name: 'deploy-vps',
  summary: 'Build the app and deploy it to an environment, keeping the previous version serving if anything fails.',
  usage: '<env> [--yes] [--dry-run] [--no-build] [--force-unlock] [--lock-wait SECONDS] [--verbose]',
  positionals: [{ name: '<env>', required: true, description: 'environment: the name of a file env/<env>.env (e.g. local, staging)' }],
  flags: {
    yes: { type: 'boolean', short: 'y', description: 'do not ask for confirmation (production)' },
    'force-unlock': { type: 'boolean', description: 'break a lock whose holder is gone or has not shown a heartbeat for a minute' },
    'lock-wait': { type: 'string', description: 'wait up to SECONDS for a running deploy to finish (default: refuse at once, exit 3)' },
    'dry-run': { type: 'boolean', description: 'print what would run on each host; change nothing' },
    'no-build': { type: 'boolean', description: 'ship APP_DIR as it is (already built by scripts/build.ts)' },
    verbose: { type: 'boolean', short: 'v', description: 'print the stack trace of an unexpected error' },
  },
  examples: ['npx tsx scripts/deploy-vps.ts local', 'npx tsx scripts/deploy-vps.ts production --yes'],
} as const;

await runMain(spec, async ({ args: [env], flags }) => {
  const { prepareRun } = await import('../lib/run.ts');
  const d = await import('../lib/deploy.ts');
  const run = await prepareRun(env as string, { dryRun: flags['dry-run'], command: 'deploy', forceUnlock: flags['force-unlock'], lockWait: flags['lock-wait'] });
  await run.confirmIf(`Deploy ${run.version} to ${env}`, flags.yes);
  await run.withHostLock(async (ctx, list) => {
    const tasks = await list([
      { title: `Check ${ctx.host.name}`, task: () => d.timed(ctx, 'preflight', () => d.preflight(ctx)) },
      { title: `Build ${run.version}`, task: () => d.timed(ctx, 'build', () => d.build(ctx)), skip: () => (!run.cfg.build ? 'no build to run' : flags['no-build'] ? 'built already (--no-build)' : run.dryRun && 'dry run') },
      { title: 'Ship the release', task: () => d.timed(ctx, 'ship', () => d.ship(ctx)) },
      { title: 'Write shared/.env', task: () => d.timed(ctx, 'env', () => d.writeAppEnv(ctx)) },
      {
        title: 'Start the new release and check its health',
        task: (_, t) => {
          t.title = `Start in slot ${d.targetSlot(ctx).slot} (port ${d.targetSlot(ctx).port}) and check health`;
          return d.timed(ctx, 'start', () => (ctx.proxy ? d.startIdle(ctx) : d.replaceAndGate(ctx)));
        },
        skip: () => run.dryRun && 'dry run',
      },
      {
        title: `Switch ${run.cfg.proxy} to the new slot, verify, drain the old one`,
        task: () => d.timed(ctx, 'switch', () => d.switchTraffic(ctx, ctx.proxy as NonNullable<typeof ctx.proxy>)),
        enabled: () => ctx.proxy !== undefined,
        skip: () => run.dryRun && 'dry run',
      },
      { title: 'Switch current and record', task: () => d.commit(ctx) },
      { title: 'Prune old releases', task: async (_, t) => { const gone = await d.prune(ctx); t.title = `Prune old releases (${gone.length} removed)`; } },
    ]);
    await tasks.run(ctx);
    run.done(`deployed ${run.version} (release ${ctx.id}) to ${env}: ${run.url}`);
  });
});
