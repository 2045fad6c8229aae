#!/usr/bin/env -S npx tsx
/** Stops the live release of an environment, letting in-flight requests finish. */
import { runMain } from '../lib/cli/cli.ts';
import { specs } from '../lib/cli/specs.ts';

await runMain(specs.stop, async ({ args: [env], flags }) => {
  const { prepareRun } = await import('../lib/cli/run.ts');
  const { gatherStatus, stopLive } = await import('../lib/flows/status.ts');
  const { NotDeployedError } = await import('../lib/core/errors.ts');
  const { say } = await import('../lib/cli/ui.ts');
  const run = await prepareRun(env as string, { command: 'stop', needsVersion: false, forceUnlock: flags['force-unlock'], lockWait: flags['lock-wait'] });
  const on = (c: (typeof run.sessions)[number]) => `${env}${run.sessions.length > 1 ? ` on ${c.host.name}` : ''}`;
  if (flags['dry-run']) {
    // Read from the real hosts (a printing host would answer every read with nothing), change nothing.
    try {
      for (const c of run.sessions) {
        const r = await gatherStatus(c, run.url);
        if (!r.release) throw new NotDeployedError(r.env, r.host);
        const what = r.process.state === 'running'
          ? `would stop ${c.runtime.haltedWord} ${r.process.container?.name ?? r.process.pid} (release ${r.release.release}), draining for up to ${run.cfg.drainSeconds}s`
          : 'not running: would stop nothing';
        say(`dry run: ${on(c)}: ${what}; nothing was changed`);
      }
    } finally {
      await run.close();
    }
    return;
  }
  // Stopping takes the site down: asked first where a deploy is (production, or DEPLOY_CONFIRM=true).
  await run.confirmIf(`Stop the live release of ${env}${run.sessions.length > 1 ? ` on ${run.sessions.length} hosts` : ''}`, flags.yes);
  await run.withHostLock(async () => {
    for (const c of run.sessions) say(`${on(c)}: ${await stopLive(c)}`);
  });
});
