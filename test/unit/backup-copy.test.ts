/**
 * `backup --download` against a host that sends a tar stream: an archive whose every entry matches
 * the manifest is kept, a damaged entry or a damaged archive leaves nothing behind.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cmd } from '../../lib/core/cmd.ts';
import type { BackupManifest } from '../../lib/flows/backup.ts';
import { downloadBackup } from '../../lib/flows/backup-copy.ts';
import type { ExecOptions, ExecResult, Host } from '../../lib/host/host.ts';
import { flowSession, testConfig } from '../support/flow-ctx.ts';

const NAME = '20261123-041500';
/** How far the last streamingHost got before its command ended. */
let sent = 0;
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** A host whose one command streams `archive` to stdout in uneven pieces, as a network delivers it. */
const streamingHost = (archive: Buffer, code = 0): Host => ({
  name: 'web1',
  exec: async (_c: Cmd, options: ExecOptions = {}): Promise<ExecResult> => {
    for (let i = 0; i < archive.length; i += 777) {
      if (options.signal?.aborted) return { code: null, stdout: '', stderr: '' };
      sent = i + 777;
      options.onStdout?.(archive.subarray(i, i + 777));
      await new Promise((r) => setImmediate(r));
    }
    return { code, stdout: '', stderr: code === 0 ? '' : 'tar: backups/x: Cannot open\n' };
  },
  put: async () => undefined,
  get: async () => undefined,
  close: async () => undefined,
});

describe('downloadBackup', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-download-'));
  const db = Buffer.alloc(70_001, 7);
  let archive: Buffer;
  const manifest: BackupManifest = {
    format: 1,
    app: 'hello',
    env: 'staging',
    name: NAME,
    createdAt: '2026-11-23T04:15:00.000Z',
    release: undefined,
    version: undefined,
    entries: [
      { path: 'sqlite/0.db', kind: 'sqlite', sources: ['data/app.db'], size: db.length, sha256: sha(db) },
      { path: 'env', kind: 'env', sources: ['.env'], size: 4, sha256: sha('A=1\n') },
    ],
  };
  const before = process.env.SKIFF_BACKUPS_DIR;
  beforeAll(() => {
    mkdirSync(join(dir, 'src', NAME, 'sqlite'), { recursive: true });
    writeFileSync(join(dir, 'src', NAME, 'sqlite', '0.db'), db);
    writeFileSync(join(dir, 'src', NAME, 'env'), 'A=1\n');
    writeFileSync(join(dir, 'src', NAME, 'manifest.json'), JSON.stringify(manifest));
    archive = execFileSync('tar', ['-c', '-f', '-', '-C', join(dir, 'src'), NAME]);
    process.env.SKIFF_BACKUPS_DIR = join(dir, 'copies');
  });
  afterAll(() => {
    if (before === undefined) delete process.env.SKIFF_BACKUPS_DIR;
    else process.env.SKIFF_BACKUPS_DIR = before;
    rmSync(dir, { recursive: true, force: true });
  });
  const session = (host: Host, values: Record<string, string> = {}) => ({ ...flowSession({ cfg: testConfig(values) }).session, host });
  const copies = () => readdirSync(join(dir, 'copies', 'staging'));

  it('keeps a copy whose every entry matches the manifest, byte for byte as sent', async () => {
    const { file, bytes } = await downloadBackup(session(streamingHost(archive)), NAME, manifest);
    expect(readFileSync(file).equals(archive)).toBe(true);
    expect(bytes).toBe(archive.length);
    rmSync(file);
  });

  it('asks the host to wait while more than about a megabyte is queued, so memory stays bounded', async () => {
    // A host that sends 64 MiB as fast as it may: it stops whenever onStdout hands back a promise.
    const big = Buffer.concat([archive, Buffer.alloc(64 * 1024 * 1024)]);
    let waits = 0;
    let mostAhead = 0;
    const eager: Host = {
      ...streamingHost(archive),
      exec: async (_c: Cmd, options: ExecOptions = {}): Promise<ExecResult> => {
        let ahead = 0;
        for (let i = 0; i < big.length; i += 65536) {
          const later = options.onStdout?.(big.subarray(i, i + 65536));
          ahead += 65536;
          mostAhead = Math.max(mostAhead, ahead);
          if (later instanceof Promise) {
            waits++;
            await later;
            ahead = 0;
          }
        }
        return { code: 0, stdout: '', stderr: '' };
      },
    };
    // Zeros after the archive's members read as its end: the copy is sound and kept.
    const { file } = await downloadBackup(session(eager), NAME, manifest);
    rmSync(file);
    expect(waits).toBeGreaterThan(0);
    expect(mostAhead).toBeLessThanOrEqual(2 * 1024 * 1024);
  });

  it('keeps nothing when an entry arrives damaged', async () => {
    const damaged = Buffer.from(archive);
    damaged[damaged.indexOf(db.subarray(0, 64)) + 100] = 8;
    await expect(downloadBackup(session(streamingHost(damaged)), NAME, manifest)).rejects.toThrow(`download of ${NAME} failed its checks: sqlite/0.db arrived damaged; nothing was kept`);
    expect(copies()).toEqual([]);
  });

  it('keeps nothing when the archive itself is damaged, and says so', async () => {
    const damaged = Buffer.from(archive);
    damaged.write('zz', 124, 'latin1'); // the first header's size field
    await expect(downloadBackup(session(streamingHost(damaged)), NAME, manifest)).rejects.toThrow('not a tar archive, or a damaged one');
    expect(sent).toBeLessThan(archive.length / 2); // the host's command was ended, not read to its end
    expect(existsSync(join(dir, 'copies', 'staging'))).toBe(true);
    expect(copies()).toEqual([]);
  });

  it('encrypts the copy to BACKUP_ENCRYPT_TO, checked as it passes; a damaged archive still leaves nothing', async () => {
    const age = await import('age-encryption');
    const identity = await age.generateIdentity();
    const values = { BACKUP_ENCRYPT_TO: await age.identityToRecipient(identity) };
    const { file } = await downloadBackup(session(streamingHost(archive), values), NAME, manifest);
    expect(file.endsWith(`${NAME}.tar.age`)).toBe(true);
    const decrypter = new age.Decrypter();
    decrypter.addIdentity(identity);
    expect(Buffer.from(await decrypter.decrypt(readFileSync(file))).equals(archive)).toBe(true);
    rmSync(file);
    const damaged = Buffer.from(archive);
    damaged.write('zz', 124, 'latin1');
    await expect(downloadBackup(session(streamingHost(damaged), values), NAME, manifest)).rejects.toThrow('not a tar archive, or a damaged one');
    expect(copies()).toEqual([]);
  });
});

describe('CopyMembers: an uploaded copy may hold only the files of its own backup', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-copy-members-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const through = async (archive: Buffer): Promise<Buffer> => {
    const { CopyMembers } = await import('../../lib/flows/backup-copy.ts');
    const { Readable } = await import('node:stream');
    const parts: Buffer[] = [];
    const t = Readable.from([archive]).pipe(new CopyMembers(NAME));
    for await (const c of t) parts.push(c as Buffer);
    return Buffer.concat(parts);
  };
  const make = (files: Record<string, string>, links: Record<string, string> = {}) => {
    const src = mkdtempSync(join(dir, 'src-'));
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(join(src, f, '..'), { recursive: true });
      writeFileSync(join(src, f), text);
    }
    for (const [l, to] of Object.entries(links)) execFileSync('ln', ['-s', to, join(src, l)]);
    return execFileSync('tar', ['-c', '-f', '-', '-C', src, NAME]);
  };

  it('passes a backup folder through unchanged', async () => {
    const archive = make({ [`${NAME}/manifest.json`]: '{}', [`${NAME}/sqlite/0.db`]: 'db', [`${NAME}/files.tar`]: 't', [`${NAME}/env`]: 'A=1' });
    expect((await through(archive)).equals(archive)).toBe(true);
  });

  it.each<[string, Record<string, string>, Record<string, string>, string]>([
    ['a symbolic link', { [`${NAME}/manifest.json`]: '{}' }, { [`${NAME}/sqlite`]: '/etc' }, 'not a file or folder'],
    ['a file no backup holds', { [`${NAME}/manifest.json`]: '{}', [`${NAME}/.ssh/authorized_keys`]: 'k' }, {}, `"${NAME}/.ssh/`],
  ])('refuses %s before the host unpacks it', async (_what, files, links, message) => {
    await expect(through(make(files, links))).rejects.toThrow(message);
  });

  /** A ustar header written by hand (octal fields, checksum), so a test can say what tar itself will not write. */
  const header = (name: string, type: string, size: number, { prefix = '', magic = 'ustar\u000000' } = {}): Buffer => {
    const h = Buffer.alloc(512);
    h.write(name, 0, 'utf8');
    h.write('0000644\0', 100, 'latin1');
    h.write('0000000\0', 108, 'latin1');
    h.write('0000000\0', 116, 'latin1');
    h.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
    h.write('00000000000\0', 136, 'latin1');
    h.write(type, 156, 'latin1');
    h.write(magic, 257, 'latin1');
    h.write(prefix, 345, 'utf8');
    h.fill(0x20, 148, 156);
    h.write(`${h.reduce((a, b) => a + b, 0).toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    return h;
  };
  const padded = (b: Buffer) => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
  /** `<length> key=value\n`, the length counting itself. */
  const record = (key: string, value: string): string => {
    const rest = ` ${key}=${value}\n`;
    let n = Buffer.byteLength(rest) + 1;
    while (String(n).length + Buffer.byteLength(rest) !== n) n++;
    return `${n}${rest}`;
  };
  /** A member preceded by the extended headers given as [type, body], then the end of the archive. */
  const crafted = (name: string, data: string, extensions: [string, string][], options: { prefix?: string; magic?: string } = {}): Buffer =>
    Buffer.concat([
      ...extensions.flatMap(([type, body]) => [header('././@LongLink', type, Buffer.byteLength(body)), padded(Buffer.from(body))]),
      header(name, '0', Buffer.byteLength(data), options),
      padded(Buffer.from(data)),
      Buffer.alloc(1024),
    ]);

  it('passes a PAX archive tar writes (mtime, atime, ctime records) through unchanged', async () => {
    const src = mkdtempSync(join(dir, 'src-'));
    mkdirSync(join(src, NAME));
    writeFileSync(join(src, NAME, 'manifest.json'), '{}');
    writeFileSync(join(src, NAME, 'env'), 'A=1');
    const archive = execFileSync('tar', ['-c', '--format=pax', '-f', '-', '-C', src, NAME]);
    expect((await through(archive)).equals(archive)).toBe(true);
    const legit = crafted(`${NAME}/env`, 'A=1', [['x', record('path', `${NAME}/env`) + record('size', '3')]]);
    expect((await through(legit)).equals(legit)).toBe(true);
  });

  it('refuses a member that GNU.sparse.name renames to the manifest the MAC was checked on', async () => {
    const archive = crafted(`${NAME}/env`, '{"forged":true}', [['x', record('path', `${NAME}/env`) + record('GNU.sparse.name', `${NAME}/manifest.json`)]]);
    // GNU tar itself unpacks that member as manifest.json, not env.
    const out = mkdtempSync(join(dir, 'out-'));
    execFileSync('tar', ['-x', '-f', '-', '-C', out], { input: archive });
    expect(readFileSync(join(out, NAME, 'manifest.json'), 'utf8')).toBe('{"forged":true}');
    await expect(through(archive)).rejects.toThrow('the PAX record "GNU.sparse.name", which could give a member another name than the one checked: refused, nothing was uploaded');
  });

  it.each<[string, Buffer, string]>([
    ['another GNU.sparse record', crafted(`${NAME}/env`, 'A=1', [['x', record('GNU.sparse.major', '1') + record('GNU.sparse.minor', '0')]]), '"GNU.sparse.major"'],
    ['a PAX record tar would not write', crafted(`${NAME}/env`, 'A=1', [['x', record('SCHILY.xattr.user.x', 'y')]]), '"SCHILY.xattr.user.x"'],
    ['a path record twice', crafted(`${NAME}/env`, 'A=1', [['x', record('path', `${NAME}/env`) + record('path', `${NAME}/manifest.json`)]]), '"path" twice'],
    ['a size that is not digits only', crafted(`${NAME}/env`, 'A=1', [['x', record('size', '+3')]]), 'the PAX size "+3"'],
    ['a damaged PAX header', crafted(`${NAME}/env`, 'A=1', [['x', '12 path=x\n']]), 'a damaged PAX extended header'],
    ['a GNU long link name', crafted(`${NAME}/env`, 'A=1', [['K', `${NAME}/manifest.json`]]), 'of type "K"'],
    ['a long name and a PAX path together', crafted(`${NAME}/env`, 'A=1', [['x', record('path', `${NAME}/manifest.json`)], ['L', `${NAME}/env`]]), 'more than one extended header'],
    ['a prefix GNU tar does not read (old GNU header)', crafted('env', 'A=1', [], { prefix: NAME, magic: 'ustar  \0' }), 'GNU tar names otherwise'],
  ])('refuses %s', async (_what, archive, message) => {
    await expect(through(archive)).rejects.toThrow(message);
  });
});

describe('copyMacProblem: a copy from elsewhere is used only with a MAC made with the operator\'s key', () => {
  const key = 'k'.repeat(40);
  const manifest = Buffer.from('{"format":1}\n');
  it('accepts the MAC takeBackup writes', async () => {
    const { manifestMac } = await import('../../lib/flows/backup.ts');
    const { copyMacProblem } = await import('../../lib/flows/backup-copy.ts');
    expect(copyMacProblem('x.tar', key, manifest, Buffer.from(`${manifestMac(key, manifest)}\n`))).toBeUndefined();
  });
  it.each<[string, string | undefined, Buffer | undefined, (mac: string) => Buffer | undefined, string]>([
    ['no key here', undefined, manifest, (m) => Buffer.from(m), 'cannot tell who made x.tar: set BACKUP_SIGNING_KEY'],
    ['no MAC', key, manifest, () => undefined, 'x.tar carries no MAC'],
    ['a changed manifest', key, Buffer.from('{"format":1} \n'), (m) => Buffer.from(m), 'the MAC of x.tar does not match'],
    ['another key', 'o'.repeat(40), manifest, (m) => Buffer.from(m), 'the MAC of x.tar does not match'],
    ['a MAC that is not hex', key, manifest, () => Buffer.from('zz'), 'does not match'],
    ['no manifest', key, undefined, (m) => Buffer.from(m), 'x.tar holds no manifest.json'],
  ])('refuses %s', async (_what, k, m, mac, message) => {
    const { manifestMac } = await import('../../lib/flows/backup.ts');
    const { copyMacProblem } = await import('../../lib/flows/backup-copy.ts');
    expect(copyMacProblem('x.tar', k, m, mac(manifestMac(key, manifest)))).toContain(message);
  });
});
