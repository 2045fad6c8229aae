import { describe, expect, it } from 'vitest';
import { nextVersion } from '../../lib/release/bump.ts';
import { changelogSection, classify, groupCommits, prependChangelog, renderChanges, setJsonVersion } from '../../lib/release/changes.ts';
import { UsageError } from '../../lib/core/errors.ts';

describe('nextVersion', () => {
  it.each([
    ['1.2.3', 'patch', 'rc', '1.2.4'],
    ['1.2.3', 'minor', 'rc', '1.3.0'],
    ['1.2.3', 'major', 'rc', '2.0.0'],
    ['1.2.3', 'prerelease', 'rc', '1.2.4-rc.0'],
    ['1.2.4-rc.0', 'prerelease', 'rc', '1.2.4-rc.1'],
    ['1.2.4-rc.1', 'prerelease', 'beta', '1.2.4-beta.0'],
    ['1.2.4-rc.1', 'patch', 'rc', '1.2.4'],
    ['1.2.3', '1.2.4', 'rc', '1.2.4'],
    ['1.2.3', 'v2.0.0', 'rc', '2.0.0'],
    ['1.2.3', '1.3.0-rc.1', 'rc', '1.3.0-rc.1'],
  ])('%s + %s (preid %s) = %s', (current, bump, preid, next) => {
    expect(nextVersion(current, bump, preid)).toBe(next);
  });

  it.each([
    ['1.2.3', 'huge', 'rc', /neither patch, minor, major, prerelease nor a version/],
    ['1.2.3', '1.2', 'rc', /neither patch/],
    ['1.2.3', '1.2.3', 'rc', /not greater than the current version 1\.2\.3/],
    ['1.2.3', '1.2.3-rc.1', 'rc', /not greater/],
    ['1.2.3', '0.1.0', 'rc', /not greater/],
    ['1.2.3', 'prerelease', 'r c', /--preid "r c" is invalid/],
    ['1.2.3', 'prerelease', 'rc;rm', /--preid "rc;rm" is invalid/],
    ['one', 'patch', 'rc', /package\.json version "one" is not semver/],
  ])('%s + %s (preid %s) is refused', (current, bump, preid, message) => {
    expect(() => nextVersion(current, bump, preid)).toThrow(UsageError);
    expect(() => nextVersion(current, bump, preid)).toThrow(message);
  });
});

describe('grouping changes', () => {
  it.each([
    ['feat: add notes', 'feat', 'add notes', false],
    ['feat(api): add notes', 'feat', 'add notes', false],
    ['fix!: drop v1', 'fix', 'drop v1', true],
    ['perf: faster', 'perf', 'faster', false],
    ['docs: readme', 'docs', 'readme', false],
    ['chore: bump deps', 'other', 'chore: bump deps', false],
    ['Merge branch x', 'other', 'Merge branch x', false],
    ['FEAT: shout', 'feat', 'shout', false],
  ])('%j is %s', (subject, group, text, breaking) => {
    expect(classify(subject)).toEqual({ group, text, breaking });
  });

  const commits = [
    { sha: 'a'.repeat(40), subject: 'fix: b' },
    { sha: 'b'.repeat(40), subject: 'feat: a' },
    { sha: 'c'.repeat(40), subject: 'release: v1.0.0' },
    { sha: 'd'.repeat(40), subject: 'chore: c' },
  ];

  it('renders groups in a fixed order and leaves out earlier release commits', () => {
    expect(renderChanges(groupCommits(commits))).toBe('Features:\n- a (bbbbbbb)\n\nFixes:\n- b (aaaaaaa)\n\nOther:\n- chore: c (ddddddd)');
    expect(renderChanges(groupCommits([]))).toBe('No changes since the last tag.');
  });

  it('prepends a CHANGELOG section below the title', () => {
    const first = prependChangelog(undefined, changelogSection('1.0.0', '2026-11-22', groupCommits(commits.slice(0, 1))));
    expect(first).toBe('# Changelog\n\n## v1.0.0 (2026-11-22)\n\n### Fixes\n\n- b (aaaaaaa)\n');
    const second = prependChangelog(first, changelogSection('1.1.0', '2026-11-23', groupCommits(commits.slice(1, 2))));
    expect(second).toBe('# Changelog\n\n## v1.1.0 (2026-11-23)\n\n### Features\n\n- a (bbbbbbb)\n\n## v1.0.0 (2026-11-22)\n\n### Fixes\n\n- b (aaaaaaa)\n');
    expect(prependChangelog('Old notes\n', '## v2.0.0 (x)\n\nNo changes since the last tag.\n')).toBe(
      '# Changelog\n\n## v2.0.0 (x)\n\nNo changes since the last tag.\n\nOld notes\n',
    );
  });

  it('sets the version of package.json and of the lockfile root package', () => {
    expect(setJsonVersion('{"name":"a","version":"1.0.0"}', '1.1.0', false)).toBe('{\n  "name": "a",\n  "version": "1.1.0"\n}\n');
    const lock = JSON.parse(setJsonVersion('{"version":"1.0.0","packages":{"":{"version":"1.0.0"},"node_modules/x":{"version":"9.9.9"}}}', '2.0.0', true)) as {
      version: string;
      packages: Record<string, { version: string }>;
    };
    expect([lock.version, lock.packages['']?.version, lock.packages['node_modules/x']?.version]).toEqual(['2.0.0', '2.0.0', '9.9.9']);
  });
});
