#!/usr/bin/env -S npx tsx
/** Writes the Compose file, Swarm stack or Kubernetes manifests that run an env's release elsewhere (docs/scaling.md). */
import { runMain, UsageErrorFor } from '../lib/cli/cli.ts';
import { specs } from '../lib/cli/specs.ts';

await runMain(specs.export, async ({ args: [env], flags }) => {
  // Every argument is checked before the config is read, and everything before a file is written.
  const x = await import('../lib/export/export.ts');
  const to = x.checkTarget(flags.to);
  if (flags.image !== undefined && !x.isImageName(flags.image)) {
    throw UsageErrorFor(`--image ${JSON.stringify(flags.image)} is not an image name: lower-case words, e.g. registry.example.com/hello (the tag comes from --version)`);
  }
  const { existsSync, readFileSync } = await import('node:fs');
  const { join, resolve } = await import('node:path');
  const { loadConfig } = await import('../lib/config/config.ts');
  const { say } = await import('../lib/cli/ui.ts');
  const cfg = loadConfig(env as string);
  x.checkRuntime(cfg);
  const replicas = x.checkReplicas(flags.replicas, cfg.hosts.length);
  const dockerfile = join(cfg.app.dir, cfg.dockerfile);
  const probe = x.checkProbe(flags.probe, existsSync(dockerfile) ? readFileSync(dockerfile, 'utf8') : undefined);
  let version = flags.version;
  if (version === undefined) {
    const { formatVersion, readGitFacts } = await import('../lib/release/version.ts');
    version = formatVersion(await readGitFacts(cfg.app.dir, cfg.root));
  }
  version = x.checkVersion(version, flags.version === undefined ? 'the version deploy would build' : '--version');
  const image = `${flags.image ?? cfg.app.name}:${version}`;
  const exported = x.buildExport(cfg, { to, image, version, replicas, probe, withSecrets: flags['with-secrets'] });
  const { composeProblems } = await import('../lib/export/validate.ts');
  const { parse } = await import('yaml');
  for (const f of exported.files) {
    // Read back what will be written: the text, not the object, is what an engine gets.
    const problems = to === 'kubernetes' ? [] : composeProblems(parse(f.text));
    if (problems.length > 0) throw new Error(`${f.name} does not match the Compose specification: ${problems.join('; ')}`);
  }
  const out = resolve(flags.out ?? join(cfg.root, 'exported', cfg.env, to));
  const { checkOut, writeExport } = await import('../lib/export/write.ts');
  if (flags['dry-run']) {
    const { replaced } = checkOut(out, exported.files, flags.force);
    if (flags.json) {
      process.stdout.write(`${JSON.stringify({ action: 'export', env, to, image, out, files: exported.files.map((f) => f.name), replaced, secretKeys: exported.secretKeys, dryRun: true })}\n`);
      return;
    }
    for (const f of exported.files) {
      const path = join(out, f.name);
      // A file of secret values is named with its keys, never shown.
      say(`dry run: would ${replaced.includes(path) ? 'replace' : 'write'} ${path}${f.secret ? ` (mode 600; holds the values of ${exported.secretKeys.join(', ')}: not shown)` : ''}`);
      if (!f.secret) process.stdout.write(f.text.replace(/^(?=.)/gm, '    '));
    }
    for (const n of exported.notes) say(`note: ${n}`);
    say('dry run: nothing was written');
    return;
  }
  const written = writeExport(out, exported.files, flags.force);
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ action: 'export', env, to, image, out, files: written, secretKeys: exported.secretKeys, dryRun: false })}\n`);
    return;
  }
  for (const p of written) say(`wrote ${p}`);
  for (const n of exported.notes) say(`note: ${n}`);
});
