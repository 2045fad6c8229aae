/**
 * File names a shell command could take for options: a release holding `-n.txt` or `--help` ships
 * whole, on the first deploy and on a delta that links them from the live release.
 */
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localEnv, makeSandbox, type Sandbox } from '../support/sandbox.ts';

const PORT = 18431;

describe('file names that start with -', () => {
  let s: Sandbox;
  beforeAll(() => {
    s = makeSandbox('names');
    s.writeEnv('t.env', localEnv(s, PORT, 'DEPLOY_PROXY=none'));
  });
  afterAll(async () => {
    await s.run('stop', ['t']);
    s.cleanup();
  });
  const live = (): string => join(s.deployPath, readlinkSync(join(s.deployPath, 'current')));

  it('ship on the first deploy and when a redeploy links them from the live release', async () => {
    writeFileSync(join(s.appDir, 'notes.txt'), 'the same content\n');
    writeFileSync(join(s.appDir, '--help'), 'not an option\n');
    const first = await s.run('deploy-vps', ['t']);
    expect(first.code, first.stderr).toBe(0);
    expect(readFileSync(join(live(), '--help'), 'utf8')).toBe('not an option\n');
    // The same content under a name like an option: the delta links it from the live release (ln, cp).
    writeFileSync(join(s.appDir, '-n.txt'), 'the same content\n');
    writeFileSync(join(s.appDir, '-rf'), 'not an option\n');
    s.setVersion('1.0.1');
    const second = await s.run('deploy-vps', ['t']);
    expect(second.code, second.stderr).toBe(0);
    expect(readFileSync(join(live(), '-n.txt'), 'utf8')).toBe('the same content\n');
    expect(readFileSync(join(live(), '-rf'), 'utf8')).toBe('not an option\n');
    expect(readFileSync(join(live(), 'notes.txt'), 'utf8')).toBe('the same content\n');
  });
});
