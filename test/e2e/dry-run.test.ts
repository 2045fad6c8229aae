/**
 * The shared flags with the real scripts on a deployed example app: every --dry-run changes
 * nothing on the host (no lock, no audit line, no backup, the same process), --json prints what
 * a program reads back, and stop asks first in production.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, localEnv, makeSandbox, type Sandbox } from '../support/sandbox.ts';

const PORT = 18481;

/** Every file under DEPLOY_PATH with its sha256, but what the app itself writes (its log and data). */
const hostFiles = (root: string): Record<string, string> => {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      const rel = relative(root, full);
      if (rel === 'shared/logs' || rel === 'shared/data') continue;
      const st = statSync(full, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(full);
      else out[rel] = createHash('sha256').update(readFileSync(full)).digest('hex');
    }
  };
  walk(root);
  return out;
};

describe('the shared flags on a deployed app', () => {
  let s: Sandbox;
  let backupName = '';
  const pid = () => readFileSync(join(s.deployPath, '.skiff/blue.pid'), 'utf8').trim();

  beforeAll(async () => {
    s = makeSandbox('dry-run');
    s.writeEnv('t.env', localEnv(s, PORT, 'BACKUP_SQLITE=data/app.db\nBACKUP_KEEP=2'));
    const d = await s.run('deploy-vps', ['t']);
    expect(d.code, d.stderr).toBe(0);
    for (const label of ['one', 'two']) {
      const b = await s.run('backup', ['t', label, '--json']);
      expect(b.code, b.stderr).toBe(0);
      backupName = (JSON.parse(b.stdout) as { name: string }).name;
    }
  });
  afterAll(() => s?.cleanup());

  it.each<[string, string, () => string[], RegExp]>([
    ['stop', 'stop', () => ['t', '--dry-run'], /^\[.*\] dry run: t: would stop pid \d+ \(release \S+\), draining for up to 5s; nothing was changed$/m],
    ['start', 'start', () => ['t', '--dry-run'], /^\[.*\] dry run: t: already running \(pid \d+\): would start nothing; nothing was changed$/m],
    ['backup', 'backup', () => ['t', 'extra', '--dry-run'], /dry run: t: would back up data\/app\.db, \.env into \S+\/backups\/\d{8}-\d{6}\.\d{3}-extra, then remove 1 old backup\(s\) beyond BACKUP_KEEP=2: \S+-one; nothing was changed$/m],
    ['restore', 'restore', () => ['t', backupName, '--dry-run'], /dry run: t: backup \S+-two is sound \(sqlite\/0\.db, env checked\); would take a safety backup, stop the live release, put the data in place and start it again; nothing was changed$/m],
    ['deploy-vps', 'deploy-vps', () => ['t', '--dry-run'], /dry run: nothing was changed \(would deploy /],
    ['build', 'build', () => ['t', '--dry-run'], /dry run: t 1\.0\.0: nothing to build \(no DEPLOY_BUILD set\)/],
  ])('%s --dry-run changes nothing on the host, and the app keeps its process', async (_name, script, args, said) => {
    const before = hostFiles(s.deployPath);
    const was = pid();
    const r = await s.run(script, args());
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(said);
    expect(hostFiles(s.deployPath)).toEqual(before);
    expect(pid()).toBe(was);
    expect((await get(`http://127.0.0.1:${PORT}/api/health`)).status).toBe(200);
  });

  it('restore --dry-run with --test is refused: give one', async () => {
    const r = await s.run('restore', ['t', backupName, '--dry-run', '--test']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('error: --test touches nothing live already: give --test or --dry-run, not both');
  });

  it('--json: backup --list, rollback --list, a deploy, a backup dry run', async () => {
    const list = await s.run('backup', ['t', '--list', '--json']);
    expect(list.code, list.stderr).toBe(0);
    const backups = JSON.parse(list.stdout) as { host: string; backups: { name: string; entries: unknown[] }[] };
    expect(backups.host).toBe('local');
    expect(backups.backups.map((b) => b.name)[0]).toBe(backupName); // newest first
    expect(backups.backups[0]?.entries.length).toBe(2);

    const releases = await s.run('rollback', ['t', '--list', '--json']);
    expect(releases.code, releases.stderr).toBe(0);
    const history = JSON.parse(releases.stdout) as { live: string; releases: { id: string; onHost: boolean }[] };
    expect(history.releases[0]).toMatchObject({ id: history.live, onHost: true });

    const plan = await s.run('backup', ['t', '--dry-run', '--json']);
    expect(JSON.parse(plan.stdout)).toMatchObject({ host: 'local', entries: ['data/app.db', '.env'], dryRun: true });

    const d = await s.run('deploy-vps', ['t', '--json']);
    expect(d.code, d.stderr).toBe(0);
    const result = JSON.parse(d.stdout.trim().split('\n').at(-1) as string) as Record<string, unknown>;
    expect(result).toMatchObject({ action: 'deploy', env: 't', version: '1.0.0', hosts: ['local'], dryRun: false });
    // Per host: what the ship sent (nothing packed to this machine) and each step's milliseconds.
    const [one] = result.perHost as { host: string; release: string; shipped: { packing?: string; files: number }; durations: Record<string, number> }[];
    expect(one?.host).toBe('local');
    expect(one?.release).toBe(result.release);
    expect(one?.shipped.packing).toBe('none');
    for (const step of ['preflight', 'ship', 'start']) expect(one?.durations[step]).toBeGreaterThanOrEqual(0);
    expect(JSON.parse((await s.run('status', ['t', '--json'])).stdout)).toMatchObject({ release: { release: result.release } });
  });

  it('rollback --dry-run finds the earlier release on the host, says it would roll back to it, and changes nothing', async () => {
    const list = JSON.parse((await s.run('rollback', ['t', '--list', '--json'])).stdout) as { live: string; releases: { id: string }[] };
    const earlier = list.releases.find((r) => r.id !== list.live)?.id ?? '';
    expect(earlier).not.toBe('');
    const before = hostFiles(s.deployPath);
    const was = pid();
    const r = await s.run('rollback', ['t', '--dry-run']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`dry run: nothing was changed (would roll t back to ${earlier} (version 1.0.0)`);
    expect(r.stdout).not.toMatch(/\brolled\b/);
    expect(hostFiles(s.deployPath)).toEqual(before);
    expect(pid()).toBe(was);
  });

  it('a shared flag a script does not offer stops it with the reason (exit 2), before it reads the env', async () => {
    for (const [script, flag] of [['backup', '--yes'], ['logs', '--json'], ['status', '--dry-run'], ['build', '--lock-wait']] as const) {
      const r = await s.run(script, ['t', flag, ...(flag === '--lock-wait' ? ['5'] : [])]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim()).toMatch(new RegExp(`^error: ${script} does not offer ${flag}: it `));
    }
  });

  it('stop asks first in production; --yes answers; start takes the lock flags', async () => {
    s.writeEnv('production.env', localEnv(s, PORT, ''));
    const asked = await s.run('stop', ['production']);
    expect(asked.code).toBe(2);
    expect(asked.stderr.trim()).toBe('error: Stop the live release of production: no terminal to ask on; pass --yes to confirm');
    expect((await get(`http://127.0.0.1:${PORT}/api/health`)).status).toBe(200);
    const stopped = await s.run('stop', ['production', '--yes', '--lock-wait', '5']);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toMatch(/production: stopped pid \d+/);
    const dry = await s.run('start', ['t', '--dry-run']);
    expect(dry.stdout).toMatch(/dry run: t: would start 1\.0\.0 \(release \S+\) on port 18481; nothing was changed/);
    expect((await get(`http://127.0.0.1:${PORT}/api/health`)).status).toBe(0);
    const started = await s.run('start', ['t', '--force-unlock', '--lock-wait', '5']);
    expect(started.code, started.stderr).toBe(0);
    const bad = await s.run('start', ['t', '--lock-wait', 'soon']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe('error: --lock-wait takes whole seconds, not "soon"');
  });
});
