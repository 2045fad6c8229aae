#!/usr/bin/env -S npx tsx
/** Takes a consistent backup of an environment's data on its host, or lists the backups there. */
import { runMain } from '../lib/cli/cli.ts';

const spec = {
  name: 'backup',
  summary: 'Back up the data of an environment on its host (SQLite online copies, BACKUP_PATHS, shared/.env), or list the backups.',
  usage: '<env> [<label>] [--list] [--download] [--force-unlock] [--lock-wait SECONDS]',
  positionals: [
    { name: '<env>', required: true, description: 'environment: the name of a file env/<env>.env' },
    { name: '<label>', required: false, description: 'a word added to the backup name (a-z, 0-9, -), e.g. before-migration' },
  ],
  flags: {
    list: { type: 'boolean', short: 'l', description: 'print the backups on each host, newest first' },
    download: { type: 'boolean', description: 'also copy it to backups/<env>/ here, checked entry by entry (encrypted with BACKUP_ENCRYPT_TO if set)' },
    'force-unlock': { type: 'boolean', description: 'break a lock whose holder is gone or has not shown a heartbeat for a minute' },
    'lock-wait': { type: 'string', description: 'wait up to SECONDS for a running deploy to finish (default: refuse at once, exit 3)' },
  },
  examples: ['npx tsx scripts/backup.ts production', 'npx tsx scripts/backup.ts production nightly --download', 'npx tsx scripts/backup.ts production before-migration', 'npx tsx scripts/backup.ts production --list'],
} as const;

await runMain(spec, async ({ args: [env, label], flags }) => {
  const { prepareRun } = await import('../lib/cli/run.ts');
  const b = await import('../lib/flows/backup.ts');
  const { say } = await import('../lib/cli/ui.ts');
  if (label !== undefined) b.backupName(new Date(), label); // a bad label is refused before connecting
  const run = await prepareRun(env as string, { command: 'backup', needsVersion: false, forceUnlock: flags['force-unlock'], lockWait: flags['lock-wait'] });
  if (flags.list) {
    const tables = await Promise.all(run.sessions.map(async (c) => `${run.sessions.length > 1 ? `${c.host.name}\n` : ''}${b.formatBackups(await b.readBackups(c))}`));
    process.stdout.write(`${tables.join('\n\n')}\n`);
    return run.close();
  }
  await run.withHostLock(async () => {
    const all = run.sessions;
    for (const c of all) {
      const { name, manifest, pruned, missing } = await b.takeBackup(c, label);
      const bytes = manifest.entries.reduce((n, e) => n + e.size, 0);
      say(`${env}${all.length > 1 ? ` on ${c.host.name}` : ''}: backup ${name} (${Math.round(bytes / 1024)} KB: ${manifest.entries.map((e) => e.path).join(', ')})${missing.length ? `; not there yet, left out: ${missing.join(', ')}` : ''}${pruned.length ? `; removed ${pruned.length} old backup(s)` : ''}`);
      if (flags.download) {
        const { downloadBackup } = await import('../lib/flows/backup-copy.ts');
        const { relative } = await import('node:path');
        const { file, bytes } = await downloadBackup(c, name, manifest);
        say(`${env}: downloaded ${name} to ${relative(process.cwd(), file) || file} (${Math.round(bytes / 1024)} KB, every entry checked${c.cfg.backup.encryptTo ? ', encrypted with age' : ''})`);
      }
    }
  });
});
