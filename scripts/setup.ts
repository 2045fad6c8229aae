#!/usr/bin/env -S npx tsx
/** Prepares each host of an environment for skiff: tools, DEPLOY_PATH, supervisor, proxy, kernel settings. */
import { runMain } from '../lib/cli/cli.ts';
import { specs } from '../lib/cli/specs.ts';
import { EXIT } from '../lib/core/errors.ts';

await runMain(specs.setup, async ({ args: [env], flags }) => {
  const { prepareRun } = await import('../lib/cli/run.ts');
  const { applySetup, exposedPorts, parseFacts, planSetup, toolsFor } = await import('../lib/flows/setup.ts');
  const { hostFacts } = await import('../lib/commands/setup.ts');
  const { flagDir } = await import('../lib/proxy/switch-flag.ts');
  const { say } = await import('../lib/cli/ui.ts');
  const run = await prepareRun(env as string, { command: 'setup', needsVersion: false });
  const { cfg } = run;
  const dryRun = flags['dry-run'] ?? false;
  let ready = true;
  try {
    for (const [i, c] of run.sessions.entries()) {
      const facts = parseFacts((await c.host.exec(hostFacts({
          path: cfg.path,
          tools: toolsFor(cfg),
          nginxDir: cfg.nginxConfDir,
          nginxCmd: cfg.nginxCmd,
          tlsFiles: cfg.tls.cert !== undefined && cfg.tls.key !== undefined ? [cfg.tls.cert, cfg.tls.key] : undefined,
          switchDir: cfg.proxy === 'caddy' || cfg.proxy === 'nginx' ? flagDir(cfg) : undefined,
        }))).stdout);
      const target = cfg.hosts[i];
      const steps = [...planSetup(cfg, facts, { install: flags.install ?? false }), ...(target ? await exposedPorts(cfg, target) : [])];
      const result = await applySetup(c.host, steps, dryRun);
      ready &&= result.ready;
      const wouldChange = steps.filter((s) => s.kind === 'change').length;
      const summary = dryRun
        ? wouldChange === 0 ? 'nothing to change' : `would change ${wouldChange} thing${wouldChange === 1 ? '' : 's'} (dry run: nothing was changed)`
        : !result.ready && result.changed === 0 ? 'not ready; nothing was changed' : result.changed === 0 ? 'nothing to change: all was in place' : `changed ${result.changed} thing${result.changed === 1 ? '' : 's'}`;
      say([`setup ${env} on ${c.host.name}: ${summary}`, ...result.lines].join('\n'));
    }
  } finally {
    await run.close();
  }
  if (!ready) say(`\nnot every host is ready: fix what "failed" names, then run setup again`);
  return ready ? EXIT.ok : EXIT.failed;
});
