/**
 * The backup flows against a recording host: the order of a backup (space check, snapshot into
 * .partial, manifest, seal, prune), what verification refuses before anything is written, and a
 * restore that puts the data of before back when the app does not come back healthy.
 */
import { describe, expect, it } from 'vitest';
import { SkiffError, UsageError } from '../../lib/core/errors.ts';
import { backupOfRelease, composeManifest, drillBackup, manifestMac, parseSums, readBackups, restoreBackup, takeBackup, verifyBackup, type BackupManifest } from '../../lib/flows/backup.ts';
import { auditAppended, CMD, flowSession, forPort, hostState, NOW, rejection, slot, testConfig, type FlowSetup } from '../support/flow-ctx.ts';
import { failed, inOrder, inTurn, ok, when, type Rule } from '../support/recording-host.ts';
import { words } from './shell-words.ts';

const cfg = testConfig({ BACKUP_SQLITE: 'data/app.db', BACKUP_PATHS: 'uploads,avatars', BACKUP_KEEP: '2' });
const LIVE = '20261130-090000-1.1.0';
const state = hostState('blue', { blue: slot(LIVE, 3001, 'node server.js --data') });
const NAME = '20261201-100000.000';
const SAFETY = '20261201-100000.000-before-restore';
const OLD = '20261125-030000';
const BACKUPS = '/srv/hello/backups';

const S1 = '1'.repeat(64);
const S2 = '2'.repeat(64);
const S3 = '3'.repeat(64);
const SUMS = `${S1} 4096 sqlite/0.db\n${S2} 10240 files.tar\n${S3} 12 env\n`;
/** files.tar's members as checkBackup prints them. */
const MEMBERS = 'member drwxr-xr-x 0/0 0 2026-12-01 10:00 "uploads/"\nmember -rw-r--r-- 0/0 15 2026-12-01 10:00 "uploads/logo.txt"\nmembers ok\n';

/** A backup's manifest as takeBackup writes it. */
const manifestOf = (name: string, over: Partial<BackupManifest> = {}): BackupManifest => ({
  ...composeManifest({ app: 'hello', env: 'staging', name, createdAt: '2026-11-25T03:00:00.000Z', release: LIVE, version: '1.1.0' }, parseSums(SUMS), ['data/app.db'], ['uploads']),
  ...over,
});
const manifestFile = (name: string, m: unknown) => ({ [`${BACKUPS}/${name}/manifest.json`]: JSON.stringify(m) });

/** A host with data to back up and room for it; `rules` go first. */
const backupHost = (rules: Rule[] = [], over: FlowSetup = {}) =>
  flowSession({
    cfg,
    state,
    rules: [
      ...rules,
      when(CMD.space, ok('1000000 5000')),
      when(CMD.snapshot, ok(`${SUMS}missing avatars\n`)),
      when(CMD.listBackups, ok(`20261129-000000\n20261130-000000\n${NAME}\n`)),
      when(CMD.check, ok(`${SUMS}integrity sqlite/0.db ok\n${MEMBERS}`)),
    ],
    ...over,
  });

const writes = (host: ReturnType<typeof flowSession>['host']) => ({
  puts: host.puts.map((p) => p.path),
  changes: host.commands.filter((c) => [CMD.snapshot, CMD.seal, CMD.swap, CMD.stop, CMD.start, CMD.append, 'rm -rf'].some((p) => c.includes(p))),
});

describe('takeBackup', () => {
  it('checks tools and space, snapshots into <name>.partial, writes the manifest there, seals it, then prunes and audits', async () => {
    const { session, host } = backupHost();
    const result = await takeBackup(session);
    const stage = `${BACKUPS}/${NAME}.partial`;
    const steps = [CMD.tools, CMD.space, CMD.snapshot, `put ${stage}/manifest.json`, CMD.seal, CMD.listBackups, 'rm -rf', CMD.append];
    expect(inOrder(host.events, steps)).toEqual(steps);
    expect(words(host.commands.find((c) => c.includes(CMD.tools)) ?? '')).toContain('sqlite3');
    expect(words(host.commands.find((c) => c.includes(CMD.space)) ?? '').slice(-5)).toEqual([BACKUPS, '/srv/hello/shared', 'data/app.db', 'uploads', 'avatars']);
    expect(words(host.commands.find((c) => c.includes(CMD.snapshot)) ?? '').slice(-6)).toEqual(['/srv/hello/shared', stage, '1', 'data/app.db', 'uploads', 'avatars']);
    expect(words(host.commands.find((c) => c.includes(CMD.seal)) ?? '').slice(-2)).toEqual([stage, `${BACKUPS}/${NAME}`]);
    expect(host.commands.find((c) => c.startsWith('rm -rf'))).toBe(`rm -rf ${BACKUPS}/20261129-000000`);
    expect(auditAppended(host)).toEqual([`backup ${NAME} (pruned 20261129-000000)`]);

    const file = host.files.get(`${stage}/manifest.json`);
    expect(file?.mode).toBe(0o600);
    expect(JSON.parse(file?.content.toString() ?? '')).toEqual(result.manifest);
    expect(result).toMatchObject({ name: NAME, pruned: ['20261129-000000'], missing: ['avatars'] });
    // A BACKUP_PATHS entry that does not exist yet is left out of what files.tar says it holds.
    expect(result.manifest).toMatchObject({ app: 'hello', env: 'staging', name: NAME, createdAt: NOW.toISOString(), release: LIVE, version: '1.1.0' });
    expect(result.manifest.entries.map((e) => [e.path, e.kind, e.sources])).toEqual([
      ['sqlite/0.db', 'sqlite', ['data/app.db']],
      ['files.tar', 'paths', ['uploads']],
      ['env', 'env', ['.env']],
    ]);
  });

  it('with BACKUP_SIGNING_KEY writes manifest.mac, the HMAC of the manifest\'s exact bytes, before the seal', async () => {
    const key = 'k'.repeat(40);
    const { session, host } = flowSession({
      cfg: testConfig({ BACKUP_SQLITE: 'data/app.db', BACKUP_SIGNING_KEY: key }),
      state,
      rules: [when(CMD.space, ok('1000000 5000')), when(CMD.snapshot, ok(SUMS)), when(CMD.listBackups, ok(''))],
    });
    await takeBackup(session);
    const stage = `${BACKUPS}/${NAME}.partial`;
    const text = host.files.get(`${stage}/manifest.json`)?.content ?? Buffer.alloc(0);
    expect(host.files.get(`${stage}/manifest.mac`)).toMatchObject({ mode: 0o600, content: Buffer.from(`${manifestMac(key, text)}\n`) });
    expect(inOrder(host.events, [`put ${stage}/manifest.json`, `put ${stage}/manifest.mac`, CMD.seal])).toHaveLength(3);
    expect(host.events.join('\n')).not.toContain(key);
  });

  it('refuses when the disk is short, before anything is made', async () => {
    const { session, host } = backupHost([when(CMD.space, ok('1000 5000'))]);
    await expect(takeBackup(session)).rejects.toThrow(`web1: not enough disk for the backup: it needs about 5000 KB, 1000 KB are free under ${BACKUPS}`);
    expect(writes(host)).toEqual({ puts: [], changes: [] });
  });

  it('names the package of a missing tool', async () => {
    const { session } = backupHost([when(CMD.tools, ok('sqlite3\n'))]);
    await expect(takeBackup(session)).rejects.toThrow(/^web1 lacks sqlite3: install it \(Debian: apt-get install sqlite3 coreutils tar\)$/);
  });

  it('an env that names nothing to back up is a configuration error, and nothing runs', async () => {
    const { session, host } = flowSession({ state });
    const error = await rejection(takeBackup(session));
    expect(error).toMatchObject({ exitCode: 2 });
    expect(error.message).toMatch(/^staging names nothing to back up: set BACKUP_SQLITE, BACKUP_PATHS and\/or BACKUP_POSTGRES_URL/);
    expect(host.events).toEqual([]);
  });

  it.each<[string, number, number]>([
    ['a missing database', 3, 2],
    ['a copy that fails its integrity check', 4, 1],
  ])('a snapshot that fails (%s) removes the stage and says why, with no manifest and no seal', async (_name, code, exitCode) => {
    const { session, host } = backupHost([when(CMD.snapshot, failed(code, 'sqlite3 says\nthe copy of data/app.db fails: broken'))]);
    const error = await rejection(takeBackup(session));
    expect(error).toBeInstanceOf(SkiffError);
    expect(error).toMatchObject({ message: 'web1: backup failed: the copy of data/app.db fails: broken', exitCode });
    expect(host.commands.at(-1)).toBe(`rm -rf ${BACKUPS}/${NAME}.partial`);
    expect(host.puts).toEqual([]);
    expect(host.commands.some((c) => c.includes(CMD.seal) || c.includes(CMD.append))).toBe(false);
  });

  it('a name in use is left alone: the next millisecond gets the backup, and no stage of another is removed', async () => {
    const { session, host } = backupHost([inTurn(CMD.snapshot, [failed(6, 'exists'), ok(SUMS)])]);
    const result = await takeBackup(session);
    expect(result.name).toBe('20261201-100000.001');
    const snapshots = host.commands.filter((c) => c.includes(CMD.snapshot)).map((c) => words(c).slice(-6)[1]);
    expect(snapshots).toEqual([`${BACKUPS}/${NAME}.partial`, `${BACKUPS}/20261201-100000.001.partial`]);
    expect(host.commands.some((c) => c === `rm -rf ${BACKUPS}/${NAME}.partial`)).toBe(false);
    expect(words(host.commands.find((c) => c.includes(CMD.seal)) ?? '').slice(-1)).toEqual([`${BACKUPS}/20261201-100000.001`]);
  });

  it('when every name near now is taken the backup fails (exit 1) and removes nothing', async () => {
    const { session, host } = backupHost([when(CMD.snapshot, failed(6, 'exists'))]);
    const error = await rejection(takeBackup(session));
    expect(error).toMatchObject({ exitCode: 1 });
    expect(error.message).toBe(`web1: backup failed: the names ${NAME} and the 10 after it are all taken under ${BACKUPS}`);
    expect(host.commands.some((c) => c.startsWith('rm -rf') || c.includes(CMD.seal) || c.includes(CMD.append))).toBe(false);
  });

  it('a seal that fails removes the stage; nothing is pruned or audited', async () => {
    const { session, host } = backupHost([when(CMD.seal, failed(1, 'mv: cannot move'))]);
    await expect(takeBackup(session)).rejects.toThrow(/^web1: command failed \(exit 1\): .*mv: cannot move$/s);
    expect(host.commands.at(-1)).toBe(`rm -rf ${BACKUPS}/${NAME}.partial`);
    expect(host.commands.some((c) => c.includes(CMD.listBackups) || c.includes(CMD.append))).toBe(false);
  });
});

describe('readBackups and verifyBackup', () => {
  it('lists every backup with its manifest, undefined where it cannot be read', async () => {
    const { session } = backupHost([when(CMD.listBackups, ok(`${OLD}\n${NAME}\n`))], { files: { ...manifestFile(OLD, manifestOf(OLD)), [`${BACKUPS}/${NAME}/manifest.json`]: '{"format": 1' } });
    expect(await readBackups(session)).toEqual([
      { name: OLD, manifest: manifestOf(OLD) },
      { name: NAME, manifest: undefined },
    ]);
  });

  it('accepts a backup whose every entry has its size and sha256 and whose database copy is intact', async () => {
    const { session, host } = backupHost([], { files: manifestFile(OLD, manifestOf(OLD)) });
    expect(await verifyBackup(session, OLD)).toEqual(manifestOf(OLD));
    expect(words(host.commands[0] ?? '').at(-1)).toBe(`${BACKUPS}/${OLD}`);
  });

  it.each<[string, string, string]>([
    ['a flipped byte', `${S3} 4096 sqlite/0.db\n${S2} 10240 files.tar\n${S3} 12 env\n`, 'sqlite/0.db does not match its sha256 (corrupted)'],
    ['a truncated file', `${S1} 4096 sqlite/0.db\n${S2} 512 files.tar\n${S3} 12 env\n`, 'files.tar has 512 bytes, its manifest says 10240 (truncated?)'],
    ['a lost entry', `${S1} 4096 sqlite/0.db\n${S2} 10240 files.tar\n`, 'env is missing'],
    ['a damaged database', `${SUMS}integrity sqlite/0.db database disk image is malformed\n`, 'sqlite/0.db fails PRAGMA integrity_check: database disk image is malformed'],
  ])('rejects a backup whose entries do not match its manifest: %s', async (_name, check, problem) => {
    const { session, host } = backupHost([when(CMD.check, ok(check))], { files: manifestFile(OLD, manifestOf(OLD)) });
    const error = await rejection(verifyBackup(session, OLD));
    expect(error.message).toBe(`backup ${OLD} on web1 is damaged: ${problem}; nothing was changed`);
    expect(writes(host)).toEqual({ puts: [], changes: [] });
  });

  it('says there is no such backup where it has no readable manifest', async () => {
    const { session } = backupHost();
    const error = await rejection(verifyBackup(session, OLD));
    expect(error).toBeInstanceOf(UsageError);
    expect(error.message).toBe(`there is no backup ${OLD} of staging on web1: see \`npx tsx scripts/backup.ts staging --list\``);
  });
});

describe('a crafted backup is refused before anything is written', () => {
  const entry = manifestOf(OLD).entries[0];

  it.each<[string, string, Record<string, string>, RegExp]>([
    ['a name that climbs out of backups/', '../../etc', {}, /^"\.\.\/\.\.\/etc" is not a backup name/],
    ['a name with a path after it', `${OLD}/..`, {}, /is not a backup name/],
    ['an absolute name', '/etc/cron.d', {}, /is not a backup name/],
    ['a manifest of another app', OLD, manifestFile(OLD, manifestOf(OLD, { app: 'other' })), /^backup 20261125-030000 is of other staging, not hello staging: restore it with that env$/],
    ['a manifest of another env', OLD, manifestFile(OLD, manifestOf(OLD, { env: 'production' })), /^backup 20261125-030000 is of hello production, not hello staging/],
    [
      'an entry outside the backup folder',
      OLD,
      manifestFile(OLD, manifestOf(OLD, { entries: [{ ...(entry as BackupManifest['entries'][number]), path: '../../../root/sqlite/0.db' }] })),
      /would restore \.\.\/\.\.\/\.\.\/root\/sqlite\/0\.db \(sqlite: data\/app\.db\), which this env's BACKUP_SQLITE, BACKUP_PATHS and BACKUP_POSTGRES_URL do not name: a restore writes only where the env says; nothing was changed$/,
    ],
    [
      'a database copy that would land outside shared/',
      OLD,
      manifestFile(OLD, manifestOf(OLD, { entries: [{ ...(entry as BackupManifest['entries'][number]), sources: ['../../../etc/cron.d/evil'] }] })),
      /would restore sqlite\/0\.db \(sqlite: \.\.\/\.\.\/\.\.\/etc\/cron\.d\/evil\)/,
    ],
    ['a manifest of another format', OLD, manifestFile(OLD, { ...manifestOf(OLD), format: 2 }), /^there is no backup 20261125-030000 of staging/],
    ['a manifest of another backup (a renamed copy)', OLD, manifestFile(OLD, manifestOf('20261126-000000')), /^backup 20261125-030000 on web1 says it is 20261126-000000: a renamed or crafted copy is refused/],
  ])('%s', async (_name, name, files, message) => {
    const { session, host } = backupHost([], { files });
    const error = await rejection(verifyBackup(session, name));
    expect(error.message).toMatch(message);
    expect(writes(host)).toEqual({ puts: [], changes: [] });
    // A name that is not a backup's is refused before the host is asked anything.
    if (name !== OLD) expect(host.events).toEqual([]);
  });
});

describe('files.tar that would write outside shared/ is refused before anything is unpacked (exit 2)', () => {
  const member = (line: string) => `member ${line}\n`;
  it.each<[string, string, string]>([
    ['a link below the top level, then a file through it', member('lrwxrwxrwx 0/0 0 2026-12-01 10:00 "uploads/x" -> "/etc"') + member('-rw-r--r-- 0/0 9 2026-12-01 10:00 "uploads/x/passwd"'), '"uploads/x" (a link to "/etc", outside shared/), "uploads/x/passwd" (below the link "uploads/x")'],
    ['a hard link to an outside path', member('hrw-r--r-- 0/0 0 2026-12-01 10:00 "uploads/h" link to "/etc/shadow"'), '"uploads/h" (a hard link to "/etc/shadow": an absolute name)'],
    ['an absolute member', member('-rw-r--r-- 0/0 9 2026-12-01 10:00 "/etc/cron.d/x"'), '"/etc/cron.d/x" (an absolute name)'],
    ['a .. member', member('-rw-r--r-- 0/0 9 2026-12-01 10:00 "uploads/../../x"'), '"uploads/../../x" (a name with ..)'],
    ['an extra entry', member('-rw-r--r-- 0/0 9 2026-12-01 10:00 "data/app.db"'), '"data/app.db" (not under BACKUP_PATHS)'],
  ])('%s', async (_name, members, what) => {
    const { session, host } = backupHost([when(CMD.check, ok(`${SUMS}integrity sqlite/0.db ok\n${members}members ok\n`))], { files: manifestFile(OLD, manifestOf(OLD)) });
    const error = await rejection(verifyBackup(session, OLD));
    expect(error).toMatchObject({ exitCode: 2, message: `backup ${OLD} on web1: files.tar holds ${what}, which a restore must not unpack: refused; nothing was changed` });
    expect(writes(host)).toEqual({ puts: [], changes: [] });
  });

  it('a database or path whose folder in shared/ is a link out of it (exit 2)', async () => {
    const { session, host } = backupHost([when('folder_of', ok('outside data/app.db\t/etc\n'))], { files: manifestFile(OLD, manifestOf(OLD)) });
    const error = await rejection(verifyBackup(session, OLD));
    expect(error).toMatchObject({ exitCode: 2 });
    expect(error.message).toBe('web1: data/app.db would be written to /etc, outside /srv/hello/shared, through a symbolic link there: restore refused; nothing was changed (replace the link with a folder)');
    expect(words(host.commands.find((c) => c.includes('folder_of')) ?? '').slice(-3)).toEqual(['/srv/hello/shared', 'data/app.db', 'uploads']);
    expect(writes(host)).toEqual({ puts: [], changes: [] });
  });

  it('an archive tar cannot read is damaged (exit 1)', async () => {
    const { session } = backupHost([when(CMD.check, ok(`${SUMS}integrity sqlite/0.db ok\nmembers unreadable\n`))], { files: manifestFile(OLD, manifestOf(OLD)) });
    expect(await rejection(verifyBackup(session, OLD))).toMatchObject({ exitCode: 1, message: `backup ${OLD} on web1 is damaged: tar cannot read files.tar; nothing was changed` });
  });
});

describe('restoreBackup', () => {
  const restoring = (rules: Rule[] = []) =>
    backupHost([...rules, when(CMD.stop, ok('stopped 11')), when(CMD.listBackups, ok(`${OLD}\n${SAFETY}\n`))], { files: manifestFile(OLD, manifestOf(OLD)) });

  it('takes a safety backup, stops the live slot, swaps the data in, starts the live release and gates it', async () => {
    const { session, host, logs } = restoring();
    await expect(restoreBackup(session, OLD, manifestOf(OLD))).resolves.toEqual({ safety: SAFETY });
    const steps = [CMD.snapshot, `put ${BACKUPS}/${SAFETY}.partial/manifest.json`, CMD.seal, CMD.append, CMD.stop, CMD.swap, CMD.start, CMD.probe, CMD.append];
    expect(inOrder(host.events, steps)).toEqual(steps);
    // The app drains as at any stop (DEPLOY_DRAIN_SECONDS).
    expect(words(host.commands.find((c) => c.includes(CMD.stop)) ?? '').at(-1)).toBe('10');
    const started = words(host.commands.find((c) => c.includes(CMD.start)) ?? '');
    expect(started).toContain(`/srv/hello/releases/${LIVE}`);
    expect(started).toContain('node server.js --data');
    expect(auditAppended(host)).toEqual([`backup ${SAFETY}`, `restore ${OLD} (safety backup ${SAFETY})`]);
    expect(logs).toEqual([`safety backup ${SAFETY}`, 'app stopped 11']);
  });

  it("stops the live release's workers with the app before the swap, and starts them after its health check (docs/workers.md)", async () => {
    const workers = [{ name: 'queue', count: 1, command: 'node worker.js' }];
    const { session, host, logs } = restoring([
      // unpid: the workers' stop; `-ge 3 ]`: their status, asked before the start and after DEPLOY_WORKER_UP_SECONDS; shift 5: their start.
      when('unpid "$@"', ok('stopped 1')),
      inTurn('-ge 3 ]', [ok('queue.1 stopped\n'), ok('queue.1 running 77\n')]),
      when('shift 5', ok('queue.1 77\n')),
    ]);
    const withWorkers = { ...session, cfg: testConfig({ BACKUP_SQLITE: 'data/app.db', BACKUP_PATHS: 'uploads,avatars', DEPLOY_WORKERS: 'queue=node worker.js' }) };
    host.files.set('/srv/hello/.skiff/state.json', { content: Buffer.from(JSON.stringify(hostState('blue', { blue: { ...slot(LIVE, 3001), workers } }))), mode: 0o600 });
    await restoreBackup(withWorkers, OLD, manifestOf(OLD));
    const steps = [CMD.stop, 'unpid "$@"', CMD.swap, CMD.start, CMD.probe, 'shift 5'];
    expect(inOrder(host.events, steps)).toEqual(steps);
    expect(host.commands.find((c) => c.includes('unpid "$@"'))).toContain(`#worker-queue.1@${LIVE}`);
    expect(logs).toContain(`stopped 1 worker process of ${LIVE}`);
    expect(logs).toContain('started 1 worker process (queue.1), up after 2s');
  });

  it('swaps in the databases and the paths the manifest names, each as its own word', async () => {
    const { session, host } = restoring();
    await restoreBackup(session, OLD, manifestOf(OLD));
    expect(words(host.commands.find((c) => c.includes(CMD.swap)) ?? '').slice(4)).toEqual([`${BACKUPS}/${OLD}`, '/srv/hello/shared', '1', 'sqlite/0.db', 'data/app.db', 'uploads']);
  });

  it('a start after the swap that fails its health check: the safety backup goes back, the app starts again, and the error says so', async () => {
    const { session, host, logs } = restoring([inTurn(CMD.probe, [ok('000'), ok('200')])]);
    const error = await rejection(restoreBackup(session, OLD, manifestOf(OLD)));
    expect(error.message).toBe(
      `restore of ${OLD} failed: web1: port 3001: the app exited before it answered its health check (no answer); the data of before (safety backup ${SAFETY}) is back and the app serves it`,
    );
    const swaps = host.commands.filter((c) => c.includes(CMD.swap)).map((c) => words(c)[4]);
    expect(swaps).toEqual([`${BACKUPS}/${OLD}`, `${BACKUPS}/${SAFETY}`]);
    const steps = [CMD.swap, CMD.start, CMD.probe, CMD.stop, `${BACKUPS}/${SAFETY} /srv/hello/shared`, CMD.start, CMD.probe, CMD.append];
    expect(inOrder(host.events, steps)).toEqual(steps);
    // The stop before the put-back does not wait: what runs failed its check.
    expect(host.commands.filter((c) => c.includes(CMD.stop)).map((c) => words(c).at(-1))).toEqual(['10', '0']);
    expect(auditAppended(host).at(-1)).toBe(`restore ${OLD} failed; safety backup ${SAFETY} put back`);
    expect(logs).toContain(`restore failed, putting ${SAFETY} back`);
  });

  it('a swap that fails is undone the same way', async () => {
    const { session, host } = restoring([inTurn(CMD.swap, [failed(1, 'cp: No space left on device'), ok()])]);
    const error = await rejection(restoreBackup(session, OLD, manifestOf(OLD)));
    expect(error.message).toMatch(new RegExp(`^restore of ${OLD} failed: web1: command failed \\(exit 1\\): .*; the data of before \\(safety backup ${SAFETY}\\) is back and the app serves it$`, 's'));
    expect(host.commands.filter((c) => c.includes(CMD.start))).toHaveLength(1);
  });

  it('when the safety backup cannot be put back either, the restore failure stays first and the error says how to restore by hand', async () => {
    const { session, host } = restoring([forPort(CMD.probe, 3001, ok('000')), inTurn(CMD.swap, [ok(), failed(1, 'tar: short read')])]);
    const error = await rejection(restoreBackup(session, OLD, manifestOf(OLD)));
    const [first, second] = error.message.split('\n');
    expect(first).toBe('web1: port 3001: the app exited before it answered its health check (no answer)');
    expect(second).toMatch(new RegExp(`^ {2}and putting the safety backup ${SAFETY} back failed too: web1: command failed \\(exit 1\\): .*; restore it by hand: npx tsx scripts/restore\\.ts staging ${SAFETY}$`));
    expect(auditAppended(host).some((l) => l.startsWith(`restore ${OLD}`))).toBe(false);
  });

  it('a safety backup that fails stops the restore before the app is touched', async () => {
    const { session, host } = restoring([when(CMD.space, ok('10 5000'))]);
    await expect(restoreBackup(session, OLD, manifestOf(OLD))).rejects.toThrow(/^web1: not enough disk for the backup/);
    expect(writes(host)).toEqual({ puts: [], changes: [] });
  });

  it('with nothing deployed, swaps the data in and starts nothing', async () => {
    const { session, host } = backupHost([], { state: hostState(undefined, {}) });
    await restoreBackup(session, OLD, manifestOf(OLD));
    expect(host.commands.filter((c) => c.includes(CMD.stop) || c.includes(CMD.start))).toEqual([]);
    expect(host.commands.filter((c) => c.includes(CMD.swap))).toHaveLength(1);
  });
});

describe('drillBackup and backupOfRelease', () => {
  it('a drill restores into a scratch folder and says what each entry holds', async () => {
    const out = 'integrity sqlite/0.db ok\ntables sqlite/0.db 4\nfiles 17\n';
    const { session, host } = backupHost([when(CMD.drill, ok(out))]);
    expect(await drillBackup(session, OLD, manifestOf(OLD))).toEqual(['sqlite/0.db (data/app.db): integrity ok, 4 tables', 'files.tar (uploads): 17 files unpacked', 'env: present']);
    // One command, in a scratch folder beside the backups: nothing live is touched.
    expect(host.commands).toHaveLength(1);
    expect(words(host.commands[0] ?? '').slice(-2)).toEqual([`${BACKUPS}/${OLD}`, `${BACKUPS}/.drill-${OLD}`]);
    expect(host.puts).toEqual([]);
  });

  it('a drill whose database copy is damaged fails, naming it', async () => {
    const { session } = backupHost([when(CMD.drill, ok('integrity sqlite/0.db *** in database main ***\n'))]);
    await expect(drillBackup(session, OLD, manifestOf(OLD))).rejects.toThrow(`restore test of ${OLD} failed: sqlite/0.db (data/app.db): integrity *** in database main ***`);
  });

  it('finds the newest backup taken while a release was live, verified', async () => {
    const later = '20261126-030000';
    const { session } = backupHost([when(CMD.listBackups, ok(`${OLD}\n${later}\n${NAME}\n`))], {
      files: { ...manifestFile(OLD, manifestOf(OLD)), ...manifestFile(later, manifestOf(later)), ...manifestFile(NAME, manifestOf(NAME, { release: 'another' })) },
    });
    expect(await backupOfRelease(session, LIVE)).toEqual({ name: later, manifest: manifestOf(later) });
    const error = await rejection(backupOfRelease(session, '20261101-000000-0.9.0'));
    expect(error).toBeInstanceOf(UsageError);
    expect(error.message).toBe(
      'no backup on web1 was taken while 20261101-000000-0.9.0 was live: roll back without --with-data, or restore a backup by name (backup.ts staging --list)',
    );
  });
});
