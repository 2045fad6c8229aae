#!/usr/bin/env -S npx tsx
/** Deploys (or rolls back) the services of a group together, all or nothing (docs/groups.md). */
import { runMain } from '../lib/cli/cli.ts';
import { specs } from '../lib/cli/specs.ts';

await runMain(specs['deploy-group'], async ({ args: [name], flags }) => {
  const { envDir } = await import('../lib/config/env-files.ts');
  const { loadConfig } = await import('../lib/config/config.ts');
  const { UsageError } = await import('../lib/core/errors.ts');
  const g = await import('../lib/flows/group.ts');
  const t = await import('../lib/cli/group-tasks.ts');
  const group = g.readGroup(name as string, envDir());
  // Every env file is read and the group checked before any host is reached.
  const problem = g.groupProblem(group, group.envs.map((env) => loadConfig(env)));
  if (problem) throw new UsageError(problem);
  const { prepareRun } = await import('../lib/cli/run.ts');
  const runs: Awaited<ReturnType<typeof prepareRun>>[] = [];
  try {
    for (const env of group.envs) {
      const options = { dryRun: flags['dry-run'], command: `deploy-group ${group.name}`, forceUnlock: flags['force-unlock'], lockWait: flags['lock-wait'] };
      const check = flags.rollback ? { needsVersion: false } : { check: (_c: unknown, runtime: { checkLocal: (b: boolean) => void }) => runtime.checkLocal(!flags['no-build']) };
      runs.push(await prepareRun(env, { ...options, ...check }));
    }
  } catch (error) {
    await Promise.all(runs.map((r) => r.close()));
    throw error;
  }
  const { withRun } = await import('../lib/flows/session.ts');
  const { servingLine: observe } = await import('../lib/flows/status.ts');
  const { releaseId } = await import('../lib/release/version.ts');
  const now = new Date();
  const closeAll = () => Promise.all(runs.map((r) => r.close()));
  const plan = flags.rollback ? await g.planGroupRollback(group, runs).catch(async (error: unknown) => Promise.reject((await closeAll(), error))) : undefined;
  const services = runs.map((run, i) => {
    const env = group.envs[i] as string; // one run per env, in order
    const going = plan?.going[i] ?? { action: 'deploy', id: releaseId(now, run.version), version: run.version, gitSha: run.gitSha, start: run.cfg.start } as const;
    return { env, run, ctxs: withRun(g.asService(env, run.sessions), going) };
  });
  const what = services.map((s) => (plan ? `${s.env} to ${s.ctxs[0]?.run.id}` : `${s.env} ${s.run.version}`)).join(', ');
  const question = `${plan ? 'Roll back' : 'Deploy'} group ${group.name}: ${what}`;
  const asking = runs.find((r) => r.cfg.confirm);
  await (asking ?? runs[0])?.confirmIf(question, flags.yes);
  const id = plan?.record.id ?? releaseId(now, group.name);
  const o = { dryRun: flags['dry-run'], noBuild: flags['no-build'], verify: flags.verify, observe };
  const body = async () => {
    const all = services.flatMap((s) => s.ctxs);
    const steps = plan ? t.groupRollbackTasks(services, o, plan.liveBefore(services)) : t.groupDeployTasks(services, o);
    await t.runGroupTasks(all, [
      ...steps,
      t.recordTask(all, () => (plan ? { ...plan.record, rolledBackAt: new Date().toISOString() } : g.deployRecord(group, id, services, new Date().toISOString(), all[0]?.who ?? ''))),
    ]);
    for (const s of services) {
      const id = s.ctxs[0]?.run.id ?? '';
      await s.run.doneServing(s.ctxs, `${plan ? `rolled ${s.env} back to ${id}` : `deployed ${s.env} ${s.run.version} (release ${id})`} with group ${group.name}: ${s.run.url}`);
    }
    if (flags.json) {
      const result = {
        action: plan ? 'rollback-group' : 'deploy-group',
        group: group.name,
        id,
        services: services.map((s) => ({ env: s.env, release: s.ctxs[0]?.run.id, version: s.ctxs[0]?.run.version, url: s.run.url, hosts: s.run.sessions.map((c) => c.host.name) })),
        dryRun: o.dryRun,
      };
      process.stdout.write(`${JSON.stringify(result)}\n`);
    }
  };
  // Every service's lock, in a fixed order, before anything is built: two group runs cannot interleave.
  const ordered = g.lockOrder(runs);
  const underLocks = (i: number): Promise<void> => {
    const r = ordered[i];
    return r ? r.withHostLock(() => underLocks(i + 1)) : body();
  };
  await underLocks(0);
});
