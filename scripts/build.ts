#!/usr/bin/env -S npx tsx
/** Builds the app of an environment on this machine (DEPLOY_BUILD in APP_DIR) and prints its version. */
import { runMain } from '../lib/cli/cli.ts';
import { specs } from '../lib/cli/specs.ts';
import type { Built } from '../lib/runtime/runtime.ts';

await runMain(specs.build, async ({ args: [env], flags }) => {
  const { loadConfig } = await import('../lib/config/config.ts');
  const { runtimeFor } = await import('../lib/runtime/runtime.ts');
  const { formatVersion, readGitFacts } = await import('../lib/release/version.ts');
  const { taskList, say } = await import('../lib/cli/ui.ts');
  const cfg = loadConfig(env as string);
  const runtime = runtimeFor(cfg);
  runtime.checkLocal(true);
  const facts = await readGitFacts(cfg.app.dir, cfg.root);
  const version = formatVersion(facts);
  const buildFacts = { version, gitSha: facts.sha, builtAt: new Date().toISOString() };
  if (flags['dry-run']) {
    const title = runtime.buildTitle(version);
    const what = runtime.noBuild ? `nothing to build (${runtime.noBuild}): would ship ${cfg.app.releaseDir} as it is` : `would ${title.charAt(0).toLowerCase()}${title.slice(1)} in ${cfg.app.dir}`;
    if (flags.json) process.stdout.write(`${JSON.stringify({ version, appDir: cfg.app.dir, releaseDir: cfg.app.releaseDir, dryRun: true })}\n`);
    else say(`dry run: ${env} ${version}: ${what}; nothing was built`);
    return;
  }
  let built: Built | undefined;
  const list = await taskList([
    {
      title: `${runtime.buildTitle(version)} in ${cfg.app.dir}`,
      task: async (_, t) => {
        built = await runtime.build(buildFacts, (text) => {
          t.output = text.trim();
        });
      },
      skip: () => runtime.noBuild ?? false,
      rendererOptions: { persistentOutput: true },
    },
  ]);
  await list.run({});
  // Skipped (no DEPLOY_BUILD): the runtime's build has nothing to run and says what would ship.
  built ??= await runtime.build(buildFacts, () => {});
  if (flags.json) process.stdout.write(`${JSON.stringify(built.json)}\n`);
  else say(built.summary);
});
