/**
 * Shipping an image without a registry: the host's daemon says which layers it has, and a
 * `docker save` archive streams through the SSH channel into `docker load` with those layer files
 * left out (lib/ship/image.ts). No archive is written to disk on either side. The loaded image id must
 * equal the built one.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { cmd, seq } from '../core/cmd.ts';
import {
  dockerCheck,
  freeKilobytes,
  hostImageId,
  hostImageLayers,
  imageHistorySizes,
  imageId,
  imageLayers,
  loadImage,
  releaseRef,
  saveImage,
  tagImage,
} from '../commands/docker.ts';
import type { Config } from '../config/config.ts';
import { formatBytes } from './delta.ts';
import { SkiffError } from '../core/errors.ts';
import type { Layout } from '../core/paths.ts';
import { DEADLINE, type Host } from '../host/host.ts';
import { learnLayerNames, missingBytes, needsLayerNames, parseHostLayers, planImageShip } from './image.ts';
import { imageTag } from './build.ts';
import type { Shipped, ShipSpec } from './folder-ship.ts';
import { run, streamFrom } from '../host/local.ts';
import { TarFilter } from './tar.ts';
import { compressed, negotiateCompression } from './compress.ts';

/** What `releases/<id>/release.json` holds for a docker release. */
export interface ImageRelease {
  /** `<app>:<version>`, as built. */
  readonly image: string;
  /** The image id (`sha256:...`) the container runs. */
  readonly imageId: string;
  /** The release's tag on the host (`<app>:<env>-<id>`), removed when the release is pruned. */
  readonly ref: string;
  /** The names of the app's environment keys (the values stay in the env file). */
  readonly envKeys: readonly string[];
}

export const releaseJsonPath = (l: Layout, id: string): string => `${l.release(id)}/release.json`;

/** Reads release.json of a docker release; undefined when the folder has none (a ship cut short, a process release). */
export const findImageRelease = async (host: Host, l: Layout, id: string): Promise<ImageRelease | undefined> => {
  const text = await host.get(releaseJsonPath(l, id));
  return text ? (JSON.parse(text.toString()) as ImageRelease) : undefined; // written by shipImage below; a release folder is skiff's own
};

/** Reads release.json of a docker release; a clear error when it is missing. */
export const readImageRelease = async (host: Host, l: Layout, id: string): Promise<ImageRelease> => {
  const release = await findImageRelease(host, l, id);
  if (!release) throw new SkiffError(`${host.name}: release ${id} has no release.json: it was not deployed with DEPLOY_RUNTIME=docker`);
  return release;
};

/** What the host's Docker is: its storage and whether `docker load` there skips layers it has. */
export interface HostDocker {
  readonly version: string;
  readonly rootDir: string;
  /** The containerd image store loads every layer of an archive: it gets the whole archive. */
  readonly skipsKnownLayers: boolean;
}

/** Checks Docker on a host: installed, daemon answering. Nothing is changed. */
export const checkHostDocker = async (host: Host): Promise<HostDocker> => {
  const out = (await host.exec(dockerCheck())).stdout.trim();
  if (out === 'missing') {
    throw new SkiffError(`${host.name} has no docker command: install Docker there (Debian: apt-get install docker.io), or use DEPLOY_RUNTIME=process`);
  }
  if (out.startsWith('down') && /permission denied/i.test(out)) {
    throw new SkiffError(`${host.name}: the SSH user may not use Docker there: add it to the docker group (usermod -aG docker USER), then log in again`);
  }
  if (out.startsWith('down')) {
    throw new SkiffError(`${host.name}: the Docker daemon does not answer: start it there (systemctl start docker): ${out.slice(5).trim()}`);
  }
  const [version = '', , rootDir = '/var/lib/docker', status = ''] = out.slice(3).split('|');
  return { version, rootDir, skipsKnownLayers: !status.includes('io.containerd.snapshotter') };
};

const localEnv = () => ({ ...process.env }) as Record<string, string>;

const built = new WeakMap<Config, Promise<{ tag: string; id: string }>>();

/** Records the image a build made, so every host ships the same one. */
export const rememberImage = (cfg: Config, image: { tag: string; id: string }): void => {
  built.set(cfg, Promise.resolve(image));
};

/** The image of this version on this machine (built by this run, or by `build.ts` before `--no-build`). */
export const builtImage = (cfg: Config, version: string): Promise<{ tag: string; id: string }> => {
  let found = built.get(cfg);
  if (!found) {
    const tag = imageTag(cfg, version);
    found = run(imageId(tag), { env: localEnv(), check: false, label: 'local' }).then((r) => {
      if (r.code !== 0) throw new SkiffError(`there is no image ${tag} on this machine: run \`npx tsx scripts/build.ts ${cfg.env}\` first, or deploy without --no-build`, 2);
      return { tag, id: r.stdout.trim() };
    });
    built.set(cfg, found);
  }
  return found;
};

/** Where the layer folder names learned from earlier archives are kept on this machine. */
const namesFile = (): string => join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'skiff', 'docker-layer-names.json');

const readNames = async (): Promise<Map<string, string>> => {
  try {
    return new Map(Object.entries(JSON.parse(await readFile(namesFile(), 'utf8')) as Record<string, string>));
  } catch {
    return new Map();
  }
};

/** Keeps the newest 5,000 names: a few per deploy. A lost file only means one more full layer. */
const saveNames = async (names: ReadonlyMap<string, string>): Promise<void> => {
  const file = namesFile();
  const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    await mkdir(join(file, '..'), { recursive: true });
    await writeFile(temp, JSON.stringify(Object.fromEntries([...names].slice(-5000))));
    await rename(temp, file);
  } catch {
    await rm(temp, { force: true }).catch(() => undefined); // a cache: losing a write costs one full layer later
  }
};

/** `sha256:<hex>` of the image config a `docker save` manifest names (`<hex>.json` or `blobs/sha256/<hex>`). */
const configDigest = (manifestJson: Buffer | undefined): string | undefined => {
  if (!manifestJson) return undefined;
  const config = (JSON.parse(manifestJson.toString()) as { Config?: string }[])[0]?.Config ?? '';
  const hex = /([0-9a-f]{64})(\.json)?$/.exec(config)?.[1];
  return hex ? `sha256:${hex}` : undefined;
};

const ARCHIVE_META = (name: string) => name === 'manifest.json' || /^[0-9a-f]{64}\.json$/.test(name) || name === 'index.json';

/** Once per image however many hosts it ships to: what this machine's Docker says of it. */
const once = <T>(fn: (tag: string) => Promise<T>): ((tag: string) => Promise<T>) => {
  const memo = new Map<string, Promise<T>>();
  return (tag) => {
    let p = memo.get(tag);
    if (!p) memo.set(tag, (p = fn(tag)));
    return p;
  };
};

/** The image's diff ids (bottom first) and its history step sizes (newest first). */
const localLayers = once(async (tag: string) => ({
  diffIds: JSON.parse((await run(imageLayers(tag), { env: localEnv(), label: 'local' })).stdout) as string[],
  sizes: (await run(imageHistorySizes(tag), { env: localEnv(), label: 'local' })).stdout.split('\n').filter(Boolean).map(Number),
}));

/** Reads an image's archive here, sending nothing, to learn its layer folder names. */
const learnFromArchive = once(async (tag: string): Promise<Map<string, string>> => {
  const save = streamFrom(saveImage(tag), process.cwd(), undefined, localEnv());
  const filter = new TarFilter({ keep: () => false, capture: (m) => ARCHIVE_META(m.name) });
  save.stdout.pipe(filter).resume();
  await Promise.all([save.done, new Promise((resolve, reject) => filter.on('end', resolve).on('error', reject))]);
  return learnLayerNames(filter.captured.get('manifest.json'), (p) => filter.captured.get(p));
});

/**
 * Ships the image of this deploy to a host and records it in `releases/<id>/release.json`. A host
 * that has the image already gets only its tags.
 */
export const shipImage = async (
  host: Host,
  l: Layout,
  cfg: Config,
  spec: ShipSpec,
  hostDocker: HostDocker,
  log: (line: string) => void,
): Promise<Shipped> => {
  const image = await builtImage(cfg, spec.version);
  const onHost = parseHostLayers((await host.exec(hostImageLayers())).stdout);
  const before = host.bytesSent;
  let summary: string;
  let sent = 0;
  let loadedId = image.id;
  let layers = { files: 0, reused: 0 };
  let how = '';
  let packedWith: Shipped['packing'];
  if (onHost.images.has(image.id)) {
    summary = `the host has image ${image.id.slice(7, 19)} already: nothing sent`;
  } else {
    const { diffIds, sizes } = await localLayers(image.tag);
    const hostChains = hostDocker.skipsKnownLayers ? onHost.chains : new Set<string>();
    let names = await readNames();
    let plan = planImageShip(diffIds, hostChains, names);
    if (needsLayerNames(plan, names)) {
      names = new Map([...names, ...(await learnFromArchive(image.tag))]);
      await saveNames(names);
      plan = planImageShip(diffIds, hostChains, names);
    }
    const missing = plan.layers.filter((x) => !x.onHost).length;
    // docker load unpacks the archive under its root dir, then each layer: about twice the layers' size.
    const needed = 2 * missingBytes(sizes, missing) + 64 * 1024 * 1024;
    const free = Number((await host.exec(freeKilobytes(hostDocker.rootDir))).stdout.trim()) * 1024;
    if (Number.isFinite(free) && free < needed) {
      throw new SkiffError(
        `${host.name}: ${formatBytes(free)} free under ${hostDocker.rootDir}, and loading ${missing} new layer${missing === 1 ? '' : 's'} of ${image.tag} needs about ${formatBytes(needed)}: ` +
          'free space there (docker image prune, or lower DEPLOY_KEEP_RELEASES); nothing was sent',
      );
    }
    const packing = (await negotiateCompression(host, cfg)).docker;
    const save = streamFrom(saveImage(image.tag), process.cwd(), undefined, localEnv());
    const filter = new TarFilter({ keep: (m) => plan.keep(m.name), capture: (m) => ARCHIVE_META(m.name) });
    const stream = compressed(save.stdout.pipe(filter), packing);
    const settled = Promise.all([save.done, stream.done]).then(() => undefined, (e: unknown) => e);
    // A failure here (docker save, the filter, the compressor) cuts the stream, so the host's load fails
    // rather than taking what came before as a whole archive, and the SSH channel closes.
    void settled.then((e) => {
      if (e !== undefined) stream.stream.destroy(e instanceof Error ? e : new Error(String(e)));
    });
    // The host's answer says more than a broken pipe here: it is awaited first.
    await host.exec(loadImage(packing), { stdin: stream.stream, timeoutMs: DEADLINE.transfer }).catch((e: unknown) => {
      // A load that failed reads no more: docker save and the compressor, blocked on full pipes, are stopped.
      stream.stream.destroy();
      save.stdout.destroy();
      throw e;
    });
    const saveError = await settled;
    if (saveError) throw saveError;
    how = packing === 'none' ? '' : ` (${packing})`;
    packedWith = packing;
    const learned = learnLayerNames(filter.captured.get('manifest.json'), (p) => filter.captured.get(p));
    if ([...learned].some(([k, v]) => names.get(k) !== v)) await saveNames(new Map([...names, ...learned]));
    const got = (await host.exec(hostImageId(image.tag))).stdout.trim();
    // The archive's config digest is the id a classic store gives the image (a containerd store here names it by its manifest).
    const expected = configDigest(filter.captured.get('manifest.json')) ?? image.id;
    if (got !== expected) {
      throw new SkiffError(`${host.name}: docker load gave image ${got || '(none)'}, not the built ${expected}: check the host's Docker, then deploy again`);
    }
    loadedId = got;
    sent = filter.keptBytes;
    const left = plan.layers.length - missing;
    summary = `${missing} of ${plan.layers.length} layers sent${left ? `, ${left} the host had left out` : ''}${hostDocker.skipsKnownLayers ? '' : ' (containerd image store: whole archive)'}`;
    layers = { files: missing, reused: left };
  }
  const ref = releaseRef(cfg.app.name, cfg.env, spec.id);
  // release.json first: a release folder always says which tag to remove when it goes.
  await host.exec(cmd('mkdir', '-p', l.release(spec.id)));
  const release: ImageRelease = { image: image.tag, imageId: loadedId, ref, envKeys: Object.keys(cfg.appEnv).sort() };
  await host.put(releaseJsonPath(l, spec.id), `${JSON.stringify(release, null, 2)}\n`);
  await host.exec(seq(tagImage(loadedId, image.tag), tagImage(loadedId, ref)));
  const bytes = before !== undefined && host.bytesSent !== undefined ? host.bytesSent - before : sent;
  log(`${host.dryRun ? 'would ship' : 'shipped'} ${formatBytes(bytes)}${how} of image ${image.tag}: ${summary}`);
  return { bytes, ...layers, ...(packedWith ? { packing: packedWith } : {}) };
};
