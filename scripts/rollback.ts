#!/usr/bin/env -S npx tsx
/** Goes back to an earlier release through the same start, health check and switch as a deploy. */
import { runMain } from '../lib/cli/cli.ts';
import { specs } from '../lib/cli/specs.ts';

await runMain(specs.rollback, async ({ args: [env, requested], flags }) => {
  const { prepareRun, onEachHost } = await import('../lib/cli/run.ts');
  const d = await import('../lib/flows/deploy.ts');
  const rb = await import('../lib/flows/rollback.ts');
  const run = await prepareRun(env as string, {
    dryRun: flags['dry-run'],
    command: 'rollback',
    needsVersion: false,
    forceUnlock: flags['force-unlock'],
    lockWait: flags['lock-wait'],
  });
  const facts = await Promise.all(run.sessions.map((c) => rb.readRollbackFacts(c)));
  if (flags.list) {
    const each = run.sessions.map((c, i) => ({ host: c.host.name, ...(facts[i] as (typeof facts)[number]) }));
    if (flags.json) {
      // Newest first, as the table: each release with whether its folder is still on the host.
      const json = each.map((f) => ({ host: f.host, live: f.liveId ?? null, releases: [...f.history].reverse().map((r) => ({ ...r, onHost: f.onHost.includes(r.id) })) }));
      process.stdout.write(`${JSON.stringify(json.length === 1 ? json[0] : json)}\n`);
    } else {
      const tables = each.map((f) => `${each.length > 1 ? `${f.host}\n` : ''}${rb.formatHistory(f.history, f.liveId, f.onHost)}`);
      process.stdout.write(`${tables.join('\n\n')}\n`);
    }
    return run.close();
  }
  const target = rb.chooseTargetOnAll(run.sessions.map((c, i) => ({ host: c.host.name, ...(facts[i] as (typeof facts)[number]) })), requested, env as string);
  // A rollback over a migration keeps the migrated schema unless the data goes back too: say so first.
  const warning = flags['with-data'] ? undefined : rb.schemaWarning(rb.migratedSince(facts[0]?.history ?? [], target.id), target, env as string);
  if (warning) process.stderr.write(`${warning}\n`);
  // --with-data: the backup is found and verified on every host before anything changes.
  const b = flags['with-data'] ? await import('../lib/flows/backup.ts') : undefined;
  const data = b ? await Promise.all(run.sessions.map((c) => b.backupOfRelease(c, target.id))) : [];
  if (b) {
    const { confirm } = await import('../lib/cli/cli.ts');
    const name = data[0]?.name as string;
    await confirm(`Roll ${env} back to ${target.id} (version ${target.version}) and restore backup ${name} (data written since is replaced)`, flags.yes || run.dryRun);
  } else {
    await run.confirmIf(`Roll ${env} back to ${target.id} (version ${target.version})`, flags.yes);
  }
  const { withRun } = await import('../lib/flows/session.ts');
  const { servingLine: observe } = await import('../lib/flows/status.ts');
  await run.withHostLock(async (list) => {
    const dryRun = () => run.dryRun && 'dry run';
    const blueGreen = () => run.session.proxy !== undefined;
    const all = withRun(run.sessions, rb.goingBackTo(target, run.cfg));
    const ctx = all[0] as (typeof all)[number]; // one per host, and there is one at least
    const tasks = await list([
      onEachHost(all, all.length > 1 ? `Check ${all.length} hosts` : `Check ${ctx.host.name}`, (c) => d.preflight(c)),
      onEachHost(all, `Start ${target.id} and check its health`, (c) => (c.proxy ? d.startIdle(c) : d.replaceAndGate(c)), {
        undo: (c, reason) => (c.proxy ? d.unstart(c, reason) : d.unreplace(c, reason)),
        observe,
        serial: !blueGreen(),
        skip: dryRun,
      }),
      onEachHost(all, `${ctx.run.workers.length > 0 ? 'Start its workers, switch' : 'Switch'} ${run.cfg.proxy} back and verify`, (c) => d.switchOver(c), { undo: d.switchBack, observe, enabled: blueGreen, skip: dryRun }),
      onEachHost(all, 'Drain and stop the old slot', (c) => d.retireOld(c), { enabled: blueGreen, skip: dryRun }),
      onEachHost(all, 'Switch current and record', (c) => d.commit(c)),
      onEachHost(
        all,
        'Mark the release that was live bad',
        async (c) => {
          const liveId = facts[all.indexOf(c)]?.liveId;
          if (liveId) await rb.markBad(c, liveId);
        },
        { enabled: () => requested === undefined },
      ),
    ]);
    await tasks.run(ctx);
    // The data goes back before the last line, which says what each host then serves.
    if (b && !run.dryRun) {
      const { say } = await import('../lib/cli/ui.ts');
      for (const [i, c] of all.entries()) {
        const { name, manifest } = data[i] as NonNullable<(typeof data)[number]>;
        c.logTo((line) => say(`${all.length > 1 ? `${c.host.name}: ` : ''}${line}`));
        const { safety } = await b.restoreBackup(c, name, manifest);
        say(`${env}${all.length > 1 ? ` on ${c.host.name}` : ''}: restored ${name}, taken while ${target.id} was live; the data of before is backup ${safety}`);
      }
    }
    await run.doneServing(all, `rolled ${env} back to ${target.id} (version ${target.version}): ${run.url}`);
    if (flags.json) {
      const result = { action: 'rollback', env, release: target.id, version: target.version, url: run.url, hosts: all.map((c) => c.host.name), dryRun: run.dryRun };
      process.stdout.write(`${JSON.stringify(result)}\n`);
    }
  });
});
