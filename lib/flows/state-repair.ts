/**
 * Reading state.json without trusting it: a damaged one (cut short by a crash, emptied by a full
 * disk) is said in one line and rebuilt from releases.jsonl, the `current` link, where the proxy
 * sends traffic and which slots run. A deploy or rollback (under the lock) writes the rebuilt state;
 * `status` only shows it.
 */
import { currentRelease } from '../commands/state.ts';
import { listReleases } from '../commands/release.ts';
import { SkiffError } from '../core/errors.ts';
import { audit, readHistory, readState, rebuildState, StateDamagedError, writeState, type HostState } from '../state/state.ts';
import type { Session } from './session.ts';

/** state.json as read, or as rebuilt when it was damaged (`damaged` then says what was wrong, in one line). */
export interface LoadedState {
  readonly state: HostState | undefined;
  readonly damaged?: string;
}

/** The slots of the config and their ports: blue alone with proxy `none`, else blue and green. */
const slotsOf = (s: Session): { slot: string; port: number }[] => {
  const [blue, green] = s.cfg.ports;
  return [
    ...(blue !== undefined ? [{ slot: 'blue', port: blue }] : []),
    ...(s.proxy && green !== undefined ? [{ slot: 'green', port: green }] : []),
  ];
};

/**
 * Reads state.json, rebuilding it when damaged; `repair` (a run that holds the lock) writes what it
 * rebuilt and records that in the audit log. Throws, changing nothing, when it cannot tell what serves.
 */
export const loadState = async (s: Session, { repair = false } = {}): Promise<LoadedState> => {
  const { host, l, cfg } = s;
  let damage: StateDamagedError;
  try {
    return { state: await readState(host, l) };
  } catch (error) {
    if (!(error instanceof StateDamagedError)) throw error;
    damage = error;
  }
  const [history, current, onHost] = await Promise.all([
    readHistory(host, l),
    host.exec(currentRelease(l)).then((r) => r.stdout.trim() || undefined),
    host.exec(listReleases(l)).then((r) => r.stdout.split('\n').filter(Boolean)),
  ]);
  const slots = await Promise.all(slotsOf(s).map(async (x) => ({ ...x, running: (await s.runtime.find(host, l, x.slot)).state === 'running' })));
  // A proxy that cannot be asked leaves the running slots to decide.
  const routed = s.proxy ? await s.proxy.current(host).catch(() => undefined) : undefined;
  const now = s.now().toISOString();
  const rebuilt = rebuildState({ app: cfg.app.name, env: cfg.env, history, current, onHost, slots, routed, start: cfg.start, now });
  if ('unknown' in rebuilt) {
    throw new SkiffError(
      `${host.name}: ${l.state} is damaged (${damage.problem}) and cannot be rebuilt: ${rebuilt.unknown}; nothing was changed: ` +
        `delete it, then roll back to the release that should serve (\`npx tsx scripts/rollback.ts ${cfg.env} --list\`) or deploy`,
    );
  }
  const { state } = rebuilt;
  const what = state?.live ? `${state.slots[state.live]?.release} live in slot ${state.live}` : 'nothing deployed';
  const line = `${l.state} is damaged (${damage.problem}): rebuilt from releases.jsonl and the running slots (${what})`;
  if (!repair) return { state, damaged: `${line}; the next deploy or rollback rewrites it` };
  if (state) await writeState(host, l, state);
  await audit(host, l, now, s.who, `repair: ${l.state} was damaged (${damage.problem}), rewritten (${what})`);
  return { state, damaged: `${line}, and rewritten` };
};
