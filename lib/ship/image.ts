/**
 * What an image ship sends: which layers of a `docker save` archive a host already has. Pure: the
 * layer lists come from the daemons, the archive's names from the tar stream.
 *
 * On Docker's classic image store, `docker load` looks each layer up by its chain id and reads the
 * layer file only when the host lacks it, so an archive without those files loads the same image.
 */
import { createHash } from 'node:crypto';

/** Chain ids of a layer stack, bottom first: chain(0) = diff(0), chain(n) = sha256(chain(n-1) + " " + diff(n)). */
export const chainIds = (diffIds: readonly string[]): string[] => {
  const chains: string[] = [];
  for (const diff of diffIds) {
    const parent = chains.at(-1);
    chains.push(parent === undefined ? diff : `sha256:${createHash('sha256').update(`${parent} ${diff}`).digest('hex')}`);
  }
  return chains;
};

/** Parses `hostImageLayers` output into the image ids and the chain ids the host has. */
export const parseHostLayers = (text: string): { images: Set<string>; chains: Set<string> } => {
  const images = new Set<string>();
  const chains = new Set<string>();
  for (const line of text.split('\n')) {
    const [id, layers] = line.trim().split(' ');
    if (!id) continue;
    images.add(id);
    for (const c of chainIds((layers ?? '').split(',').filter(Boolean))) chains.add(c);
  }
  return { images, chains };
};

/** Archive names of layer files: `<v1 id>/layer.tar` (classic `docker save`) or `blobs/sha256/<digest>` (OCI layout). */
const LEGACY_LAYER = /^([0-9a-f]{64})\/layer\.tar$/;
const OCI_BLOB = /^blobs\/sha256\/([0-9a-f]{64})$/;

export interface ShipPlan {
  /** Layers of the image (bottom first) and whether the host has each. */
  readonly layers: readonly { readonly diffId: string; readonly chainId: string; readonly onHost: boolean }[];
  /** Whether an archive member travels: layer files the host has stay here. */
  readonly keep: (name: string) => boolean;
}

/**
 * Plans a ship. `known` maps the layer folders of classic archives (their v1 ids, stable for a given
 * chain) to chain ids, learned from earlier archives; a layer file whose folder is not known travels.
 * A layer whose content appears twice in the image always travels (the archive links the copies).
 */
export const planImageShip = (diffIds: readonly string[], hostChains: ReadonlySet<string>, known: ReadonlyMap<string, string>): ShipPlan => {
  const chains = chainIds(diffIds);
  const layers = diffIds.map((diffId, i) => ({ diffId, chainId: chains[i] as string, onHost: hostChains.has(chains[i] as string) }));
  const count = new Map<string, number>();
  for (const d of diffIds) count.set(d, (count.get(d) ?? 0) + 1);
  const skippable = new Set(layers.filter((l) => l.onHost && count.get(l.diffId) === 1).map((l) => l.chainId));
  const byDiff = new Map(layers.map((l) => [l.diffId, l.chainId]));
  return {
    layers,
    keep: (name) => {
      const legacy = LEGACY_LAYER.exec(name);
      if (legacy) {
        const chain = known.get(legacy[1] as string);
        return chain === undefined || !skippable.has(chain);
      }
      const blob = OCI_BLOB.exec(name);
      if (blob) {
        const chain = byDiff.get(`sha256:${blob[1]}`);
        return chain === undefined || !skippable.has(chain);
      }
      return true;
    },
  };
};

/** Whether the plan could leave out more with the folder names of an archive not yet seen. */
export const needsLayerNames = (plan: ShipPlan, known: ReadonlyMap<string, string>): boolean => {
  const knownChains = new Set(known.values());
  return plan.layers.some((l) => l.onHost && !knownChains.has(l.chainId));
};

/**
 * Learns the layer folders of a classic archive from its manifest.json and image config: folder
 * (v1 id) -> chain id. OCI archives name layers by digest and teach nothing.
 */
export const learnLayerNames = (manifestJson: Buffer | undefined, readConfig: (path: string) => Buffer | undefined): Map<string, string> => {
  const learned = new Map<string, string>();
  if (!manifestJson) return learned;
  const manifest = JSON.parse(manifestJson.toString()) as { Config?: string; Layers?: string[] }[];
  for (const entry of manifest) {
    const config = entry.Config ? readConfig(entry.Config) : undefined;
    if (!config || !entry.Layers) continue;
    const diffIds = (JSON.parse(config.toString()) as { rootfs?: { diff_ids?: string[] } }).rootfs?.diff_ids ?? [];
    const chains = chainIds(diffIds);
    entry.Layers.forEach((path, i) => {
      const legacy = LEGACY_LAYER.exec(path);
      if (legacy && chains[i]) learned.set(legacy[1] as string, chains[i] as string);
    });
  }
  return learned;
};

/**
 * Bytes the host will need for the layers it lacks: the newest history steps' sizes, as many
 * non-empty steps as there are missing layers (an over-estimate when a missing layer is empty).
 */
export const missingBytes = (historySizesNewestFirst: readonly number[], missingLayers: number): number =>
  historySizesNewestFirst.filter((s) => s > 0).slice(0, missingLayers).reduce((a, b) => a + b, 0);
