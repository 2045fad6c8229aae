#!/usr/bin/env -S npx tsx
/** Bumps the version, writes CHANGELOG.md, commits `release: vX.Y.Z` and makes an annotated tag. */
import { runMain } from '../lib/cli/cli.ts';
import { specs } from '../lib/cli/specs.ts';

await runMain(specs['version-tag'], async ({ args: [bump], flags }) => {
  const { confirm } = await import('../lib/cli/cli.ts');
  const { say, taskList } = await import('../lib/cli/ui.ts');
  const vt = await import('../lib/release/version-tag.ts');
  // The repository a deploy reads its version from (docs/version-tag.md#which-repository).
  const source = await vt.releaseSource({ repo: flags.repo, env: flags.env });
  const options = {
    repo: source.repo,
    bump: bump as string,
    preid: flags.preid ?? 'rc',
    push: flags.push,
    tests: !flags['no-tests'],
    anyBranch: flags['any-branch'],
    branches: (flags.branch ?? 'main,master').split(',').map((b) => b.trim()).filter(Boolean),
    dryRun: flags['dry-run'],
    now: new Date(),
  };
  const plan = await vt.planRelease(options);
  const runTests = options.tests && !options.dryRun;
  if (runTests) await (await taskList([{ title: 'Run the tests (npm test)', task: (_, t) => vt.runTests(plan.root, (l) => { t.output = l; }) }])).run({});

  const summary = `${plan.current} -> ${plan.next} (tag ${plan.tag} on ${plan.branch}${options.push ? `, pushed to ${plan.remote ?? 'no remote'}` : ''})`;
  process.stderr.write(`Repository: ${plan.root} (${source.why})\n${summary}\nChanges since ${plan.previousTag ?? 'the first commit'}:\n${plan.changes}\n\n`);
  const result = { version: plan.next, tag: plan.tag, previous: plan.current, repo: plan.root, pushed: options.push && !options.dryRun, dryRun: options.dryRun };
  if (options.dryRun) {
    say(`dry run: nothing was written; would release ${summary}${options.tests ? ' after npm test' : ''}`);
  } else {
    await confirm(`Release ${plan.tag}`, flags.yes);
    const changelogExisted = (await import('node:fs')).existsSync(`${plan.root}/CHANGELOG.md`);
    let commit: string | undefined;
    try {
      await (
        await taskList([
          { title: `Set version ${plan.next} in package.json and CHANGELOG.md`, task: () => vt.writeReleaseFiles(plan) },
          { title: `Commit "release: ${plan.tag}" and tag ${plan.tag}`, task: async () => { commit = await vt.commitAndTag(plan); } },
          { title: `Push ${plan.branch} and ${plan.tag} to ${plan.remote}`, task: () => vt.pushRelease(plan), enabled: () => options.push },
        ])
      ).run({});
    } catch (error) {
      const undone = await vt.undoRelease(plan, commit, changelogExisted);
      if (undone.length) process.stderr.write(`undone: ${undone.join(', ')}\n`);
      throw error;
    }
    if (!flags.json) say(`released ${plan.tag}`);
  }
  if (flags.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else process.stdout.write(`${plan.next}\n`);
});
