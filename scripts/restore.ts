#!/usr/bin/env -S npx tsx
/** Restores a backup of an environment's data: verify, safety backup, stop, swap, start, health check. */
import { runMain } from '../lib/cli/cli.ts';
import { specs } from '../lib/cli/specs.ts';

await runMain(specs.restore, async ({ args: [env, name], flags }) => {
  const { prepareRun } = await import('../lib/cli/run.ts');
  const { confirm } = await import('../lib/cli/cli.ts');
  const b = await import('../lib/flows/backup.ts');
  const { say } = await import('../lib/cli/ui.ts');
  const { existsSync } = await import('node:fs');
  // A backup name is always the host's backup, whatever files lie here; a local copy is used only when
  // named as a file (backups/<env>/<name>.tar[.age], or any path with / or ending in .tar[.age]).
  const asked = name as string;
  const isCopy = asked.includes('/') || /\.tar(\.age)?$/.test(asked);
  if (isCopy && !existsSync(asked)) {
    const { UsageError } = await import('../lib/core/errors.ts');
    throw new UsageError(`no file ${asked}: give a backup name from \`backup.ts ${env} --list\`, or the path of a downloaded copy`);
  }
  const local = isCopy ? asked : undefined;
  const copy = local ? await import('../lib/flows/backup-copy.ts') : undefined;
  const backup = copy && local ? copy.backupNameOfFile(local, env as string) : asked;
  b.checkBackupName(backup, env as string);
  const run = await prepareRun(env as string, { command: 'restore', needsVersion: false, forceUnlock: flags['force-unlock'], lockWait: flags['lock-wait'] });
  const on = (c: (typeof run.sessions)[number]) => (run.sessions.length > 1 ? ` on ${c.host.name}` : '');
  if (flags['dry-run']) {
    const { UsageError } = await import('../lib/core/errors.ts');
    if (flags.test) throw new UsageError('--test touches nothing live already: give --test or --dry-run, not both');
    // The checks a restore makes before anything stops, read from the real hosts; nothing is written.
    try {
      for (const c of run.sessions) {
        const then = 'take a safety backup, stop the live release, put the data in place and start it again';
        if (local) {
          say(`dry run: ${env}${on(c)}: would upload the local copy ${local}, check it there, ${then}; nothing was changed (a dry run sends nothing, so the copy was not checked against the host)`);
          continue;
        }
        const m = await b.verifyBackup(c, backup);
        say(`dry run: ${env}${on(c)}: backup ${backup} is sound (${m.entries.map((e) => e.path).join(', ')} checked); would ${then}; nothing was changed`);
      }
    } finally {
      await run.close();
    }
    return;
  }
  if (flags.test) {
    try {
      for (const c of run.sessions) {
        // A copy is drilled where it landed, a scratch folder: never in place of the host's backup of that name.
        const up = copy && local ? await copy.uploadBackup(c, local, true, flags['trust-copy']) : undefined;
        if (up?.untrusted) say(`warning: ${up.untrusted}; testing it anyway (--trust-copy)`);
        if (up) say(`${env}${on(c)}: testing the local copy ${local} (uploaded to a scratch folder)`);
        try {
          const lines = await b.drillBackup(c, backup, await b.verifyBackup(c, backup, up?.dir), up?.dir);
          say(`${env}${on(c)}: restore test of ${backup} passed (nothing live was touched)`);
          for (const line of lines) say(`  ${line}`);
        } finally {
          await up?.remove();
        }
      }
    } finally {
      await run.close();
    }
    return;
  }
  await run.withHostLock(async () => {
    const all = run.sessions;
    // Copies this run put in place, by host: removed from every host whose restore did not start.
    const uploaded = new Map<(typeof all)[number], { name: string; remove: () => Promise<void> }>();
    const started = new Set<(typeof all)[number]>();
    try {
      // Every host's copy is checked before any app stops.
      const manifests = [];
      for (const c of all) {
        if (copy && local) {
          const up = await copy.uploadBackup(c, local, false, flags['trust-copy']);
          uploaded.set(c, up);
          if (up.untrusted) say(`warning: ${up.untrusted}; restoring it anyway (--trust-copy)`);
          say(`${env}${on(c)}: uploaded ${up.name} from the local copy ${local}`);
        }
        manifests.push(await b.verifyBackup(c, backup));
      }
      // Restoring replaces live data: asked every time, not only in production.
      await confirm(`Restore ${backup} over the data of ${env}${all.length > 1 ? ` on ${all.length} hosts` : ''} (the app stops while it runs)`, flags.yes);
      for (const [i, c] of all.entries()) {
        c.logTo((line) => say(`${all.length > 1 ? `${c.host.name}: ` : ''}${line}`));
        // From here the copy is what this host's data comes from (restoreBackup names it if it fails): it stays.
        started.add(c);
        const { safety } = await b.restoreBackup(c, backup, manifests[i] as NonNullable<(typeof manifests)[number]>);
        say(`${env}${all.length > 1 ? ` on ${c.host.name}` : ''}: restored ${backup}; the data of before is backup ${safety}`);
      }
    } finally {
      for (const [c, up] of uploaded) {
        if (started.has(c)) continue;
        await up.remove().then(
          () => say(`${env}${on(c)}: removed the uploaded copy ${up.name} (not restored)`),
          (error: unknown) => say(`warning${on(c)}: could not remove the uploaded copy ${up.name}: ${error instanceof Error ? error.message : String(error)}; remove backups/${up.name} there by hand`),
        );
      }
    }
  });
});
