#!/usr/bin/env -S npx tsx
/** Builds the app of an environment on this machine (DEPLOY_BUILD in APP_DIR) and prints its version. */
import { runMain } from '../lib/cli/cli.ts';
import type { Built } from '../lib/runtime/runtime.ts';

const spec = {
  name: 'build',
  summary: 'Run the build of an environment (DEPLOY_BUILD in APP_DIR, or docker build with DEPLOY_RUNTIME=docker) and print the version it would deploy.',
  usage: '<env> [--json]',
  positionals: [{ name: '<env>', required: true, description: 'environment: the name of a file env/<env>.env' }],
  flags: { json: { type: 'boolean', description: 'print {version, appDir, releaseDir} (docker: {version, image, imageId}) as JSON' } },
  examples: ['npx tsx scripts/build.ts local'],
} as const;

await runMain(spec, async ({ args: [env], flags }) => {
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
