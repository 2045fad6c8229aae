import { describe, expect, it } from 'vitest';
import { formatVersion, isReleaseId, pyprojectVersion, releaseId, type GitFacts } from '../../lib/release/version.ts';

describe('formatVersion', () => {
  it.each<[string, GitFacts, string]>([
    ['tag on a clean HEAD: the tag without v', { pkgVersion: '0.1.0', sha: 'abc1234', tag: 'v1.2.0', dirty: false }, '1.2.0'],
    ['a pre-release tag', { pkgVersion: '0.1.0', sha: 'abc1234', tag: 'v2.0.0-rc.1', dirty: false }, '2.0.0-rc.1'],
    ['a tag without v', { pkgVersion: '0.1.0', sha: 'abc1234', tag: '1.2.3', dirty: false }, '1.2.3'],
    ['tag on a dirty tree: package version, sha and -dirty', { pkgVersion: '0.1.0', sha: 'abc1234', tag: 'v1.2.0', dirty: true }, '0.1.0-abc1234-dirty'],
    ['no tag, clean', { pkgVersion: '0.1.0', sha: 'abc1234', tag: undefined, dirty: false }, '0.1.0-abc1234'],
    ['no tag, dirty', { pkgVersion: '0.1.0', sha: 'abc1234', tag: undefined, dirty: true }, '0.1.0-abc1234-dirty'],
    ['no git: the package version', { pkgVersion: '0.1.0', sha: undefined, tag: undefined, dirty: false }, '0.1.0'],
    ['a non-semver tag is ignored', { pkgVersion: '0.1.0', sha: 'abc1234', tag: 'vnext', dirty: false }, '0.1.0-abc1234'],
    ['a two-part tag is ignored', { pkgVersion: '0.1.0', sha: 'abc1234', tag: 'v1.2', dirty: false }, '0.1.0-abc1234'],
    ['an empty tag is ignored', { pkgVersion: '0.1.0', sha: 'abc1234', tag: '', dirty: false }, '0.1.0-abc1234'],
  ])('%s', (_name, facts, expected) => {
    expect(formatVersion(facts)).toBe(expected);
  });
});

describe('releaseId', () => {
  const at = new Date('2026-11-22T23:45:12.345Z');

  it.each<[string, Date, string, string]>([
    ['time stamp and version', at, '1.2.0-abc1234', '20261122-234512-1.2.0-abc1234'],
    ['dirty version', at, '0.1.0-abc1234-dirty', '20261122-234512-0.1.0-abc1234-dirty'],
    ['UTC, whatever the time zone', new Date(Date.UTC(2026, 0, 2, 3, 4, 5)), '1.0.0', '20260102-030405-1.0.0'],
    ['no milliseconds', new Date('2026-11-22T23:45:12.000Z'), '1.0.0', '20261122-234512-1.0.0'],
    ['build metadata and unsafe characters become _', at, '1.0.0+build/x y', '20261122-234512-1.0.0_build_x_y'],
    ['shell syntax cannot get in', at, '1; rm -rf /', '20261122-234512-1_rm_-rf_'],
    ['non-ASCII', at, 'vé', '20261122-234512-v_'],
  ])('%s', (_name, now, version, expected) => {
    const id = releaseId(now, version);
    expect(id).toBe(expected);
    expect(isReleaseId(id)).toBe(true);
  });

  it('ids sort by time', () => {
    const ids = [new Date('2026-11-22T23:45:12Z'), new Date('2026-01-01T00:00:00Z'), new Date('2026-11-22T23:45:13Z')].map((d) => releaseId(d, '9.0.0'));
    expect([...ids].sort()).toEqual([ids[1], ids[0], ids[2]]);
  });
});

describe('isReleaseId', () => {
  it.each<[string, boolean]>([
    ['20261122-234512-1.2.0-abc1234', true],
    ['20261122-234512-1.2.0-abc1234-2', true],
    ['20261122-234512-x', true],
    ['20261122-234512-', false],
    ['20261122-234512', false],
    ['2026112-234512-1.0.0', false],
    ['20261122-23451-1.0.0', false],
    ['1.2.0', false],
    ['', false],
    ['20261122-234512-1.0.0/../x', false],
    ['20261122-234512-1 0', false],
    ['20261122-234512-1;rm', false],
    ['20261122-234512-1.0.0\n', false],
    [' 20261122-234512-1.0.0', false],
    ['20261122-234512-1.0.0.partial', true],
  ])('%j -> %s', (id, expected) => {
    expect(isReleaseId(id)).toBe(expected);
  });
});

describe('pyprojectVersion', () => {
  it("reads [project] version, not another table's", () => {
    expect(pyprojectVersion('[project]\nname = "a"\nversion = "1.2.3"\n')).toBe('1.2.3');
    expect(pyprojectVersion("[tool.x]\nversion = '9'\n[project]\nversion = '2.0.0rc1'\n[tool.y]\nversion = '8'\n")).toBe('2.0.0rc1');
    expect(pyprojectVersion('[project]\nname = "a"\n[tool.poetry]\nversion = "3"\n')).toBeUndefined();
    expect(pyprojectVersion('version = "1"\n')).toBeUndefined();
    expect(pyprojectVersion('')).toBeUndefined();
  });
});
