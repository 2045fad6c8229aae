/**
 * A tar stream filter: passes a tar archive through, leaving out the members a predicate rejects
 * (with any PAX or GNU long-name header that belongs to them), and collects the small members it is
 * asked to keep a copy of. It never holds more than one header and one chunk: an image archive of
 * any size streams through it.
 */
import { Transform, type TransformCallback } from 'node:stream';

const BLOCK = 512;

/** A tar member as the filter sees it: its name, type flag and size. */
export interface TarMember {
  readonly name: string;
  readonly type: string;
  readonly size: number;
}

export interface TarFilterOptions {
  /** Whether a member travels on (default: every member). */
  readonly keep?: (m: TarMember) => boolean;
  /** Members whose content is kept in `captured` (small files such as manifest.json). */
  readonly capture?: (m: TarMember) => boolean;
}

/** The size field: octal text, or base-256 when its first byte has the high bit set (members over 8 GiB). */
export const parseSize = (field: Buffer): number => {
  const first = field[0] ?? 0;
  if (first & 0x80) {
    let n = first & 0x7f;
    for (const b of field.subarray(1)) n = n * 256 + b;
    return n;
  }
  return Number.parseInt(field.toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
};

const text = (header: Buffer, from: number, len: number): string =>
  header.subarray(from, from + len).toString('utf8').replace(/\0.*$/s, '');

/** The `path` record of a PAX extended header, if it has one. */
export const paxPath = (body: Buffer): string | undefined => {
  let rest = body.toString('utf8');
  while (rest.length > 0) {
    const space = rest.indexOf(' ');
    const length = Number(rest.slice(0, space));
    if (space < 0 || !Number.isInteger(length) || length <= 0) return undefined;
    const record = rest.slice(space + 1, length - 1);
    if (record.startsWith('path=')) return record.slice(5);
    rest = rest.slice(length);
  }
  return undefined;
};

/** The body being passed or skipped: bytes left (padding included), and where they go. */
interface Body {
  left: number;
  readonly keep: boolean;
  readonly collect?: { readonly name: string; readonly size: number; readonly parts: Buffer[] };
  /** A PAX or long-name header's body: held with its header until the member it describes is judged. */
  readonly meta?: 'pax' | 'longname';
  readonly metaParts?: Buffer[];
}

/** Streams a tar archive through, leaving out rejected members; counts what it kept and dropped. */
export class TarFilter extends Transform {
  /** Content of the captured members, by name. */
  readonly captured = new Map<string, Buffer>();
  /** Every member seen, in order. */
  readonly members: TarMember[] = [];
  keptBytes = 0;
  droppedBytes = 0;
  readonly #keep: (m: TarMember) => boolean;
  readonly #capture: (m: TarMember) => boolean;
  #buf: Buffer = Buffer.alloc(0);
  /** Headers (PAX, long name) waiting for the member they describe. */
  #pending: Buffer[] = [];
  #longName: string | undefined;
  #body: Body | undefined;
  #ended = false;

  constructor(options: TarFilterOptions = {}) {
    super();
    this.#keep = options.keep ?? (() => true);
    this.#capture = options.capture ?? (() => false);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    try {
      while (this.#step());
      done();
    } catch (error) {
      done(error as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    if (this.#buf.length > 0) this.#emit(this.#buf, true);
    done(this.#body && this.#body.left > 0 ? new Error('the image archive ended in the middle of a member') : null);
  }

  #emit(data: Buffer, keep: boolean): void {
    if (keep) {
      this.keptBytes += data.length;
      this.push(data);
    } else this.droppedBytes += data.length;
  }

  /** Consumes what it can of the buffer; false when it needs more bytes. */
  #step(): boolean {
    const body = this.#body;
    if (body) {
      const take = Math.min(body.left, this.#buf.length);
      if (take === 0) return false;
      const part = this.#buf.subarray(0, take);
      this.#buf = this.#buf.subarray(take);
      body.left -= take;
      if (body.metaParts) body.metaParts.push(part);
      else this.#emit(part, body.keep);
      if (body.collect) body.collect.parts.push(part);
      if (body.left === 0) this.#endBody(body);
      return true;
    }
    if (this.#ended) {
      // The end-of-archive blocks and Go's padding: passed on as they are.
      const rest = this.#buf;
      this.#buf = Buffer.alloc(0);
      if (rest.length === 0) return false;
      this.#emit(rest, true);
      return false;
    }
    if (this.#buf.length < BLOCK) return false;
    const header = this.#buf.subarray(0, BLOCK);
    this.#buf = this.#buf.subarray(BLOCK);
    if (header.every((b) => b === 0)) {
      this.#ended = true;
      this.#emit(header, true);
      return true;
    }
    const size = parseSize(header.subarray(124, 136));
    const type = String.fromCharCode(header[156] ?? 0);
    const padded = size + ((BLOCK - (size % BLOCK)) % BLOCK);
    if (type === 'x' || type === 'L') {
      // Describes the next member: held, with its body, until that member is judged.
      this.#pending.push(Buffer.from(header));
      this.#body = { left: padded, keep: false, meta: type === 'x' ? 'pax' : 'longname', metaParts: [] };
      if (padded === 0) this.#endBody(this.#body);
      return true;
    }
    const prefix = text(header, 345, 155);
    const plain = prefix ? `${prefix}/${text(header, 0, 100)}` : text(header, 0, 100);
    const name = (this.#longName ?? plain).replace(/^\.\//, '');
    this.#longName = undefined;
    const member: TarMember = { name, type: type === '\0' ? '0' : type, size };
    this.members.push(member);
    const keep = this.#keep(member);
    for (const h of this.#pending) this.#emit(h, keep);
    this.#pending = [];
    this.#emit(header, keep);
    const collect = this.#capture(member) ? { name, size, parts: [] as Buffer[] } : undefined;
    this.#body = { left: padded, keep, ...(collect ? { collect } : {}) };
    if (padded === 0) this.#endBody(this.#body);
    return true;
  }

  #endBody(body: Body): void {
    this.#body = undefined;
    if (body.collect) this.captured.set(body.collect.name, Buffer.concat(body.collect.parts).subarray(0, body.collect.size));
    if (body.metaParts) {
      const content = Buffer.concat(body.metaParts);
      this.#pending.push(content);
      if (body.meta === 'pax') this.#longName = paxPath(content) ?? this.#longName;
      else this.#longName = content.toString('utf8').replace(/\0.*$/s, '');
    }
  }
}
