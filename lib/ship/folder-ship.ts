/**
 * Shipping a release folder (the process runtime): against the live release's manifest, only the
 * files whose content the host lacks travel, in one tar stream; the rest are hard links to the live
 * release's files (lib/ship/delta.ts). Without a live manifest the whole folder travels. Either way
 * the release is built in `<id>.partial`, its file count checked, then renamed; its manifest is
 * kept for the next deploy.
 */
import { existsSync } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { finishRelease, linkInto, liveManifestAndFiles, seedFromLive, unpackInto, updateManifest } from '../commands/delta.ts';
import type { Config } from '../config/config.ts';
import { cmd, seq } from '../core/cmd.ts';
import { SkiffError } from '../core/errors.ts';
import type { Layout } from '../core/paths.ts';
import { DEADLINE, type Host } from '../host/host.ts';
import { releaseEntriesTar } from './build.ts';
import { describeLeftOut } from './ignore.ts';
import { checkLiveAgainstHost, formatBytes, manifestChanges, manifestTotals, nulList, parseLiveListing, parseManifest, planDelta, serializeManifest } from './delta.ts';
import { releaseRules, walkRelease, type ReleaseWalk } from './manifest.ts';
import { compressed, negotiateCompression, type ShipCompression } from './compress.ts';

/** What a ship sent: bytes (counted at the SSH channel), files or layers sent, and those the host had. */
export interface Shipped {
  readonly bytes: number;
  readonly files: number;
  readonly reused: number;
  /** How the stream was packed (absent: an image the host had already, or a record from an earlier skiff). */
  readonly packing?: 'zstd' | 'gzip' | 'none';
}

/** Which release a ship makes, and the live one it may take files from. */
export interface ShipSpec {
  readonly id: string;
  readonly version: string;
  /** The release that serves now, if any. */
  readonly liveRelease: string | undefined;
  /** Check the live release's files by sha256 (`deploy-vps --verify`), not only by size. */
  readonly verify?: boolean;
}

/**
 * Sends a tar stream into a folder on the host, packed as it passes, and counts the bytes. A host
 * that stops reading (its tar failed: a full disk) leaves the local tar and compressor blocked on
 * full pipes: their streams are destroyed, which stops them. All three settle before this returns,
 * so the caller may remove the folder; the host's failure says most and is thrown first.
 */
export const sendPackedTar = async (host: Host, dir: string, tar: { stream: Readable; done: Promise<void> }, packing: ShipCompression, counter: { bytes: number }): Promise<void> => {
  const packed = compressed(tar.stream, packing);
  const unpack = host.exec(unpackInto(dir, packing), { stdin: counting(packed.stream, counter), timeoutMs: DEADLINE.transfer }).catch((e: unknown) => {
    packed.stream.destroy();
    tar.stream.destroy();
    throw e;
  });
  const results = await Promise.allSettled([unpack, tar.done, packed.done]);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
};

/**
 * The live release's manifest, checked against its files on the host in the same round trip: what
 * differs (edited by hand, damaged) or is not in the manifest is never taken from it.
 */
const checkedLiveManifest = async (host: Host, l: Layout, liveId: string, verify: boolean, log: (line: string) => void) => {
  const listing = parseLiveListing((await host.exec(liveManifestAndFiles(l.manifestOf(liveId), l.release(liveId), verify), { timeoutMs: DEADLINE.transfer })).stdout);
  if (!listing.manifest) {
    // An answer without the manifest's part (a host whose shell could not list it): the stored manifest alone, unchecked.
    const stored = parseManifest((await host.get(l.manifestOf(liveId)))?.toString());
    return stored && { manifest: stored, extra: [] };
  }
  const { manifest, differ, extra } = checkLiveAgainstHost(listing.manifest, listing);
  const names = (paths: readonly string[]) => `${paths.slice(0, 3).join(', ')}${paths.length > 3 ? ` and ${paths.length - 3} more` : ''}`;
  if (differ.length > 0) log(`${differ.length} file(s) of the live release differ on the host from its manifest (${verify ? 'sha256' : 'size'}), sent again: ${names(differ)}`);
  if (extra.length > 0) log(`${extra.length} file(s) in the live release are not in its manifest, left out: ${names(extra)}`);
  return { manifest, extra };
};

/** The manifest of the build and what it left out, made once however many hosts it ships to. */
const walks = new WeakMap<Config, Promise<ReleaseWalk>>();
const walkOfBuild = (cfg: Config): Promise<ReleaseWalk> => {
  let m = walks.get(cfg);
  if (!m) walks.set(cfg, (m = releaseRules(cfg).then((rules) => walkRelease(cfg.app.releaseDir, rules))));
  return m;
};

/** Counts the bytes of a stream as they pass (what local shipping reports; SSH counts at its channel). */
const counting = (source: Readable, counter: { bytes: number }): Readable =>
  source.pipe(
    new Transform({
      transform(chunk: Buffer, _encoding, done) {
        counter.bytes += chunk.length;
        done(null, chunk);
      },
    }),
  );

/** Ships APP_DIR's release folder to `releases/<id>` on a host. */
export const shipFolder = async (host: Host, l: Layout, cfg: Config, spec: ShipSpec, log: (line: string) => void): Promise<Shipped> => {
  if (!existsSync(cfg.app.releaseDir)) {
    throw new SkiffError(`${cfg.app.releaseDir} does not exist: check APP_DIR and DEPLOY_RELEASE_DIR (or run the build)`);
  }
  const { id, liveRelease: liveId } = spec;
  const { manifest, leftOut } = await walkOfBuild(cfg);
  // Said before anything travels, so a dry run lists it too.
  log(describeLeftOut(leftOut));
  const total = manifestTotals(manifest);
  const live = liveId ? await checkedLiveManifest(host, l, liveId, spec.verify ?? false, log) : undefined;
  const partial = `${l.release(id)}.partial`;
  const counter = { bytes: 0 };
  const before = host.bytesSent;
  const input = (b: Buffer) => {
    counter.bytes += b.length;
    return b;
  };
  const packing = await negotiateCompression(host, cfg);
  const sendTar = (tar: { stream: Readable; done: Promise<void> }) => sendPackedTar(host, partial, tar, packing.tar, counter);
  let summary: string;
  let files: { files: number; reused: number };
  let sent = true;
  try {
    if (live && liveId) {
      const plan = planDelta(live.manifest, manifest);
      await host.exec(seedFromLive(l.release(liveId), partial), { stdin: input(nulList([...plan.remove, ...live.extra])), timeoutMs: DEADLINE.transfer });
      sent = plan.send.length > 0;
      if (sent) await sendTar(releaseEntriesTar(cfg, plan.send));
      if (plan.link.length > 0) {
        await host.exec(linkInto(partial), { stdin: input(nulList(plan.link.flatMap(([from, to]) => [`${l.release(liveId)}/${from}`, to]))), timeoutMs: DEADLINE.transfer });
      }
      const sentFiles = total.files - plan.reused;
      summary = `${sentFiles} of ${total.files} files sent, ${plan.reused} taken from the live release`;
      files = { files: sentFiles, reused: plan.reused };
    } else {
      await host.exec(seq(cmd('rm', '-rf', partial), cmd('mkdir', '-p', partial)));
      await sendTar(releaseEntriesTar(cfg, manifest.entries.map((e) => e.path)));
      summary = `all ${total.files} files sent${liveId ? ` (the live release ${liveId} has no manifest)` : ''}`;
      files = { files: total.files, reused: 0 };
    }
    await host.exec(finishRelease(partial, l.release(id), total.files));
  } catch (error) {
    await host.exec(cmd('rm', '-rf', partial), { check: false });
    throw error;
  }
  // The manifest travels whole only with a whole release; after a delta, only its changes do.
  if (live && liveId) await host.exec(updateManifest(l.manifestOf(liveId), l.manifestOf(id)), { stdin: input(Buffer.from(manifestChanges(live.manifest, manifest))) });
  else await host.put(l.manifestOf(id), input(Buffer.from(serializeManifest(manifest))));
  const bytes = before !== undefined && host.bytesSent !== undefined ? host.bytesSent - before : counter.bytes;
  const how = packing.tar === 'none' || !sent ? '' : ` (${packing.tar})`;
  log(`${host.dryRun ? 'would ship' : 'shipped'} ${formatBytes(bytes)}${how} for a ${formatBytes(total.bytes)} release: ${summary}`);
  return { bytes, ...files, packing: packing.tar };
};
