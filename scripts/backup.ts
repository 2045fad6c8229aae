#!/usr/bin/env -S npx tsx
/** Takes a consistent backup of an environment's data on its host, or lists the backups there. */
import { runMain } from '../lib/cli/cli.ts';
import { specs } from '../lib/cli/specs.ts';

await runMain(specs.backup, async ({ args: [env, label], flags }) => {
  const { prepareRun } = await import('../lib/cli/run.ts');
  const b = await import('../lib/flows/backup.ts');
  const { say } = await import('../lib/cli/ui.ts');
  if (label !== undefined) b.backupName(new Date(), label); // a bad label is refused before connecting
  const run = await prepareRun(env as string, { command: 'backup', needsVersion: false, forceUnlock: flags['force-unlock'], lockWait: flags['lock-wait'] });
  type Session = (typeof run.sessions)[number];
  const on = (c: Session) => `${env}${run.sessions.length > 1 ? ` on ${c.host.name}` : ''}`;
  /** --json: one object for one host, an array for several (as status prints them). */
  const printJson = (each: readonly object[]) => process.stdout.write(`${JSON.stringify(each.length === 1 ? each[0] : each)}\n`);

  type Shown = { readonly text: string; readonly json: object };

  /** --list: the backups on each host, newest first. */
  const list = async (c: Session): Promise<Shown> => {
    const backups = await b.readBackups(c); // oldest first
    const newestFirst = [...backups].reverse().map(({ name, manifest }) => ({ name, ...manifest }));
    return { text: `${run.sessions.length > 1 ? `${c.host.name}\n` : ''}${b.formatBackups(backups)}`, json: { host: c.host.name, backups: newestFirst } };
  };

  /** --dry-run: what a backup would take and remove, read from the host; nothing is written. */
  const plan = async (c: Session): Promise<Shown> => {
    const { backup: wants } = run.cfg;
    if (!wants.sqlite.length && !wants.paths.length && !wants.postgresUrl) {
      const { UsageError } = await import('../lib/core/errors.ts');
      throw new UsageError(`${env} names nothing to back up: set BACKUP_SQLITE, BACKUP_PATHS and/or BACKUP_POSTGRES_URL in env/${env}.env (see docs/backups.md)`);
    }
    const name = b.backupName(new Date(), label);
    const entries = [...wants.sqlite, ...wants.paths, ...(wants.postgresUrl ? ['PostgreSQL'] : []), '.env'];
    const prune = b.backupsToPrune([...(await b.readBackups(c)).map((x) => x.name), name], wants.keep);
    const removes = prune.length ? `, then remove ${prune.length} old backup(s) beyond BACKUP_KEEP=${wants.keep}: ${prune.join(', ')}` : '';
    return {
      text: `dry run: ${on(c)}: would back up ${entries.join(', ')} into ${c.l.root}/backups/${name}${removes}${flags.download ? ', and download it here' : ''}; nothing was changed`,
      json: { host: c.host.name, name, entries, prune, download: flags.download, dryRun: true },
    };
  };

  /** A backup, and with --download its copy here. */
  const take = async (c: Session) => {
    const { name, manifest, pruned, missing } = await b.takeBackup(c, label);
    const bytes = manifest.entries.reduce((n, e) => n + e.size, 0);
    const lines = [`${on(c)}: backup ${name} (${Math.round(bytes / 1024)} KB: ${manifest.entries.map((e) => e.path).join(', ')})${missing.length ? `; not there yet, left out: ${missing.join(', ')}` : ''}${pruned.length ? `; removed ${pruned.length} old backup(s)` : ''}`];
    if (!flags.json) say(lines[0] as string);
    let downloaded: string | undefined;
    if (flags.download) {
      const { downloadBackup } = await import('../lib/flows/backup-copy.ts');
      const { relative } = await import('node:path');
      const copy = await downloadBackup(c, name, manifest);
      downloaded = copy.file;
      if (!flags.json) say(`${env}: downloaded ${name} to ${relative(process.cwd(), copy.file) || copy.file} (${Math.round(copy.bytes / 1024)} KB, every entry checked${c.cfg.backup.encryptTo ? ', encrypted with age' : ''})`);
    }
    return { host: c.host.name, name, bytes, entries: manifest.entries.map((e) => e.path), missing, pruned, ...(downloaded ? { downloaded } : {}) };
  };

  if (flags.list || flags['dry-run']) {
    // Both only read the hosts: no lock.
    try {
      const each = await Promise.all(run.sessions.map(flags.list ? list : plan));
      if (flags.json) printJson(each.map((e) => e.json));
      else if (flags.list) process.stdout.write(`${each.map((e) => e.text).join('\n\n')}\n`);
      else for (const e of each) say(e.text);
    } finally {
      await run.close();
    }
    return;
  }
  const taken: object[] = [];
  await run.withHostLock(async () => {
    for (const c of run.sessions) taken.push(await take(c));
  });
  if (flags.json) printJson(taken);
});
