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

/** The records of a PAX extended header (`path`, `size`, ...); lengths count bytes. */
export const paxRecords = (body: Buffer): Map<string, string> => {
  const records = new Map<string, string>();
  let at = 0;
  while (at < body.length) {
    const space = body.indexOf(0x20, at);
    const length = Number(body.subarray(at, space).toString('latin1'));
    if (space < 0 || !Number.isInteger(length) || length <= 0) break;
    const record = body.subarray(space + 1, at + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) records.set(record.slice(0, eq), record.slice(eq + 1));
    at += length;
  }
  return records;
};

/** The `path` record of a PAX extended header, if it has one. */
export const paxPath = (body: Buffer): string | undefined => paxRecords(body).get('path');

/** The body being passed or skipped: bytes left (padding included), and where they go. */
interface Body {
  left: number;
  readonly keep: boolean;
  readonly collect?: { readonly name: string; readonly size: number; readonly parts: Buffer[] };
  /** A PAX or long-name header's body: held with its header until the member it describes is judged. */
  readonly meta?: 'pax' | 'longname' | 'linkname';
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
  /** The next member's size from a PAX header (Go writes sizes over 8 GiB only there). */
  #paxSize: number | undefined;
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
    const cut = (this.#body && this.#body.left > 0) || this.#pending.length > 0 || (!this.#ended && this.members.length > 0);
    done(cut ? new Error('the image archive ended in the middle of a member') : null);
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
    const type = String.fromCharCode(header[156] ?? 0);
    const isMeta = type === 'x' || type === 'L' || type === 'K';
    const size = (!isMeta ? this.#paxSize : undefined) ?? parseSize(header.subarray(124, 136));
    if (!isMeta) this.#paxSize = undefined;
    const padded = size + ((BLOCK - (size % BLOCK)) % BLOCK);
    if (type === 'x' || type === 'L' || type === 'K') {
      // Describes the next member: held, with its body, until that member is judged.
      this.#pending.push(Buffer.from(header));
      this.#body = { left: padded, keep: false, meta: type === 'x' ? 'pax' : type === 'L' ? 'longname' : 'linkname', metaParts: [] };
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
      if (body.meta === 'pax') {
        const records = paxRecords(content);
        this.#longName = records.get('path') ?? this.#longName;
        const size = records.get('size');
        if (size !== undefined && /^\d+$/.test(size)) this.#paxSize = Number(size);
      } else if (body.meta === 'longname') this.#longName = content.toString('utf8').replace(/\0.*$/s, '');
    }
  }
}
