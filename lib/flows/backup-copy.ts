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
import { cmd, script } from '../core/cmd.ts';
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
 * Passes a copy's tar stream on unchanged while refusing, before the host unpacks it, any member that
 * is not a file or folder of the backup `name` (`name/manifest.json`, `name/sqlite/0.db` ...): a copy
 * from elsewhere must not write anywhere else on the host, through a link or otherwise.
 */
export class CopyMembers extends Transform {
  readonly #reader = new TarReader();
  readonly #allowed: RegExp;
  constructor(name: string) {
    super();
    this.#allowed = new RegExp(`^${name.replace(/[.]/g, '\\.')}(/(manifest\\.json|env|files\\.tar|postgres\\.dump|sqlite|sqlite/\\d+\\.db))?$`);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      for (const event of this.#reader.read(chunk)) {
        if (event.kind !== 'member') continue;
        const { name, type } = event.member;
        const plain = name.replace(/\/+$/, '');
        if ((type !== '0' && type !== '5') || !this.#allowed.test(plain)) {
          throw new UsageError(`the copy holds ${JSON.stringify(name)}${type !== '0' && type !== '5' ? ' (not a file or folder)' : ''}, which no backup holds: refused, nothing was uploaded`);
        }
      }
      done(null, chunk);
    } catch (error) {
      done(error instanceof Error ? error : new Error(String(error)));
    }
  }
}

/**
 * Uploads a downloaded copy (decrypting it with BACKUP_AGE_IDENTITY when it ends in .age), its
 * members checked on the way. For a restore it goes into the host's backups folder, but never over a
 * backup of that name there (exit 2: restore that one by name); for a drill (`scratch`) it stays in a
 * scratch folder the caller removes, so a damaged copy cannot replace anything. The restore or
 * drill that follows verifies it like any backup on the host.
 */
export const uploadBackup = async (ctx: Session, path: string, scratch = false): Promise<{ name: string; dir: string; remove: () => Promise<void> }> => {
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
  const stage = `${backups}/.${scratch ? 'test' : 'upload'}-${name}`;
  const checked = input.pipe(new CopyMembers(name));
  let refused: unknown;
  checked.on('error', (error) => {
    refused = error;
  });
  const r = await host.exec(
    script(
      [
        'mkdir -p "$1" && chmod 700 "$1" || exit 1',
        // Exit 8: the host has a backup of that name, which an upload never replaces.
        'if [ "$4" = restore ] && [ -e "$1/$3" ]; then exit 8; fi',
        'rm -rf "$2" && mkdir -p "$2" && tar -x --no-same-owner -f - -C "$2" && [ -f "$2/$3/manifest.json" ] || { s=$?; rm -rf "$2"; exit "$s"; }',
        '[ "$4" = test ] && exit 0',
        'mv -T "$2/$3" "$1/$3"; s=$?; rm -rf "$2"; exit $s',
      ].join('\n'),
      backups,
      stage,
      name,
      scratch ? 'test' : 'restore',
    ),
    { stdin: checked, check: false, timeoutMs: DEADLINE.transfer },
  );
  if (refused) {
    await host.exec(cmd('rm', '-rf', stage), { check: false });
    throw refused;
  }
  if (r.code === 8) {
    throw new UsageError(`${host.name} has a backup ${name} already: restore it by name (\`restore.ts ${cfg.env} ${name}\`), or remove it there first to restore this copy; nothing was uploaded`);
  }
  if (r.code !== 0) throw new SkiffError(`${host.name}: could not upload ${basename(path)}: ${r.stderr.trim().split('\n').at(-1) || 'not a backup archive'}`);
  const remove = async () => {
    if (scratch) await host.exec(cmd('rm', '-rf', stage), { check: false });
  };
  return { name, dir: scratch ? `${stage}/${name}` : `${backups}/${name}`, remove };
};
