/**
 * Copies of backups off the host: `backup --download` streams a backup folder as tar into
 * `backups/<env>/<name>.tar` on this machine, checking every entry's sha256 against the manifest as
 * it arrives, encrypted with age (the age-encryption library) when BACKUP_ENCRYPT_TO is set.
 * `restore <env> <file>` decrypts and uploads such a copy into the host's backups folder first.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BackupManifest } from './backup.ts';
import { checkBackupName } from './backup.ts';
import { script } from '../core/cmd.ts';
import { DEADLINE } from '../host/host.ts';
import type { Session } from './session.ts';
import { ConfigError, SkiffError, UsageError } from '../core/errors.ts';
import { TarReader, type TarEvent } from '../ship/tar.ts';

/**
 * The sha256 and size of every file member of a tar stream, by name, as the stream passes through
 * unchanged. Names are only compared with the manifest's (the copy is kept whole, never unpacked
 * here), so the digest needs no checks of its own on them.
 */
export class TarDigest extends Transform {
  readonly files = new Map<string, { size: number; sha256: string }>();
  readonly #reader = new TarReader();
  #file: { readonly name: string; readonly size: number; left: number; readonly hash: Hash } | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      for (const event of this.#reader.read(chunk)) this.#take(event);
      done(null, chunk);
    } catch (error) {
      done(error as Error);
    }
  }

  #take(event: TarEvent): void {
    if (event.kind === 'member') {
      const { name, type, size } = event.member;
      this.#file = type === '0' ? { name, size, left: size, hash: createHash('sha256') } : undefined;
      return;
    }
    const file = this.#file;
    if (event.kind !== 'body' || !file) return;
    file.hash.update(event.data);
    file.left -= event.data.length;
    if (file.left > 0) return;
    // Counted once its content is in, padding or not: a stream cut in the padding still has the file.
    this.files.set(file.name, { size: file.size, sha256: file.hash.digest('hex') });
    this.#file = undefined;
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
  // The digest refuses a damaged archive, or the disk fills, while the host still sends: the command
  // ends then, and the error waits for the await below (left unhandled until then, it would end the process).
  const stopped = new AbortController();
  written.catch(() => stopped.abort());
  try {
    const r = await host.exec(script('cd "$1" && tar -c -f - "$2"', `${ctx.l.root}/backups`, name), {
      onStdout: (b) => source.push(b),
      discardStdout: true,
      check: false,
      signal: stopped.signal,
      timeoutMs: DEADLINE.transfer,
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
    { stdin: input, check: false, timeoutMs: DEADLINE.transfer },
  );
  if (r.code !== 0) throw new SkiffError(`${host.name}: could not upload ${basename(path)}: ${r.stderr.trim().split('\n').at(-1) || 'not a backup archive'}`);
  return name;
};
