/** LocalHost.put writes durably: the temp file is synced to the disk before it is renamed over the old one. */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LocalHost } from '../../lib/host/local.ts';

describe('LocalHost.put', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-put-'));
  afterEach(() => vi.restoreAllMocks());

  it('syncs the new content before the rename, so a crash leaves the old file or the new one, never an empty one', async () => {
    const probe = await open(join(dir, 'probe'), 'w');
    // node:fs/promises does not export the FileHandle class: its prototype is reached through a handle.
    const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
    await probe.close();
    const target = join(dir, 'state.json');
    const seenAtSync: (string | undefined)[] = [];
    const real = proto.sync;
    vi.spyOn(proto, 'sync').mockImplementation(async function (this: unknown) {
      // At the sync the target is not there yet: the rename comes after.
      seenAtSync.push(readdirSync(dir).find((n) => n === 'state.json'));
      return real.call(this);
    });
    await new LocalHost().put(target, '{"live":"blue"}\n', { mode: 0o600 });
    expect(seenAtSync).toEqual([undefined]);
    expect(readFileSync(target, 'utf8')).toBe('{"live":"blue"}\n');
    expect(statSync(target).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });
});
