#!/usr/bin/env -S npx tsx
/** Puts up or takes down the 503 maintenance page at the proxy of an environment (docs/maintenance.md). */
import { runMain, UsageErrorFor } from '../lib/cli/cli.ts';
import { specs } from '../lib/cli/specs.ts';

await runMain(specs.maintenance, async ({ args: [env, word], flags }) => {
  // Every argument is checked before the config is read or a host is reached.
  if (word !== 'on' && word !== 'off') throw UsageErrorFor(`maintenance takes on or off, not ${JSON.stringify(word)}: usage: npx tsx scripts/maintenance.ts ${specs.maintenance.usage}`);
  const { checkMessage, checkRetryAfter } = await import('../lib/proxy/maintenance-page.ts');
  if (word === 'off' && (flags.message !== undefined || flags['retry-after'] !== undefined)) {
    throw UsageErrorFor('--message and --retry-after go with `on` (they set the page): `off` takes neither');
  }
  const page = word === 'on' ? { message: checkMessage(flags.message), retryAfter: checkRetryAfter(flags['retry-after']) } : undefined;
  const { prepareRun, onEachHost } = await import('../lib/cli/run.ts');
  const m = await import('../lib/flows/maintenance.ts');
  const { say } = await import('../lib/cli/ui.ts');
  const run = await prepareRun(env as string, { command: `maintenance ${word}`, needsVersion: false, forceUnlock: flags['force-unlock'], lockWait: flags['lock-wait'] });
  if (run.cfg.proxy === 'none') {
    // Refused before any lock or task: the same check runs in maintenancePreflight on every host.
    await run.close();
    await m.maintenancePreflight(run.session);
  }
  const on = (c: (typeof run.sessions)[number]) => `${env}${run.sessions.length > 1 ? ` on ${c.host.name}` : ''}`;
  const lines = new Map<(typeof run.sessions)[number], string>();
  if (flags['dry-run']) {
    // Read from the real hosts (a printing host would answer every read with nothing), change nothing.
    try {
      for (const c of run.sessions) lines.set(c, `dry run: ${on(c)}: ${await m.describeChange(c, await m.maintenancePreflight(c), page)}; nothing was changed`);
    } finally {
      await run.close();
    }
  } else {
    const facts = new Map<(typeof run.sessions)[number], Awaited<ReturnType<typeof m.maintenancePreflight>>>();
    const factsOf = (c: (typeof run.sessions)[number]) => facts.get(c) as NonNullable<ReturnType<typeof facts.get>>; // set by the first task on every host
    await run.withHostLock(async (list) => {
      const tasks = await list([
        onEachHost(run.sessions, run.sessions.length > 1 ? `Check ${run.sessions.length} hosts` : `Check ${run.host.name}`, async (c) => void facts.set(c, await m.maintenancePreflight(c))),
        onEachHost(
          run.sessions,
          page ? 'Put up the maintenance page and check it through the proxy' : 'Check the live release, take down the maintenance page, check the app through the proxy',
          async (c) => void lines.set(c, page ? await m.turnOn(c, factsOf(c), page) : await m.turnOff(c, factsOf(c))),
          // All or nothing: a host that failed is put back by its own step; the others here.
          { undo: async (c) => { const left = await m.putBack(c, factsOf(c)); if (left) throw new Error(left); } },
        ),
      ]);
      await tasks.run({});
    });
  }
  for (const c of run.sessions) say(`${on(c)}: ${lines.get(c) ?? ''}`);
  if (flags.json) {
    const result = { action: 'maintenance', env, on: word === 'on', ...(page ?? {}), url: run.url, hosts: run.sessions.map((c) => c.host.name), dryRun: flags['dry-run'] };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  }
});
