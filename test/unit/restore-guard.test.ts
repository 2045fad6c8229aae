/** What a backup's manifest may not decide: where a restore writes, and which backups retention removes. */
import { describe, expect, it } from 'vitest';
import { backupsToPrune, foreignEntries, type BackupEntry, type BackupManifest } from '../../lib/flows/backup.ts';

const manifest = (...entries: Partial<BackupEntry>[]): BackupManifest => ({
  format: 1,
  app: 'hello',
  env: 'staging',
  name: '20261201-100000',
  createdAt: '2026-12-01T10:00:00Z',
  release: undefined,
  version: undefined,
  entries: entries.map((e) => ({ path: 'sqlite/0.db', kind: 'sqlite', sources: ['data/app.db'], size: 1, sha256: 'x', ...e })),
});

describe('foreignEntries', () => {
  const sqlite = ['data/app.db'];
  const paths = ['uploads'];

  it('accepts what this env backs up', () => {
    const m = manifest({}, { path: 'files.tar', kind: 'paths', sources: ['uploads'] }, { path: 'env', kind: 'env', sources: ['.env'] }, { path: 'postgres.dump', kind: 'postgres', sources: ['BACKUP_POSTGRES_URL'] });
    expect(foreignEntries(m, sqlite, paths, true)).toEqual([]);
  });

  it.each([
    ['a database source outside shared/', { sources: ['../../../root/.ssh/authorized_keys'] }],
    ['an absolute database source', { sources: ['/etc/cron.d/evil'] }],
    ['a database this env does not name', { sources: ['data/other.db'] }],
    ['two sources for one copy', { sources: ['data/app.db', 'data/app.db'] }],
    ['a kind that does not match its file', { path: 'files.tar', kind: 'sqlite' as const }],
    ['paths outside shared/', { path: 'files.tar', kind: 'paths' as const, sources: ['../../root/.ssh'] }],
    ['paths this env does not name', { path: 'files.tar', kind: 'paths' as const, sources: ['uploads', 'avatars'] }],
    ['an env entry under another name', { path: '../env', kind: 'env' as const, sources: ['.env'] }],
    ['an unknown kind', { path: 'x', kind: 'shell' as unknown as BackupEntry['kind'] }], // what a crafted file can say
    ['sources that are a string, not a list', { path: 'files.tar', kind: 'paths' as const, sources: 'uploads' as unknown as string[] }],
    ['a source that is not a string', { sources: [7] as unknown as string[] }],
    ['paths with no source', { path: 'files.tar', kind: 'paths' as const, sources: [] }],
  ])('refuses %s', (_what, entry) => {
    expect(foreignEntries(manifest(entry), sqlite, paths, true)).toHaveLength(1);
  });

  it('refuses a PostgreSQL dump when this env has no BACKUP_POSTGRES_URL to restore it into', () => {
    expect(foreignEntries(manifest({ path: 'postgres.dump', kind: 'postgres', sources: ['BACKUP_POSTGRES_URL'] }), sqlite, paths, false)).toHaveLength(1);
  });
});

describe('backupsToPrune', () => {
  it('keeps the backups it is told to spare, whatever their age', () => {
    const names = ['20261125-030000', '20261130-000000', '20261201-100000-before-restore'];
    expect(backupsToPrune(names, 2)).toEqual(['20261125-030000']);
    expect(backupsToPrune(names, 2, ['20261125-030000'])).toEqual([]);
    expect(backupsToPrune(names, 1, ['20261125-030000'])).toEqual(['20261130-000000']);
  });
});
