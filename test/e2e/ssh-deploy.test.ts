/**
 * Deploys over SSH: the real scripts deploy the example app to a real OpenSSH server on 127.0.0.3,
 * with host keys checked against a known_hosts file, as a user's VPS would be reached.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseManifest } from '../../lib/ship/delta.ts';
import { buildManifest } from '../../lib/ship/manifest.ts';
import { get, localEnv, makeSandbox, ROOT, type Sandbox } from '../support/sandbox.ts';

const PORT = 18451;
const SSH = { ip: '127.0.0.3', port: 2223 };

describe('deploy over SSH', () => {
  let s: Sandbox;
  let sshDir: string;
  const env = (extra = '') =>
    localEnv(
      s,
      PORT,
      [
        `DEPLOY_HOSTS=${userInfo().username}@${SSH.ip}:${SSH.port}`,
        `DEPLOY_SSH_KEY=${join(sshDir, 'id_ed25519')}`,
        `DEPLOY_KNOWN_HOSTS=${join(sshDir, 'known_hosts')}`,
        extra,
      ].join('\n'),
    );

  beforeAll(() => {
    s = makeSandbox('ssh');
    sshDir = join(s.dir, 'sshd');
    // Fails (rather than skips) when sshd cannot be had: CI installs it with test/infra/up.sh.
    execFileSync('bash', [join(ROOT, 'test/infra/sshd.sh'), sshDir, SSH.ip, String(SSH.port)], { stdio: 'ignore' });
    s.writeEnv('t.env', env());
  });
  afterAll(() => {
    const pid = join(sshDir, 'sshd.pid');
    if (existsSync(pid)) process.kill(Number(readFileSync(pid, 'utf8')), 'SIGTERM');
    s.cleanup();
  });

  it('deploys, serves, and shows its status over SSH', async () => {
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`deployed 1.0.0`);
    expect((await get(`http://127.0.0.1:${PORT}/`)).text).toBe('hello 1.0.0 (t)\n');
    const status = await s.run('status', ['t']);
    expect(status.stdout).toContain(`hello t on ${userInfo().username}@${SSH.ip}:${SSH.port}`);
    expect(status.stdout).toMatch(/health +ok/);
  });

  it('a release that fails its health check leaves the previous one serving (exit 1)', async () => {
    s.setVersion('1.0.1');
    s.writeEnv('t.env', env('HEALTH_FAIL=1\nDEPLOY_HEALTH_TIMEOUT=2'));
    const r = await s.run('deploy-vps', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no healthy answer');
    expect((await get(`http://127.0.0.1:${PORT}/`)).text).toBe('hello 1.0.0 (t)\n');
  });

  it('redeploys, and rolls back', async () => {
    s.setVersion('1.0.2');
    expect((await s.run('deploy-vps', ['t'])).code).toBe(0);
    expect((await get(`http://127.0.0.1:${PORT}/`)).text).toBe('hello 1.0.2 (t)\n');
    const back = await s.run('rollback', ['t']);
    expect(back.code).toBe(0);
    expect((await get(`http://127.0.0.1:${PORT}/`)).text).toBe('hello 1.0.0 (t)\n');
  });

  describe('shipping only what changed', () => {
    const releases = () => join(s.deployPath, 'releases');
    const live = () => (JSON.parse(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')) as { live: string; slots: Record<string, { release: string }> });
    const liveDir = () => join(releases(), live().slots[live().live]?.release as string);
    const shippedBytes = (out: string) => {
      const m = /shipped ([\d.]+) (B|KB|MB)( \(zstd\))? for a ([\d.]+) (KB|MB) release: (\d+) of (\d+) files sent/.exec(out);
      if (!m) throw new Error(`no shipped line in: ${out}`);
      return { bytes: Number(m[1]) * { B: 1, KB: 1024, MB: 1024 ** 2 }[m[2] as 'B'], packed: m[3] !== undefined, sent: Number(m[6]), files: Number(m[7]) };
    };
    const weird = `it's "odd" $(touch pwned) \`x\`.txt`;

    it('a one-file change sends that file only; unchanged files are hard links to the live release', async () => {
      const before = liveDir();
      writeFileSync(join(s.appDir, 'public.txt'), 'x'.repeat(100_000));
      writeFileSync(join(s.appDir, weird), 'literal\n');
      s.setVersion('1.1.0');
      const first = await s.run('deploy-vps', ['t']);
      expect(first.code).toBe(0);
      writeFileSync(join(s.appDir, 'server.js'), `${readFileSync(join(s.appDir, 'server.js'), 'utf8')}\n// one more line\n`);
      const second = await s.run('deploy-vps', ['t']);
      expect(second.stderr).toBe('');
      expect(second.code).toBe(0);
      const shipped = shippedBytes(second.stdout);
      // server.js changed, and package.json is the same as the live release's (version unchanged).
      expect(shipped.sent).toBe(1);
      // Both ends have zstd here (test/infra/up.sh): the stream is packed with it.
      expect(shipped.packed).toBe(true);
      expect(second.stdout).toContain('ship stream: zstd --adapt');
      expect(shipped.bytes).toBeLessThanOrEqual(statSync(join(s.appDir, 'server.js')).size + 64 * 1024);
      const now = liveDir();
      expect(now).not.toBe(before);
      expect(statSync(join(now, 'public.txt')).ino).toBe(statSync(join(releases(), readdirSync(releases()).sort().at(-2) as string, 'public.txt')).ino);
      expect(readFileSync(join(now, weird), 'utf8')).toBe('literal\n');
      expect(existsSync(join(ROOT, 'pwned'))).toBe(false);
      expect(existsSync(join(now, 'pwned'))).toBe(false);
      expect((await get(`http://127.0.0.1:${PORT}/`)).text).toBe('hello 1.1.0 (t)\n');
      // The host updated the live manifest with the changes it was sent: it describes the build.
      const id = live().slots[live().live]?.release as string;
      const onHost = parseManifest(readFileSync(join(s.deployPath, '.skiff/manifests', `${id}.json`), 'utf8'));
      const byPath = (entries: readonly { path: string }[]) => [...entries].sort((a, b) => (a.path < b.path ? -1 : 1));
      expect(byPath(onHost?.entries ?? [])).toEqual(byPath((await buildManifest(s.appDir)).entries));
    });

    it('a removed file is absent; a mode change reaches the new release without touching the live one', async () => {
      const old = liveDir();
      rmSync(join(s.appDir, 'public.txt'));
      chmodSync(join(s.appDir, weird), 0o600);
      const r = await s.run('deploy-vps', ['t']);
      expect(r.code).toBe(0);
      const now = liveDir();
      expect(existsSync(join(now, 'public.txt'))).toBe(false);
      expect(statSync(join(now, weird)).mode & 0o777).toBe(0o600);
      expect(statSync(join(old, weird)).mode & 0o777).toBe(0o644);
      expect(statSync(join(now, weird)).ino).not.toBe(statSync(join(old, weird)).ino);
    });

    it('DEPLOY_SHIP_COMPRESSION=gzip and none ship a change that arrives whole; a bad value is refused before any host is reached', async () => {
      try {
        for (const [packing, said] of [['gzip', 'ship stream: gzip -1'], ['none', 'ship stream: not compressed (DEPLOY_SHIP_COMPRESSION=none)']] as const) {
          s.writeEnv('t.env', env(`DEPLOY_SHIP_COMPRESSION=${packing}`));
          writeFileSync(join(s.appDir, 'public.txt'), `${packing}\n`.repeat(20_000));
          const r = await s.run('deploy-vps', ['t']);
          expect(r.stderr).toBe('');
          expect(r.code).toBe(0);
          expect(r.stdout).toContain(said);
          expect(r.stdout).toMatch(packing === 'gzip' ? /shipped [\d.]+ (B|KB) \(gzip\) for a/ : /shipped [\d.]+ (B|KB) for a/);
          expect(readFileSync(join(liveDir(), 'public.txt'), 'utf8')).toBe(`${packing}\n`.repeat(20_000));
        }
        s.writeEnv('t.env', env('DEPLOY_SHIP_COMPRESSION=lz4'));
        const before = live().live;
        const bad = await s.run('deploy-vps', ['t']);
        expect(bad.code).toBe(2);
        expect(bad.stderr).toContain('DEPLOY_SHIP_COMPRESSION');
        expect(bad.stderr).toContain('`auto`, `zstd`, `gzip` or `none`');
        expect(live().live).toBe(before);
      } finally {
        rmSync(join(s.appDir, 'public.txt'), { force: true });
        s.writeEnv('t.env', env());
      }
    });

    it('a half-shipped folder left by a killed deploy is removed by the next one', async () => {
      mkdirSync(join(releases(), '20260101-000000-0.0.1.partial', 'node_modules'), { recursive: true });
      expect((await s.run('deploy-vps', ['t'])).code).toBe(0);
      expect(readdirSync(releases()).filter((d) => d.endsWith('.partial'))).toEqual([]);
    });
  });

  it('an unknown host key is refused with its fingerprint, and nothing changes', async () => {
    const empty = join(s.dir, 'empty_known_hosts');
    writeFileSync(empty, '');
    const before = readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8');
    s.writeEnv('t.env', env(`DEPLOY_KNOWN_HOSTS=${empty}`));
    s.setVersion('1.0.3');
    const r = await s.run('deploy-vps', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('SHA256:');
    expect(r.stderr).toContain('ssh-keyscan');
    expect(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')).toBe(before);
  });

  it('a host that is down is one clear line', async () => {
    s.writeEnv('t.env', env(`DEPLOY_HOSTS=${userInfo().username}@${SSH.ip}:2299`));
    const r = await s.run('status', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/connection refused/);
  });
});
