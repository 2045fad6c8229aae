#!/usr/bin/env -S npx tsx
/** Deploys APP_DIR to every host of an environment: build, ship, start, health-gate, switch. */
import { runMain } from '../lib/cli/cli.ts';
import { specs } from '../lib/cli/specs.ts';

await runMain(specs['deploy-vps'], async ({ args: [env], flags }) => {
  const { prepareRun, onEachHost } = await import('../lib/cli/run.ts');
  const d = await import('../lib/flows/deploy.ts');
  const h = await import('../lib/flows/hooks.ts');
  const { releaseId } = await import('../lib/release/version.ts');
  const run = await prepareRun(env as string, {
    dryRun: flags['dry-run'],
    command: 'deploy',
    forceUnlock: flags['force-unlock'],
    lockWait: flags['lock-wait'],
    check: (_cfg, runtime) => runtime.checkLocal(!flags['no-build']),
  });
  await run.confirmIf(`Deploy ${run.version} to ${env}`, flags.yes);
  const { withRun } = await import('../lib/flows/session.ts');
  const { servingLine: observe } = await import('../lib/flows/status.ts');
  await run.withHostLock(async (list) => {
    const dryRun = () => run.dryRun && 'dry run';
    const blueGreen = () => run.session.proxy !== undefined;
    const going = { action: 'deploy', id: releaseId(new Date(), run.version), version: run.version, gitSha: run.gitSha, start: run.cfg.start, workers: run.cfg.workers } as const;
    const all = withRun(run.sessions, going);
    const ctx = all[0] as (typeof all)[number]; // one per host, and there is one at least
    // Once per deploy, on the first host: after the new slot is healthy, or before the replace without a proxy.
    const migrateTask = (here: () => boolean) => ({
      title: `Run DEPLOY_MIGRATE on ${ctx.host.name}`,
      task: () => d.timed(ctx, 'migrate', () => h.migrateOnce(all)),
      enabled: () => run.cfg.migrate !== undefined && here(),
      skip: dryRun,
    });
    const tasks = await list([
      onEachHost(all, all.length > 1 ? `Check ${all.length} hosts` : `Check ${ctx.host.name}`, (c) => d.timed(c, 'preflight', () => d.preflight(c))),
      {
        title: ctx.runtime.buildTitle(run.version),
        task: async () => {
          await d.timed(ctx, 'build', () => d.build(ctx));
          // Every host ships the one build, and records how long it took.
          for (const other of all) other.run.durations.build = ctx.run.durations.build ?? 0;
        },
        skip: () => ctx.runtime.noBuild ?? (flags['no-build'] ? 'built already (--no-build)' : dryRun()),
      },
      onEachHost(all, ctx.runtime.shipTitle, (c) => d.timed(c, 'ship', () => d.ship(c, { verify: flags.verify })), {
        undo: d.unship,
        observe,
        ...(ctx.runtime.shipsInDryRun ? {} : { skip: dryRun }),
      }),
      onEachHost(all, 'Write shared/.env', (c) => d.timed(c, 'env', () => d.writeAppEnv(c))),
      onEachHost(all, 'Run DEPLOY_RELEASE_CMD in the new release', (c) => d.timed(c, 'release-cmd', () => h.releaseCommand(c)), {
        undo: h.unreleaseCommand,
        enabled: () => run.cfg.releaseCmd !== undefined,
        skip: dryRun,
      }),
      onEachHost(
        all,
        'Back up the data (DEPLOY_BACKUP_BEFORE)',
        async (c) => {
          const { takeBackup } = await import('../lib/flows/backup.ts');
          c.run.backupId = (await d.timed(c, 'backup', () => takeBackup(c, 'before-deploy'))).name;
          c.log(`backup ${c.run.backupId}`);
        },
        { enabled: () => run.cfg.backup.beforeDeploy, skip: dryRun },
      ),
      migrateTask(() => !blueGreen()),
      onEachHost(
        all,
        // Each host's idle slot is what its preflight found (hosts may differ): the step's lines name it.
        ctx.proxy ? 'Start in the idle slot and check health' : `Replace the running release (port ${run.cfg.ports[0]}) and check health`,
        (c) => d.timed(c, 'start', () => (c.proxy ? d.startIdle(c) : d.replaceAndGate(c))),
        // Without a proxy a host is down while its release is replaced: one host at a time.
        { undo: (c, reason) => (c.proxy ? d.unstart(c, reason) : d.unreplace(c, reason)), observe, serial: !blueGreen(), skip: dryRun },
      ),
      migrateTask(blueGreen),
      onEachHost(all, `${run.cfg.workers.length > 0 ? 'Start the workers, switch' : 'Switch'} ${run.cfg.proxy} to the new slot and verify`, (c) => d.timed(c, 'switch', () => d.switchOver(c)), {
        undo: d.switchBack,
        observe,
        enabled: blueGreen,
        skip: dryRun,
      }),
      onEachHost(all, 'Drain and stop the old slot', (c) => d.timed(c, 'drain', () => d.retireOld(c)), { enabled: blueGreen, skip: dryRun }),
      onEachHost(all, 'Switch current and record', (c) => d.commit(c)),
      onEachHost(all, 'Prune old releases', async (c) => c.log(d.pruneLine(await d.prune(c), c.host.dryRun === true))),
    ]);
    await tasks.run(ctx);
    await run.doneServing(all, `deployed ${run.version} (release ${ctx.run.id}) to ${env}${all.length > 1 ? ` (${all.length} hosts)` : ''}: ${run.url}`);
    if (flags.json) {
      // Per host: its release id, what its ship sent and how, and each step's milliseconds.
      const perHost = all.map((c) => ({ host: c.host.name, release: c.run.id, shipped: c.run.shipped ?? null, durations: c.run.durations }));
      const result = { action: 'deploy', env, release: ctx.run.id, version: run.version, url: run.url, hosts: all.map((c) => c.host.name), dryRun: run.dryRun, perHost };
      process.stdout.write(`${JSON.stringify(result)}\n`);
    }
  });
});
