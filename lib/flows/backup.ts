/**
 * Backups and restores of an environment's data on its host (docs/backups.md). The pure parts
 * (names, manifests, verification, retention) are exported for tests; the flows take a Session.
 */
import { startReleaseWorkers, stopReleaseWorkers } from './workers.ts';
import { backupSpace, checkBackup, drillRestore, dumpPostgres, listBackups, restorePostgres, sealBackup, swapInData, takeSnapshot, targetsOutside } from '../commands/backup.ts';
import { parsePgUrl, pgStdin, type PgConnection } from '../config/pg-url.ts';
import { createHmac } from 'node:crypto';
import { posix } from 'node:path';
import { cmd } from '../core/cmd.ts';
import { DEADLINE } from '../host/host.ts';
import { gateSlot, missingOn } from './deploy.ts';
import type { Session } from './session.ts';
import { firstLine, SkiffError, UsageError } from '../core/errors.ts';
import { audit, liveSlot, readState } from '../state/state.ts';

export interface BackupEntry {
  /** Path inside the backup folder: `sqlite/0.db`, `files.tar`, `env`. */
  readonly path: string;
  readonly kind: 'sqlite' | 'paths' | 'env' | 'postgres';
  /** What it was taken from, under shared/: the database file, or the BACKUP_PATHS. */
  readonly sources: readonly string[];
  readonly size: number;
  readonly sha256: string;
}

export interface BackupManifest {
  readonly format: 1;
  readonly app: string;
  readonly env: string;
  readonly name: string;
  readonly createdAt: string;
  /** The release that was live when it was taken, if any. */
  readonly release: string | undefined;
  readonly version: string | undefined;
  readonly entries: readonly BackupEntry[];
}

/** `YYYYMMDD-HHMMSS.mmm[-label]`; names made before milliseconds were added (`YYYYMMDD-HHMMSS[-label]`) stay valid. */
const NAME = /^\d{8}-\d{6}(\.\d{3})?(-[a-z0-9][a-z0-9-]{0,39})?$/;

/**
 * `YYYYMMDD-HHMMSS.mmm[-label]` in UTC: names sort by time, and two backups in one second get two
 * names (a name taken already is never reused: see takeBackup).
 */
export const backupName = (now: Date, label?: string): string => {
  if (label !== undefined && !/^[a-z0-9][a-z0-9-]{0,39}$/.test(label)) {
    throw new UsageError(`backup label "${label}" must be 1-40 of a-z, 0-9 and -, starting with a letter or digit`);
  }
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 19);
  return label ? `${stamp}-${label}` : stamp;
};

/** Refuses a backup name that could leave the backups folder (`/`, `..`) or is not one of skiff's. */
export const checkBackupName = (name: string, env: string): void => {
  if (!NAME.test(name)) {
    throw new UsageError(`"${name}" is not a backup name (like 20261123-041500.123 or 20261123-041500.123-label): see \`npx tsx scripts/backup.ts ${env} --list\``);
  }
};

/** Parses `sha256 size path` lines. */
export const parseSums = (text: string): { sha256: string; size: number; path: string }[] =>
  text
    .split('\n')
    .map((line) => /^([0-9a-f]{64}) (\d+) (\S+)$/.exec(line.trim()))
    .flatMap((m) => (m ? [{ sha256: m[1] as string, size: Number(m[2]), path: m[3] as string }] : []));

/** The manifest of a snapshot, from the sums the host printed. */
export const composeManifest = (
  facts: { app: string; env: string; name: string; createdAt: string; release: string | undefined; version: string | undefined },
  sums: readonly { sha256: string; size: number; path: string }[],
  sqlite: readonly string[],
  paths: readonly string[],
): BackupManifest => ({
  format: 1,
  ...facts,
  entries: sums.map((s): BackupEntry => {
    const db = /^sqlite\/(\d+)\.db$/.exec(s.path);
    if (db) return { ...s, kind: 'sqlite', sources: [sqlite[Number(db[1])] as string] };
    if (s.path === 'postgres.dump') return { ...s, kind: 'postgres', sources: ['BACKUP_POSTGRES_URL'] };
    return s.path === 'files.tar' ? { ...s, kind: 'paths', sources: paths } : { ...s, kind: 'env', sources: ['.env'] };
  }),
});

/** What is wrong with a backup on the host, compared with its manifest: empty when it is sound. */
export const verifyAgainst = (m: BackupManifest, checkOutput: string): string[] => {
  const sums = new Map(parseSums(checkOutput).map((s) => [s.path, s]));
  const problems: string[] = [];
  for (const e of m.entries) {
    const found = sums.get(e.path);
    if (!found) problems.push(`${e.path} is missing`);
    else if (found.size !== e.size) problems.push(`${e.path} has ${found.size} bytes, its manifest says ${e.size} (truncated?)`);
    else if (found.sha256 !== e.sha256) problems.push(`${e.path} does not match its sha256 (corrupted)`);
  }
  for (const line of checkOutput.split('\n')) {
    const m2 = /^integrity (\S+) (.*)$/.exec(line.trim());
    if (m2 && m2[2] !== 'ok') problems.push(`${m2[1]} fails PRAGMA integrity_check: ${m2[2]}`);
  }
  return problems;
};

/**
 * The entries of a manifest that a restore must not follow: a restore writes only where this env's
 * own BACKUP_SQLITE and BACKUP_PATHS say, so each entry's kind must match its file and its sources
 * must be ones the env names. Returns a description of each entry that fails.
 */
const isStringList = (x: unknown): x is string[] => Array.isArray(x) && x.every((v) => typeof v === 'string');

export const foreignEntries = (m: BackupManifest, sqlite: readonly string[], paths: readonly string[], postgres: boolean): string[] =>
  m.entries.flatMap((e) => {
    const raw: unknown = e.sources;
    const sources = isStringList(raw) ? raw : undefined;
    const ok =
      sources !== undefined &&
      (e.kind === 'sqlite'
        ? /^sqlite\/\d+\.db$/.test(e.path) && sources.length === 1 && sqlite.includes(sources[0] ?? '')
        : e.kind === 'paths'
          ? e.path === 'files.tar' && sources.length > 0 && sources.every((p) => paths.includes(p))
          : e.kind === 'env'
            ? e.path === 'env'
            : e.kind === 'postgres' && e.path === 'postgres.dump' && postgres);
    return ok ? [] : [`${String(e.path)} (${String(e.kind)}: ${Array.isArray(raw) ? raw.map(String).join(', ') || 'no source' : 'no list of sources'})`];
  });

/**
 * The MAC of a manifest: HMAC-SHA256 with BACKUP_SIGNING_KEY over its exact bytes, hex. The manifest
 * holds every entry's size and sha256, so a valid MAC vouches for the whole backup.
 */
export const manifestMac = (key: string, manifestText: string | Buffer): string =>
  createHmac('sha256', key).update('skiff backup manifest 1\n').update(manifestText).digest('hex');

/** takeSnapshot's exit status when the backup's name or its stage exists already. */
const NAME_TAKEN = 6;

/** A C-quoted name as `tar --quoting-style=c` prints it, unquoted. */
const unquoteC = (text: string): string =>
  text.replace(/\\([0-7]{1,3}|.)/g, (_all, c: string) => {
    if (/^[0-7]+$/.test(c)) return String.fromCharCode(parseInt(c, 8));
    const named: Record<string, string> = { n: '\n', t: '\t', r: '\r', a: '\x07', b: '\b', f: '\f', v: '\v' };
    return named[c] ?? c;
  });

const MEMBER = /^(\S)\S*\s+\S+\s+[\d,]+\s+\S+\s+\S+\s+"((?:[^"\\]|\\.)*)"(?:\s+(->|link to)\s+"((?:[^"\\]|\\.)*)")?$/;

/**
 * What files.tar must not hold, from its `tar -tv --quoting-style=c` lines: a restore unpacks it
 * inside shared/, so every member must be one of BACKUP_PATHS or under one (no absolute names, no
 * `..`, nothing else), a file, folder or link only; a symbolic link must point inside shared/ and
 * nothing may sit below one (`uploads/x -> /etc` then `uploads/x/passwd`); a hard link must name a
 * member. Returns one description per problem, empty when the archive is safe to unpack.
 */
export const unsafeMembers = (lines: readonly string[], paths: readonly string[]): string[] => {
  const problems: string[] = [];
  const links: string[] = [];
  const names: string[] = [];
  const plain = (name: string) => name.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  const badName = (name: string): string | undefined =>
    name === '' || name.startsWith('/') ? 'an absolute name' : name.split('/').includes('..') ? 'a name with ..' : !paths.some((p) => name === p || name.startsWith(`${p}/`)) ? 'not under BACKUP_PATHS' : undefined;
  for (const line of lines) {
    const m = MEMBER.exec(line);
    if (!m) {
      problems.push(`a member tar lists as ${JSON.stringify(line.slice(0, 80))}`);
      continue;
    }
    const [, type, quoted, how, quotedTarget] = m;
    const name = plain(unquoteC(quoted ?? ''));
    const shown = JSON.stringify(name);
    const why = badName(name);
    if (why) {
      problems.push(`${shown} (${why})`);
      continue;
    }
    names.push(name);
    const target = quotedTarget === undefined ? undefined : unquoteC(quotedTarget);
    if (type === 'l' && how === '->' && target !== undefined) {
      links.push(name);
      const resolved = posix.normalize(posix.join(posix.dirname(name), target));
      if (target.startsWith('/') || resolved === '..' || resolved.startsWith('../')) problems.push(`${shown} (a link to ${JSON.stringify(target)}, outside shared/)`);
    } else if (type === 'h' && how === 'link to' && target !== undefined) {
      const linkWhy = badName(plain(target));
      if (linkWhy) problems.push(`${shown} (a hard link to ${JSON.stringify(target)}: ${linkWhy})`);
    } else if (type !== '-' && type !== 'd') {
      problems.push(`${shown} (not a file, folder or link)`);
    }
  }
  for (const name of names) {
    const under = links.find((l) => name.startsWith(`${l}/`));
    if (under) problems.push(`${JSON.stringify(name)} (below the link ${JSON.stringify(under)})`);
  }
  return problems;
};

/** Backups to delete after a new one: the oldest beyond `keep`. Never the newest, never all. */
export const backupsToPrune = (names: readonly string[], keep: number, spare: readonly string[] = []): string[] => {
  const sorted = [...names].sort();
  return sorted.slice(0, Math.max(0, sorted.length - Math.max(1, keep))).filter((n) => !spare.includes(n));
};

/** The `--list` table, newest first. */
export const formatBackups = (rows: readonly { name: string; manifest: BackupManifest | undefined }[]): string => {
  if (rows.length === 0) return 'no backups yet';
  const size = (m: BackupManifest | undefined) => (m ? m.entries.reduce((n, e) => n + e.size, 0) : 0);
  const lines = [...rows].reverse().map(({ name, manifest: m }) => {
    const what = m ? m.entries.map((e) => (e.kind === 'sqlite' ? e.sources[0] : e.kind === 'paths' ? e.sources.join(',') : '.env')).join(' ') : '(no manifest)';
    return `${name.padEnd(34)} ${String(Math.round(size(m) / 1024)).padStart(9)} KB  ${(m?.version ?? '-').padEnd(18)} ${what}`;
  });
  return [`${'backup'.padEnd(34)} ${'size'.padStart(12)}  ${'version'.padEnd(18)} contents`, ...lines].join('\n');
};

const backupsDir = (ctx: Session) => `${ctx.l.root}/backups`;
const backupDir = (ctx: Session, name: string) => `${backupsDir(ctx)}/${name}`;

/** Checks that the host has what the backup needs, and the disk space for it, before anything is made. */
const preflight = async (ctx: Session): Promise<void> => {
  const { host, cfg, l } = ctx;
  const b = cfg.backup;
  if (b.sqlite.length === 0 && b.paths.length === 0 && !b.postgresUrl) {
    throw new SkiffError(`${cfg.env} names nothing to back up: set BACKUP_SQLITE, BACKUP_PATHS and/or BACKUP_POSTGRES_URL in env/${cfg.env}.env (see docs/backups.md)`, 2);
  }
  const tools = ['sha256sum', 'tar', 'df', 'du', ...(b.sqlite.length ? ['sqlite3'] : []), ...(b.postgresUrl ? ['pg_dump', 'pg_restore'] : [])];
  const missing = await missingOn(host, tools);
  if (missing.length > 0) {
    const pkgs = `${missing.includes('sqlite3') ? 'sqlite3 ' : ''}${missing.some((t) => t.startsWith('pg_')) ? 'postgresql-client ' : ''}coreutils tar`;
    throw new SkiffError(`${host.name} lacks ${missing.join(', ')}: install it (Debian: apt-get install ${pkgs})`);
  }
  const [free, need] = (await host.exec(backupSpace(backupsDir(ctx), l.shared, [...b.sqlite, ...b.paths]))).stdout.trim().split(' ').map(Number);
  if (free !== undefined && need !== undefined && free < need + 1024) {
    throw new SkiffError(`${host.name}: not enough disk for the backup: it needs about ${need} KB, ${free} KB are free under ${backupsDir(ctx)}`);
  }
};

/**
 * Takes a backup on the host: a consistent snapshot in `<name>.partial`, its manifest, synced and
 * renamed; then applies BACKUP_KEEP. Returns the backup's name and manifest.
 */
export const takeBackup = async (
  ctx: Session,
  label?: string,
  /** Backups retention must keep whatever their age: the one a restore is about to put in place. */
  spare: readonly string[] = [],
): Promise<{ name: string; manifest: BackupManifest; pruned: string[]; missing: string[] }> => {
  const { host, cfg, l } = ctx;
  await preflight(ctx);
  const live = liveSlot(await readState(host, l))?.release;
  const at = ctx.now();
  let name = backupName(at, label);
  let stage = `${backupDir(ctx, name)}.partial`;
  let manifest: BackupManifest;
  let missing: string[] = [];
  /** Whether `stage` is this backup's own (else it is another's, and must stay). */
  let ours = true;
  try {
    let snapshot = await host.exec(takeSnapshot(l.shared, stage, cfg.backup.sqlite, cfg.backup.paths), { check: false, timeoutMs: DEADLINE.transfer });
    // A name in use (sealed, or being made) is never touched: the next millisecond's name is taken instead.
    for (let later = 1; snapshot.code === NAME_TAKEN && later <= 10; later++) {
      name = backupName(new Date(at.getTime() + later), label);
      stage = `${backupDir(ctx, name)}.partial`;
      snapshot = await host.exec(takeSnapshot(l.shared, stage, cfg.backup.sqlite, cfg.backup.paths), { check: false, timeoutMs: DEADLINE.transfer });
    }
    if (snapshot.code === NAME_TAKEN) {
      ours = false;
      throw new SkiffError(`${host.name}: backup failed: the names ${backupName(at, label)} and the 10 after it are all taken under ${backupsDir(ctx)}`);
    }
    if (snapshot.code !== 0) {
      const why = snapshot.stderr.trim().split('\n').at(-1) ?? `exit ${snapshot.code}`;
      throw new SkiffError(`${host.name}: backup failed: ${why}`, snapshot.code === 3 ? 2 : 1);
    }
    let sums = snapshot.stdout;
    const pg = pgOf(cfg.backup.postgresUrl?.reveal());
    if (pg) {
      const dump = await host.exec(dumpPostgres(stage), { stdin: pgStdin(pg), check: false, timeoutMs: DEADLINE.transfer });
      if (dump.code !== 0) {
        throw new SkiffError(`${host.name}: backup failed: PostgreSQL ${pg.where}: ${(dump.stderr.trim().split('\n').at(-1) ?? `exit ${dump.code}`).replace(/^pg_dump: error: /, '')}`);
      }
      sums += dump.stdout;
    }
    missing = snapshot.stdout.split('\n').flatMap((line) => (line.startsWith('missing ') ? [line.slice('missing '.length)] : []));
    manifest = composeManifest(
      { app: cfg.app.name, env: cfg.env, name, createdAt: ctx.now().toISOString(), release: live?.release, version: live?.version },
      parseSums(sums),
      cfg.backup.sqlite,
      cfg.backup.paths.filter((p) => !missing.includes(p)),
    );
    const text = `${JSON.stringify(manifest, null, 2)}\n`;
    await host.put(`${stage}/manifest.json`, text, { mode: 0o600 });
    // The MAC travels with every copy: a restore of a copy from elsewhere checks it (backup-copy.ts).
    const key = cfg.backup.signingKey;
    if (key) await host.put(`${stage}/manifest.mac`, `${manifestMac(key.reveal(), text)}\n`, { mode: 0o600 });
    await host.exec(sealBackup(stage, backupDir(ctx, name)));
  } catch (error) {
    if (ours) await host.exec(cmd('rm', '-rf', stage), { check: false });
    throw error;
  }
  const all = (await host.exec(listBackups(backupsDir(ctx)))).stdout.split('\n').filter(Boolean);
  const pruned = backupsToPrune(all, cfg.backup.keep, spare);
  if (pruned.length > 0) await host.exec(cmd('rm', '-rf', ...pruned.map((n) => backupDir(ctx, n))));
  await audit(host, l, ctx.now().toISOString(), ctx.who, `backup ${name}${pruned.length ? ` (pruned ${pruned.join(', ')})` : ''}`);
  return { name, manifest, pruned, missing };
};

/** Every backup on the host with its manifest, oldest first. */
export const readBackups = async (ctx: Session): Promise<{ name: string; manifest: BackupManifest | undefined }[]> => {
  // Sorted here, not by the host's shell: a glob's order follows the host's locale.
  const names = (await ctx.host.exec(listBackups(backupsDir(ctx)))).stdout.split('\n').filter(Boolean).sort();
  return Promise.all(names.map(async (name) => ({ name, manifest: parseBackupManifest((await ctx.host.get(`${backupDir(ctx, name)}/manifest.json`))?.toString()) })));
};

const parseBackupManifest = (text: string | undefined): BackupManifest | undefined => {
  try {
    const m = text ? (JSON.parse(text) as BackupManifest) : undefined;
    return m?.format === 1 && Array.isArray(m.entries) ? m : undefined;
  } catch {
    return undefined;
  }
};

/**
 * Reads and checks a backup before anything stops: its manifest names this app and env, every entry
 * has its size and sha256, and every SQLite copy passes integrity_check.
 */
export const verifyBackup = async (
  ctx: Session,
  name: string,
  /** Where the backup is: its folder in backups/ unless an uploaded copy is checked where it landed. */
  dir: string = backupDir(ctx, name),
): Promise<BackupManifest> => {
  const { host, cfg } = ctx;
  checkBackupName(name, cfg.env);
  const manifest = parseBackupManifest((await host.get(`${dir}/manifest.json`))?.toString());
  if (!manifest) throw new UsageError(`there is no backup ${name} of ${cfg.env} on ${host.name}: see \`npx tsx scripts/backup.ts ${cfg.env} --list\``);
  if (manifest.app !== cfg.app.name || manifest.env !== cfg.env) {
    throw new UsageError(`backup ${name} is of ${manifest.app} ${manifest.env}, not ${cfg.app.name} ${cfg.env}: restore it with that env`);
  }
  if (manifest.name !== name) {
    throw new UsageError(`backup ${name} on ${host.name} says it is ${String(manifest.name)}: a renamed or crafted copy is refused; restore it under its own name`);
  }
  const foreign = foreignEntries(manifest, cfg.backup.sqlite, cfg.backup.paths, cfg.backup.postgresUrl !== undefined);
  if (foreign.length > 0) {
    throw new SkiffError(
      `backup ${name} on ${host.name} would restore ${foreign.join(', ')}, which this env's BACKUP_SQLITE, BACKUP_PATHS and BACKUP_POSTGRES_URL do not name: ` +
        'a restore writes only where the env says; nothing was changed',
      2,
    );
  }
  const checked = (await host.exec(checkBackup(dir), { timeoutMs: DEADLINE.transfer })).stdout;
  const problems = verifyAgainst(manifest, checked);
  if (problems.length > 0) throw new SkiffError(`backup ${name} on ${host.name} is damaged: ${problems.join('; ')}; nothing was changed`);
  const tar = manifest.entries.find((e) => e.kind === 'paths');
  if (tar) {
    if (!/^members ok$/m.test(checked)) throw new SkiffError(`backup ${name} on ${host.name} is damaged: tar cannot read files.tar; nothing was changed`);
    const members = checked.split('\n').flatMap((l) => (l.startsWith('member ') ? [l.slice('member '.length)] : []));
    const unsafe = unsafeMembers(members, tar.sources);
    if (unsafe.length > 0) {
      const more = unsafe.length > 3 ? ` and ${unsafe.length - 3} more` : '';
      throw new SkiffError(`backup ${name} on ${host.name}: files.tar holds ${unsafe.slice(0, 3).join(', ')}${more}, which a restore must not unpack: refused; nothing was changed`, 2);
    }
  }
  const targets = manifest.entries.flatMap((e) => (e.kind === 'sqlite' || e.kind === 'paths' ? e.sources : []));
  const outside = [...(await host.exec(targetsOutside(ctx.l.shared, targets))).stdout.matchAll(/^outside ([^\t]*)\t(.*)$/gm)];
  if (outside.length > 0) {
    throw new SkiffError(
      `${host.name}: ${outside.map((m) => `${m[1]} would be written to ${m[2]}`).join(', ')}, outside ${ctx.l.shared}, through a symbolic link there: restore refused; nothing was changed (replace the link with a folder)`,
      2,
    );
  }
  return manifest;
};

/** BACKUP_POSTGRES_URL as libpq reads it (checked when the config loaded), or undefined. */
export const pgOf = (url: string | undefined): PgConnection | undefined => (url ? parsePgUrl(url) : undefined);

/** Puts a verified backup's data in place (the app must be stopped); PostgreSQL in one transaction. */
const swapIn = async (ctx: Session, name: string, m: BackupManifest): Promise<void> => {
  await ctx.host.exec(
    swapInData(
      backupDir(ctx, name),
      ctx.l.shared,
      m.entries.filter((e) => e.kind === 'sqlite').map((e) => [e.path, e.sources[0] as string] as const),
      m.entries.find((e) => e.kind === 'paths')?.sources ?? [],
    ),
    { timeoutMs: DEADLINE.transfer },
  );
  const pg = pgOf(ctx.cfg.backup.postgresUrl?.reveal());
  if (m.entries.some((e) => e.kind === 'postgres')) {
    if (!pg) throw new SkiffError(`backup ${name} holds a PostgreSQL dump, and BACKUP_POSTGRES_URL is not set: set it to the database to restore into`, 2);
    const r = await ctx.host.exec(restorePostgres(`${backupDir(ctx, name)}/postgres.dump`), { stdin: pgStdin(pg), check: false, timeoutMs: DEADLINE.transfer });
    if (r.code !== 0) throw new SkiffError(`PostgreSQL restore failed (nothing of it was applied): ${r.stderr.trim().split('\n').at(-1) ?? `exit ${r.code}`}`);
  }
};

/**
 * Restores a verified backup: a safety backup first, then stop, swap the data in, start, health
 * check. If any of that fails, the safety backup goes back in and the app starts again.
 */
export const restoreBackup = async (ctx: Session, name: string, manifest: BackupManifest): Promise<{ safety: string }> => {
  const { host, l, cfg } = ctx;
  const { slot, release: live } = liveSlot(await readState(host, l)) ?? {};
  const safety = await takeBackup(ctx, 'before-restore', [name]);
  ctx.log(`safety backup ${safety.name}`);
  // The live release's workers (docs/workers.md) stop and start with the app: none runs while its data is swapped.
  const workers = live ? { release: live.release, version: live.version, workers: live.workers ?? [] } : undefined;
  const start = async () => {
    if (!slot || !live) return;
    await ctx.runtime.launch(host, l, { slot, release: live.release, port: live.port, start: live.start, version: live.version });
    await gateSlot(ctx, slot, live.port, false);
    const started = workers ? await startReleaseWorkers(ctx, workers, { interruptible: false }) : undefined;
    if (started) ctx.log(started);
  };
  try {
    if (slot) {
      const stopped = await ctx.runtime.halt(host, l, slot, cfg.drainSeconds);
      ctx.log(`app ${stopped}`);
    }
    const halted = workers ? await stopReleaseWorkers(ctx, workers, cfg.workerGraceSeconds) : undefined;
    if (halted) ctx.log(halted);
    await swapIn(ctx, name, manifest);
    await start();
    await audit(host, l, ctx.now().toISOString(), ctx.who, `restore ${name} (safety backup ${safety.name})`);
    return { safety: safety.name };
  } catch (error) {
    ctx.log(`restore failed, putting ${safety.name} back`);
    try {
      if (slot) await ctx.runtime.halt(host, l, slot, 0);
      if (workers) await stopReleaseWorkers(ctx, workers, 0);
      await swapIn(ctx, safety.name, safety.manifest);
      await start();
    } catch (again) {
      throw new SkiffError(
        `${firstLine(error)}\n  and putting the safety backup ${safety.name} back failed too: ${
          firstLine(again)
        }; restore it by hand: npx tsx scripts/restore.ts ${cfg.env} ${safety.name}`,
      );
    }
    await audit(host, l, ctx.now().toISOString(), ctx.who, `restore ${name} failed; safety backup ${safety.name} put back`);
    throw new SkiffError(
      `restore of ${name} failed: ${firstLine(error)}; the data of before (safety backup ${safety.name}) is back and the app serves it`,
    );
  }
};

/**
 * `restore --test`: restores a verified backup into a scratch folder on the host and checks it,
 * touching nothing live. Returns one line per entry.
 */
export const drillBackup = async (ctx: Session, name: string, m: BackupManifest, dir: string = backupDir(ctx, name)): Promise<string[]> => {
  const out = (await ctx.host.exec(drillRestore(dir, `${backupsDir(ctx)}/.drill-${name}`), { timeoutMs: DEADLINE.transfer })).stdout;
  const field = (kind: string, entry: string) => new RegExp(`^${kind} ${entry.replace(/[./]/g, '\\$&')} (.*)$`, 'm').exec(out)?.[1];
  const problems: string[] = [];
  const lines = m.entries.map((e) => {
    if (e.kind === 'sqlite') {
      const integrity = field('integrity', e.path) ?? 'not checked';
      if (integrity !== 'ok') problems.push(`${e.path} (${e.sources[0]}): integrity ${integrity}`);
      return `${e.path} (${e.sources[0]}): integrity ${integrity}, ${field('tables', e.path) ?? '?'} tables`;
    }
    if (e.kind === 'paths') return `files.tar (${e.sources.join(', ')}): ${/^files (\d+)$/m.exec(out)?.[1] ?? '?'} files unpacked`;
    if (e.kind === 'postgres') return `postgres.dump: pg_restore -l lists ${/^pgobjects (\d+)$/m.exec(out)?.[1] ?? '?'} objects`;
    return 'env: present';
  });
  if (problems.length > 0) throw new SkiffError(`restore test of ${name} failed: ${problems.join('; ')}`);
  return lines;
};

/**
 * The newest backup taken while a release was live (its manifest names it), verified: what
 * `rollback --with-data` restores. With DEPLOY_BACKUP_BEFORE, that is the backup the next deploy took.
 */
export const backupOfRelease = async (ctx: Session, release: string): Promise<{ name: string; manifest: BackupManifest }> => {
  const found = (await readBackups(ctx)).filter((b) => b.manifest?.release === release).at(-1);
  if (!found) {
    throw new UsageError(`no backup on ${ctx.host.name} was taken while ${release} was live: roll back without --with-data, or restore a backup by name (backup.ts ${ctx.cfg.env} --list)`);
  }
  return { name: found.name, manifest: await verifyBackup(ctx, found.name) };
};
