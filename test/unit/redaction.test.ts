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
import { holdsKnownSecret, maskedForDisplay, redactKnown, Secret, secretParts } from '../../lib/core/cmd.ts';
import { ConfigError, firstLine, HealthCheckError, HostFailedError, RemoteCommandError, SkiffError } from '../../lib/core/errors.ts';

describe('secretParts: the passwords inside a URL-like value', () => {
  it.each<[string, string, string[]]>([
    ['a postgres URL', 'postgres://u:hunter22@db/x', ['hunter22']],
    ['a mistyped scheme', 'postgress://u:hunter22@db/x', ['hunter22']],
    ['a scheme without its colon', 'postgres//u:hunter22@db/x', ['hunter22']],
    ['a password holding @ and a space: each text up to an @ is a candidate', 'postgres://u:p@ss w0rd@db/x', ['p@ss w0rd']],
    ['an @ in the query too', 'postgres://u:hunter22@db/x?opt=a@b', ['hunter22', 'hunter22@db/x?opt=a']],
    ['a percent-encoded password, raw and decoded', 'postgres://u:p%40ssword@db/x', ['p%40ssword', 'p@ssword']],
    ['a token as the whole userinfo', 'https://ghp_abcdef@github.com/x.git', ['ghp_abcdef']],
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
    // skiff's own keys are paths and names, never secrets by their name.
    ['DEPLOY_SSH_KEY', '~/.ssh/id_ed25519', false],
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
