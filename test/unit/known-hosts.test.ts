import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkHostKey,
  fingerprint,
  keyTypeOf,
  knownKeyTypes,
  parseKnownHosts,
  readKnownHosts,
  type HostKeyCheck,
} from '../../lib/host/known-hosts.ts';

const dir = mkdtempSync(join(tmpdir(), 'skiff-known-hosts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface TestKey {
  /** `type base64`, as in a known_hosts line. */
  readonly line: string;
  readonly type: string;
  readonly blob: Buffer;
  readonly pubFile: string;
}

/** A real key pair made by ssh-keygen; tests use its public half. */
const makeKey = (name: string, type: 'ed25519' | 'ecdsa'): TestKey => {
  const file = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', name, '-f', file]);
  const [keyType, base64] = readFileSync(`${file}.pub`, 'utf8').split(' ') as [string, string];
  return { line: `${keyType} ${base64}`, type: keyType, blob: Buffer.from(base64, 'base64'), pubFile: `${file}.pub` };
};

const A = makeKey('a', 'ed25519');
const B = makeKey('b', 'ed25519');
const E = makeKey('e', 'ecdsa');

const match: HostKeyCheck = { result: 'match' };
const unknown: HostKeyCheck = { result: 'unknown' };
const revoked: HostKeyCheck = { result: 'revoked' };
const changedFrom = (...keys: TestKey[]): HostKeyCheck => ({ result: 'changed', expected: keys.map((k) => fingerprint(k.blob)).join(', ') });

describe('checkHostKey', () => {
  it.each<[string, string, string, number, TestKey, HostKeyCheck]>([
    ['plain entry', `example.com ${A.line}`, 'example.com', 22, A, match],
    ['second name of a list', `alias,example.com ${A.line}`, 'example.com', 22, A, match],
    ['names compare without case', `Example.COM ${A.line}`, 'EXAMPLE.com', 22, A, match],
    ['IP address', `203.0.113.7 ${A.line}`, '203.0.113.7', 22, A, match],
    ['[host]:port entry', `[203.0.113.7]:2222 ${A.line}`, '203.0.113.7', 2222, A, match],
    ['[host]:port entry is not port 22', `[203.0.113.7]:2222 ${A.line}`, '203.0.113.7', 22, A, unknown],
    ['plain entry is port 22 only', `203.0.113.7 ${A.line}`, '203.0.113.7', 2222, A, unknown],
    ['port 22 is written without brackets', `[203.0.113.7]:22 ${A.line}`, '203.0.113.7', 22, A, unknown],
    ['other port', `[203.0.113.7]:2223 ${A.line}`, '203.0.113.7', 2222, A, unknown],
    ['IPv6 with port', `[2001:db8::1]:2222 ${A.line}`, '2001:db8::1', 2222, A, match],
    ['* wildcard', `*.example.com ${A.line}`, 'web.example.com', 22, A, match],
    ['* needs a dot here', `*.example.com ${A.line}`, 'example.com', 22, A, unknown],
    ['? wildcard', `web?.example.com ${A.line}`, 'web1.example.com', 22, A, match],
    ['dots are literal', `web.example.com ${A.line}`, 'webxexample.com', 22, A, unknown],
    ['negated pattern excludes', `*.example.com,!db.example.com ${A.line}`, 'db.example.com', 22, A, unknown],
    ['negated pattern leaves others', `*.example.com,!db.example.com ${A.line}`, 'web.example.com', 22, A, match],
    ['other host', `other.example ${A.line}`, 'example.com', 22, A, unknown],
    ['empty file', '', 'example.com', 22, A, unknown],
    ['changed key', `example.com ${B.line}`, 'example.com', 22, A, changedFrom(B)],
    ['changed key on a port', `[203.0.113.7]:2222 ${B.line}`, '203.0.113.7', 2222, A, changedFrom(B)],
    ['any matching line is enough', `example.com ${B.line}\nexample.com ${A.line}`, 'example.com', 22, A, match],
    ['a key of another type only', `example.com ${E.line}`, 'example.com', 22, A, unknown],
    ['revoked everywhere', `@revoked * ${A.line}\nexample.com ${A.line}`, 'example.com', 22, A, revoked],
    ['revoked for another host', `@revoked other.example ${A.line}\nexample.com ${A.line}`, 'example.com', 22, A, match],
    ['another key revoked', `@revoked * ${B.line}\nexample.com ${A.line}`, 'example.com', 22, A, match],
    ['cert-authority ignored', `@cert-authority *.example.com ${A.line}`, 'web.example.com', 22, A, unknown],
    ['unknown marker skipped', `@trusted example.com ${A.line}`, 'example.com', 22, A, unknown],
    ['comments, blank lines, trailing comment', `# mine\n\n   \n\texample.com ${A.line} laptop key\n`, 'example.com', 22, A, match],
    ['CRLF line ends', `example.com ${A.line}\r\n`, 'example.com', 22, A, match],
    ['malformed lines skipped', `example.com ssh-ed25519 !!!\nexample.com\nexample.com ${A.line}`, 'example.com', 22, A, match],
    ['type field must match the blob', `example.com ssh-rsa ${A.line.split(' ')[1]}`, 'example.com', 22, A, unknown],
  ])('%s', (_name, text, host, port, key, expected) => {
    expect(checkHostKey(parseKnownHosts(text), host, port, key.type, key.blob)).toEqual(expected);
  });
});

describe('hashed entries made by ssh-keygen -H', () => {
  const file = join(dir, 'known_hosts_hashed');
  writeFileSync(file, `example.com ${A.line}\n[203.0.113.7]:2222 ${A.line}\n`);
  execFileSync('ssh-keygen', ['-q', '-H', '-f', file], { stdio: 'ignore' });
  const text = readFileSync(file, 'utf8');
  const entries = parseKnownHosts(text);

  it('hashes every name', () => {
    expect(text).not.toContain('example.com');
    expect(text).not.toContain('203.0.113.7');
    expect(entries).toHaveLength(2);
    expect(entries.every((e) => e.hosts.kind === 'hashed')).toBe(true);
  });

  it.each<[string, string, number, TestKey, HostKeyCheck]>([
    ['host on port 22', 'example.com', 22, A, match],
    ['host without case', 'Example.Com', 22, A, match],
    ['[host]:port', '203.0.113.7', 2222, A, match],
    ['[host]:port is not port 22', '203.0.113.7', 22, A, unknown],
    ['other host', 'example.org', 22, A, unknown],
    ['changed key', 'example.com', 22, B, changedFrom(A)],
  ])('%s', (_name, host, port, key, expected) => {
    expect(checkHostKey(entries, host, port, key.type, key.blob)).toEqual(expected);
  });
});

describe('fingerprint', () => {
  it.each([
    ['ed25519', A],
    ['ecdsa', E],
  ])('%s: the SHA256 ssh-keygen -l prints', (_name, key) => {
    const printed = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', key.pubFile], { encoding: 'utf8' });
    expect(printed.split(' ')[1]).toBe(fingerprint(key.blob));
    expect(fingerprint(key.blob)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});

describe('parsing', () => {
  it('keeps markers, types and line numbers', () => {
    const entries = parseKnownHosts(`# c\n@revoked * ${B.line}\nexample.com ${A.line}\n@cert-authority *.example.com ${E.line}`);
    expect(entries.map((e) => [e.marker, e.keyType, e.line])).toEqual([
      ['revoked', 'ssh-ed25519', 2],
      [undefined, 'ssh-ed25519', 3],
      ['cert-authority', 'ecdsa-sha2-nistp256', 4],
    ]);
  });

  it('lists the key types known for a host, markers left out', () => {
    const entries = parseKnownHosts(`@revoked * ${B.line}\nexample.com ${E.line}\nexample.com ${A.line}\nother ${A.line}`);
    expect(knownKeyTypes(entries, 'example.com', 22)).toEqual(['ecdsa-sha2-nistp256', 'ssh-ed25519']);
    expect(knownKeyTypes(entries, 'example.com', 2222)).toEqual([]);
  });

  it('reads the type at the start of a key blob', () => {
    expect(keyTypeOf(A.blob)).toBe('ssh-ed25519');
    expect(keyTypeOf(Buffer.from([0, 0, 0, 99, 1]))).toBeUndefined();
    expect(keyTypeOf(Buffer.alloc(2))).toBeUndefined();
  });

  it('reads a missing file as no known hosts', async () => {
    await expect(readKnownHosts(join(dir, 'absent'))).resolves.toEqual([]);
  });
});
