#!/usr/bin/env -S npx tsx
/** Builds the app of an environment on this machine (DEPLOY_BUILD in APP_DIR) and prints its version. */
import { runMain } from '../lib/cli/cli.ts';

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
  const { runBuild } = await import('../lib/ship/build.ts');
  const { formatVersion, readGitFacts } = await import('../lib/release/version.ts');
  const { taskList, say } = await import('../lib/cli/ui.ts');
  const cfg = loadConfig(env as string);
  const version = formatVersion(await readGitFacts(cfg.app.dir, cfg.root));
  if (cfg.runtime === 'docker') {
    const { buildImage, checkDockerfile } = await import('../lib/ship/build.ts');
    checkDockerfile(cfg);
    let image = { tag: '', id: '' };
    const list = await taskList([
      {
        title: `Build the image ${cfg.app.name}:${version} from ${cfg.dockerfile}`,
        task: async (_, t) => {
          image = await buildImage(cfg, { version, gitSha: (await readGitFacts(cfg.app.dir, cfg.root)).sha, builtAt: new Date().toISOString() }, (text) => {
            t.output = text.trim();
          });
        },
        rendererOptions: { persistentOutput: true },
      },
    ]);
    await list.run({});
    if (flags.json) process.stdout.write(`${JSON.stringify({ version, image: image.tag, imageId: image.id })}\n`);
    else say(`built ${image.tag} (${image.id})`);
    return;
  }
  const list = await taskList([
    {
      title: `Build ${cfg.app.name} ${version} in ${cfg.app.dir}`,
      task: (_, t) => runBuild(cfg, (text) => { t.output = text.trim(); }),
      skip: () => !cfg.build && 'no DEPLOY_BUILD set',
      rendererOptions: { persistentOutput: true },
    },
  ]);
  await list.run({});
  if (flags.json) process.stdout.write(`${JSON.stringify({ version, appDir: cfg.app.dir, releaseDir: cfg.app.releaseDir })}\n`);
  else say(`built ${cfg.app.name} ${version}: ${cfg.app.releaseDir}`);
});
