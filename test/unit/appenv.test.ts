import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderEnvFile } from '../../lib/config/appenv.ts';
import { Secret } from '../../lib/core/cmd.ts';

const dir = mkdtempSync(join(tmpdir(), 'skiff-appenv-'));
const sentinel = join(dir, 'ran');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('renderEnvFile', () => {
  it.each<[string, Record<string, string | Secret>, string]>([
    ['nothing', {}, ''],
    ['sorted by key', { ZED: '1', ALPHA: '2', MID: '3' }, 'ALPHA=2\nMID=3\nZED=1\n'],
    ['safe values left bare', { URL: 'https://a.example.com:8080/x', N: '42' }, 'N=42\nURL=https://a.example.com:8080/x\n'],
    ['empty value', { EMPTY: '' }, "EMPTY=''\n"],
    ['spaces', { GREETING: 'hello world' }, "GREETING='hello world'\n"],
    ['single quote', { Q: "it's" }, "Q='it'\\''s'\n"],
    ['dollar and substitution', { D: '$(id) `id` $HOME' }, "D='$(id) `id` $HOME'\n"],
    ['newline', { M: 'a\nb' }, "M='a\nb'\n"],
    ['a Secret is revealed', { TOKEN: new Secret("s3'cret") }, "TOKEN='s3'\\''cret'\n"],
  ])('%s', (_name, appEnv, expected) => {
    expect(renderEnvFile(appEnv)).toBe(expected);
  });
});

describe('renderEnvFile: sourced by /bin/sh, values arrive literally', () => {
  const sourceAndPrint = (file: string, key: string): string =>
    execFileSync('/bin/sh', ['-c', `set -a; . ./${file}; set +a; printf %s "$${key}"`], {
      cwd: dir,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });

  let n = 0;
  it.each<[string, string]>([
    ['single quotes', "it's 'quoted'"],
    ['double quotes', 'say "hi" \\"x\\"'],
    ['newlines', 'line1\nline2\n\nline4\n'],
    ['command substitution', `$(touch ${sentinel})`],
    ['backticks', `\`touch ${sentinel}\``],
    ['command after ;', `x; touch ${sentinel}`],
    ['variables', '$HOME ${PATH} $1'],
    ['backslashes', 'a\\nb\\'],
    ['empty', ''],
    ['tabs and non-ASCII', '\tхорошо ✓'],
    ['a line that looks like an assignment', "x'\nOTHER=changed\n'"],
  ])('%s', (_name, value) => {
    const file = `env-${n++}`;
    writeFileSync(join(dir, file), renderEnvFile({ KEY: value, OTHER: 'same', SECRET: new Secret(value) }));
    expect(sourceAndPrint(file, 'KEY')).toBe(value);
    expect(sourceAndPrint(file, 'SECRET')).toBe(value);
    expect(sourceAndPrint(file, 'OTHER')).toBe('same');
    expect(existsSync(sentinel)).toBe(false);
  });
});
