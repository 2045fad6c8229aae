/**
 * Compressed ship streams (DEPLOY_SHIP_COMPRESSION, docs/deploy-vps.md): the delta tar and the
 * docker archive travel through zstd where this machine and the host both have it, else gzip, and
 * are unpacked on the host as they arrive. Which one is settled once per host, in preflight, by
 * asking the host what it can unpack. zstd runs with --adapt: it packs at level 1 (~200 MB/s on one
 * core) while the link takes all it writes and climbs towards level 15 while the link is the
 * bottleneck, so a slow link gets the smaller stream and a fast one is not held up. gzip runs at
 * level 1 (~40 MB/s), which a link faster than ~300 Mbit/s beats (set `none` there,
 * docs/benchmarks.md).
 */
import { createGzip, constants } from 'node:zlib';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { unpackersProbe, type Packing } from '../commands/delta.ts';
import { SkiffError } from '../core/errors.ts';
import type { Config } from '../config/config.ts';
import type { Host } from '../host/host.ts';
import { streamFrom, run } from '../host/local.ts';

/** How a ship stream travels. */
export type ShipCompression = Packing;
/** DEPLOY_SHIP_COMPRESSION: `auto` takes the best both ends have (none to this machine itself). */
export type ShipCompressionSetting = Config['shipCompression'];

/** zstd's flags here: a level that follows the link (1 to 15), as many threads as cores, quiet. */
export const ZSTD_ARGS = ['--adapt=min=1,max=15', '-T0', '-q', '-c'] as const;
export const GZIP_LEVEL = 1;

/** What a host can unpack, as the probe prints it. */
export interface HostUnpackers {
  /** `zstd` is there (docker load reads through it). */
  readonly zstd: boolean;
  /** Its tar runs zstd itself (`tar --zstd`, GNU tar 1.31 and later). */
  readonly tarZstd: boolean;
  /** Its tar reads gzip (`tar -z`, with gzip there). */
  readonly tarGzip: boolean;
}

export const parseUnpackers = (stdout: string): HostUnpackers => {
  const lines = new Set(stdout.split('\n').map((l) => l.trim()));
  return { zstd: lines.has('zstd'), tarZstd: lines.has('tar-zstd'), tarGzip: lines.has('tar-gzip') };
};

/** The two ends' answer: which compression each kind of stream uses to this host. */
export interface Negotiated {
  readonly tar: ShipCompression;
  readonly docker: ShipCompression;
  /** One line for the progress tree. */
  readonly said: string;
}

/**
 * Picks the compression of each stream from the setting, whether the host is this machine, what
 * this machine has (`zstd`) and what the host can unpack. Pure. An explicit method the host cannot
 * unpack for the stream its runtime ships (a tar for `process`, a docker archive for `docker`) is an
 * error naming the fix; `auto` falls back quietly.
 */
export const pickCompression = (
  setting: ShipCompressionSetting,
  hostName: string,
  local: boolean,
  hereZstd: boolean,
  host: HostUnpackers,
  runtime: Config['runtime'] = 'process',
): Negotiated => {
  if (setting === 'none' || (setting === 'auto' && local)) {
    return { tar: 'none', docker: 'none', said: local && setting === 'auto' ? 'ship stream: not compressed (the host is this machine)' : 'ship stream: not compressed (DEPLOY_SHIP_COMPRESSION=none)' };
  }
  if (setting === 'zstd') {
    if (!hereZstd) throw new SkiffError('DEPLOY_SHIP_COMPRESSION=zstd, and this machine has no zstd: install it here (apt-get install zstd, brew install zstd) or set DEPLOY_SHIP_COMPRESSION=auto', 2);
    if (!host.zstd || (runtime === 'process' && !host.tarZstd)) {
      throw new SkiffError(`${hostName}: DEPLOY_SHIP_COMPRESSION=zstd, and the host ${host.zstd ? 'has a tar without --zstd' : 'has no zstd'}: install it there (apt-get install zstd; GNU tar 1.31 or later) or set DEPLOY_SHIP_COMPRESSION=auto`, 2);
    }
    return { tar: 'zstd', docker: 'zstd', said: 'ship stream: zstd --adapt' };
  }
  if (setting === 'gzip') {
    // docker load reads gzip by itself.
    if (runtime === 'process' && !host.tarGzip) throw new SkiffError(`${hostName}: DEPLOY_SHIP_COMPRESSION=gzip, and the host's tar cannot read gzip: install gzip there, or set DEPLOY_SHIP_COMPRESSION=auto`, 2);
    return { tar: 'gzip', docker: 'gzip', said: 'ship stream: gzip -1' };
  }
  // auto: zstd where both ends have it; gzip otherwise (docker load reads gzip by itself).
  const tar: ShipCompression = hereZstd && host.zstd && host.tarZstd ? 'zstd' : host.tarGzip ? 'gzip' : 'none';
  const docker: ShipCompression = hereZstd && host.zstd ? 'zstd' : 'gzip';
  const why = !hereZstd ? ' (no zstd on this machine)' : !host.zstd ? ' (no zstd on the host: apt-get install zstd there)' : '';
  const name = (c: ShipCompression) => (c === 'none' ? 'not compressed' : c === 'zstd' ? 'zstd --adapt' : 'gzip -1');
  const said = tar === docker ? `ship stream: ${name(tar)}${why}` : `ship stream: ${name(tar)} for files, ${name(docker)} for images${why}`;
  return { tar, docker, said };
};

/** Whether this machine has a zstd that takes ZSTD_ARGS (asked once: --adapt is zstd 1.3.6 and later). */
let hereZstd: Promise<boolean> | undefined;
const zstdHere = (): Promise<boolean> =>
  (hereZstd ??= run(['sh', '-c', `zstd ${ZSTD_ARGS.join(' ')} </dev/null >/dev/null`], { check: false, label: 'local' }).then(
    (r) => r.code === 0,
    () => false,
  ));

const negotiated = new WeakMap<Host, Promise<Negotiated>>();

/**
 * The compression of ship streams to a host: asked of the host once (preflight), the same answer
 * for the ship that follows.
 */
export const negotiateCompression = (host: Host, cfg: Pick<Config, 'shipCompression' | 'hosts' | 'runtime'>): Promise<Negotiated> => {
  const setting = cfg.shipCompression;
  // Only a lone `local` target is this machine (config refuses local beside others).
  const local = cfg.hosts.every((t) => t.kind === 'local');
  let found = negotiated.get(host);
  if (!found) {
    const asked = async (): Promise<Negotiated> => {
      if (setting === 'none' || (setting === 'auto' && local)) return pickCompression(setting, host.name, local, false, { zstd: false, tarZstd: false, tarGzip: false });
      const [here, out] = await Promise.all([zstdHere(), host.exec(unpackersProbe())]);
      return pickCompression(setting, host.name, local, here, parseUnpackers(out.stdout), cfg.runtime);
    };
    found = asked();
    // A failed answer is asked again next time (an explicit setting the host cannot meet, a lost connection).
    found.catch(() => negotiated.delete(host));
    negotiated.set(host, found);
  }
  return found;
};

/**
 * A stream compressed on this machine as it passes: zstd in its own process (on another core than
 * the SSH channel's encryption), gzip in zlib. `done` settles when the compressor has finished, and
 * rejects if it failed.
 */
export const compressed = (source: Readable, c: ShipCompression): { stream: Readable; done: Promise<void> } => {
  if (c === 'none') return { stream: source, done: Promise.resolve() };
  if (c === 'gzip') {
    const gzip = createGzip({ level: GZIP_LEVEL, strategy: constants.Z_DEFAULT_STRATEGY });
    source.on('error', (e) => gzip.destroy(e));
    // Settles when the gzip stream has ended or failed (or was destroyed by its reader).
    const done = finished(gzip);
    return { stream: source.pipe(gzip), done };
  }
  // A source that fails ends zstd's input, and zstd would close a frame that looks whole: the output
  // is cut with the failure instead, so the reader (the SSH channel) fails too, and `done` says why.
  let failure: Error | undefined;
  const zstd = streamFrom(['zstd', ...ZSTD_ARGS], process.cwd(), source);
  source.on('error', (e) => {
    failure ??= e;
    zstd.stdout.destroy(e);
  });
  return {
    stream: zstd.stdout,
    done: zstd.done.then(
      () => {
        if (failure !== undefined) throw failure;
      },
      (e: unknown) => {
        throw failure ?? e;
      },
    ),
  };
};
