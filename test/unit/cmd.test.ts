import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect, format } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { cmd, or, pipe, quote, raw, redact, render, renderForExec, script, Secret, seq, type Cmd } from '../../lib/core/cmd.ts';

// A file the `$(...)` and backtick cases would create if the shell ran them.
const sandbox = mkdtempSync(join(tmpdir(), 'skiff-cmd-'));
const sentinel = join(sandbox, 'ran');
afterAll(() => rmSync(sandbox, { recursive: true, force: true }));

describe('quote', () => {
  it.each([
    ['plain word', 'hello', 'hello'],
    ['path', '/srv/a-b_c.d/x', '/srv/a-b_c.d/x'],
    ['user@host:port', 'deploy@203.0.113.7:22', 'deploy@203.0.113.7:22'],
    ['safe punctuation', 'a,b+c=d%e', 'a,b+c=d%e'],
    ['option', '-sfn', '-sfn'],
    ['empty string', '', "''"],
    ['space', 'hello world', "'hello world'"],
    ['single quote', "it's", "'it'\\''s'"],
    ['only a single quote', "'", "''\\'''"],
    ['double quotes', 'say "hi"', `'say "hi"'`],
    ['dollar variable', '$HOME', "'$HOME'"],
    ['command substitution', '$(id)', "'$(id)'"],
    ['backticks', '`id`', "'`id`'"],
    ['semicolon', 'a; rm -rf /', "'a; rm -rf /'"],
    ['and', 'a && b', "'a && b'"],
    ['pipe', 'a|b', "'a|b'"],
    ['newline', 'a\nb', "'a\nb'"],
    ['tab', 'a\tb', "'a\tb'"],
    ['glob', '*', "'*'"],
    ['tilde', '~', "'~'"],
    ['tilde path', '~/x', "'~/x'"],
    ['non-ASCII', 'héllo wörld', "'héllo wörld'"],
    ['backslash', 'a\\b', "'a\\b'"],
    ['redirection', '>/dev/null', "'>/dev/null'"],
  ])('%s: %j -> %s', (_name, word, expected) => {
    expect(quote(word)).toBe(expected);
  });
});

/** Strings a shell would treat specially; each must arrive in printf's argv unchanged. */
const TRICKY: readonly (readonly [string, string])[] = [
  ['spaces', '  two  spaces  '],
  ['single quotes', "it's 'quoted'"],
  ['double quotes', 'say "hi"'],
  ['dollar', '$HOME $1 $@ ${PATH}'],
  ['command substitution', `$(touch ${sentinel})`],
  ['backticks', `\`touch ${sentinel}\``],
  ['semicolon', `a; touch ${sentinel}`],
  ['and', `a && touch ${sentinel}`],
  ['pipe', `a | touch ${sentinel}`],
  ['newlines', 'line1\nline2\n'],
  ['tabs', '\tcol1\tcol2'],
  ['empty string', ''],
  ['glob', '*'],
  ['tilde', '~'],
  ['tilde path', '~/x'],
  ['non-ASCII', 'héllo wörld 日本語 ✓'],
  ['backslashes', 'a\\nb\\\\c'],
  ['printf directives', '%s %d %%'],
  ['hash and bang', '#!/bin/sh !x'],
  ['everything', `'"$(\`;&&|\n\t*~é\\`],
];

describe('round trip through /bin/sh', () => {
  const shell = (c: Cmd): string => execFileSync('/bin/sh', ['-c', renderForExec(c)], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });

  it.each(TRICKY)('%s arrives literally', (_name, value) => {
    expect(shell(cmd('printf', '%s', value))).toBe(value);
    expect(existsSync(sentinel)).toBe(false);
  });

  it.each(TRICKY)('%s arrives literally as a Secret', (_name, value) => {
    expect(shell(cmd('printf', '%s', new Secret(value)))).toBe(value);
    expect(existsSync(sentinel)).toBe(false);
  });

  it.each(TRICKY)('%s arrives literally as a script argument', (_name, value) => {
    expect(shell(script('printf "%s" "$1"', value))).toBe(value);
    expect(existsSync(sentinel)).toBe(false);
  });
});

describe('render and renderForExec', () => {
  const a = cmd('a');
  const b = cmd('b');
  const c = cmd('c');
  const d = cmd('d');

  it.each<[string, Cmd, string]>([
    ['simple command', cmd('echo', 'hello'), 'echo hello'],
    ['quoted words', cmd('echo', 'a b', "it's", ''), "echo 'a b' 'it'\\''s' ''"],
    ['raw syntax left bare', cmd('tee', '-a', 'x y', raw('>/dev/null')), "tee -a 'x y' >/dev/null"],
    ['seq', seq(['mkdir', '-p', 'a b'], ['cd', 'a b']), "mkdir -p 'a b' && cd 'a b'"],
    ['or', or(a, b), 'a || b'],
    ['pipe', pipe(['cat', 'f'], ['grep', '-c', 'x y']), "cat f | grep -c 'x y'"],
    ['same operator nested: no braces', seq(seq(a, b), c), 'a && b && c'],
    ['or inside seq', seq(or(a, b), c), '{ a || b; } && c'],
    ['seq inside pipe', pipe(seq(a, b), c), '{ a && b; } | c'],
    ['pipe inside or', or(pipe(a, b), c), '{ a | b; } || c'],
    ['two levels', or(seq(a, pipe(b, c)), d), '{ a && { b | c; }; } || d'],
    ['script', script('echo "$1"', 'a b'), `sh -c 'echo "$1"' sh 'a b'`],
    ['script without args', script('true'), "sh -c true sh"],
    ['script text with quotes', script(`echo 'x' "$1"`, "it's"), `sh -c 'echo '\\''x'\\'' "$1"' sh 'it'\\''s'`],
    ['script inside seq', seq(script('exit 0'), a), "sh -c 'exit 0' sh && a"],
  ])('%s', (_name, command, expected) => {
    expect(render(command)).toBe(expected);
    expect(renderForExec(command)).toBe(expected);
  });

  it.each<[string, Cmd, string, string]>([
    ['argv', cmd('curl', '-u', new Secret('user:pw')), 'curl -u [REDACTED]', 'curl -u user:pw'],
    ['quoted secret', cmd('login', new Secret("p w'x")), 'login [REDACTED]', "login 'p w'\\''x'"],
    ['in a join', seq(['a'], ['b', new Secret('s3cret')]), 'a && b [REDACTED]', 'a && b s3cret'],
    ['script argument', script('use "$1"', new Secret('tok en')), `sh -c 'use "$1"' sh [REDACTED]`, `sh -c 'use "$1"' sh 'tok en'`],
  ])('a Secret in %s is redacted for display and revealed for execution', (_name, command, shown, executed) => {
    expect(render(command)).toBe(shown);
    expect(renderForExec(command)).toBe(executed);
  });
});

describe('Secret', () => {
  const s = new Secret('hunter2-value');

  it.each<[string, () => string]>([
    ['String()', () => String(s)],
    ['template literal', () => `${s}`],
    ['concatenation', () => 'x' + s],
    ['JSON.stringify', () => JSON.stringify({ password: s })],
    ['util.inspect', () => inspect(s)],
    ['util.inspect nested', () => inspect({ deep: { list: [s] } }, { depth: 10 })],
    ['util.format %s', () => format('%s', s)],
    ['util.format %o', () => format('%o', s)],
    ['util.format %j', () => format('%j', { s })],
  ])('%s shows [REDACTED], never the value', (_name, show) => {
    const text = show();
    expect(text).not.toContain('hunter2');
    expect(text).toContain('[REDACTED]');
  });

  it('reveal() returns the value', () => {
    expect(s.reveal()).toBe('hunter2-value');
  });
});

describe('redact', () => {
  it.each<[string, string, readonly string[], string]>([
    ['one secret', 'token=abcd1234 ok', ['abcd1234'], 'token=[REDACTED] ok'],
    ['every occurrence', 'abcd abcd', ['abcd'], '[REDACTED] [REDACTED]'],
    ['two secrets', 'u=alice-user p=bob-pass', ['alice-user', 'bob-pass'], 'u=[REDACTED] p=[REDACTED]'],
    ['regex characters are literal', 'x $1.*(y) z', ['$1.*(y)'], 'x [REDACTED] z'],
    ['no secrets', 'nothing here', [], 'nothing here'],
    ['secret absent', 'nothing here', ['zzzz'], 'nothing here'],
    // Shorter values would redact ordinary words all over the text: they are left alone.
    ['secrets under 4 characters are not replaced', 'abc abcd', ['abc'], 'abc abcd'],
    // Flags and plain numbers would break JSON and blank every port and count: they are left alone too.
    ['a flag is not replaced', '{"deployed":true}', ['true'], '{"deployed":true}'],
    ['nor a flag in any case', 'NO no Off', ['no', 'OFF'], 'NO no Off'],
    ['nor a plain number', 'ttl 3600, port 3600', ['3600'], 'ttl 3600, port 3600'],
    ['a word with a number in it is', 'k=3600s', ['3600s'], 'k=[REDACTED]'],
  ])('%s', (_name, text, secrets, expected) => {
    expect(redact(text, secrets.map((v) => new Secret(v)))).toBe(expected);
  });

  // BUG lib/core/cmd.ts:109: secrets are replaced in the order given, so when one secret contains another,
  // replacing the shorter first leaves the rest of the longer one in the text.
  it('leaves nothing of a secret that contains another secret', () => {
    const out = redact('key=pass-word-long', [new Secret('pass'), new Secret('pass-word-long')]);
    expect(out).toBe('key=[REDACTED]');
  });
});
