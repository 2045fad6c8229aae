/**
 * Secret values never reach the user: the values the config holds are known process-wide once they
 * are wrapped in Secret, and every error message, first line, remote stderr tail and chunk written
 * to stdout or stderr is scrubbed of them. A secret value that fails validation is shown masked.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { redactOutput } from '../../lib/cli/cli.ts';
import { parseConfig } from '../../lib/config/config.ts';
import { isSecretSetting } from '../../lib/config/env-files.ts';
import { carriesPassword, holdsKnownSecret, isRedactable, knownSecretStartAtEnd, maskedForDisplay, redactKnown, Secret, secretParts } from '../../lib/core/cmd.ts';
import { ConfigError, firstLine, HealthCheckError, HostFailedError, RemoteCommandError, SkiffError } from '../../lib/core/errors.ts';

describe('secretParts: the passwords inside a URL-like value', () => {
  it.each<[string, string, string[]]>([
    ['a postgres URL', 'postgres://u:hunter22@db/x', ['hunter22']],
    ['a mistyped scheme', 'postgress://u:hunter22@db/x', ['hunter22']],
    ['a scheme without its colon', 'postgres//u:hunter22@db/x', ['hunter22']],
    ['a password holding @ and a space: each text up to an @ is a candidate', 'postgres://u:p@ss w0rd@db/x', ['p@ss w0rd']],
    ['an @ in the query: the authority ends at the first / ? or #', 'postgres://u:hunter22@db/x?opt=a@b', ['hunter22']],
    ['an @ in the fragment', 'postgres://u:hunter22@db#a@b', ['hunter22']],
    ['a percent-encoded password, raw and decoded', 'postgres://u:p%40ssword@db/x', ['p%40ssword', 'p@ssword']],
    ['a user without a password', 'https://ghp_abcdef@github.com/x.git', []],
    ['an @ in the path', 'https://mastodon.social/@alice', []],
    ['an @ in the path after a port', 'https://mastodon.social:443/@alice:bob', []],
    ['a flag or a number as the password is not worth scrubbing', 'postgres://u:true@db/x', []],
    ['a number as the password', 'postgres://u:123456@db/x', []],
    ['a password= query parameter', 'postgres://db/x?sslmode=require&password=hunter22', ['hunter22']],
    ['no password', 'postgres://db/x', []],
    ['not a URL: an address is not a password', 'admin@example.com', []],
    ['a password too short to redact', 'postgres://u:abc@db/x', []],
  ])('%s', (_name, value, parts) => expect(secretParts(value)).toEqual(parts));
});

describe('maskedForDisplay', () => {
  it.each<[string, string | undefined]>([
    ['postgress://u:hunter22@db/x', 'postgress://u:[REDACTED]@db/x'],
    ['postgres//u:hunter22@db/x', 'postgres//u:[REDACTED]@db/x'],
    ['postgres://u:p@ss@db/x', 'postgres://u:[REDACTED]@db/x'],
    ['mysql://db/x?password=hunter22', 'mysql://db/x?password=[REDACTED]'],
    // Nothing to mask: the value may be a secret as a whole (a webhook URL), so none of it shows.
    ['https://hooks.example.com/T000/B000/XXXX', undefined],
    ['hunter22', undefined],
  ])('%s -> %s', (value, shown) => expect(maskedForDisplay(value)).toBe(shown));
});

describe('redactKnown: every Secret made is known', () => {
  const url = new Secret('postgres://app:Pa55-known-word@db.internal/app');
  const token = new Secret('tok-7f3a9c2e');
  it('replaces each known value and the password of a known URL, wherever they appear', () => {
    expect(redactKnown('pg_dump: FATAL: password authentication failed (Pa55-known-word) for postgres://app:Pa55-known-word@db.internal/app')).toBe(
      'pg_dump: FATAL: password authentication failed ([REDACTED]) for [REDACTED]',
    );
    expect(redactKnown('Authorization: Bearer tok-7f3a9c2e')).toBe('Authorization: Bearer [REDACTED]');
    expect(redactKnown('nothing secret here')).toBe('nothing secret here');
    expect(url.reveal()).toContain('Pa55-known-word');
    expect(token.toString()).toBe('[REDACTED]');
  });
  it('finds a secret in a string or a Buffer chunk', () => {
    expect(holdsKnownSecret('x tok-7f3a9c2e y')).toBe(true);
    expect(holdsKnownSecret(Buffer.from('x tok-7f3a9c2e y'))).toBe(true);
    expect(holdsKnownSecret(Buffer.from('x tok-7f3a9c2 y'))).toBe(false);
  });
});

describe('errors carry no known secret', () => {
  new Secret('s3cr3t-in-stderr');
  it('RemoteCommandError: message, command and stderr tail', () => {
    const e = new RemoteCommandError('deploy@vps', 'sh -c start --token s3cr3t-in-stderr', 1, 'starting\nerror: token s3cr3t-in-stderr refused\n');
    for (const text of [e.message, e.command, e.stderrTail, e.stack ?? '']) expect(text).not.toContain('s3cr3t-in-stderr');
    expect(e.message).toContain('error: token [REDACTED] refused');
  });
  it('every SkiffError, the errors that wrap it, and firstLine of a plain Error', () => {
    const health = new HealthCheckError('no healthy answer: log: SECRET=s3cr3t-in-stderr');
    expect(health.message).toBe('no healthy answer: log: SECRET=[REDACTED]');
    expect(new HostFailedError('h2', health, ['h1']).message).not.toContain('s3cr3t-in-stderr');
    expect(new SkiffError('x s3cr3t-in-stderr').message).toBe('x [REDACTED]');
    expect(firstLine(new Error('boom s3cr3t-in-stderr\nmore'))).toBe('boom [REDACTED]');
    expect(firstLine('plain s3cr3t-in-stderr')).toBe('plain [REDACTED]');
  });
});

describe('a secret value that fails validation', () => {
  const root = mkdtempSync(join(tmpdir(), 'skiff-redaction-'));
  mkdirSync(join(root, 'app'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const base = { APP_NAME: 'hello', APP_DIR: 'app', DEPLOY_PATH: '/srv/hello', DEPLOY_PORTS: '3001', DEPLOY_START: 'node server.js' };
  const parse = (values: Record<string, string>, secretKeys: string[] = []): ConfigError => {
    const all = { ...base, ...values };
    const origin = Object.fromEntries(Object.keys(all).map((k) => [k, secretKeys.includes(k) ? 'env/t.secrets.env' : 'env/t.env']));
    try {
      parseConfig('t', { values: all, origin, secretKeys: new Set(secretKeys) }, { root, home: root });
    } catch (e) {
      if (e instanceof ConfigError) return e;
      throw e;
    }
    throw new Error('expected a ConfigError');
  };

  it.each<[string, string, string]>([
    ['a mistyped scheme', 'postgress://u:hunter22@db/x', '"postgress://u:[REDACTED]@db/x" (a secret: its password not shown)'],
    ['a missing colon', 'postgres//u:hunter22@db/x', '"postgres//u:[REDACTED]@db/x"'],
    ['no scheme at all', 'u:hunter22@db/x', 'a secret value (not shown)'],
  ])('BACKUP_POSTGRES_URL with %s, in the plain env file, is shown masked', (_name, value, shown) => {
    const e = parse({ BACKUP_POSTGRES_URL: value });
    expect(e.message).toContain(`env/t.env: BACKUP_POSTGRES_URL is ${shown}`);
    expect(e.message).not.toContain('hunter22');
    expect(e.message.split('\n')).toHaveLength(1);
  });

  it('BACKUP_SIGNING_KEY, even in the plain env file, is not shown', () => {
    const e = parse({ BACKUP_SIGNING_KEY: 'too-short-signing-key' });
    expect(e.message).toContain('env/t.env: BACKUP_SIGNING_KEY is a secret value (not shown)');
    expect(e.message).not.toContain('too-short-signing-key');
  });

  it('from the secrets file too', () => {
    const e = parse({ BACKUP_POSTGRES_URL: 'mysql://app:hunter2secret@db/app' }, ['BACKUP_POSTGRES_URL']);
    expect(e.message).toContain('env/t.secrets.env: BACKUP_POSTGRES_URL is "mysql://app:[REDACTED]@db/app"');
    expect(e.message).not.toContain('hunter2secret');
  });
});

describe('isSecretSetting', () => {
  it.each<[string, string, boolean]>([
    ['BACKUP_POSTGRES_URL', 'postgres://db/x', true],
    ['SESSION_SECRET', 'abc', true],
    ['DB_PASSWORD', 'abc', true],
    ['API_KEY', 'abc', true],
    ['STRIPE_KEY', 'abc', true],
    ['GITHUB_TOKEN', 'abc', true],
    ['SENTRY_DSN', 'abc', true],
    ['DATABASE_URL', 'postgres://u:hunter22@db/x', true],
    ['DATABASE_URL', 'postgres://db/x', false],
    ['LOG_LEVEL', 'info', false],
    ['MONKEY', 'x', false],
    ['KEYCLOAK_REALM', 'x', false],
    // Whole parts of the name only: a word inside another word says nothing.
    ['PRIVATE_NETWORK', 'true', false],
    ['PASSWORDLESS_LOGIN', 'on', false],
    ['TOKENIZER', 'x', false],
    ['SECRETARY_EMAIL', 'x', false],
    ['DB_PASSWORD_FILE', '/run/x', true],
    ['JWT_PRIVATE_KEY', 'x', true],
    ['AWS_CREDENTIALS', 'x', true],
    ['app_secret', 'x', true],
    ['TOKEN_TTL_SECONDS', '3600', true],
    ['WEBHOOK_URL', 'https://user@hooks.example.com/x', false],
    ['DATABASE_URL', 'postgres://u:abc@db/x', true],
    // skiff's own keys are paths and names, never secrets by their name.
    ['DEPLOY_SSH_KEY', '~/.ssh/id_ed25519', false],
    ['BACKUP_AGE_IDENTITY', '~/.config/skiff/age-key.txt', false],
    ['BACKUP_KEEP', '7', false],
    ['BACKUP_SIGNING_KEY', 'a3f1', true],
    ['DEPLOY_API_TOKEN', 'x', true],
    ['BACKUP_S3_SECRET', 'x', true],
  ])('%s=%s: %s', (key, value, secret) => expect(isSecretSetting(key, value)).toBe(secret));

  it('an app key named as a secret, set in the plain env file, becomes a Secret', () => {
    const root = mkdtempSync(join(tmpdir(), 'skiff-redaction-'));
    mkdirSync(join(root, 'app'));
    const values = { APP_NAME: 'hello', APP_DIR: 'app', DEPLOY_PATH: '/srv/hello', DEPLOY_PORTS: '3001', DEPLOY_START: 'node server.js', API_TOKEN: 'plain-file-token', DATABASE_URL: 'postgres://u:url-pass-99@db/x', LOG_LEVEL: 'info' };
    const cfg = parseConfig('t', { values, origin: {}, secretKeys: new Set() }, { root, home: root });
    rmSync(root, { recursive: true, force: true });
    expect(cfg.appEnv.API_TOKEN).toBeInstanceOf(Secret);
    expect(cfg.appEnv.DATABASE_URL).toBeInstanceOf(Secret);
    expect(cfg.appEnv.LOG_LEVEL).toBe('info');
    expect(redactKnown('token plain-file-token, password url-pass-99')).toBe('token [REDACTED], password [REDACTED]');
  });
});

describe('redactOutput', () => {
  new Secret('written-secret-42');
  const sink = () => {
    const chunks: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk.toString());
        done();
      },
    });
    // A Writable has the write method a WriteStream has; the guard only replaces that method.
    return { stream: stream as unknown as NodeJS.WriteStream, chunks };
  };
  it('scrubs strings and Buffers written to the stream, passes the rest untouched, and can be undone', () => {
    const { stream, chunks } = sink();
    const restore = redactOutput(stream);
    stream.write('line with written-secret-42\n');
    stream.write(Buffer.from('buffer written-secret-42\n'));
    const plain = Buffer.from('plain\n');
    stream.write(plain, () => undefined);
    restore();
    stream.write('after written-secret-42\n');
    expect(chunks).toEqual(['line with [REDACTED]\n', 'buffer [REDACTED]\n', 'plain\n', 'after written-secret-42\n']);
  });
});

describe('flags and numbers are never scrubbed from other text', () => {
  it.each(['true', 'FALSE', 'yes', 'No', 'on', 'off', ' true ', '3600', '-12', '0.75', 'abc', ''])('%j is not a needle', (v) => expect(isRedactable(v)).toBe(false));
  it.each(['hunter22', 'true-ish', '3600s', '12.34.56', 'on-call'])('%j is', (v) => expect(isRedactable(v)).toBe(true));
  it('a Secret of true or 3600 still prints as [REDACTED], but JSON and numbers elsewhere stay whole', () => {
    const flag = new Secret('true');
    const ttl = new Secret('3600');
    expect(String(flag)).toBe('[REDACTED]');
    expect(JSON.stringify({ ttl })).toBe('{"ttl":"[REDACTED]"}');
    const json = redactKnown('{"deployed":true,"uptime":3600}');
    expect(JSON.parse(json)).toEqual({ deployed: true, uptime: 3600 });
  });
  it('a URL password too short or ordinary to scrub still makes the value a secret', () => {
    expect(carriesPassword('postgres://u:on@db/x')).toBe(true);
    expect(isSecretSetting('DATABASE_URL', 'postgres://u:1234@db/x')).toBe(true);
    expect(carriesPassword('https://mastodon.social/@alice')).toBe(false);
  });
});

describe('redactOutput: a secret split across writes', () => {
  new Secret('split-secret-value-77');
  const sink = () => {
    const chunks: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk.toString());
        done();
      },
    });
    // A Writable has the write method a WriteStream has; the guard only replaces that method.
    return { stream: stream as unknown as NodeJS.WriteStream, chunks };
  };

  it('holds back only an end that could start a known secret', () => {
    expect(knownSecretStartAtEnd('log: split-sec')).toBe('split-sec'.length);
    expect(knownSecretStartAtEnd('log: s')).toBe(1);
    expect(knownSecretStartAtEnd('log: done\n')).toBe(0);
    expect(knownSecretStartAtEnd('split-secret-value-77')).toBe(0);
  });

  it.each<[string, (string | Buffer)[]]>([
    ['two strings', ['GET /?k=split-sec', 'ret-value-77 200\n']],
    ['three Buffers', [Buffer.from('GET /?k=spl'), Buffer.from('it-secret-va'), Buffer.from('lue-77 200\n')]],
    ['one character at a time', [...'GET /?k=split-secret-value-77 200\n']],
  ])('%s: the secret never reaches the stream', (_name, writes) => {
    const { stream, chunks } = sink();
    const flush = redactOutput(stream);
    for (const w of writes) stream.write(w);
    flush();
    expect(chunks.join('')).toBe('GET /?k=[REDACTED] 200\n');
  });

  it('a write without a secret start goes out at once; a held end goes out on flush', () => {
    const { stream, chunks } = sink();
    const flush = redactOutput(stream);
    stream.write('step 1 done\n');
    expect(chunks.join('')).toBe('step 1 done\n');
    stream.write('last word: split');
    expect(chunks.join('')).toBe('step 1 done\nlast word: ');
    flush();
    expect(chunks.join('')).toBe('step 1 done\nlast word: split');
    stream.write('after split-secret-value-77\n');
    expect(chunks.at(-1)).toBe('after split-secret-value-77\n');
  });

  it('a multi-byte character split across Buffers comes out whole', () => {
    const { stream, chunks } = sink();
    const flush = redactOutput(stream);
    const bytes = Buffer.from('café ✓\n');
    stream.write(bytes.subarray(0, 4));
    stream.write(bytes.subarray(4));
    flush();
    expect(chunks.join('')).toBe('café ✓\n');
  });

  it('the write callback is called, held text or not', async () => {
    const { stream } = sink();
    const flush = redactOutput(stream);
    await new Promise<void>((resolve) => stream.write('held: split-', () => resolve()));
    await new Promise<void>((resolve) => stream.write('plain\n', 'utf8', () => resolve()));
    flush();
  });
});
