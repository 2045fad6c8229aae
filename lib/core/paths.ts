/**
 * Where things are: the repo on this machine, and the layout under DEPLOY_PATH on each host.
 * Pure: every function derives paths from its arguments.
 */
import { fileURLToPath } from 'node:url';

/** The repo root, whatever the current directory: scripts work when run from anywhere. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');

/** Where downloaded backups live on this machine: SKIFF_BACKUPS_DIR, else `backups/` in the repository. */
export const localBackupsRoot = (repoRoot: string, processEnv: NodeJS.ProcessEnv): string => processEnv.SKIFF_BACKUPS_DIR ?? `${repoRoot}/backups`;

/** The layout of one app environment on a host (see docs/hosts.md). */
export const layout = (root: string) => ({
  root,
  releases: `${root}/releases`,
  release: (id: string) => `${root}/releases/${id}`,
  current: `${root}/current`,
  shared: `${root}/shared`,
  envFile: `${root}/shared/.env`,
  data: `${root}/shared/data`,
  logs: `${root}/shared/logs`,
  log: (slot: string) => `${root}/shared/logs/${slot}.log`,
  skiff: `${root}/.skiff`,
  pidFile: (slot: string) => `${root}/.skiff/${slot}.pid`,
  /** The app environment each release was deployed with, so going back restores it too. */
  envOf: (id: string) => `${root}/.skiff/env/${id}.env`,
  /** What each release holds (path, mode, size, sha256): the next deploy ships only what differs. */
  manifestOf: (id: string) => `${root}/.skiff/manifests/${id}.json`,
  state: `${root}/.skiff/state.json`,
  history: `${root}/.skiff/releases.jsonl`,
  audit: `${root}/.skiff/audit.log`,
  lock: `${root}/.skiff/lock`,
  holder: `${root}/.skiff/lock/holder.json`,
});

export type Layout = ReturnType<typeof layout>;
