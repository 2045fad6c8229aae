/** The switch flag of the Caddy and nginx drivers: its commands as strings, run in a real shell, and where it lives. */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { flagReach, readFlag, setFlag, workerUsers } from '../../lib/commands/switch-flag.ts';
import { render, type Cmd } from '../../lib/core/cmd.ts';
import { flagDir, flagFile, slotPair } from '../../lib/proxy/switch-flag.ts';
import { testConfig } from '../support/flow-ctx.ts';

const sh = (c: Cmd): string => execFileSync('sh', ['-c', render(c)]).toString().trim();
const dir = mkdtempSync(join(tmpdir(), "skiff-flag it's-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the flag commands', () => {
  it('as strings: made under a temporary name and renamed, or removed; the folder mode 755', () => {
    expect(render(setFlag('/srv/a b', true))).toBe(`sh -c 'mkdir -p "$1" && chmod 755 "$1" && : >"$1/.live-second.tmp" && mv -f "$1/.live-second.tmp" "$1/live-second"' sh '/srv/a b'`);
    expect(render(setFlag('/srv/a b', false))).toBe(`sh -c 'if [ -d "$1" ]; then rm -f "$1/live-second"; else mkdir -p "$1" && chmod 755 "$1"; fi' sh '/srv/a b'`);
    expect(render(readFlag("/srv/it's"))).toBe(`sh -c 'if [ -e "$1/live-second" ]; then echo second; elif [ -d "$1" ]; then echo first; else echo none; fi' sh '/srv/it'\\''s'`);
    expect(render(workerUsers('nginx', '100'))).toContain("' sh 100");
    expect(render(workerUsers('caddy'))).toContain('ps -C caddy -o user=');
  });

  it('in a real shell: none, second, first, second; nothing left under a temporary name', () => {
    const d = join(dir, 'hello-staging');
    expect(sh(readFlag(d))).toBe('none');
    sh(setFlag(d, true));
    expect(sh(readFlag(d))).toBe('second');
    sh(setFlag(d, false));
    expect(sh(readFlag(d))).toBe('first');
    sh(setFlag(d, false));
    expect(sh(readFlag(d))).toBe('first');
    sh(setFlag(d, true));
    sh(setFlag(d, true));
    expect(sh(readFlag(d))).toBe('second');
    expect(readdirSync(d)).toEqual(['live-second']);
    expect(execFileSync('stat', ['-c', '%a', d]).toString().trim()).toBe('755');
    // First with no folder yet: the folder is made, empty.
    const e = join(dir, 'other');
    sh(setFlag(e, false));
    expect(existsSync(e) && readdirSync(e)).toEqual([]);
  });

  it('flagReach: ok for root and for a user who can search every folder; the first folder a user cannot search; a parent this user cannot write', () => {
    const open = join(dir, 'open');
    mkdirSync(join(open, 'inner'), { recursive: true });
    chmodSync(dir, 0o755);
    expect(sh(flagReach(join(open, 'inner/flags'), ['root']))).toBe('ok');
    if (process.getuid?.() === 0) {
      expect(sh(flagReach(join(open, 'inner/flags'), ['nobody']))).toBe('ok');
      chmodSync(open, 0o700);
      expect(sh(flagReach(join(open, 'inner/flags'), ['root', 'nobody', 'no-such-user']))).toBe(`search nobody ${open} 700`);
      chmodSync(open, 0o711);
      expect(sh(flagReach(join(open, 'inner/flags'), ['nobody']))).toBe('ok');
      chmodSync(dir, 0o700);
    }
    // A path under a file: nothing can be made there.
    expect(sh(flagReach('/etc/hostname/flags', []))).toBe('write /etc/hostname');
  });

});

describe('where the flag lives', () => {
  it('nginx: beside its conf; Caddy: /var/lib/skiff; <app>-<env> in DEPLOY_SWITCH_DIR for both', () => {
    expect(flagFile(testConfig({ DEPLOY_PROXY: 'nginx', DEPLOY_NGINX_CONF_DIR: '/etc/nginx/conf.d' }))).toBe('/etc/nginx/conf.d/hello-staging.slot/live-second');
    expect(flagDir(testConfig({ DEPLOY_PROXY: 'caddy' }))).toBe('/var/lib/skiff/hello-staging');
    expect(flagDir(testConfig({ DEPLOY_PROXY: 'nginx', DEPLOY_SWITCH_DIR: '/srv/flags/' }))).toBe('/srv/flags/hello-staging');
    expect(flagDir(testConfig({ DEPLOY_PROXY: 'caddy', DEPLOY_SWITCH_DIR: '/' }))).toBe('/hello-staging');
  });

  it('slotPair: DEPLOY_PORTS, or a port outside it first (a switch back after the ports changed)', () => {
    const cfg = testConfig({ DEPLOY_PORTS: '3001,3002' });
    expect(slotPair(cfg, 3001)).toEqual([3001, 3002]);
    expect(slotPair(cfg, 3002)).toEqual([3001, 3002]);
    expect(slotPair(cfg, 4001)).toEqual([4001, 3002]);
  });

  it('DEPLOY_SWITCH_DIR: an absolute folder of plain characters, else a config error', () => {
    expect(() => testConfig({ DEPLOY_SWITCH_DIR: 'flags' })).toThrow(/DEPLOY_SWITCH_DIR/);
    expect(() => testConfig({ DEPLOY_SWITCH_DIR: '/srv/$flags' })).toThrow(/DEPLOY_SWITCH_DIR/);
    expect(() => testConfig({ DEPLOY_SWITCH_DIR: '/srv/my flags' })).toThrow(/DEPLOY_SWITCH_DIR/);
  });
});
