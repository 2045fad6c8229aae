/** Image shipping, the pure parts: chain ids, which archive members travel, and the tar filter. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { chainIds, learnLayerNames, missingBytes, needsLayerNames, parseHostLayers, planImageShip } from '../../lib/ship/image.ts';
import { parseSize, paxPath, TarFilter } from '../../lib/ship/tar.ts';

const sha = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`;
const hex = (c: string) => c.repeat(64);
const [A, B, C] = [sha('a'), sha('b'), sha('c')];

describe('chainIds', () => {
  it('the first is the diff id, each next hashes the parent chain and the diff id', () => {
    const [c0, c1, c2] = chainIds([A, B, C]);
    expect(c0).toBe(A);
    expect(c1).toBe(sha(`${A} ${B}`));
    expect(c2).toBe(sha(`${c1} ${C}`));
  });
  it('the same layer on another base is another chain', () => expect(chainIds([B])[0]).not.toBe(chainIds([A, B])[1]));
});

describe('parseHostLayers', () => {
  it('collects image ids and the chain ids of every prefix', () => {
    const { images, chains } = parseHostLayers(`sha256:i1 ${A},${B},\nsha256:i2 ${C},\n\n`);
    expect([...images]).toEqual(['sha256:i1', 'sha256:i2']);
    expect(chains).toEqual(new Set([A, ...chainIds([A, B]).slice(1), C]));
  });
});

describe('planImageShip', () => {
  const chains = chainIds([A, B, C]);
  const host = new Set(chains.slice(0, 2)); // the host has the first two layers
  const known = new Map([
    [hex('1'), chains[0] as string],
    [hex('2'), chains[1] as string],
    [hex('3'), chains[2] as string],
  ]);
  it('leaves out the classic layer files of layers the host has, and nothing else', () => {
    const plan = planImageShip([A, B, C], host, known);
    expect(plan.layers.map((l) => l.onHost)).toEqual([true, true, false]);
    expect(plan.keep(`${hex('1')}/layer.tar`)).toBe(false);
    expect(plan.keep(`${hex('2')}/layer.tar`)).toBe(false);
    expect(plan.keep(`${hex('3')}/layer.tar`)).toBe(true);
    expect(plan.keep(`${hex('1')}/json`)).toBe(true);
    expect(plan.keep('manifest.json')).toBe(true);
  });
  it('a layer folder it has not learned travels', () => expect(planImageShip([A, B, C], host, new Map()).keep(`${hex('1')}/layer.tar`)).toBe(true));
  it('OCI archives name layers by digest', () => {
    const plan = planImageShip([A, B, C], host, new Map());
    expect(plan.keep(`blobs/sha256/${A.slice(7)}`)).toBe(false);
    expect(plan.keep(`blobs/sha256/${C.slice(7)}`)).toBe(true);
  });
  it('a layer whose content appears twice travels (the archive links the copies)', () => {
    const dup = chainIds([A, B, A]);
    const plan = planImageShip([A, B, A], new Set(dup.slice(0, 2)), new Map([[hex('1'), dup[0] as string]]));
    expect(plan.keep(`${hex('1')}/layer.tar`)).toBe(true);
  });
  it('a host with none of the layers gets everything', () => {
    expect(planImageShip([A, B, C], new Set(), known).keep(`${hex('1')}/layer.tar`)).toBe(true);
  });
  it('asks for the folder names only when the host has a layer whose name is not known', () => {
    const plan = planImageShip([A, B, C], host, new Map());
    expect(needsLayerNames(plan, new Map())).toBe(true);
    expect(needsLayerNames(plan, known)).toBe(false);
    expect(needsLayerNames(planImageShip([A, B, C], new Set(), new Map()), new Map())).toBe(false);
  });
});

describe('learnLayerNames', () => {
  it('maps each layer folder of a classic manifest to its chain id', () => {
    const manifest = Buffer.from(JSON.stringify([{ Config: `${hex('c')}.json`, Layers: [`${hex('1')}/layer.tar`, `${hex('2')}/layer.tar`] }]));
    const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [A, B] } }));
    const learned = learnLayerNames(manifest, (p) => (p === `${hex('c')}.json` ? config : undefined));
    expect([...learned]).toEqual([
      [hex('1'), A],
      [hex('2'), chainIds([A, B])[1]],
    ]);
  });
  it('nothing to learn without a manifest, or from OCI names', () => {
    expect(learnLayerNames(undefined, () => undefined).size).toBe(0);
    const manifest = Buffer.from(JSON.stringify([{ Config: 'blobs/sha256/c', Layers: [`blobs/sha256/${A.slice(7)}`] }]));
    expect(learnLayerNames(manifest, () => Buffer.from('{"rootfs":{"diff_ids":[]}}')).size).toBe(0);
  });
});

describe('missingBytes', () => {
  it('sums the newest non-empty steps, one per missing layer', () => {
    expect(missingBytes([0, 120, 0, 3000, 100_000], 2)).toBe(3120);
    expect(missingBytes([0, 120, 0, 3000, 100_000], 0)).toBe(0);
    expect(missingBytes([5], 3)).toBe(5);
  });
});

describe('TarFilter', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-tar-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const long = `${'d'.repeat(60)}/${'e'.repeat(60)}/file.txt`;
  mkdirSync(join(dir, 'in', 'd'.repeat(60), 'e'.repeat(60)), { recursive: true });
  mkdirSync(join(dir, 'in', 'keep'));
  writeFileSync(join(dir, 'in', 'keep', 'a.txt'), 'kept');
  writeFileSync(join(dir, 'in', 'drop.bin'), Buffer.alloc(10_000, 7));
  writeFileSync(join(dir, 'in', long), 'long name');
  writeFileSync(join(dir, 'in', 'manifest.json'), '[{"Layers":[]}]');

  const filterThrough = async (format: string, keep: (name: string) => boolean, chunk = 333) => {
    const archive = execFileSync('tar', ['-c', '-f', '-', `--format=${format}`, '-C', join(dir, 'in'), '.']);
    const filter = new TarFilter({ keep: (m) => keep(m.name), capture: (m) => m.name === 'manifest.json' });
    const parts: Buffer[] = [];
    filter.on('data', (b: Buffer) => parts.push(b));
    const chunks = Array.from({ length: Math.ceil(archive.length / chunk) }, (_, i) => archive.subarray(i * chunk, (i + 1) * chunk));
    await new Promise((resolve, reject) => Readable.from(chunks).pipe(filter).on('finish', resolve).on('error', reject));
    const out = Buffer.concat(parts);
    writeFileSync(join(dir, `out-${format}.tar`), out);
    const listed = execFileSync('tar', ['-t', '-f', join(dir, `out-${format}.tar`)], { encoding: 'utf8' }).split('\n').filter(Boolean).map((n) => n.replace(/^\.\//, ''));
    return { filter, out, archive, listed };
  };

  it.each(['gnu', 'pax', 'ustar'])('%s archives: dropped members vanish whole, kept ones stay readable, long names included', async (format) => {
    if (format === 'ustar') writeFileSync(join(dir, 'in', long), 'long name'); // ustar splits it into prefix and name
    const { filter, out, archive, listed } = await filterThrough(format, (n) => n !== 'drop.bin');
    expect(listed).not.toContain('drop.bin');
    expect(listed).toContain('keep/a.txt');
    expect(listed).toContain(long);
    expect(filter.members.map((m) => m.name)).toContain(long);
    expect(filter.droppedBytes).toBeGreaterThanOrEqual(10_000);
    expect(filter.keptBytes + filter.droppedBytes).toBe(archive.length);
    expect(out.length).toBe(filter.keptBytes);
    expect(filter.captured.get('manifest.json')?.toString()).toBe('[{"Layers":[]}]');
    expect(execFileSync('tar', ['-x', '-O', '-f', join(dir, `out-${format}.tar`), `./keep/a.txt`], { encoding: 'utf8' })).toBe('kept');
  });

  it('a member with a long name can be dropped with its long-name header', async () => {
    const { listed } = await filterThrough('gnu', (n) => n !== long, 512);
    expect(listed).not.toContain(long);
    expect(listed).toContain('drop.bin');
  });

  it('an archive cut in the middle of a member is an error', async () => {
    const archive = execFileSync('tar', ['-c', '-f', '-', '-C', join(dir, 'in'), 'drop.bin']).subarray(0, 3000);
    const filter = new TarFilter();
    filter.resume();
    await expect(new Promise((resolve, reject) => Readable.from([archive]).pipe(filter).on('finish', resolve).on('error', reject))).rejects.toThrow(
      'ended in the middle of a member',
    );
  });

  it('sizes: octal, and base-256 for members over 8 GiB', () => {
    expect(parseSize(Buffer.from('00000001750\0'))).toBe(1000);
    const big = Buffer.alloc(12);
    big[0] = 0x80;
    big.writeUIntBE(10 * 2 ** 30, 6, 6);
    expect(parseSize(big)).toBe(10 * 2 ** 30);
  });

  it('reads the path record of a PAX header', () => {
    expect(paxPath(Buffer.from('20 mtime=1700000000\n14 path=a/b/c\n'))).toBe('a/b/c');
    expect(paxPath(Buffer.from('12 uid=1000\n'))).toBeUndefined();
  });
});
