/** Builders for reading what a host's bookkeeping rests on, when state.json cannot be trusted. */
import { reads, script, type Cmd } from '../core/cmd.ts';
import type { Layout } from '../core/paths.ts';

/** Prints the release `current` points at (its link is `releases/<id>`), or nothing without one. */
export const currentRelease = (l: Layout): Cmd => reads(script('t=$(readlink "$1" 2>/dev/null) || exit 0; printf "%s\\n" "${t#releases/}"', l.current));
