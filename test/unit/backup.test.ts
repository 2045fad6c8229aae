/** The pure parts of backups: names, manifests, verification, retention, and the builders' arguments. */
import { spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { backupName, backupsToPrune, checkBackupName, composeManifest, formatBackups, parseSums, unsafeMembers, verifyAgainst } from '../../lib/flows/backup.ts';
import { render } from '../../lib/core/cmd.ts';
import { backupSpace, checkBackup, listBackups, sealBackup, swapInData, takeSnapshot } from '../../lib/commands/backup.ts';
import { UsageError } from '../../lib/core/errors.ts';
import { words } from './shell-words.ts';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const facts = { app: 'hello', env: 'prod', name: '20261123-041500', createdAt: '2026-11-23T04:15:00.000Z', release: 'r1', version: '1.0.0' };
const manifest = composeManifest(facts, parseSums(`${A} 4096 sqlite/0.db\n${B} 10240 files.tar\n`), ['data/app.db'], ['uploads']);

describe('backup names', () => {
  it('are the UTC time, with an optional label', () => {
    const now = new Date('2026-11-23T04:15:09.123Z');
    expect(backupName(now)).toBe('20261123-041509.123');
    expect(backupName(now, 'before-migration')).toBe('20261123-041509.123-before-migration');
  });
  it('two backups in one second get two names, in the order they were taken', () => {
    const first = backupName(new Date('2026-11-23T04:15:09.001Z'), 'x');
    const second = backupName(new Date('2026-11-23T04:15:09.002Z'), 'x');
    expect(first).not.toBe(second);
    expect([second, first, backupName(new Date('2026-11-23T04:15:08.999Z'))].sort()).toEqual(['20261123-041508.999', first, second]);
  });
  it.each(['20261123-041509', '20261123-041509-nightly', '20261123-041509.123', '20261123-041509.123-nightly'])('accepts the name %j (old names too)', (name) => {
    expect(() => checkBackupName(name, 'prod')).not.toThrow();
  });
  it.each(['Bad', 'a b', '../x', '-x', 'x'.repeat(41), ''])('refuses the label %j', (label) => {
    expect(() => backupName(new Date(), label)).toThrow(UsageError);
  });
  it.each(['../etc', '20261123-041509/..', '20261123-041509-..', 'x', '20261123-041509-a/b', '20261123-041509 ', '20261123-041509.12', '20261123-041509..123', '20261123-041509.123.partial'])('refuses the name %j', (name) => {
    expect(() => checkBackupName(name, 'prod')).toThrow(/is not a backup name/);
  });
  it('accepts the names it makes', () => expect(() => checkBackupName('20261123-041509-nightly', 'prod')).not.toThrow());
});

describe('manifests and verification', () => {
  it('composes entries with what each was taken from', () => {
    expect(manifest.entries).toEqual([
      { path: 'sqlite/0.db', kind: 'sqlite', sources: ['data/app.db'], size: 4096, sha256: A },
      { path: 'files.tar', kind: 'paths', sources: ['uploads'], size: 10240, sha256: B },
    ]);
  });
  it('parseSums ignores lines that are not sums', () => {
    expect(parseSums(`missing avatars\npaths 1\n${A} 1 env\n`)).toEqual([{ sha256: A, size: 1, path: 'env' }]);
  });
  it('a sound backup has no problems', () => {
    expect(verifyAgainst(manifest, `${A} 4096 sqlite/0.db\n${B} 10240 files.tar\nintegrity sqlite/0.db ok\n`)).toEqual([]);
  });
  it('names a flipped byte, a truncation, a missing entry and a failed integrity check', () => {
    expect(verifyAgainst(manifest, `${B} 4096 sqlite/0.db\nintegrity sqlite/0.db database disk image is malformed\n`)).toEqual([
      'sqlite/0.db does not match its sha256 (corrupted)',
      'files.tar is missing',
      'sqlite/0.db fails PRAGMA integrity_check: database disk image is malformed',
    ]);
    expect(verifyAgainst(manifest, `${A} 4096 sqlite/0.db\n${B} 512 files.tar\n`)).toEqual(['files.tar has 512 bytes, its manifest says 10240 (truncated?)']);
  });
});

describe('retention', () => {
  const names = ['20261120-000000', '20261121-000000', '20261122-000000', '20261123-000000'];
  it('removes the oldest beyond keep', () => expect(backupsToPrune(names, 2)).toEqual(['20261120-000000', '20261121-000000']));
  it('keeps everything when there are fewer', () => expect(backupsToPrune(names, 10)).toEqual([]));
  it('never removes the newest, whatever keep says', () => expect(backupsToPrune(names, 0)).toEqual(names.slice(0, 3)));
});

describe('the --list table', () => {
  it('is newest first, with size, version and contents', () => {
    const text = formatBackups([
      { name: '20261122-000000', manifest: undefined },
      { name: '20261123-041500', manifest },
    ]);
    expect(text.split('\n')[1]).toMatch(/^20261123-041500 +14 KB  1\.0\.0 +data\/app\.db uploads$/);
    expect(text.split('\n')[2]).toMatch(/^20261122-000000 .*\(no manifest\)$/);
    expect(formatBackups([])).toBe('no backups yet');
  });
});

describe('backup builders pass every path as its own word', () => {
  const evil = `up loads'; rm -rf / #`;
  const args = (c: ReturnType<typeof takeSnapshot>) => words(render(c)).slice(4);
  it.each([
    ['takeSnapshot', takeSnapshot('/srv/a b/shared', '/srv/a b/backups/x.partial', ['data/app.db'], [evil]), ['/srv/a b/shared', '/srv/a b/backups/x.partial', '1', 'data/app.db', evil]],
    ['backupSpace', backupSpace('/srv/b', '/srv/s', ['data/app.db', evil]), ['/srv/b', '/srv/s', 'data/app.db', evil]],
    ['sealBackup', sealBackup('/b/x.partial', '/b/x'), ['/b/x.partial', '/b/x']],
    ['listBackups', listBackups('/b'), ['/b']],
    ['checkBackup', checkBackup(`/b/${evil}`), [`/b/${evil}`]],
    ['swapInData', swapInData('/b/x', '/s', [['sqlite/0.db', 'data/app.db']], [evil]), ['/b/x', '/s', '1', 'sqlite/0.db', 'data/app.db', evil]],
  ])('%s', (_name, c, expected) => expect(args(c)).toEqual(expected));
});

describe('TarDigest', () => {
  it('hashes every file of a tar stream as it passes, and passes it on unchanged', async () => {
    const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { execFileSync } = await import('node:child_process');
    const { createHash } = await import('node:crypto');
    const { TarDigest } = await import('../../lib/flows/backup-copy.ts');
    const dir = mkdtempSync(join(tmpdir(), 'skiff-tar-'));
    mkdirSync(join(dir, 'b', 'sqlite'), { recursive: true });
    const big = Buffer.alloc(70_001, 7);
    writeFileSync(join(dir, 'b', 'sqlite', '0.db'), big);
    writeFileSync(join(dir, 'b', 'env'), '');
    writeFileSync(join(dir, 'b', 'manifest.json'), '{}');
    const tar = execFileSync('tar', ['-c', '-f', '-', '-C', dir, 'b']);
    rmSync(dir, { recursive: true });
    const digest = new TarDigest();
    const out: Buffer[] = [];
    digest.on('data', (b: Buffer) => out.push(b));
    // In uneven pieces, as a network delivers it.
    for (let i = 0; i < tar.length; i += 777) digest.write(tar.subarray(i, i + 777));
    digest.end();
    await new Promise((r) => digest.on('end', r));
    expect(Buffer.concat(out).equals(tar)).toBe(true);
    expect(digest.files.get('b/sqlite/0.db')).toEqual({ size: 70_001, sha256: createHash('sha256').update(big).digest('hex') });
    expect(digest.files.get('b/env')?.size).toBe(0);
    expect(digest.files.get('b/manifest.json')?.sha256).toBe(createHash('sha256').update('{}').digest('hex'));
  });

  it('names files as tar -x would: GNU and PAX long names; nothing after the end-of-archive block', async () => {
    const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { execFileSync } = await import('node:child_process');
    const { createHash } = await import('node:crypto');
    const { TarDigest } = await import('../../lib/flows/backup-copy.ts');
    const dir = mkdtempSync(join(tmpdir(), 'skiff-tar-'));
    const long = `b/${'l'.repeat(120)}.db`;
    mkdirSync(join(dir, 'b'));
    writeFileSync(join(dir, long), 'long');
    writeFileSync(join(dir, 'late'), 'late');
    const digestOf = async (tar: Buffer) => {
      const digest = new TarDigest();
      digest.resume();
      await new Promise((resolve, reject) => digest.on('finish', resolve).on('error', reject).end(tar));
      return digest.files;
    };
    const late = execFileSync('tar', ['-c', '-f', '-', '-C', dir, 'late']);
    for (const format of ['gnu', 'pax']) {
      const tar = execFileSync('tar', ['-c', '-f', '-', `--format=${format}`, '-C', dir, long]);
      // The end block found first ends the archive, as it does for tar -x: `late` is not in it.
      const files = await digestOf(Buffer.concat([tar, late]));
      expect([...files.keys()]).toEqual([long]);
      expect(files.get(long)).toEqual({ size: 4, sha256: createHash('sha256').update('long').digest('hex') });
    }
    rmSync(dir, { recursive: true });
  });

  it('refuses a damaged header instead of reading on from the wrong place', async () => {
    const { TarDigest } = await import('../../lib/flows/backup-copy.ts');
    const header = Buffer.alloc(512);
    header.write('b/env', 0);
    header.write('zz', 124);
    const digest = new TarDigest();
    digest.resume();
    await expect(new Promise((resolve, reject) => digest.on('finish', resolve).on('error', reject).end(header))).rejects.toThrow('not a tar archive, or a damaged one');
  });
});

describe('a backup never replaces another of the same name (run by sh)', () => {
  const run = (c: ReturnType<typeof takeSnapshot>) => {
    if (c.kind !== 'script') throw new Error('a script');
    return spawnSync('sh', ['-c', c.text, 'sh', ...c.args.map(String)], { encoding: 'utf8' });
  };
  let dir = '';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'skiff-names-'));
    mkdirSync(join(dir, 'shared/uploads'), { recursive: true });
    writeFileSync(join(dir, 'shared/uploads/a.txt'), 'a\n');
    mkdirSync(join(dir, 'backups/20261123-041509.123'), { recursive: true });
    writeFileSync(join(dir, 'backups/20261123-041509.123/manifest.json'), '{"first":true}');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a snapshot into the stage of a sealed backup exits 6 and touches nothing', () => {
    const r = run(takeSnapshot(join(dir, 'shared'), join(dir, 'backups/20261123-041509.123.partial'), [], ['uploads']));
    expect(r.status).toBe(6);
    expect(readdirSync(join(dir, 'backups'))).toEqual(['20261123-041509.123']);
    expect(readFileSync(join(dir, 'backups/20261123-041509.123/manifest.json'), 'utf8')).toBe('{"first":true}');
  });

  it('a snapshot into a stage another backup is making exits 6 and leaves it', () => {
    mkdirSync(join(dir, 'backups/20261123-041509.124.partial/sqlite'), { recursive: true });
    writeFileSync(join(dir, 'backups/20261123-041509.124.partial/files.tar'), 'being written');
    expect(run(takeSnapshot(join(dir, 'shared'), join(dir, 'backups/20261123-041509.124.partial'), [], ['uploads'])).status).toBe(6);
    expect(readFileSync(join(dir, 'backups/20261123-041509.124.partial/files.tar'), 'utf8')).toBe('being written');
  });

  it('a seal over a backup of the same name fails (exit 1) and leaves both as they were', () => {
    mkdirSync(join(dir, 'backups/20261123-041509.123.partial'));
    writeFileSync(join(dir, 'backups/20261123-041509.123.partial/manifest.json'), '{"second":true}');
    const r = run(sealBackup(join(dir, 'backups/20261123-041509.123.partial'), join(dir, 'backups/20261123-041509.123')));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('exists already: not replaced');
    expect(readFileSync(join(dir, 'backups/20261123-041509.123/manifest.json'), 'utf8')).toBe('{"first":true}');
  });

  it('a seal whose folder has no manifest fails (exit 1): a backup is sealed only when whole', () => {
    mkdirSync(join(dir, 'backups/x.partial'));
    expect(run(sealBackup(join(dir, 'backups/x.partial'), join(dir, 'backups/x'))).status).toBe(1);
  });

  it('a swap whose target folder in shared/ is a link out of it exits 7 before writing anything', () => {
    mkdirSync(join(dir, 'outside'));
    writeFileSync(join(dir, 'outside/app.db'), 'theirs');
    symlinkSync(join(dir, 'outside'), join(dir, 'shared/data'));
    mkdirSync(join(dir, 'backups/b/sqlite'), { recursive: true });
    writeFileSync(join(dir, 'backups/b/sqlite/0.db'), 'restored');
    writeFileSync(join(dir, 'shared/uploads/a.txt'), 'live');
    for (const [dbs, paths] of [[[['sqlite/0.db', 'data/app.db']], []], [[], ['data/more']], [[['sqlite/0.db', 'ok.db']], ['data/deep/er']]] as const) {
      const r = run(swapInData(join(dir, 'backups/b'), join(dir, 'shared'), dbs, paths));
      expect(r.status).toBe(7);
      expect(r.stderr).toMatch(/: its folder in shared\/ leads to .*outside.*, outside shared\/: refused/);
    }
    expect(readFileSync(join(dir, 'outside/app.db'), 'utf8')).toBe('theirs');
    expect(readdirSync(join(dir, 'outside'))).toEqual(['app.db']);
    expect(existsSync(join(dir, 'shared/ok.db'))).toBe(false);
  });

  it('a sound snapshot and seal make the backup, and listBackups skips stages', () => {
    const stage = join(dir, 'backups/20261123-041510.000.partial');
    expect(run(takeSnapshot(join(dir, 'shared'), stage, [], ['uploads'])).status).toBe(0);
    writeFileSync(join(stage, 'manifest.json'), '{}');
    // A stage already holds its manifest just before it is sealed: still not a backup.
    mkdirSync(join(dir, 'backups/20261123-041509.999.partial'));
    writeFileSync(join(dir, 'backups/20261123-041509.999.partial/manifest.json'), '{}');
    expect(run(listBackups(join(dir, 'backups'))).stdout).toBe('20261123-041509.123\n');
    expect(run(sealBackup(stage, join(dir, 'backups/20261123-041510.000'))).status).toBe(0);
    expect(run(listBackups(join(dir, 'backups'))).stdout).toBe('20261123-041509.123\n20261123-041510.000\n');
  });
});

describe('the snapshot reads BACKUP_PATHS once (run by sh)', () => {
  const run = (c: ReturnType<typeof takeSnapshot>, path?: string) => {
    if (c.kind !== 'script') throw new Error('a script');
    return spawnSync('sh', ['-c', c.text, 'sh', ...c.args.map(String)], { encoding: 'utf8', env: { ...process.env, ...(path ? { PATH: `${path}:${process.env.PATH ?? ''}` } : {}) } });
  };
  let dir = '';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'skiff-snap-'));
    mkdirSync(join(dir, 'shared/uploads'), { recursive: true });
    writeFileSync(join(dir, 'shared/uploads/a.txt'), 'a\n'.repeat(5000));
    mkdirSync(join(dir, 'backups'));
    mkdirSync(join(dir, 'bin'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const fake = (name: string, body: string) => writeFileSync(join(dir, 'bin', name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });

  it("prints the archive's sha256 taken while it was written, which is the file's", () => {
    const stage = join(dir, 'backups/b.partial');
    const r = run(takeSnapshot(join(dir, 'shared'), stage, [], ['uploads']));
    expect(r.status, r.stderr).toBe(0);
    const sum = spawnSync('sha256sum', [join(stage, 'files.tar')], { encoding: 'utf8' }).stdout.slice(0, 64);
    expect(r.stdout).toBe(`${sum} ${readFileSync(join(stage, 'files.tar')).length} files.tar\n`);
  });

  it.each([
    ['tar fails', 'tar', 'echo "tar: uploads: Cannot open" >&2; exit 2', 'tar: uploads: Cannot open'],
    ['the disk is full (tee fails)', 'tee', 'cat >/dev/null; echo "tee: files.tar: No space left on device" >&2; exit 1', 'No space left on device'],
  ])('%s: exit 1 with its line, no sum printed', (_what, tool, body, line) => {
    fake(tool, body);
    const r = run(takeSnapshot(join(dir, 'shared'), join(dir, 'backups/b.partial'), [], ['uploads']), join(dir, 'bin'));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(line);
    expect(r.stderr).toContain('the archive of BACKUP_PATHS could not be written in');
    expect(r.stderr).not.toMatch(/[0-9a-f]{64}/);
    expect(r.stdout).not.toContain('files.tar');
  });
});

describe('unsafeMembers: what files.tar may hold, from real tar -tv listings', () => {
  // Archives made with GNU tar itself, listed the way checkBackup lists them.
  let dir = '';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'skiff-members-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const list = (args: string[]) => {
    spawnSync('tar', ['-c', '-f', join(dir, 't.tar'), ...args], { cwd: join(dir, 'src') });
    return spawnSync('tar', ['-t', '-v', '--numeric-owner', '--quoting-style=c', '-f', join(dir, 't.tar')], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } }).stdout.split('\n').filter(Boolean);
  };
  const src = (files: Record<string, string>, links: Record<string, string> = {}) => {
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(join(dir, 'src', f, '..'), { recursive: true });
      writeFileSync(join(dir, 'src', f), text);
    }
    for (const [l, to] of Object.entries(links)) {
      mkdirSync(join(dir, 'src', l, '..'), { recursive: true });
      symlinkSync(to, join(dir, 'src', l));
    }
  };

  it('accepts files, folders, links inside shared/, hard links between members and odd names', () => {
    src({ 'uploads/a.txt': 'a', 'uploads/sub/new\nline "q".txt': 'b', 'uploads/sub/b.txt': 'b' }, { 'uploads/sub/up': '../a.txt', 'uploads/data': '../data' });
    linkSync(join(dir, 'src/uploads/a.txt'), join(dir, 'src/uploads/hard.txt'));
    expect(unsafeMembers(list(['uploads']), ['uploads'])).toEqual([]);
  });

  it('refuses a link out of shared/, a member below a link, a fifo, and a member no BACKUP_PATHS names', () => {
    src({ 'uploads/a.txt': 'a', 'data/app.db': 'db' }, { 'uploads/x': '/etc', 'uploads/up': '../../outside' });
    spawnSync('mkfifo', [join(dir, 'src/uploads/fifo')]);
    // A member below a link cannot be made by tar (it follows no link while creating): its line is added.
    const problems = unsafeMembers([...list(['uploads', 'data']), '-rw-r--r-- 0/0 9 2026-12-01 10:00 "uploads/x/passwd"'], ['uploads']);
    expect([...problems].sort()).toEqual(
      [
        '"uploads/x" (a link to "/etc", outside shared/)',
        '"uploads/up" (a link to "../../outside", outside shared/)',
        '"uploads/fifo" (not a file, folder or link)',
        '"data" (not under BACKUP_PATHS)',
        '"data/app.db" (not under BACKUP_PATHS)',
        '"uploads/x/passwd" (below the link "uploads/x")',
      ].sort(),
    );
  });

  it('refuses a line it cannot read rather than passing it', () => {
    expect(unsafeMembers(['?rw-r--r-- garbage'], ['uploads'])).toEqual(['a member tar lists as "?rw-r--r-- garbage"']);
  });
});
