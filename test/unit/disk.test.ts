/** The one free-space builder, as text and as sh runs it; the backup's space check asks through it. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backupSpace } from '../../lib/commands/backup.ts';
import { freeKilobytes as dockerFreeKilobytes } from '../../lib/commands/docker.ts';
import { render } from '../../lib/core/cmd.ts';
import { FREE_KB, freeKilobytes } from '../../lib/core/disk.ts';
import { words } from './shell-words.ts';

const EVIL = `/srv/a b/it's $(rm -rf /); x\n\`y\``;

describe('freeKilobytes', () => {
  it('is POSIX df -Pk, the path one quoted word', () => {
    expect(render(freeKilobytes('/var/lib/my docker'))).toBe(
      `sh -c 'free_kb() { df -Pk -- "$1" | awk '\\''NR == 2 { print $4 }'\\''; }\nfree_kb "$1"' sh '/var/lib/my docker'`,
    );
    expect(render(freeKilobytes('/var/lib/docker'))).toMatch(/' sh \/var\/lib\/docker$/);
    expect(words(render(freeKilobytes(EVIL))).slice(4)).toEqual([EVIL]);
    expect(words(render(freeKilobytes(''))).slice(4)).toEqual(['']);
  });

  it('is the builder the docker commands export, and the function the backup space check calls', () => {
    expect(dockerFreeKilobytes).toBe(freeKilobytes);
    const space = render(backupSpace('/b', '/s', []));
    expect(words(space)[2]?.split('\n')[0]).toBe(FREE_KB);
    expect(space).toContain('free=$(free_kb "$1")');
    expect(space.match(/df /g)).toHaveLength(1);
  });

  describe('run by sh', () => {
    const dir = mkdtempSync(join(tmpdir(), "skiff disk 'x' $y "));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    /** Other tests write to the same disk meanwhile: two readings agree to within 1%. */
    const near = (kb: number, df: number) => expect(Math.abs(kb - df)).toBeLessThanOrEqual(df / 100);
    const dfFree = () => Number(execFileSync('df', ['-Pk', dir], { encoding: 'utf8' }).split('\n')[1]?.split(/\s+/)[3]);
    const sh = (c: ReturnType<typeof freeKilobytes>) => {
      if (c.kind !== 'script') throw new Error('not a script');
      return execFileSync('sh', ['-c', c.text, 'sh', ...c.args.map(String)], { encoding: 'utf8' });
    };

    it('prints the free kilobytes df reports for the path', () => {
      const out = sh(freeKilobytes(dir));
      expect(out).toMatch(/^\d+\n$/);
      near(Number(out), dfFree());
    });

    it('backupSpace prints the free kilobytes and what the sources take, on one line', () => {
      const shared = join(dir, 'shared');
      mkdirSync(join(shared, 'up loads'), { recursive: true });
      writeFileSync(join(shared, 'up loads', 'a'), Buffer.alloc(100_000, 1));
      const out = sh(backupSpace(join(dir, 'backups'), shared, ['up loads', 'missing; x']));
      const [free, need] = out.trim().split(' ').map(Number);
      near(free ?? Number.NaN, dfFree());
      expect(need).toBeGreaterThanOrEqual(98);
    });
  });
});
