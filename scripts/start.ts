#!/usr/bin/env -S npx tsx
/** Starts the live release of an environment if it is not running, and waits until it is healthy. */
import { runMain } from '../lib/cli/cli.ts';
import { specs } from '../lib/cli/specs.ts';

await runMain(specs.start, async ({ args: [env], flags }) => {
  const { prepareRun } = await import('../lib/cli/run.ts');
  const { gatherStatus, startLive } = await import('../lib/flows/status.ts');
  const { NotDeployedError } = await import('../lib/core/errors.ts');
  const { say } = await import('../lib/cli/ui.ts');
  const run = await prepareRun(env as string, { command: 'start', needsVersion: false, forceUnlock: flags['force-unlock'], lockWait: flags['lock-wait'] });
  const on = (c: (typeof run.sessions)[number]) => `${env}${run.sessions.length > 1 ? ` on ${c.host.name}` : ''}`;
  if (flags['dry-run']) {
    // Read from the real hosts (a printing host would answer every read with nothing), change nothing.
    try {
      for (const c of run.sessions) {
        const r = await gatherStatus(c, run.url);
        if (!r.release) throw new NotDeployedError(r.env, r.host);
        const lostRoute = r.proxy && r.proxy.port === undefined && r.proxy.error === undefined ? `; would put back the ${r.proxy.kind} route to port ${r.release.port}` : '';
        const what = r.process.state === 'running'
          ? `already running (${c.runtime.haltedWord} ${r.process.container?.name ?? r.process.pid}): would start nothing${lostRoute}`
          : `would start ${r.release.version} (release ${r.release.release}) on port ${r.release.port}${r.process.state === 'crashed' ? ', in place of one that crashed' : ''}${lostRoute}`;
        say(`dry run: ${on(c)}: ${what}; nothing was changed`);
      }
    } finally {
      await run.close();
    }
    return;
  }
  await run.withHostLock(async () => {
    for (const c of run.sessions) say(`${on(c)}: ${await startLive(c)}: ${run.url}`);
  });
});
