/**
 * Copies of backups off the host: `backup --download` streams a backup folder as tar into
 * `backups/<env>/<name>.tar` on this machine, checking every entry's sha256 against the manifest as
 * it arrives, encrypted with age (the age-encryption library) when BACKUP_ENCRYPT_TO is set.
 * `restore <env> <file>` decrypts and uploads such a copy into the host's backups folder first.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BackupManifest } from './backup.ts';
import { checkBackupName } from './backup.ts';
import { script } from '../core/cmd.ts';
import type { Session } from './session.ts';
import { ConfigError, SkiffError, UsageError } from '../core/errors.ts';

/** The sha256 and size of every file member of a tar stream, by name (ustar; names under 100 bytes). */
export class TarDigest extends Transform {
  readonly files = new Map<string, { size: number; sha256: string }>();
  #buf = Buffer.alloc(0);
  #member: { name: string; left: number; pad: number; hash: ReturnType<typeof createHash> | undefined; size: number } | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (e?: Error | null, data?: Buffer) => void): void {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    while (this.#step());
    done(null, chunk);
  }

  /** Consumes what it can of the buffer; false when it needs more bytes. */
  #step(): boolean {
    const m = this.#member;
    if (m && m.left > 0) {
      const take = Math.min(m.left, this.#buf.length);
      if (take === 0) return false;
      m.hash?.update(this.#buf.subarray(0, take));
      this.#buf = this.#buf.subarray(take);
      m.left -= take;
      if (m.left === 0 && m.hash) this.files.set(m.name, { size: m.size, sha256: m.hash.digest('hex') });
      return true;
    }
    if (m && m.pad > 0) {
      const take = Math.min(m.pad, this.#buf.length);
      if (take === 0) return false;
      this.#buf = this.#buf.subarray(take);
      m.pad -= take;
      return true;
    }
    if (this.#buf.length < 512) return false;
    const header = this.#buf.subarray(0, 512);
    this.#buf = this.#buf.subarray(512);
    if (header.every((b) => b === 0)) {
      this.#member = undefined;
      return true;
    }
    const text = (from: number, len: number) => header.subarray(from, from + len).toString('utf8').replace(/\0.*$/s, '');
    const size = Number.parseInt(text(124, 12).trim() || '0', 8);
    const type = String.fromCharCode(header[156] ?? 0);
    const prefix = text(345, 155);
    const name = (prefix ? `${prefix}/${text(0, 100)}` : text(0, 100)).replace(/^\.\//, '');
    const isFile = type === '0' || type === '\0';
    this.#member = { name, left: size, pad: (512 - (size % 512)) % 512, hash: isFile ? createHash('sha256') : undefined, size };
    if (isFile && size === 0) this.files.set(name, { size: 0, sha256: createHash('sha256').digest('hex') });
    return true;
  }
}

/**
 * Where downloaded copies of an env's backups go: `backups/<env>/` in the repository (0700), or
 * under SKIFF_BACKUPS_DIR when it is set (a disk of its own, or a test's folder).
 */
export const localBackupsDir = (ctx: Session): string => join(process.env.SKIFF_BACKUPS_DIR ?? join(ctx.cfg.root, 'backups'), ctx.cfg.env);

/**
 * Downloads a backup into `backups/<env>/<name>.tar` (`.tar.age` when BACKUP_ENCRYPT_TO is set),
 * under a temporary name until every entry matched its sha256. Returns the file and its size.
 */
export const downloadBackup = async (ctx: Session, name: string, manifest: BackupManifest): Promise<{ file: string; bytes: number }> => {
  const { host, cfg } = ctx;
  const dir = localBackupsDir(ctx);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const recipient = cfg.backup.encryptTo;
  const file = join(dir, `${name}.tar${recipient ? '.age' : ''}`);
  const partial = `${file}.partial`;
  const digest = new TarDigest();
  const source = new Readable({ read() {} });
  const out = createWriteStream(partial, { mode: 0o600 });
  let written: Promise<void>;
  if (recipient) {
    const age = await import('age-encryption');
    const encrypter = new age.Encrypter();
    encrypter.addRecipient(recipient);
    const encrypted = await encrypter.encrypt(Readable.toWeb(source.pipe(digest)) as ReadableStream<Uint8Array>);
    written = pipeline(Readable.fromWeb(encrypted as import('node:stream/web').ReadableStream<Uint8Array>), out);
  } else {
    written = pipeline(source, digest, out);
  }
  try {
    const r = await host.exec(script('cd "$1" && tar -c -f - "$2"', `${ctx.l.root}/backups`, name), {
      onStdout: (b) => source.push(b),
      discardStdout: true,
      check: false,
    });
    source.push(null);
    await written;
    if (r.code !== 0) throw new SkiffError(`${host.name}: could not read backup ${name}: ${r.stderr.trim().split('\n').at(-1) ?? ''}`);
    const problems = manifest.entries.flatMap((e) => {
      const got = digest.files.get(`${name}/${e.path}`);
      return !got ? [`${e.path} did not arrive`] : got.size !== e.size || got.sha256 !== e.sha256 ? [`${e.path} arrived damaged`] : [];
    });
    if (problems.length > 0) throw new SkiffError(`download of ${name} failed its checks: ${problems.join('; ')}; nothing was kept`);
    renameSync(partial, file);
  } catch (error) {
    source.destroy();
    rmSync(partial, { force: true });
    throw error;
  }
  return { file, bytes: statSync(file).size };
};

/** `backups/staging/20261123-041500.tar(.age)` -> its backup name; refuses anything else. */
export const backupNameOfFile = (path: string, env: string): string => {
  const name = basename(path).replace(/\.tar(\.age)?$/, '');
  checkBackupName(name, env);
  return name;
};

/**
 * Uploads a downloaded copy into the host's backups folder (decrypting it with BACKUP_AGE_IDENTITY
 * when it ends in .age), under a temporary name, then renamed. The restore that follows verifies
 * it like any backup on the host.
 */
export const uploadBackup = async (ctx: Session, path: string): Promise<string> => {
  const { host, cfg } = ctx;
  const name = backupNameOfFile(path, cfg.env);
  let input: Readable = createReadStream(path);
  if (path.endsWith('.age')) {
    if (!cfg.backup.ageIdentity) {
      throw new UsageError(`${basename(path)} is encrypted: set BACKUP_AGE_IDENTITY to the file of the age identity that decrypts it (in env/${cfg.env}.secrets.env)`);
    }
    const identity = readFileSync(cfg.backup.ageIdentity, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('AGE-SECRET-KEY-'));
    if (!identity) {
      throw new ConfigError([{ key: 'BACKUP_AGE_IDENTITY', file: cfg.backup.ageIdentity, value: undefined, expected: 'a file with an AGE-SECRET-KEY-1... line', secret: true }]);
    }
    const age = await import('age-encryption');
    const decrypter = new age.Decrypter();
    decrypter.addIdentity(identity.trim());
    try {
      const plain = await decrypter.decrypt(Readable.toWeb(input) as ReadableStream<Uint8Array>);
      input = Readable.fromWeb(plain as import('node:stream/web').ReadableStream<Uint8Array>);
    } catch (error) {
      throw new SkiffError(`cannot decrypt ${basename(path)} with BACKUP_AGE_IDENTITY: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const backups = `${ctx.l.root}/backups`;
  const stage = `${backups}/.upload-${name}`;
  const r = await host.exec(
    script('mkdir -p "$1" && chmod 700 "$1" && rm -rf "$2" && mkdir -p "$2" && tar -x -f - -C "$2" && [ -f "$2/$3/manifest.json" ] && rm -rf "$1/$3" && mv -T "$2/$3" "$1/$3"; s=$?; rm -rf "$2"; exit $s', backups, stage, name),
    { stdin: input, check: false },
  );
  if (r.code !== 0) throw new SkiffError(`${host.name}: could not upload ${basename(path)}: ${r.stderr.trim().split('\n').at(-1) || 'not a backup archive'}`);
  return name;
};
