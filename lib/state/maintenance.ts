/**
 * Whether an environment is in maintenance, as its host remembers it: `.skiff/maintenance.json`,
 * written atomically while the deploy lock is held, there only while maintenance is on. A deploy,
 * a rollback and `start` read it to keep the page up; `status` shows it. Its text is user text from
 * a file on the host: checked again when read, like --message, before any proxy sees it.
 */
import { z } from 'zod';
import { removeFile } from '../commands/maintenance.ts';
import { SkiffError } from '../core/errors.ts';
import type { Layout } from '../core/paths.ts';
import type { Host } from '../host/host.ts';
import { messageProblem, RETRY_AFTER_MAX } from '../proxy/maintenance-page.ts';

export interface MaintenanceRecord {
  readonly message: string;
  readonly retryAfter: number;
  /** When it was turned on (or its page last changed), ISO. */
  readonly since: string;
  /** `user@machine` of who did. */
  readonly by: string;
}

/** Where the record lives on the host. */
export const maintenanceFile = (l: Layout): string => `${l.skiff}/maintenance.json`;

const schema = z.object({
  message: z.string().refine((m) => messageProblem(m) === undefined, { message: 'not a message skiff would accept' }),
  retryAfter: z.number().int().min(1).max(RETRY_AFTER_MAX),
  since: z.string(),
  by: z.string(),
});

/** Parses the record; undefined text means maintenance is off. A damaged file throws, naming the fix. */
export const parseMaintenance = (text: string | undefined, where: string): MaintenanceRecord | undefined => {
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SkiffError(
      `${where} is damaged (${issue ? `${issue.path.join('.') || 'the file'}: ${issue.message}` : 'not JSON'}): turn maintenance on or off again (scripts/maintenance.ts), which rewrites it`,
    );
  }
  return parsed.data;
};

export const readMaintenance = async (host: Host, l: Layout): Promise<MaintenanceRecord | undefined> =>
  parseMaintenance((await host.get(maintenanceFile(l)))?.toString(), `${host.name}: ${maintenanceFile(l)}`);

/** Writes the record (atomically: the host's put writes a temp file and renames it). */
export const writeMaintenance = (host: Host, l: Layout, record: MaintenanceRecord): Promise<void> =>
  host.put(maintenanceFile(l), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });

export const removeMaintenance = async (host: Host, l: Layout): Promise<void> => {
  await host.exec(removeFile(maintenanceFile(l)));
};
