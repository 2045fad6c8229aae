/**
 * OpenSSH known_hosts, read the way `ssh` reads it: plain and `[host]:port` names, wildcard and
 * negated patterns, hashed names (`ssh-keygen -H`), and the @revoked / @cert-authority markers.
 * Pure except readKnownHosts, so lib/host/ssh.ts can check a host key inside ssh2's hostVerifier.
 */
import { createHash, createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/** The names a line applies to: a hashed name, or comma-separated patterns. */
export type HostField =
  | { readonly kind: 'hashed'; readonly salt: Buffer; readonly hash: Buffer }
  | { readonly kind: 'patterns'; readonly patterns: readonly string[] };

/** One key line of a known_hosts file. */
export interface KnownHost {
  readonly marker: 'revoked' | 'cert-authority' | undefined;
  readonly hosts: HostField;
  readonly keyType: string;
  /** The key blob, as sent by the server during key exchange. */
  readonly key: Buffer;
  /** 1-based line number in the file. */
  readonly line: number;
}

/** The verdict on a host key. */
export type HostKeyCheck =
  | { readonly result: 'match' }
  | { readonly result: 'unknown' }
  | { readonly result: 'changed'; readonly expected: string }
  | { readonly result: 'revoked' };

const MARKERS = { '@revoked': 'revoked', '@cert-authority': 'cert-authority' } as const;
const SHA1_LENGTH = 20;

/** Parses known_hosts text; lines that are not valid entries are skipped, as ssh does. */
export const parseKnownHosts = (text: string): KnownHost[] =>
  text.split('\n').flatMap((line, i) => {
    const entry = parseLine(line, i + 1);
    return entry ? [entry] : [];
  });

/** Reads and parses a known_hosts file; a missing file knows no hosts. */
export const readKnownHosts = async (file: string): Promise<KnownHost[]> => {
  try {
    return parseKnownHosts(await readFile(file, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
};

const parseLine = (text: string, line: number): KnownHost | undefined => {
  const fields = text.trim().split(/\s+/);
  if (fields[0] === undefined || fields[0] === '' || fields[0].startsWith('#')) return undefined;
  let marker: KnownHost['marker'];
  if (fields[0].startsWith('@')) {
    marker = MARKERS[fields.shift() as keyof typeof MARKERS];
    if (marker === undefined) return undefined;
  }
  const [hostText, keyType, base64] = fields;
  if (hostText === undefined || keyType === undefined || base64 === undefined) return undefined;
  const hosts = parseHostField(hostText);
  const key = Buffer.from(base64, 'base64');
  if (hosts === undefined || keyTypeOf(key) !== keyType) return undefined;
  return { marker, hosts, keyType, key, line };
};

const parseHostField = (text: string): HostField | undefined => {
  if (!text.startsWith('|')) return { kind: 'patterns', patterns: text.toLowerCase().split(',').filter(Boolean) };
  const [, version, salt, hash] = text.split('|');
  if (version !== '1' || salt === undefined || hash === undefined) return undefined;
  const field = { kind: 'hashed', salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') } as const;
  return field.salt.length === SHA1_LENGTH && field.hash.length === SHA1_LENGTH ? field : undefined;
};

/** The name known_hosts uses for a host: `host` on port 22, `[host]:port` otherwise. */
export const hostName = (host: string, port: number): string =>
  port === 22 ? host.toLowerCase() : `[${host.toLowerCase()}]:${port}`;

/** Whether a line applies to a name; a matching negated pattern (`!host`) excludes the line. */
const matchesName = (hosts: HostField, name: string): boolean => {
  if (hosts.kind === 'hashed') return createHmac('sha1', hosts.salt).update(name).digest().equals(hosts.hash);
  let matched = false;
  for (const pattern of hosts.patterns) {
    const negated = pattern.startsWith('!');
    if (!globMatch(negated ? pattern.slice(1) : pattern, name)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
};

/**
 * `*` and `?` as ssh matches them, in time linear in the pattern times the name: only the last `*`
 * is ever retried (a regular expression of many `.*` backtracks for seconds on a long name).
 */
export const globMatch = (pattern: string, name: string): boolean => {
  let p = 0;
  let n = 0;
  let star = -1; // the pattern position after the last `*` seen
  let resume = 0; // the name position that `*` has swallowed up to
  while (n < name.length) {
    if (pattern[p] === '*') {
      star = ++p;
      resume = n;
    } else if (p < pattern.length && (pattern[p] === '?' || pattern[p] === name[n])) {
      p++;
      n++;
    } else if (star !== -1) {
      p = star;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
};

const linesFor = (entries: readonly KnownHost[], host: string, port: number): KnownHost[] => {
  const name = hostName(host, port);
  return entries.filter((e) => e.marker !== 'cert-authority' && matchesName(e.hosts, name));
};

/** Checks the key a server presented: revoked wins, then a matching key, then a different key of its type. */
export const checkHostKey = (
  entries: readonly KnownHost[],
  host: string,
  port: number,
  keyType: string,
  keyBlob: Buffer,
): HostKeyCheck => {
  const lines = linesFor(entries, host, port);
  if (lines.some((e) => e.marker === 'revoked' && e.key.equals(keyBlob))) return { result: 'revoked' };
  const keys = lines.filter((e) => e.marker === undefined);
  if (keys.some((e) => e.key.equals(keyBlob))) return { result: 'match' };
  // A known key of another type only is not a change: the server may simply offer several (ssh does the same).
  const sameType = keys.filter((e) => e.keyType === keyType);
  if (sameType.length > 0) return { result: 'changed', expected: [...new Set(sameType.map((e) => fingerprint(e.key)))].join(', ') };
  return { result: 'unknown' };
};

/** Key types known for a host, in file order: the client offers these first, as ssh does. */
export const knownKeyTypes = (entries: readonly KnownHost[], host: string, port: number): string[] => [
  ...new Set(linesFor(entries, host, port).flatMap((e) => (e.marker === undefined ? [e.keyType] : []))),
];

/** The key's fingerprint as `ssh-keygen -l` prints it: `SHA256:` and unpadded base64. */
export const fingerprint = (keyBlob: Buffer): string =>
  `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;

/** The type named at the start of a key blob (`ssh-ed25519`), or undefined when it is malformed. */
export const keyTypeOf = (keyBlob: Buffer): string | undefined => {
  if (keyBlob.length < 4) return undefined;
  const length = keyBlob.readUInt32BE(0);
  if (length === 0 || length > keyBlob.length - 4) return undefined;
  return keyBlob.subarray(4, 4 + length).toString('latin1');
};
