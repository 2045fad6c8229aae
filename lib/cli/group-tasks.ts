/**
 * The task lists of a group run (docs/groups.md): the deploy's steps, each on every host of every
 * service at once, with the switch one service after another in the group's order (the reverse
 * for a rollback). A failure before a service switched stops every new release; a failure in the
 * switch switches back those already switched. lib/flows/group.ts has the group, its record and
 * the undo of a switch; scripts/deploy-group.ts puts these lists under the services' locks.
 */
import type { ListrTask, ListrTaskWrapper } from 'listr2';
import { EXIT, firstLine, SkiffError } from '../core/errors.ts';
import * as d from '../flows/deploy.ts';
import { switchBackDrained, verdict, writeGroupRecord, type GroupRecord, type Service } from '../flows/group.ts';
import * as h from '../flows/hooks.ts';
import type { DeployCtx } from '../flows/session.ts';
import { onEachHost } from './run.ts';

/**
 * Stops the new release wherever it started and was not undone yet, after a step that came later
 * failed (a migration, a switch): the old slots have served all along.
 */
const unstartLeft = async (left: Set<DeployCtx>, reason: string): Promise<string[]> => {
  const problems: string[] = [];
  for (const c of left) {
    try {
      await d.unstart(c, reason);
    } catch (error) {
      problems.push(`${c.host.name}: ${firstLine(error)}`);
    }
  }
  left.clear();
  return problems;
};

/** Adds to an error what was undone after it and what could not be. */
const undoneAfter = (error: unknown, undone: readonly string[], problems: readonly string[]): unknown => {
  if (error instanceof Error && (undone.length > 0 || problems.length > 0)) {
    error.message = [error.message, ...(undone.length > 0 ? [`stopped the new release of ${undone.join(', ')} (not switched yet)`] : []), ...problems.map((p) => `undo failed on ${p}`)].join('\n  ');
  }
  return error;
};

export interface GroupOptions {
  readonly dryRun: boolean;
  readonly noBuild?: boolean;
  readonly verify?: boolean;
  /** What a host serves after an undo (a line), for the error. */
  readonly observe?: (c: DeployCtx) => Promise<string>;
}

/**
 * The steps of a group deploy: the deploy's steps, each on every host of every service, with the
 * switch one service after another in the group's order. A failure before a service switched
 * stops every new release; a failure in the switch switches back those already switched.
 */
export const groupDeployTasks = (services: readonly Service[], o: GroupOptions): ListrTask<object>[] => {
  const all = services.flatMap((s) => s.ctxs);
  const dryRun = () => o.dryRun && 'dry run';
  const started = new Set<DeployCtx>();
  const observe = o.observe ? { observe: o.observe } : {};
  return [
    onEachHost(all, `Check ${services.map((s) => s.env).join(', ')}`, (c) => d.timed(c, 'preflight', () => d.preflight(c))),
    {
      title: 'Build each service once',
      skip: () => (o.noBuild ? 'built already (--no-build)' : dryRun()),
      task: (_c, t) =>
        t.newListr<object>(
          services.map((s) => {
            const [c] = s.ctxs;
            return {
              title: `${s.env}: ${c?.runtime.buildTitle(c.run.version) ?? ''}`,
              skip: () => c?.runtime.noBuild ?? false,
              task: async (_x: unknown, sub: { output: string }) => {
                if (!c) return;
                c.logTo((line) => {
                  sub.output = line;
                });
                await d.timed(c, 'build', () => d.build(c));
                // Every host of the service ships the one build, and records how long it took.
                for (const other of s.ctxs) other.run.durations.build = c.run.durations.build ?? 0;
              },
              rendererOptions: { persistentOutput: true },
            };
          }),
          { concurrent: false, exitOnError: true },
        ),
    },
    onEachHost(all, 'Ship each service', (c) => d.timed(c, 'ship', () => d.ship(c, { verify: o.verify ?? false })), {
      undo: d.unship,
      ...(all.every((c) => c.runtime.shipsInDryRun) ? {} : { skip: dryRun }),
    }),
    onEachHost(all, 'Write shared/.env', (c) => d.timed(c, 'env', () => d.writeAppEnv(c))),
    onEachHost(all, 'Run DEPLOY_RELEASE_CMD in the new releases', (c) => d.timed(c, 'release-cmd', () => h.releaseCommand(c)), {
      undo: h.unreleaseCommand,
      enabled: () => all.some((c) => c.cfg.releaseCmd !== undefined),
      skip: dryRun,
    }),
    onEachHost(
      all,
      'Back up the data (DEPLOY_BACKUP_BEFORE)',
      async (c) => {
        if (!c.cfg.backup.beforeDeploy) return;
        const { takeBackup } = await import('../flows/backup.ts');
        c.run.backupId = (await d.timed(c, 'backup', () => takeBackup(c, 'before-deploy'))).name;
        c.log(`backup ${c.run.backupId}`);
      },
      { enabled: () => all.some((c) => c.cfg.backup.beforeDeploy), skip: dryRun },
    ),
    onEachHost(
      all,
      'Start each in its idle slot and check health',
      async (c) => {
        await d.timed(c, 'start', () => d.startIdle(c));
        started.add(c);
      },
      {
        undo: async (c, reason) => {
          started.delete(c);
          await d.unstart(c, reason);
        },
        ...observe,
        skip: dryRun,
      },
    ),
    {
      title: 'Run DEPLOY_MIGRATE (first host of each service)',
      enabled: () => services.some((s) => s.ctxs[0]?.cfg.migrate !== undefined),
      skip: dryRun,
      task: async () => {
        for (const s of services) {
          const [first] = s.ctxs;
          if (!first || first.cfg.migrate === undefined) continue;
          try {
            await d.timed(first, 'migrate', () => h.migrateOnce(s.ctxs));
          } catch (error) {
            // migrateOnce stopped this service's new release; the other services' go too.
            for (const c of s.ctxs) started.delete(c);
            const others = [...new Set([...started].map((c) => c.host.name))];
            throw undoneAfter(error, others, await unstartLeft(started, `${s.env} failed: ${firstLine(error)}`));
          }
        }
      },
    },
    {
      title: `Switch in order: ${services.map((s) => s.env).join(', then ')}`,
      skip: dryRun,
      task: async (_c, t) => {
        const switching = onEachHost(all, 'switch', async (c) => {
          started.delete(c); // from here on, the switch or its undo looks after it
          await d.timed(c, 'switch', () => d.switchOver(c));
        }, { undo: switchBackDrained, ...observe, serial: true });
        try {
          await (switching.task as (c: object, w: unknown) => Promise<unknown>)({}, t);
        } catch (error) {
          const left = [...started].map((c) => c.host.name);
          throw undoneAfter(error, left, await unstartLeft(started, firstLine(error)));
        }
      },
    },
    onEachHost(all, 'Drain and stop the old slots', (c) => d.timed(c, 'drain', () => d.retireOld(c)), { skip: dryRun }),
    onEachHost(all, 'Switch current and record', (c) => d.commit(c)),
    onEachHost(all, 'Prune old releases', async (c) => c.log(d.pruneLine(await d.prune(c), c.host.dryRun === true))),
  ];
};

/**
 * The steps of a group rollback: the rollback's steps on every host of every service, switching
 * back one service after another in the reverse of the group's order (the last to go live goes back
 * first), all or nothing as a deploy.
 */
export const groupRollbackTasks = (services: readonly Service[], o: GroupOptions, liveBefore: ReadonlyMap<DeployCtx, string>): ListrTask<object>[] => {
  const all = services.flatMap((s) => s.ctxs);
  const dryRun = () => o.dryRun && 'dry run';
  const started = new Set<DeployCtx>();
  const observe = o.observe ? { observe: o.observe } : {};
  const backwards = [...services].reverse().flatMap((s) => s.ctxs);
  return [
    onEachHost(all, `Check ${services.map((s) => s.env).join(', ')}`, async (c) => {
      await d.preflight(c);
      // Read again under the lock: a service deployed alone since the plan was made is not taken back.
      const live = c.run.previous?.slot.release;
      if (live !== liveBefore.get(c)) {
        throw new SkiffError(`${c.host.name} serves ${live ?? 'nothing'} now, not ${liveBefore.get(c) ?? 'nothing'} of the group's last deploy: it changed since; run the rollback again`, 2);
      }
    }),
    onEachHost(
      all,
      'Start each earlier release and check its health',
      async (c) => {
        await d.startIdle(c);
        started.add(c);
      },
      {
        undo: async (c, reason) => {
          started.delete(c);
          await d.unstart(c, reason);
        },
        ...observe,
        skip: dryRun,
      },
    ),
    {
      title: `Switch back in order: ${[...services].reverse().map((s) => s.env).join(', then ')}`,
      skip: dryRun,
      task: async (_c, t) => {
        const switching = onEachHost(backwards, 'switch', async (c) => {
          started.delete(c);
          await d.switchOver(c);
        }, { undo: switchBackDrained, ...observe, serial: true });
        try {
          await (switching.task as (c: object, w: unknown) => Promise<unknown>)({}, t);
        } catch (error) {
          const left = [...started].map((c) => c.host.name);
          throw undoneAfter(error, left, await unstartLeft(started, firstLine(error)));
        }
      },
    },
    onEachHost(all, 'Drain and stop the old slots', (c) => d.retireOld(c), { skip: dryRun }),
    onEachHost(all, 'Switch current and record', (c) => d.commit(c)),
    onEachHost(all, "Mark the group's releases bad", async (c) => {
      const id = liveBefore.get(c);
      if (id) {
        const { markBad } = await import('../flows/rollback.ts');
        await markBad(c, id);
      }
    }),
  ];
};

/** The last step of a group run: its record on every host of every service. */
export const recordTask = (all: readonly DeployCtx[], make: () => GroupRecord): ListrTask<object> =>
  onEachHost(all, 'Record the group run on every host', async (c) => writeGroupRecord(c, make()));

/**
 * Runs the steps of a group as one listr2 list: each step's lines go to its output, named by the
 * service; the list shows a failed step's first line, and the whole error is thrown for the one
 * handler to print.
 */
export const runGroupTasks = async (all: readonly DeployCtx[], tasks: readonly ListrTask<object>[]): Promise<void> => {
  const { taskList } = await import('./ui.ts');
  let failure: unknown;
  const list = await taskList<object>(
    tasks.map((t) => ({
      ...t,
      task: async (c: object, w: ListrTaskWrapper<object, never, never>) => {
        for (const each of all) {
          each.logTo((line) => {
            w.output = line;
          });
        }
        try {
          // A ListrTask's task takes its context and wrapper: the types of the renderers differ, the call does not.
          return await (t.task as (c: object, w: unknown) => unknown)(c, w);
        } catch (error) {
          failure ??= error;
          throw new Error(firstLine(error));
        }
      },
      rendererOptions: { persistentOutput: true },
    })) as ListrTask<object>[],
  );
  try {
    await list.run({});
  } catch (error) {
    const first = failure ?? error;
    // A failed run (exit 1) ends with its verdict on the whole group, from what each host is seen to serve.
    if (first instanceof Error && (first instanceof SkiffError ? first.exitCode : EXIT.failed) === EXIT.failed) first.message += `\n  ${await verdict(all)}`;
    throw first;
  }
};

