/** Builders for the release folders, `current` and the bookkeeping files under DEPLOY_PATH. */
import { cmd, reads, script, seq, type Cmd } from '../core/cmd.ts';
import type { Layout } from '../core/paths.ts';

/** Creates the folders of the layout; the bookkeeping folder and the app's logs (which may print its secrets) are private. */
export const prepareLayout = (l: Layout): Cmd =>
  seq(['mkdir', '-p', l.releases, l.data, l.logs, `${l.skiff}/env`, `${l.skiff}/manifests`], ['chmod', '700', l.skiff, `${l.skiff}/env`, l.logs]);

/** Makes a release's env snapshot the live shared/.env (copy beside it, then rename). */
export const publishEnv = (l: Layout, id: string): Cmd =>
  seq(['cp', l.envOf(id), `${l.envFile}.tmp`], ['chmod', '600', `${l.envFile}.tmp`], ['mv', '-T', `${l.envFile}.tmp`, l.envFile]);

/** Removes release folders a killed ship left half done (run under the lock, so none is in progress). */
export const removePartials = (l: Layout): Cmd => script('rm -rf "$1"/*.partial', l.releases);

/** Points `current` at a release atomically: a new link under a temporary name, then rename over. */
export const switchCurrent = (l: Layout, id: string): Cmd =>
  seq(['ln', '-sfn', `releases/${id}`, `${l.root}/.current-tmp`], ['mv', '-T', `${l.root}/.current-tmp`, l.current]);

/** Removes release folders. */
export const removeReleases = (l: Layout, ids: readonly string[]): Cmd =>
  cmd('rm', '-rf', ...ids.flatMap((id) => [l.release(id), l.envOf(id), l.manifestOf(id)]));

/** Lists release folder names, one a line (partial uploads excluded). */
export const listReleases = (l: Layout): Cmd =>
  reads(script('cd "$1" 2>/dev/null || exit 0; for d in *; do [ -d "$d" ] && case "$d" in *.partial) ;; *) echo "$d" ;; esac; done; exit 0', l.releases));

/** Prints, one a line, the commands of `tools` the host's shell cannot find. */
export const missingTools = (tools: readonly string[]): Cmd =>
  reads(script('for c in "$@"; do command -v "$c" >/dev/null 2>&1 || echo "$c"; done; exit 0', ...tools));

/** Whether a path exists: prints yes or no. */
export const exists = (path: string): Cmd => reads(script('if [ -e "$1" ]; then echo yes; else echo no; fi', path));

/**
 * Appends stdin to a file as whole lines: if a crash left the last line without its newline, one is
 * added first, so the new line never joins the cut one.
 */
export const appendLine = (file: string): Cmd =>
  script('if [ -s "$1" ] && [ -n "$(tail -c 1 "$1")" ]; then echo >>"$1"; fi; cat >>"$1"', file);

/** Last lines of a file, or nothing when it does not exist. */
export const tail = (file: string, lines: number): Cmd => reads(script('[ -f "$1" ] && tail -n "$2" "$1"; exit 0', file, String(lines)));
