/**
 * Tar streams read as they pass. `TarReader` parses the headers (ustar prefix, PAX path and size,
 * GNU long names, base-256 sizes) and hands every byte back in order, each with what it belongs to;
 * `TarFilter` is built on it: it passes an archive through, leaving out the members a predicate
 * rejects (with any PAX or GNU long-name header that belongs to them), and collects the small members
 * it is asked to keep a copy of. Neither holds more than one header and one chunk (a PAX or long-name
 * body too): an image archive of any size streams through.
 */
import { Transform, type TransformCallback } from 'node:stream';

const BLOCK = 512;
/** The largest PAX or long-name body read (real ones are a few hundred bytes). */
const MAX_META = 1024 * 1024;
const EMPTY = Buffer.alloc(0);

/** A tar member as the reader sees it: its name, type flag and size. */
export interface TarMember {
  readonly name: string;
  readonly type: string;
  readonly size: number;
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

/** What the reader hands back, in archive order; the bytes of all events together are the archive. */
export type TarEvent =
  /** A PAX or GNU long-name header, or its whole body (padding included): they belong to the next member. */
  | { readonly kind: 'meta'; readonly bytes: Buffer }
  /** A member's header, with the name and size the headers before it gave it. */
  | { readonly kind: 'member'; readonly member: TarMember; readonly bytes: Buffer }
  /**
   * A piece of the member's body: `data` is its part within the member's size, the rest padding.
   * `done` marks the last piece (an empty one for an empty body).
   */
  | { readonly kind: 'body'; readonly bytes: Buffer; readonly data: Buffer; readonly done: boolean }
  /** The end-of-archive block, and everything after it (more zero blocks, Go's padding) as it arrives. */
  | { readonly kind: 'end'; readonly bytes: Buffer };

/** A PAX or long-name header's body: collected, since it names or sizes the member that follows. */
interface Meta {
  readonly type: string;
  readonly parts: Buffer[];
}

/** The body being read: bytes left (padding included) and, of them, content. */
interface Body {
  left: number;
  data: number;
  readonly meta?: Meta;
}

const isMeta = (type: string): boolean => type === 'x' || type === 'L' || type === 'K';

/** A pure streaming tar parser: feed it chunks as they arrive, act on the events it returns. */
export class TarReader {
  #buf: Buffer = EMPTY;
  #body: Body | undefined;
  #longName: string | undefined;
  /** The next member's size from a PAX header (Go writes sizes over 8 GiB only there). */
  #paxSize: number | undefined;
  /** A PAX or long-name header came and the member it describes has not. */
  #metaPending = false;
  #seenMember = false;
  #ended = false;

  /** The events a chunk completes. Throws on a header whose size is not a byte count (not tar, or damaged). */
  read(chunk: Buffer): TarEvent[] {
    if (this.#ended) return chunk.length > 0 ? [{ kind: 'end', bytes: chunk }] : [];
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    const events: TarEvent[] = [];
    while (this.#step(events));
    return events;
  }

  /** At the end of the stream: the bytes of a header cut short, and whether the archive ended whole. */
  end(): { readonly rest: Buffer; readonly whole: boolean } {
    const rest = this.#buf;
    this.#buf = EMPTY;
    return { rest, whole: !this.#body && !this.#metaPending && (this.#ended || !this.#seenMember) };
  }

  /** Consumes what it can of the buffer; false when it needs more bytes. */
  #step(events: TarEvent[]): boolean {
    const body = this.#body;
    if (body) {
      const take = Math.min(body.left, this.#buf.length);
      if (take === 0) return false;
      const bytes = this.#buf.subarray(0, take);
      this.#buf = this.#buf.subarray(take);
      body.left -= take;
      if (body.meta) body.meta.parts.push(bytes);
      else {
        const data = bytes.subarray(0, body.data);
        body.data -= data.length;
        events.push({ kind: 'body', bytes, data, done: body.left === 0 });
      }
      if (body.left === 0) {
        this.#body = undefined;
        if (body.meta) this.#endMeta(body.meta, events);
      }
      return true;
    }
    if (this.#buf.length < BLOCK) return false;
    const header = this.#buf.subarray(0, BLOCK);
    this.#buf = this.#buf.subarray(BLOCK);
    if (header.every((b) => b === 0)) {
      this.#ended = true;
      events.push({ kind: 'end', bytes: header });
      if (this.#buf.length > 0) events.push({ kind: 'end', bytes: this.#buf });
      this.#buf = EMPTY;
      return false;
    }
    const type = String.fromCharCode(header[156] ?? 0);
    const meta = isMeta(type);
    const size = (meta ? undefined : this.#paxSize) ?? parseSize(header.subarray(124, 136));
    // A size that is no count left the body length NaN, and the filter spun on that header forever.
    if (!Number.isSafeInteger(size) || size < 0) throw new Error(`not a tar archive, or a damaged one: a header gives ${size} as its size`);
    // A PAX or long-name body is held whole until its member comes: a huge one is no real archive.
    if (meta && size > MAX_META) throw new Error(`not a tar archive, or a damaged one: a ${size}-byte extended header`);
    if (!meta) this.#paxSize = undefined;
    const left = size + ((BLOCK - (size % BLOCK)) % BLOCK);
    if (meta) {
      this.#metaPending = true;
      // Copied: it is held until its member comes, and a source may reuse the chunk.
      events.push({ kind: 'meta', bytes: Buffer.from(header) });
      this.#startBody({ left, data: size, meta: { type, parts: [] } }, events);
      return true;
    }
    const prefix = text(header, 345, 155);
    const plain = prefix ? `${prefix}/${text(header, 0, 100)}` : text(header, 0, 100);
    const name = (this.#longName ?? plain).replace(/^\.\//, '');
    this.#longName = undefined;
    this.#metaPending = false;
    this.#seenMember = true;
    events.push({ kind: 'member', member: { name, type: type === '\0' ? '0' : type, size }, bytes: header });
    this.#startBody({ left, data: size }, events);
    return true;
  }

  #startBody(body: Body, events: TarEvent[]): void {
    if (body.left > 0) this.#body = body;
    else if (body.meta) this.#endMeta(body.meta, events);
    else events.push({ kind: 'body', bytes: EMPTY, data: EMPTY, done: true });
  }

  /** A PAX or long-name body is whole: passed on, and read for the next member's name and size. */
  #endMeta(meta: Meta, events: TarEvent[]): void {
    const content = Buffer.concat(meta.parts);
    events.push({ kind: 'meta', bytes: content });
    if (meta.type === 'x') {
      const records = paxRecords(content);
      this.#longName = records.get('path') ?? this.#longName;
      const size = records.get('size');
      if (size !== undefined && /^\d+$/.test(size)) this.#paxSize = Number(size);
    } else if (meta.type === 'L') this.#longName = content.toString('utf8').replace(/\0.*$/s, '');
  }
}

export interface TarFilterOptions {
  /** Whether a member travels on (default: every member). */
  readonly keep?: (m: TarMember) => boolean;
  /** Members whose content is kept in `captured` (small files such as manifest.json). */
  readonly capture?: (m: TarMember) => boolean;
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
  readonly #reader = new TarReader();
  /** Headers (PAX, long name) and their bodies, waiting for the member they describe. */
  #pending: Buffer[] = [];
  /** Whether the current member's body travels on, and its content so far when it is captured. */
  #member: { readonly keep: boolean; readonly capture?: { readonly name: string; readonly parts: Buffer[] } } = { keep: true };

  constructor(options: TarFilterOptions = {}) {
    super();
    this.#keep = options.keep ?? (() => true);
    this.#capture = options.capture ?? (() => false);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      for (const event of this.#reader.read(chunk)) this.#take(event);
      done();
    } catch (error) {
      done(error as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    const { rest, whole } = this.#reader.end();
    if (rest.length > 0) this.#emit(rest, true);
    done(whole ? null : new Error('the image archive ended in the middle of a member'));
  }

  #emit(data: Buffer, keep: boolean): void {
    if (keep) {
      this.keptBytes += data.length;
      this.push(data);
    } else this.droppedBytes += data.length;
  }

  #take(event: TarEvent): void {
    switch (event.kind) {
      case 'meta':
        this.#pending.push(event.bytes);
        return;
      case 'member': {
        const { member } = event;
        this.members.push(member);
        const keep = this.#keep(member);
        for (const h of this.#pending) this.#emit(h, keep);
        this.#pending = [];
        this.#emit(event.bytes, keep);
        this.#member = { keep, ...(this.#capture(member) ? { capture: { name: member.name, parts: [] } } : {}) };
        return;
      }
      case 'body': {
        const { keep, capture } = this.#member;
        if (event.bytes.length > 0) this.#emit(event.bytes, keep);
        capture?.parts.push(event.data);
        if (capture && event.done) this.captured.set(capture.name, Buffer.concat(capture.parts));
        return;
      }
      case 'end':
        this.#emit(event.bytes, true);
    }
  }
}
