#!/usr/bin/env -S npx tsx
/**
 * Brings skiff into an existing app's repository as a script collection: scripts/, lib/, the
 * Taskfile, npm aliases and packages merged into package.json, env files from what it finds.
 */
import { runMain } from '../lib/cli/cli.ts';
import { specs } from '../lib/cli/specs.ts';

await runMain(specs.init, async ({ args: [folder], flags }) => {
  const { runInit } = await import('../lib/init/init.ts');
  return runInit(folder as string, { dryRun: flags['dry-run'], force: flags.force, update: flags.update, yes: flags.yes }, (line) => process.stdout.write(`${line}\n`));
});
