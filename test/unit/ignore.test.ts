/**
 * What never ships and what `.skiffignore` leaves out: the gitignore matcher line by line, the fixed
 * rules that no `!` undoes, the defaults that one does, and the manifest walk that applies them.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Config } from '../../lib/config/config.ts';
import { SkiffError } from '../../lib/core/errors.ts';
import { compileLine, describeLeftOut, leftOut, parseIgnore, shipRules } from '../../lib/ship/ignore.ts';
import { buildManifest, releaseRules, walkRelease } from '../../lib/ship/manifest.ts';

/** Whether `line` (one line of a .skiffignore) matches `path`; a path ending in / is a folder. */
const hit = (line: string, path: string): boolean => {
  const rule = compileLine(line);
  if (!rule) throw new Error(`no rule in ${JSON.stringify(line)}`);
  const isDir = path.endsWith('/');
  const p = isDir ? path.slice(0, -1) : path;
  return (!rule.dirOnly || isDir) && rule.regex.test(p);
};

describe('compileLine: gitignore syntax', () => {
  it.each<[string, string, boolean]>([
    // a name with no slash matches at any depth
    ['*.log', 'app.log', true],
    ['*.log', 'logs/deep/app.log', true],
    ['*.log', 'app.log.1', false],
    ['tmp', 'tmp', true],
    ['tmp', 'a/b/tmp', true],
    ['tmp', 'tmpfile', false],
    // a leading or inner slash anchors to the root
    ['/tmp', 'tmp', true],
    ['/tmp', 'a/tmp', false],
    ['docs/internal', 'docs/internal', true],
    ['docs/internal', 'x/docs/internal', false],
    // * and ? stop at a slash
    ['src/*.map', 'src/a.map', true],
    ['src/*.map', 'src/sub/a.map', false],
    ['file?.txt', 'file1.txt', true],
    ['file?.txt', 'file/.txt', false],
    // ** crosses folders
    ['**/fixtures', 'fixtures', true],
    ['**/fixtures', 'a/b/fixtures', true],
    ['src/**/test.js', 'src/test.js', true],
    ['src/**/test.js', 'src/a/b/test.js', true],
    ['src/**/test.js', 'other/src/test.js', false],
    ['cache/**', 'cache/a', true],
    ['cache/**', 'cache/a/b', true],
    ['cache/**', 'cache', false],
    ['a**b', 'axxb', true],
    ['a**b', 'ax/xb', false],
    // a trailing slash: folders only
    ['build/', 'build/', true],
    ['build/', 'build', false],
    ['build/', 'sub/build/', true],
    // character classes, negated with !
    ['[ab].txt', 'a.txt', true],
    ['[ab].txt', 'c.txt', false],
    ['[!ab].txt', 'c.txt', true],
    ['[!ab].txt', 'a.txt', false],
    // regex characters are literal
    ['a+b(c).txt', 'a+b(c).txt', true],
    ['a.b', 'axb', false],
    // escapes: a leading \! or \# is literal, a trailing escaped space is kept
    ['\\!important', '!important', true],
    ['\\#notes', '#notes', true],
    ['trailing\\ ', 'trailing ', true],
    ['spaces   ', 'spaces', true],
    // a newline in a file name does not hide it from a rule
    ['*.pem', 'odd\nname/key.pem', true],
  ])('%j matches %j: %s', (line, path, expected) => expect(hit(line, path)).toBe(expected));

  it.each(['', '   ', '# a comment', '/', '!'])('%j is no rule', (line) => expect(compileLine(line)).toBeUndefined());

  it('reads ! as negation, the rest as written', () => {
    expect(parseIgnore('# keep logs out\n*.log\n\n!keep.log\r\n').map((r) => [r.line, r.negate])).toEqual([
      ['*.log', false],
      ['!keep.log', true],
    ]);
  });
});

describe('leftOut', () => {
  const rules = shipRules(['logs/', '*.tmp', '!keep.tmp', '!.env', '!*.secrets.env', '!certs/chain.pem', '/secret-notes.txt'].join('\n'), [
    { path: 'env', what: "skiff's env folder" },
    { path: 'backups', what: "skiff's local backups" },
  ]);
  it.each<[string, boolean, string | undefined]>([
    // never, at any depth, whatever .skiffignore says
    ['.git', true, 'never ships: git data'],
    ['vendor/lib/.git', true, 'never ships: git data'],
    ['sub/.git', false, 'never ships: git data'],
    ['.env', false, 'never ships: an env file'],
    ['config/.env.production', false, 'never ships: an env file'],
    ['deep/er/prod.secrets.env', false, 'never ships: a secrets file'],
    ['data', true, 'never ships: data lives in shared/data on the host'],
    ['env', true, "never ships: skiff's env folder"],
    ['backups', true, "never ships: skiff's local backups"],
    // defaults, undone by a ! line
    ['.npmrc', false, 'a key or credentials file; a ! line in .skiffignore ships it'],
    ['sub/.npmrc', false, 'a key or credentials file; a ! line in .skiffignore ships it'],
    ['certs/server.key', false, 'a key or credentials file; a ! line in .skiffignore ships it'],
    ['certs/server.pem', false, 'a key or credentials file; a ! line in .skiffignore ships it'],
    ['id_rsa', false, 'a key or credentials file; a ! line in .skiffignore ships it'],
    ['keys/id_ed25519.pub', false, 'a key or credentials file; a ! line in .skiffignore ships it'],
    ['certs/chain.pem', false, undefined],
    // the user's lines: the last match decides
    ['logs', true, '.skiffignore: logs/'],
    ['logs', false, undefined],
    ['a/b.tmp', false, '.skiffignore: *.tmp'],
    ['a/keep.tmp', false, undefined],
    ['secret-notes.txt', false, '.skiffignore: /secret-notes.txt'],
    ['docs/secret-notes.txt', false, undefined],
    // what ships
    ['server.js', false, undefined],
    ['database', true, undefined],
    ['.envrc', false, undefined],
    ['sub/data', true, undefined],
    ['environment', true, undefined],
  ])('%s (folder: %s): %s', (path, isDir, reason) => expect(leftOut(rules, path, isDir)).toBe(reason));

  it('describes what stays out in one line, at most a dozen paths named', () => {
    expect(describeLeftOut([])).toBe('left out: nothing');
    expect(describeLeftOut([{ path: '.git/', reason: 'never ships: git data' }, { path: '.npmrc', reason: 'x' }])).toBe('left out 2: .git/ (never ships: git data), .npmrc (x)');
    const many = Array.from({ length: 14 }, (_, i) => ({ path: `f${i}`, reason: 'r' }));
    expect(describeLeftOut(many)).toMatch(/^left out 14: f0 \(r\), .*f11 \(r\); and 2 more$/);
  });
});

describe('the manifest walk', () => {
  const root = mkdtempSync(join(tmpdir(), 'skiff-ignore-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const write = (path: string, text = 'x') => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  };

  it('leaves out what never ships, the defaults and .skiffignore lines, lists each once, and ships the rest', async () => {
    for (const f of [
      'server.js', 'lib/util.js', '.env', 'lib/.env', 'lib/.env.local', 'env/prod.secrets.env', 'env/prod.env', 'config/app.secrets.env',
      'backups/prod/20261201.tar', '.npmrc', 'certs/server.key', 'certs/server.pem', 'certs/chain.pem', 'deploy/id_rsa', 'vendor/x/.git/HEAD',
      '.git/config', 'data/app.db', 'logs/a.log', 'notes.tmp', '.skiffignore',
    ]) write(f);
    writeFileSync(join(root, '.skiffignore'), '# more\nlogs/\n*.tmp\n!certs/chain.pem\n');
    symlinkSync('server.js', join(root, 'link'));
    chmodSync(join(root, 'server.js'), 0o755);
    const cfg = { root, app: { name: 'hello', dir: root, releaseDir: root } } as unknown as Config; // releaseRules reads only these fields
    const walked = await walkRelease(root, await releaseRules(cfg, { SKIFF_ENV_DIR: join(root, 'env') }));
    expect(walked.manifest.entries.map((e) => e.path)).toEqual(['.skiffignore', 'certs', 'certs/chain.pem', 'config', 'deploy', 'lib', 'lib/util.js', 'link', 'server.js', 'vendor', 'vendor/x']);
    expect(walked.leftOut.map((e) => e.path)).toEqual([
      '.env', '.git/', '.npmrc', 'backups/', 'certs/server.key', 'certs/server.pem', 'config/app.secrets.env', 'data/', 'deploy/id_rsa', 'env/',
      'lib/.env', 'lib/.env.local', 'logs/', 'notes.tmp', 'vendor/x/.git/',
    ]);
    expect(walked.leftOut.find((e) => e.path === 'env/')?.reason).toBe("never ships: skiff's env folder");
    expect(walked.leftOut.find((e) => e.path === 'backups/')?.reason).toBe("never ships: skiff's local backups");
    // Without the config, the fixed rules and the folder's own .skiffignore still hold.
    expect((await buildManifest(root)).entries.map((e) => e.path)).toEqual(['.skiffignore', 'backups', 'backups/prod', 'backups/prod/20261201.tar', 'certs', 'certs/chain.pem', 'config', 'deploy', 'env', 'env/prod.env', 'lib', 'lib/util.js', 'link', 'server.js', 'vendor', 'vendor/x']);
  });
});

describe('a .skiffignore that cannot be read', () => {
  it('is one line naming the file and the fix, exit 2', async () => {
    const root = mkdtempSync(join(tmpdir(), 'skiff-ignore-'));
    mkdirSync(join(root, '.skiffignore'));
    const e = await buildManifest(root).catch((x: unknown) => x);
    rmSync(root, { recursive: true, force: true });
    expect(e).toBeInstanceOf(SkiffError);
    expect(e instanceof SkiffError && [e.exitCode, e.message]).toEqual([2, `cannot read ${join(root, '.skiffignore')} (EISDIR): make it a readable file, or remove it; nothing was shipped`]);
  });
});
