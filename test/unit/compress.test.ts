/**
 * Compressed ship streams: which packing each end agrees on, the host commands that unpack (as
 * strings), and a round trip through this machine's real tar, zstd and gzip.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { loadImage } from '../../lib/commands/docker.ts';
import { unpackersProbe, unpackInto } from '../../lib/commands/delta.ts';
import { cmd, render, type Cmd } from '../../lib/core/cmd.ts';
import { SkiffError } from '../../lib/core/errors.ts';
import { LocalHost, streamFrom } from '../../lib/host/local.ts';
import type { ExecOptions } from '../../lib/host/host.ts';
import { sendPackedTar } from '../../lib/ship/folder-ship.ts';
import { compressed, negotiateCompression, parseUnpackers, pickCompression, type HostUnpackers } from '../../lib/ship/compress.ts';
import { ok, RecordingHost, when } from '../support/recording-host.ts';

const ALL: HostUnpackers = { zstd: true, tarZstd: true, tarGzip: true };
const GZIP_ONLY: HostUnpackers = { zstd: false, tarZstd: false, tarGzip: true };
const NOTHING: HostUnpackers = { zstd: false, tarZstd: false, tarGzip: false };

describe('pickCompression', () => {
  it('auto: zstd where both ends have it, gzip where the host lacks zstd or this machine does, nothing to this machine', () => {
    expect(pickCompression('auto', 'web1', false, true, ALL)).toEqual({ tar: 'zstd', docker: 'zstd', said: 'ship stream: zstd --adapt' });
    expect(pickCompression('auto', 'web1', false, true, GZIP_ONLY)).toEqual({
      tar: 'gzip',
      docker: 'gzip',
      said: 'ship stream: gzip -1 (no zstd on the host: apt-get install zstd there)',
    });
    expect(pickCompression('auto', 'web1', false, false, ALL).said).toBe('ship stream: gzip -1 (no zstd on this machine)');
    expect(pickCompression('auto', 'local', true, true, ALL)).toEqual({ tar: 'none', docker: 'none', said: 'ship stream: not compressed (the host is this machine)' });
  });

  it('auto with a zstd but a tar without --zstd: files go gzip-packed, images through zstd', () => {
    expect(pickCompression('auto', 'web1', false, true, { zstd: true, tarZstd: false, tarGzip: true })).toEqual({
      tar: 'gzip',
      docker: 'zstd',
      said: 'ship stream: gzip -1 for files, zstd --adapt for images',
    });
  });

  it('auto on a host whose tar reads no gzip either: files plain, images gzip (docker load reads it)', () => {
    expect(pickCompression('auto', 'web1', false, true, NOTHING)).toMatchObject({ tar: 'none', docker: 'gzip' });
  });

  it('an explicit packing a host cannot unpack is one line with the fix, exit 2', () => {
    const fails = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(SkiffError);
        return { message: (e as SkiffError).message, code: (e as SkiffError).exitCode };
      }
      throw new Error('did not throw');
    };
    expect(fails(() => pickCompression('zstd', 'deploy@web1:22', false, true, GZIP_ONLY))).toEqual({
      message: 'deploy@web1:22: DEPLOY_SHIP_COMPRESSION=zstd, and the host has no zstd: install it there (apt-get install zstd; GNU tar 1.31 or later) or set DEPLOY_SHIP_COMPRESSION=auto',
      code: 2,
    });
    expect(fails(() => pickCompression('zstd', 'web1', false, true, { zstd: true, tarZstd: false, tarGzip: true })).message).toContain('has a tar without --zstd');
    expect(fails(() => pickCompression('zstd', 'web1', false, false, ALL)).message).toMatch(/^DEPLOY_SHIP_COMPRESSION=zstd, and this machine has no zstd/);
    expect(fails(() => pickCompression('gzip', 'web1', false, true, NOTHING)).message).toContain("the host's tar cannot read gzip");
    for (const m of [fails(() => pickCompression('zstd', 'web1', false, true, NOTHING)).message]) expect(m).not.toContain('\n');
  });

  it('explicit settings hold where they can, `none` everywhere', () => {
    expect(pickCompression('gzip', 'web1', false, true, ALL)).toMatchObject({ tar: 'gzip', docker: 'gzip' });
    expect(pickCompression('zstd', 'local', true, true, ALL)).toMatchObject({ tar: 'zstd', docker: 'zstd' });
    expect(pickCompression('none', 'web1', false, true, ALL)).toEqual({ tar: 'none', docker: 'none', said: 'ship stream: not compressed (DEPLOY_SHIP_COMPRESSION=none)' });
  });

  it('a docker host is asked only for what docker load needs: zstd for zstd, nothing for gzip', () => {
    expect(pickCompression('zstd', 'web1', false, true, { zstd: true, tarZstd: false, tarGzip: false }, 'docker')).toMatchObject({ docker: 'zstd' });
    expect(pickCompression('gzip', 'web1', false, true, NOTHING, 'docker')).toMatchObject({ docker: 'gzip' });
    expect(() => pickCompression('zstd', 'web1', false, true, NOTHING, 'docker')).toThrow(/the host has no zstd/);
  });
});

describe('the host commands', () => {
  it('unpack as tar reads them, the folder quoted', () => {
    expect(render(unpackInto("/srv/a b/it's.partial"))).toBe(`sh -c 'tar -x -f - -C "$1"' sh '/srv/a b/it'\\''s.partial'`);
    expect(render(unpackInto('/srv/r.partial', 'zstd'))).toBe(`sh -c 'tar -x "$2" -f - -C "$1"' sh /srv/r.partial --zstd`);
    expect(render(unpackInto('/srv/r.partial', 'gzip'))).toBe(`sh -c 'tar -x "$2" -f - -C "$1"' sh /srv/r.partial -z`);
    expect(render(loadImage())).toBe('docker load');
    expect(render(loadImage('gzip'))).toBe('docker load');
    expect(render(loadImage('zstd'))).toBe(`sh -c 'zstd -dcq | docker load' sh`);
  });

  it('the probe only reads, and its answer is read line by line', () => {
    expect(unpackersProbe().reads).toBe(true);
    expect(parseUnpackers('zstd\ntar-zstd\ntar-gzip\n')).toEqual(ALL);
    expect(parseUnpackers('tar-gzip\n')).toEqual(GZIP_ONLY);
    expect(parseUnpackers('')).toEqual(NOTHING);
    expect(parseUnpackers('zstd: not found\n')).toEqual(NOTHING);
  });

  it('the probe, run by this machine, finds what it has', async () => {
    const found = parseUnpackers((await new LocalHost().exec(unpackersProbe())).stdout);
    expect(found).toEqual(ALL); // test/infra/up.sh installs zstd
  });
});

describe('negotiateCompression', () => {
  const target = (kind: 'local' | 'ssh') =>
    kind === 'local' ? ({ kind: 'local' } as const) : ({ kind: 'ssh', user: 'deploy', host: 'web1', port: 22 } as const);

  it('asks a host once, and never this machine under auto', async () => {
    const host = new RecordingHost([when('tar-zstd', ok('zstd\ntar-zstd\ntar-gzip\n'))]);
    const cfg = { shipCompression: 'auto', hosts: [target('ssh')], runtime: 'process' } as const;
    expect((await negotiateCompression(host, cfg)).tar).toBe('zstd');
    expect((await negotiateCompression(host, cfg)).tar).toBe('zstd');
    expect(host.commands.filter((c) => c.includes('tar-zstd'))).toHaveLength(1);
    const local = new RecordingHost([]);
    expect((await negotiateCompression(local, { shipCompression: 'auto', hosts: [target('local')], runtime: 'process' })).tar).toBe('none');
    expect(local.commands).toEqual([]);
  });

  it('a refusal is asked again next time (the host may have been fixed)', async () => {
    const host = new RecordingHost([when('tar-zstd', ok('tar-gzip\n'))]);
    const cfg = { shipCompression: 'zstd', hosts: [target('ssh')], runtime: 'process' } as const;
    await expect(negotiateCompression(host, cfg)).rejects.toThrow(/has no zstd/);
    await expect(negotiateCompression(host, cfg)).rejects.toThrow(/has no zstd/);
    expect(host.commands.filter((c) => c.includes('tar-zstd'))).toHaveLength(2);
  });
});

describe('compressed streams through real tar', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-compress-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(['zstd', 'gzip', 'none'] as const)('%s: a tar of a folder arrives whole, and smaller when packed', async (packing) => {
    const src = join(dir, `src-${packing}`);
    const out = join(dir, `out-${packing}`);
    execFileSync('mkdir', ['-p', src, out]);
    const text = 'the same line, over and over\n'.repeat(50_000);
    writeFileSync(join(src, 'a.txt'), text);
    const tar = streamFrom(['tar', '-c', '-f', '-', 'a.txt'], src);
    const packed = compressed(tar.stdout, packing);
    let bytes = 0;
    const counted = packed.stream.on('data', (b: Buffer) => (bytes += b.length));
    const host = new LocalHost();
    await Promise.all([host.exec(unpackInto(out, packing), { stdin: counted }), tar.done, packed.done]);
    expect(readFileSync(join(out, 'a.txt'), 'utf8')).toBe(text);
    if (packing === 'none') expect(bytes).toBeGreaterThan(text.length);
    else expect(bytes).toBeLessThan(text.length / 20);
  });

  it('a source that fails makes the packed stream fail, and the host refuses the cut archive', async () => {
    const out = join(dir, 'cut');
    execFileSync('mkdir', ['-p', out]);
    for (const packing of ['zstd', 'gzip'] as const) {
      const source = new Readable({ read() {} });
      source.push(Buffer.alloc(10_000, 1));
      const packed = compressed(source, packing);
      const unpack = new LocalHost().exec(unpackInto(out, packing), { stdin: packed.stream, check: false });
      setTimeout(() => source.destroy(new Error('the build tar broke')), 20);
      const [r, done] = await Promise.all([unpack, packed.done.then(() => 'ok', (e: Error) => e.message)]);
      expect(r.code).not.toBe(0);
      expect(done).toBe('the build tar broke');
    }
  });
});

describe('a host that stops reading', () => {
  it.each(['zstd', 'gzip', 'none'] as const)('%s: the ship fails at once, and the local tar and compressor stop', async (packing) => {
    const dir = mkdtempSync(join(tmpdir(), 'skiff-stop-reading-'));
    try {
      writeFileSync(join(dir, 'big.bin'), randomBytes(32 * 1024 * 1024));
      const tar = streamFrom(['tar', '-c', '-f', '-', 'big.bin'], dir);
      // The host's tar reads a little and fails, as one on a full disk does.
      class FullDisk extends LocalHost {
        override exec(_c: Cmd, o?: ExecOptions) {
          return super.exec(cmd('sh', '-c', 'head -c 100 >/dev/null; exit 3'), o);
        }
      }
      const failing = new FullDisk();
      const counter = { bytes: 0 };
      const t0 = Date.now();
      await expect(sendPackedTar(failing, join(dir, 'out'), { stream: tar.stdout, done: tar.done }, packing, counter)).rejects.toThrow(/exit(ed)? (code )?3|status 3|\b3\b/);
      // Before, it waited for the blocked tar and compressor for ever.
      expect(Date.now() - t0).toBeLessThan(10_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 20_000);
});
