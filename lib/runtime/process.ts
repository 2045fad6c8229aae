/** The process runtime with the `pidfile` supervisor: start, stop and find a slot's process on a host. */
import { tail } from '../commands/release.ts';
import { slotStatus, startSlot, stopSlot, type SlotSpec } from '../commands/supervisor.ts';
import type { Host } from '../host.ts';
import type { Layout } from '../paths.ts';

export type SlotRun =
  | { readonly state: 'running'; readonly pid: number; readonly pidFileOk: boolean }
  | { readonly state: 'crashed'; readonly pid: number }
  | { readonly state: 'stopped' };

/** Parses the line printed by `slotStatus`. */
export const parseSlotStatus = (line: string): SlotRun => {
  const [word, pid, how] = line.trim().split(/\s+/);
  if (word === 'running' && pid) return { state: 'running', pid: Number(pid), pidFileOk: how === 'pidfile' };
  if (word === 'crashed' && pid) return { state: 'crashed', pid: Number(pid) };
  return { state: 'stopped' };
};

export const findSlot = async (host: Host, l: Layout, slot: string): Promise<SlotRun> =>
  parseSlotStatus((await host.exec(slotStatus(l, slot))).stdout);

/** Starts a slot and returns its pid. */
export const launchSlot = async (host: Host, l: Layout, spec: SlotSpec): Promise<number> =>
  Number((await host.exec(startSlot(l, spec))).stdout.trim().split('\n').at(-1));

/** Stops a slot, giving it `graceSeconds` to drain. */
export const haltSlot = async (host: Host, l: Layout, slot: string, graceSeconds: number): Promise<string> =>
  (await host.exec(stopSlot(l, slot, graceSeconds))).stdout.trim();

export const slotLogTail = async (host: Host, l: Layout, slot: string, lines = 10): Promise<string> =>
  (await host.exec(tail(l.log(slot), lines))).stdout;
