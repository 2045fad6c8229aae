/** Delta shipping: the plan against the live release's manifest, and the manifest of a folder. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { liveManifestAndFiles } from '../../lib/commands/delta.ts';
import { render } from '../../lib/core/cmd.ts';
import {
  checkLiveAgainstHost,
  formatBytes,
  manifestChanges,
  manifestTotals,
  nulList,
  parseLiveListing,
  parseManifest,
  planDelta,
  serializeManifest,
  type Entry,
  type Manifest,
} from '../../lib/ship/delta.ts';
import { buildManifest, isExcludedTop } from '../../lib/ship/manifest.ts';

const file = (path: string, sha256: string, size = 100, mode = 0o644): Entry => ({ path, type: 'file', mode, size, sha256 });
const dir = (path: string, mode = 0o755): Entry => ({ path, type: 'dir', mode });
const link = (path: string, target: string): Entry => ({ path, type: 'link', target });
const m = (...entries: Entry[]): Manifest => ({ version: 1, entries });

const live = m(dir('lib'), file('lib/a.js', 'A'), file('lib/b.js', 'B', 2000), dir('old'), file('old/x.js', 'X'), file('server.js', 'S', 500), link('cur', 'lib'));

describe('planDelta', () => {
  it('an identical release sends nothing and reuses every file', () => {
    const p = planDelta(live, live);
    expect(p).toMatchObject({ remove: [], send: [], link: [], sendBytes: 0, reused: 4, files: 4, totalBytes: 2700 });
  });

  it('a one-file change sends that file only, and removes the old copy first', () => {
    const next = m(...live.entries.map((e) => (e.path === 'server.js' ? file('server.js', 'S2', 520) : e)));
    const p = planDelta(live, next);
    expect(p.remove).toEqual(['server.js']);
    expect(p.send).toEqual(['server.js']);
    expect(p.sendBytes).toBe(520);
    expect(p.reused).toBe(3);
  });

  it('a removed folder is removed once (topmost), its files with it', () => {
    const next = m(...live.entries.filter((e) => !e.path.startsWith('old')));
    const p = planDelta(live, next);
    expect(p.remove).toEqual(['old']);
    expect(p.send).toEqual([]);
  });

  it('moved content is linked from where the live release has it, not sent', () => {
    const next = m(dir('lib'), file('lib/a.js', 'A'), dir('src'), file('src/b.js', 'B', 2000), file('server.js', 'S', 500));
    const p = planDelta(live, next);
    expect(p.link).toEqual([['lib/b.js', 'src/b.js']]);
    expect(p.send).toEqual(['src']);
    expect(p.remove).toEqual(['cur', 'lib/b.js', 'old']);
    expect(p.sendBytes).toBe(0);
  });

  it('a mode change sends the file again (a hard link would change the live copy too)', () => {
    const next = m(...live.entries.map((e) => (e.path === 'lib/a.js' ? file('lib/a.js', 'A', 100, 0o755) : e)));
    const p = planDelta(live, next);
    expect(p.remove).toEqual(['lib/a.js']);
    expect(p.send).toEqual(['lib/a.js']);
    expect(p.link).toEqual([]);
  });

  it('a folder whose mode changed is sent as an entry (its files stay)', () => {
    const next = m(...live.entries.map((e) => (e.path === 'lib' ? dir('lib', 0o700) : e)));
    const p = planDelta(live, next);
    expect(p.remove).toEqual([]);
    expect(p.send).toEqual(['lib']);
    expect(p.reused).toBe(4);
  });

  it('a symbolic link that points elsewhere is replaced', () => {
    const next = m(...live.entries.map((e) => (e.path === 'cur' ? link('cur', 'old') : e)));
    const p = planDelta(live, next);
    expect(p.remove).toEqual(['cur']);
    expect(p.send).toEqual(['cur']);
  });

  it('a folder that became a file: the folder goes, the file is sent', () => {
    const next = m(dir('lib'), file('lib/a.js', 'A'), file('lib/b.js', 'B', 2000), file('old', 'NEW', 7), file('server.js', 'S', 500), link('cur', 'lib'));
    const p = planDelta(live, next);
    expect(p.remove).toEqual(['old']);
    expect(p.send).toEqual(['old']);
  });

  it('a new file in a new folder: both are sent, the folder first', () => {
    const next = m(...live.entries, dir('public'), file('public/logo.png', 'L', 4096));
    const p = planDelta(live, next);
    expect(p.send).toEqual(['public', 'public/logo.png']);
    expect(p.sendBytes).toBe(4096);
  });
});

describe('manifest helpers', () => {
  it('totals count files and bytes', () => expect(manifestTotals(live)).toEqual({ files: 4, bytes: 2700 }));
  it('a stored manifest reads back sorted, whatever the file names', () => {
    const odd = m(file('b\tc\nd', 'T'), file(`it's "q" $(x)`, 'Q'), dir('a'));
    expect(serializeManifest(odd).split('\n')).toHaveLength(4);
    expect(parseManifest(serializeManifest(odd))?.entries.map((e) => e.path)).toEqual(['a', 'b\tc\nd', `it's "q" $(x)`]);
    const sorted = [...live.entries].sort((a, b) => (a.path < b.path ? -1 : 1));
    expect(parseManifest(serializeManifest(live))).toEqual({ version: 1, entries: sorted });
    expect(parseManifest('')).toBeUndefined();
    expect(parseManifest('{"version":1,"entries":[]}')).toBeUndefined();
    expect(parseManifest('not json')).toBeUndefined();
  });

  it('manifestChanges sends the changed lines only: paths to drop, #, lines to add', () => {
    const next = m(...live.entries.filter((e) => !e.path.startsWith('old')).map((e) => (e.path === 'server.js' ? file('server.js', 'S2', 520) : e)));
    expect(manifestChanges(live, next)).toBe(
      ['"old"', '"old/x.js"', '"server.js"', '#', '"server.js"\t{"type":"file","mode":420,"size":520,"sha256":"S2"}', ''].join('\n'),
    );
    expect(manifestChanges(live, live)).toBe('#\n');
  });
  it('nulList ends every item with NUL, so any name survives', () => {
    expect(nulList(['a b', "it's\nx", '$(rm -rf /)']).toString()).toBe("a b\0it's\nx\0$(rm -rf /)\0");
    expect(nulList([]).length).toBe(0);
  });
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [10_250, '10 KB'],
    [5_000, '4.9 KB'],
    [33_554_432, '32 MB'],
    [5 * 1024 ** 3, '5.0 GB'],
  ])('formatBytes(%d) = %s', (n, text) => expect(formatBytes(n)).toBe(text));
  it.each([
    ['.git', true],
    ['data', true],
    ['.env', true],
    ['.env.production', true],
    ['.envrc', false],
    ['database', false],
  ])('%s stays out of a release: %s', (name, out) => expect(isExcludedTop(name)).toBe(out));
});

describe('buildManifest', () => {
  const root = mkdtempSync(join(tmpdir(), 'skiff-manifest-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('lists folders before their files, with modes, sizes, hashes and link targets; leaves out data, .git and .env', async () => {
    mkdirSync(join(root, 'b'));
    writeFileSync(join(root, 'b', 'run.sh'), 'echo hi\n');
    chmodSync(join(root, 'b', 'run.sh'), 0o755);
    writeFileSync(join(root, "a file's name"), '');
    symlinkSync('b/run.sh', join(root, 'link'));
    for (const out of ['data', '.git']) mkdirSync(join(root, out));
    writeFileSync(join(root, 'data', 'app.db'), 'x');
    writeFileSync(join(root, '.env'), 'SECRET=1');
    const manifest = await buildManifest(root);
    expect(manifest.entries).toEqual([
      { path: "a file's name", type: 'file', mode: 0o644, size: 0, sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' },
      { path: 'b', type: 'dir', mode: 0o755 },
      { path: 'b/run.sh', type: 'file', mode: 0o755, size: 8, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) },
      { path: 'link', type: 'link', target: 'b/run.sh' },
    ]);
  });
});

describe('the live release as its host has it', () => {
  const listing = (sizes: Record<string, number>, hashes?: Record<string, string>) =>
    parseLiveListing(`${serializeManifest(live)}\0${Object.entries(sizes).map(([p, n]) => `${n}\t${p}\0`).join('')}${hashes ? `\0${Object.entries(hashes).map(([p, h]) => `${h}  ${p}\0`).join('')}` : ''}`);
  const asStored = { 'lib/a.js': 100, 'lib/b.js': 2000, 'old/x.js': 100, 'server.js': 500 };
  const H = (c: string) => c.repeat(64);

  it('reads the manifest, the sizes and, with --verify, the sha256 of every file', () => {
    const l = listing({ 'a\tb\nc.txt': 3 }, { 'a\tb\nc.txt': H('f') });
    expect(l.manifest?.entries).toEqual(sorted(live.entries));
    expect([...l.sizes]).toEqual([['a\tb\nc.txt', 3]]);
    expect(l.hashes && [...l.hashes]).toEqual([['a\tb\nc.txt', H('f')]]);
    expect(listing({}).hashes).toBeUndefined();
    expect(parseLiveListing('')).toEqual({ manifest: undefined, sizes: new Map(), hashes: undefined });
  });

  // Before, the stored manifest was trusted: a file edited on the host was "unchanged" and survived every deploy.
  it('a file whose size differs on the host is removed from the copy and sent again, and nothing links to it', () => {
    const checked = checkLiveAgainstHost(live, listing({ ...asStored, 'server.js': 17 }));
    expect(checked.differ).toEqual(['server.js']);
    const next = m(...live.entries, file('copy-of-server.js', 'S', 500));
    const p = planDelta(checked.manifest, next);
    expect(p.remove).toEqual(['server.js']);
    expect([...p.send].sort()).toEqual(['copy-of-server.js', 'server.js']);
    expect(p.link).toEqual([]);
    // The stored manifest of the new release gets the build's entry for it.
    expect(parseManifest(applyChanges(serializeManifest(live), manifestChanges(checked.manifest, next)))?.entries).toEqual(sorted(next.entries));
  });

  it('a file gone from the host is sent; a file the manifest does not know is left out', () => {
    const { 'lib/a.js': _gone, ...rest } = asStored;
    const checked = checkLiveAgainstHost(live, listing({ ...rest, 'cache/x.tmp': 4 }));
    expect(checked.differ).toEqual(['lib/a.js']);
    expect(checked.extra).toEqual(['cache/x.tmp']);
  });

  it('same size, other content: only --verify (sha256) tells', () => {
    const real = m(file('a', H('a')), file('b', H('b')));
    expect(checkLiveAgainstHost(real, parseLiveListing(`${serializeManifest(real)}\x00100\ta\x00100\tb\x00`)).differ).toEqual([]);
    const l = parseLiveListing(`${serializeManifest(real)}\x00100\ta\x00100\tb\x00\x00${H('a')}  a\x00${H('c')}  b\x00`);
    expect(checkLiveAgainstHost(real, l).differ).toEqual(['b']);
  });

  it('liveManifestAndFiles prints that listing from a real folder, names with quotes, tabs, newlines and $(...) included', () => {
    const root = mkdtempSync(join(tmpdir(), 'skiff-listing-'));
    try {
      const rel = join(root, "it's $(touch pwned)");
      mkdirSync(join(rel, 'sub'), { recursive: true });
      const odd = 'a\tb\nc "$x".txt';
      writeFileSync(join(rel, odd), 'abc');
      writeFileSync(join(rel, 'sub', '-n'), 'hello\n');
      symlinkSync('sub', join(rel, 'cur'));
      const manifestFile = join(root, 'm.json');
      writeFileSync(manifestFile, serializeManifest(m(file(odd, 'x', 3))));
      const run = (verify: boolean) => parseLiveListing(execFileSync('sh', ['-c', render(liveManifestAndFiles(manifestFile, rel, verify))]).toString());
      const plain = run(false);
      expect(plain.manifest?.entries.map((e) => e.path)).toEqual([odd]);
      expect(Object.fromEntries(plain.sizes)).toEqual({ [odd]: 3, 'sub/-n': 6 });
      expect(plain.hashes).toBeUndefined();
      const verified = run(true);
      expect(verified.hashes?.get('sub/-n')).toBe(createHash('sha256').update('hello\n').digest('hex'));
      expect(verified.hashes?.get(odd)).toBe(createHash('sha256').update('abc').digest('hex'));
      expect(existsSync(join(root, 'pwned'))).toBe(false);
      expect(run(false).sizes.size).toBe(2);
      // No manifest: nothing, so the whole release is sent.
      expect(execFileSync('sh', ['-c', render(liveManifestAndFiles(join(root, 'none.json'), rel, true))]).toString()).toBe('');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

/** What updateManifest does on the host, in JS: drop lines, then append. */
const applyChanges = (stored: string, changes: string): string => {
  const [drop = '', add = ''] = changes.split('#\n');
  const dropped = new Set(drop.split('\n').filter(Boolean));
  return `${stored.split('\n').filter((line) => line && !dropped.has(line.slice(0, line.indexOf('\t')))).map((line) => `${line}\n`).join('')}${add}`;
};
const sorted = (entries: readonly Entry[]) => [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
