/**
 * Copies of backups off the host: `backup --download` streams a backup folder as tar into
 * `backups/<env>/<name>.tar` on this machine, checking every entry's sha256 against the manifest as
 * it arrives, encrypted with age (the age-encryption library) when BACKUP_ENCRYPT_TO is set.
 * `restore <env> <file>` decrypts and uploads such a copy into the host's backups folder first.
 */
import { createHash, timingSafeEqual, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { localBackupsRoot } from '../core/paths.ts';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BackupManifest } from './backup.ts';
import { checkBackupName, manifestMac } from './backup.ts';
import { cmd, script } from '../core/cmd.ts';
import { DEADLINE } from '../host/host.ts';
import type { Session } from './session.ts';
import { ConfigError, SkiffError, UsageError } from '../core/errors.ts';
import { parseSize, TarReader, type TarEvent } from '../ship/tar.ts';

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
export const localBackupsDir = (ctx: Session): string => join(localBackupsRoot(ctx.cfg.root, process.env), ctx.cfg.env);

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
  // The host's stream waits while the disk (or the encryption) is behind: memory stays bounded
  // whatever the backup's size (a 300 MB backup reached 336 MB RSS when every chunk was queued here).
  let drained: (() => void) | undefined;
  const source = new Readable({
    highWaterMark: 1024 * 1024,
    read() {
      drained?.();
      drained = undefined;
    },
  });
  const take = (b: Buffer): Promise<void> | undefined => (source.push(b) ? undefined : new Promise<void>((resolve) => (drained = resolve)));
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
      onStdout: take,
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

/** The PAX records that cannot give a file or folder another name or content than TarReader reads. */
const PAX_KEYS = new Set(['path', 'size', 'linkpath', 'mtime', 'atime', 'ctime', 'uid', 'gid', 'uname', 'gname']);

/**
 * The records of a PAX extended header (`<length> <key>=<value>\n` each) in order, or undefined when
 * the body is not made of such records alone: GNU tar would read it otherwise than paxRecords does.
 */
const paxList = (body: Buffer): (readonly [string, string])[] | undefined => {
  const records: (readonly [string, string])[] = [];
  let at = 0;
  while (at < body.length) {
    const space = body.indexOf(0x20, at);
    const digits = space < 0 ? '' : body.subarray(at, space).toString('latin1');
    const length = Number(digits);
    if (!/^[1-9]\d*$/.test(digits) || at + length > body.length || body[at + length - 1] !== 0x0a) return undefined;
    const record = body.subarray(space + 1, at + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq <= 0) return undefined;
    records.push([record.slice(0, eq), record.slice(eq + 1)]);
    at += length;
  }
  return records;
};

/**
 * Passes a copy's tar stream on unchanged while refusing, before the host unpacks it, any member that
 * is not a file or folder of the backup `name` (`name/manifest.json`, `name/sqlite/0.db` ...): a copy
 * from elsewhere must not write anywhere else on the host, through a link or otherwise. The name
 * checked must be the one GNU tar extracts to: so a member may have one extended header at most, a
 * PAX one (`x`) with only the records of PAX_KEYS (no `GNU.sparse.name`, which renames a member) or a
 * GNU long name (`L`); a ustar prefix counts only in a POSIX header, as for GNU tar.
 */
export class CopyMembers extends Transform {
  readonly #reader = new TarReader();
  readonly #allowed: RegExp;
  readonly #name: string;
  /** The bytes of the copy's manifest.json and manifest.mac, kept as they pass (for the MAC check). */
  readonly kept = new Map<string, Buffer>();
  #keeping: string | undefined;
  /** The extended header whose body comes next (TarReader hands back its header, then its body). */
  #extension: { readonly type: string; readonly size: number } | undefined;
  /** Extended headers since the last member. */
  #extensions = 0;
  constructor(name: string) {
    super();
    this.#name = name;
    this.#allowed = new RegExp(`^${name.replace(/[.]/g, '\\.')}(/(manifest\\.json|manifest\\.mac|env|files\\.tar|postgres\\.dump|sqlite|sqlite/\\d+\\.db))?$`);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      for (const event of this.#reader.read(chunk)) {
        if (event.kind === 'body' && this.#keeping) {
          const before = this.kept.get(this.#keeping) ?? Buffer.alloc(0);
          // A manifest is a few KB; more than 16 MiB is no manifest skiff wrote.
          if (before.length + event.data.length > 16 * 1024 * 1024) throw new UsageError(`the copy's ${this.#keeping} is too large to be a manifest: refused, nothing was uploaded`);
          this.kept.set(this.#keeping, Buffer.concat([before, event.data]));
        }
        if (event.kind === 'meta') this.#takeExtension(event.bytes);
        if (event.kind !== 'member') continue;
        this.#extensions = 0;
        const { name, type } = event.member;
        // Bytes 257-262 are "ustar\0" in a POSIX header; GNU tar reads 345-499 as a name prefix only there.
        if (event.bytes[345] !== 0 && event.bytes.toString('latin1', 257, 263) !== 'ustar\0') {
          throw new UsageError(`the copy holds ${JSON.stringify(name)} in a header that GNU tar names otherwise: refused, nothing was uploaded`);
        }
        const plain = name.replace(/\/+$/, '');
        if ((type !== '0' && type !== '5') || !this.#allowed.test(plain)) {
          throw new UsageError(`the copy holds ${JSON.stringify(name)}${type !== '0' && type !== '5' ? ' (not a file or folder)' : ''}, which no backup holds: refused, nothing was uploaded`);
        }
        const leaf = plain.slice(this.#name.length + 1);
        this.#keeping = leaf === 'manifest.json' || leaf === 'manifest.mac' ? leaf : undefined;
        if (this.#keeping) this.kept.set(this.#keeping, Buffer.alloc(0));
      }
      done(null, chunk);
    } catch (error) {
      done(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** An extended header, or its body: refused unless it can only give the next member the name TarReader reads. */
  #takeExtension(bytes: Buffer): void {
    const refuse = (what: string) => new UsageError(`the copy has ${what}, which could give a member another name than the one checked: refused, nothing was uploaded`);
    const extension = this.#extension;
    if (!extension) {
      const type = String.fromCharCode(bytes[156] ?? 0);
      if (type !== 'x' && type !== 'L') throw refuse(`a tar extended header of type ${JSON.stringify(type)}`);
      if (++this.#extensions > 1) throw refuse('a member with more than one extended header');
      this.#extension = { type, size: parseSize(bytes.subarray(124, 136)) };
      return;
    }
    this.#extension = undefined;
    if (extension.type !== 'x') return;
    // The body comes with its padding: only its first `size` bytes are records.
    const records = paxList(bytes.subarray(0, extension.size));
    if (!records) throw refuse('a damaged PAX extended header');
    const keys = records.map(([k]) => k);
    const odd = keys.find((k, i) => !PAX_KEYS.has(k) || keys.indexOf(k) !== i);
    if (odd !== undefined) throw refuse(`the PAX record ${JSON.stringify(odd)}${PAX_KEYS.has(odd) ? ' twice' : ''}`);
    // TarReader takes a size of digits only; any other, GNU tar might still read as one.
    const size = records.find(([k]) => k === 'size')?.[1];
    if (size !== undefined && !/^\d+$/.test(size)) throw refuse(`the PAX size ${JSON.stringify(size)}`);
  }
}

/**
 * Uploads a downloaded copy (decrypting it with BACKUP_AGE_IDENTITY when it ends in .age), its
 * members checked on the way. For a restore it goes into the host's backups folder, but never over a
 * backup of that name there (exit 2: restore that one by name); for a drill (`scratch`) it stays in a
 * scratch folder the caller removes, so a damaged copy cannot replace anything. The restore or
 * drill that follows verifies it like any backup on the host.
 */
/**
 * Why a copy's MAC does not prove it was made with this operator's BACKUP_SIGNING_KEY, or undefined
 * when it does. An age-encrypted copy proves nothing by itself: anyone can encrypt to a recipient.
 */
export const copyMacProblem = (file: string, key: string | undefined, manifest: Buffer | undefined, mac: Buffer | undefined): string | undefined => {
  if (!key) return `cannot tell who made ${file}: set BACKUP_SIGNING_KEY in the secrets file to the key the backup was made with`;
  if (!manifest) return `${file} holds no manifest.json`;
  if (!mac) return `${file} carries no MAC (manifest.mac): it was made without BACKUP_SIGNING_KEY, or elsewhere`;
  const want = Buffer.from(manifestMac(key, manifest), 'hex');
  const got = Buffer.from(mac.toString('utf8').trim(), 'hex');
  return got.length === want.length && timingSafeEqual(got, want) ? undefined : `the MAC of ${file} does not match: the copy was changed, or made with another BACKUP_SIGNING_KEY`;
};

export const uploadBackup = async (
  ctx: Session,
  path: string,
  scratch = false,
  /** --trust-copy: restore a copy without a valid MAC (the caller prints the warning it gets back). */
  trust = false,
): Promise<{ name: string; dir: string; remove: () => Promise<void>; untrusted: string | undefined }> => {
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
  const members = new CopyMembers(name);
  const checked = input.pipe(members);
  let refused: unknown;
  checked.on('error', (error) => {
    refused = error;
  });
  const mode = scratch ? 'test' : 'restore';
  // First the copy is unpacked into its stage; it moves into place only once its MAC is checked.
  const r = await host.exec(
    script(
      [
        'mkdir -p "$1" && chmod 700 "$1" || exit 1',
        // Exit 8: the host has a backup of that name, which an upload never replaces.
        'if [ "$4" = restore ] && [ -e "$1/$3" ]; then exit 8; fi',
        'rm -rf "$2" && mkdir -p "$2" && tar -x --no-same-owner -f - -C "$2" && [ -f "$2/$3/manifest.json" ] || { s=$?; rm -rf "$2"; exit "$s"; }',
      ].join('\n'),
      backups,
      stage,
      name,
      mode,
    ),
    { stdin: checked, check: false, timeoutMs: DEADLINE.transfer },
  );
  const drop = () => host.exec(cmd('rm', '-rf', stage), { check: false });
  if (refused) {
    await drop();
    throw refused;
  }
  if (r.code === 8) {
    throw new UsageError(`${host.name} has a backup ${name} already: restore it by name (\`restore.ts ${cfg.env} ${name}\`), or remove it there first to restore this copy; nothing was uploaded`);
  }
  if (r.code !== 0) throw new SkiffError(`${host.name}: could not upload ${basename(path)}: ${r.stderr.trim().split('\n').at(-1) || 'not a backup archive'}`);
  const untrusted = copyMacProblem(basename(path), cfg.backup.signingKey?.reveal(), members.kept.get('manifest.json'), members.kept.get('manifest.mac'));
  if (untrusted && !trust) {
    await drop();
    throw new UsageError(`${untrusted}; nothing was touched (pass --trust-copy to restore it anyway)`);
  }
  if (!scratch) {
    const moved = await host.exec(script('if [ -e "$1/$3" ]; then s=8; else mv -T "$2/$3" "$1/$3"; s=$?; fi; rm -rf "$2"; exit $s', backups, stage, name), { check: false });
    if (moved.code === 8) throw new UsageError(`${host.name} has a backup ${name} already: restore it by name; nothing was uploaded`);
    if (moved.code !== 0) throw new SkiffError(`${host.name}: could not put the copy ${name} in place: ${moved.stderr.trim().split('\n').at(-1) ?? ''}`);
  }
  // A copy put in place is removed when its restore does not go ahead: left there, it would pass for
  // the host's own backup, restorable by name without its MAC being checked again.
  const remove = async () => {
    await (scratch ? drop() : host.exec(cmd('rm', '-rf', `${backups}/${name}`)));
  };
  return { name, dir: scratch ? `${stage}/${name}` : `${backups}/${name}`, remove, untrusted };
};
