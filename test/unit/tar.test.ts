/**
 * The one tar reader under the image filter and the backup digest: every byte of the archive comes
 * back, in order, with the member it belongs to, whatever the chunks; names and sizes as GNU tar
 * and Go write them; damaged archives refused.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TarReader, type TarEvent, type TarMember } from '../../lib/ship/tar.ts';

/** A ustar header as a test writes it: octal size unless `size` is the raw field. */
const header = (name: string, type: string, size: number | Buffer, prefix = ''): Buffer => {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  if (Buffer.isBuffer(size)) size.copy(h, 124);
  else h.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  h.write(type, 156, 'latin1');
  h.write('ustar\x0000', 257, 'latin1');
  h.write(prefix, 345, 155, 'utf8');
  return h;
};
const padded = (b: Buffer) => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
const file = (name: string, content: string, prefix = '') => Buffer.concat([header(name, '0', Buffer.byteLength(content), prefix), padded(Buffer.from(content))]);
/** A PAX extended header with its records (each record's length counts itself). */
const pax = (records: Record<string, string>): Buffer => {
  const body = Buffer.from(
    Object.entries(records)
      .map(([k, v]) => {
        const rest = ` ${k}=${v}\n`;
        let n = rest.length + 1;
        while (`${n}${rest}`.length !== n) n++;
        return `${n}${rest}`;
      })
      .join(''),
  );
  return Buffer.concat([header('PaxHeaders/x', 'x', body.length), padded(body)]);
};
const END = Buffer.alloc(1024);

/** Reads an archive in pieces of `size` bytes: the events, the members with their content, and the end. */
const readAll = (archive: Buffer, size: number) => {
  const reader = new TarReader();
  const events: TarEvent[] = [];
  for (let i = 0; i < archive.length; i += size) events.push(...reader.read(archive.subarray(i, i + size)));
  const members: (TarMember & { content: string })[] = [];
  for (const e of events) {
    if (e.kind === 'member') members.push({ ...e.member, content: '' });
    const last = members.at(-1);
    if (e.kind === 'body' && last) last.content += e.data.toString();
  }
  return { events, members, ...reader.end() };
};

describe('TarReader', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-tar-reader-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const long = `${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(110)}.txt`;
  mkdirSync(join(dir, 'in', 'd'.repeat(60), 'e'.repeat(60)), { recursive: true });
  writeFileSync(join(dir, 'in', long), 'long name');
  writeFileSync(join(dir, 'in', 'empty'), '');
  writeFileSync(join(dir, 'in', 'block'), 'b'.repeat(512));
  writeFileSync(join(dir, 'in', 'odd'), 'o'.repeat(70_001));

  it.each(['gnu', 'pax'])('%s archives: every byte comes back in order, the same members whatever the pieces', (format) => {
    const archive = execFileSync('tar', ['-c', '-f', '-', `--format=${format}`, '-C', join(dir, 'in'), 'empty', 'block', 'odd', long]);
    const whole = readAll(archive, archive.length);
    expect(whole.whole).toBe(true);
    expect(whole.rest.length).toBe(0);
    expect(whole.members.map(({ name, type, size }) => ({ name, type, size }))).toEqual([
      { name: 'empty', type: '0', size: 0 },
      { name: 'block', type: '0', size: 512 },
      { name: 'odd', type: '0', size: 70_001 },
      { name: long, type: '0', size: 9 },
    ]);
    expect(whole.members.map((m) => m.content.length)).toEqual([0, 512, 70_001, 9]);
    for (const size of [1, 511, 512, 513, 4096]) {
      const pieces = readAll(archive, size);
      expect(Buffer.concat(pieces.events.map((e) => e.bytes)).equals(archive)).toBe(true);
      expect(pieces.members).toEqual(whole.members);
      expect(pieces.events.filter((e) => e.kind === 'body' && e.done)).toHaveLength(4);
    }
  });

  it('names: the ustar prefix joined, ./ left off, a GNU long name and a PAX path over the header', () => {
    const longName = Buffer.from('x/long\0');
    const archive = Buffer.concat([
      file('name', 'p', 'pre/fix'),
      file('./dot', 'd'),
      header('././@LongLink', 'L', longName.length),
      padded(longName),
      file('x/trunc', 'l'),
      pax({ path: './x/from-pax' }),
      file('x/ignored', 'x'),
      END,
    ]);
    expect(readAll(archive, 100).members.map((m) => m.name)).toEqual(['pre/fix/name', 'dot', 'x/long', 'x/from-pax']);
  });

  it('sizes: a PAX size over the header one (for the next member only), base-256 fields', () => {
    const b256 = Buffer.alloc(12);
    b256[0] = 0x80;
    b256.writeUIntBE(3, 6, 6);
    const archive = Buffer.concat([
      pax({ size: '600' }),
      header('big', '0', 0),
      padded(Buffer.alloc(600, 97)),
      file('next', 'n'),
      header('b256', '0', b256),
      padded(Buffer.from('abc')),
      END,
    ]);
    const { members, whole } = readAll(archive, 333);
    expect(members.map(({ name, size, content }) => [name, size, content.length])).toEqual([
      ['big', 600, 600],
      ['next', 1, 1],
      ['b256', 3, 3],
    ]);
    expect(whole).toBe(true);
  });

  it('hands back the end-of-archive block and all after it as it is, without reading it', () => {
    const archive = Buffer.concat([file('a', 'a'), Buffer.alloc(512), file('after', 'hidden'), Buffer.from('junk')]);
    const { events, members } = readAll(archive, 700);
    expect(members.map((m) => m.name)).toEqual(['a']);
    expect(Buffer.concat(events.filter((e) => e.kind === 'end').map((e) => e.bytes)).equals(archive.subarray(1024))).toBe(true);
  });

  it.each<[string, Buffer, boolean, number]>([
    ['a whole archive', Buffer.concat([file('a', 'a'), END]), true, 0],
    ['no member at all, a few bytes', Buffer.from('hello'), true, 5],
    ['cut in a member body', Buffer.concat([file('a', 'a'.repeat(600))]).subarray(0, 800), false, 0],
    ['cut between members', file('a', 'a'), false, 0],
    ['cut in a header', Buffer.concat([file('a', 'a'), header('b', '0', 1)]).subarray(0, 1100), false, 1100 - 1024],
    ['a PAX header and no member', Buffer.concat([pax({ path: 'p' }), END]), false, 0],
  ])('end: %s', (_what, archive, whole, rest) => {
    const r = readAll(archive, 97);
    expect([r.whole, r.rest.length]).toEqual([whole, rest]);
  });

  it.each([
    ['no number', Buffer.from('zz\0')],
    ['negative', Buffer.from('-5\0')],
  ])('refuses a header whose size is %s (the filter used to spin on one forever)', (_what, field) => {
    expect(() => new TarReader().read(header('x', '0', field))).toThrow('not a tar archive, or a damaged one');
  });

  it.each(['L', 'x'])('refuses a %s header whose body would be over 1 MiB (it is held whole in memory)', (type) => {
    expect(() => new TarReader().read(header('././@LongLink', type, 2 * 1024 * 1024))).toThrow('not a tar archive, or a damaged one');
  });
});
