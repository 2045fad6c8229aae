/**
 * Backups and restores of the example app's SQLite data and an uploads folder, with the real
 * scripts, on this machine and over a real sshd. Every backup here is restored.
 */
import { execFileSync } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, localEnv, makeSandbox, ROOT, startProcess, type Sandbox } from '../support/sandbox.ts';

const SSH = { ip: '127.0.0.11', port: 2231 };
/** The operator's key of the manifests' MACs (`openssl rand -hex 32`). */
const KEY = 'a3f1c9d27be04e6a8f5d1c2b3a4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f61';

describe.each([
  { where: 'local', port: 18691 },
  { where: 'ssh', port: 18692 },
])('backup and restore ($where)', ({ where, port }) => {
  let s: Sandbox;
  let sshDir = '';
  const base = `http://127.0.0.1:${port}`;
  const env = (extra = '') =>
    localEnv(
      s,
      port,
      [
        ...(where === 'ssh'
          ? [`DEPLOY_HOSTS=${userInfo().username}@${SSH.ip}:${SSH.port}`, `DEPLOY_SSH_KEY=${join(sshDir, 'id_ed25519')}`, `DEPLOY_KNOWN_HOSTS=${join(sshDir, 'known_hosts')}`]
          : []),
        'BACKUP_SQLITE=data/app.db',
        'BACKUP_PATHS=uploads',
        'BACKUP_KEEP=4',
        `BACKUP_SIGNING_KEY=${KEY}`,
        extra,
      ].join('\n'),
    );
  const shared = () => join(s.deployPath, 'shared');
  const backups = () => readdirSync(join(s.deployPath, 'backups')).filter((n) => !n.endsWith('.partial')).sort();
  const count = async () => (JSON.parse((await get(`${base}/api/notes/count`)).text) as { count: number }).count;
  const addNote = (body: string) => fetch(`${base}/api/notes`, { method: 'POST', body: JSON.stringify({ body }) });
  const slotPid = () => readFileSync(join(s.deployPath, '.skiff/blue.pid'), 'utf8').trim();
  const backup = async (label?: string) => {
    const r = await s.run('backup', ['t', ...(label ? [label] : [])]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const name = /backup (\d{8}-\d{6}\.\d{3}(?:-[a-z0-9-]+)?) \(/.exec(r.stdout)?.[1];
    if (!name) throw new Error(`no backup name in ${r.stdout}`);
    return name;
  };
  const rowsIn = (file: string) => Number(execFileSync('sqlite3', [file, 'SELECT count(*) FROM notes;'], { encoding: 'utf8' }).trim());

  beforeAll(async () => {
    s = makeSandbox(`backup-${where}`);
    if (where === 'ssh') {
      sshDir = join(s.dir, 'sshd');
      // Fails (rather than skips) when sshd cannot be had: CI installs it with test/infra/up.sh.
      execFileSync('bash', [join(ROOT, 'test/infra/sshd.sh'), sshDir, SSH.ip, String(SSH.port)], { stdio: 'ignore' });
    }
    s.writeEnv('t.env', env());
    expect((await s.run('deploy-vps', ['t'])).code).toBe(0);
    mkdirSync(join(shared(), 'uploads'), { recursive: true });
    writeFileSync(join(shared(), 'uploads', 'logo.txt'), 'the first logo\n');
    for (let i = 0; i < 20; i++) await addNote(`note ${i}`);
  });
  afterAll(() => {
    const pid = join(sshDir, 'sshd.pid');
    if (sshDir && existsSync(pid)) process.kill(Number(readFileSync(pid, 'utf8')), 'SIGTERM');
    s.cleanup();
  });

  it('a backup taken under continuous writes is consistent: integrity ok, row count between before and after', async () => {
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) await addNote(`during ${i}`);
    })();
    await new Promise((r) => setTimeout(r, 300));
    const before = await count();
    const name = await backup('busy');
    const after = await count();
    writing = false;
    await writer;
    const copy = join(s.deployPath, 'backups', name, 'sqlite/0.db');
    expect(execFileSync('sqlite3', [copy, 'PRAGMA integrity_check;'], { encoding: 'utf8' }).trim()).toBe('ok');
    const rows = rowsIn(copy);
    expect(rows).toBeGreaterThanOrEqual(before);
    expect(rows).toBeLessThanOrEqual(after);
    const manifest = JSON.parse(readFileSync(join(s.deployPath, 'backups', name, 'manifest.json'), 'utf8')) as { app: string; env: string; entries: { path: string; sha256: string }[] };
    expect(manifest).toMatchObject({ app: 'hello', env: 't' });
    expect(manifest.entries.map((e) => e.path).sort()).toEqual(['env', 'files.tar', 'sqlite/0.db']);
  });

  it('restore brings the data back (database and files), and the app is healthy', async () => {
    const name = await backup('known');
    const rows = await count();
    for (let i = 0; i < 5; i++) await addNote(`later ${i}`);
    writeFileSync(join(shared(), 'uploads', 'logo.txt'), 'a newer logo\n');
    writeFileSync(join(shared(), 'uploads', 'extra.txt'), 'added after the backup\n');
    const r = await s.run('restore', ['t', name, '--yes']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`restored ${name}; the data of before is backup \\d{8}-\\d{6}\\.\\d{3}-before-restore`));
    expect(await count()).toBe(rows);
    expect(readFileSync(join(shared(), 'uploads', 'logo.txt'), 'utf8')).toBe('the first logo\n');
    expect(existsSync(join(shared(), 'uploads', 'extra.txt'))).toBe(false);
    expect(existsSync(join(shared(), 'data', 'app.db-wal.restore'))).toBe(false);
    expect(JSON.parse((await get(`${base}/api/health`)).text)).toMatchObject({ status: 'ok' });
  });

  it('restore --test restores into a scratch folder and checks it, touching nothing live', async () => {
    const name = await backup('drill');
    const pid = slotPid();
    await addNote('after the drill backup');
    const rows = await count();
    const r = await s.run('restore', ['t', name, '--test']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`restore test of ${name} passed (nothing live was touched)`);
    expect(r.stdout).toMatch(/sqlite\/0\.db \(data\/app\.db\): integrity ok, 1 tables/);
    expect(r.stdout).toMatch(/files\.tar \(uploads\): \d+ files unpacked/);
    expect(slotPid()).toBe(pid);
    expect(await count()).toBe(rows);
    expect(readdirSync(join(s.deployPath, 'backups')).filter((n) => n.startsWith('.drill'))).toEqual([]);
  });

  it('a corrupted backup (one byte flipped) and a truncated one are refused before anything stops (exit 1)', async () => {
    const name = await backup('damaged');
    const db = join(s.deployPath, 'backups', name, 'sqlite/0.db');
    const bytes = readFileSync(db);
    bytes[bytes.length - 100] = (bytes[bytes.length - 100] as number) ^ 0xff;
    writeFileSync(db, bytes);
    const pid = slotPid();
    const rows = await count();
    const flipped = await s.run('restore', ['t', name, '--yes']);
    expect(flipped.code).toBe(1);
    expect((await s.run('restore', ['t', name, '--test'])).code).toBe(1);
    expect(flipped.stderr).toContain(`backup ${name} on`);
    expect(flipped.stderr).toContain('sqlite/0.db does not match its sha256 (corrupted)');
    truncateSync(join(s.deployPath, 'backups', name, 'files.tar'), 512);
    const truncated = await s.run('restore', ['t', name, '--yes']);
    expect(truncated.code).toBe(1);
    expect(truncated.stderr).toContain('files.tar has 512 bytes');
    expect(slotPid()).toBe(pid);
    expect(await count()).toBe(rows);
  });

  /** Rewrites an entry's size and sha256 in a backup's manifest, so that the backup itself is sound. */
  const reseal = (dir: string, entry: string) => {
    const file = join(dir, 'manifest.json');
    const m = JSON.parse(readFileSync(file, 'utf8')) as { entries: { path: string; size: number; sha256: string }[] };
    const e = m.entries.find((x) => x.path === entry);
    if (!e) throw new Error(`no ${entry} in the manifest`);
    const content = readFileSync(join(dir, entry));
    e.size = content.length;
    e.sha256 = createHash('sha256').update(content).digest('hex');
    writeFileSync(file, JSON.stringify(m, null, 2));
  };

  it.each([
    ['a link below the top level with a file through it (uploads/x -> outside, uploads/x/passwd)', 'below'],
    ['an absolute member name', 'absolute'],
    ['a hard link to an outside path', 'hard'],
  ])('a files.tar holding %s is refused before anything stops (exit 2, one line)', async (_what, kind) => {
    const name = await backup(`crafted-${kind}`);
    const dir = join(s.deployPath, 'backups', name);
    const outside = join(s.dir, `outside-${kind}`);
    const craft = join(s.dir, `craft-${kind}`);
    mkdirSync(outside, { recursive: true });
    writeFileSync(join(outside, 'keep.txt'), 'theirs\n');
    mkdirSync(join(craft, 'a/uploads'), { recursive: true });
    mkdirSync(join(craft, 'b/uploads/x'), { recursive: true });
    writeFileSync(join(craft, 'a/uploads/logo.txt'), 'crafted\n');
    writeFileSync(join(craft, 'b/uploads/x/passwd'), 'owned\n');
    const tarFile = join(dir, 'files.tar');
    if (kind === 'below') {
      symlinkSync(outside, join(craft, 'a/uploads/x'));
      execFileSync('tar', ['-c', '-f', tarFile, '-C', join(craft, 'a'), 'uploads']);
      execFileSync('tar', ['-c', '-f', join(craft, 'b.tar'), '-C', join(craft, 'b'), 'uploads/x/passwd']);
      execFileSync('tar', ['-A', '-f', tarFile, join(craft, 'b.tar')]);
    } else if (kind === 'absolute') {
      execFileSync('tar', ['-c', '-P', '-f', tarFile, '-C', join(craft, 'a'), 'uploads', join(outside, 'keep.txt')]);
    } else {
      // The outside file first, then uploads/h, a hard link to it: tar records it as `link to /.../keep.txt`.
      linkSync(join(outside, 'keep.txt'), join(craft, 'a/uploads/h'));
      execFileSync('tar', ['-c', '-P', '-f', tarFile, join(outside, 'keep.txt'), '-C', join(craft, 'a'), 'uploads']);
    }
    reseal(dir, 'files.tar');
    const pid = slotPid();
    const logo = readFileSync(join(shared(), 'uploads', 'logo.txt'), 'utf8');
    for (const args of [['--yes'], ['--test']]) {
      const r = await s.run('restore', ['t', name, ...args]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(`backup ${name} on`);
      expect(r.stderr).toMatch(/files\.tar holds .*(outside shared\/|an absolute name|below the link).*, which a restore must not unpack: refused; nothing was changed/);
    }
    expect(readdirSync(outside)).toEqual(['keep.txt']);
    expect(readFileSync(join(outside, 'keep.txt'), 'utf8')).toBe('theirs\n');
    expect(readFileSync(join(shared(), 'uploads', 'logo.txt'), 'utf8')).toBe(logo);
    expect(slotPid()).toBe(pid);
    rmSync(dir, { recursive: true });
  });

  it('a database whose folder in shared/ is a link out of shared/ is refused before anything stops (exit 2)', async () => {
    mkdirSync(join(shared(), 'side'), { recursive: true });
    execFileSync('sqlite3', [join(shared(), 'side/x.db'), 'CREATE TABLE t (a); INSERT INTO t VALUES (1);']);
    s.writeEnv('t.env', env('BACKUP_SQLITE=data/app.db,side/x.db'));
    const name = await backup('side');
    const outside = join(s.dir, 'outside-side');
    execFileSync('mv', [join(shared(), 'side'), outside]);
    symlinkSync(outside, join(shared(), 'side'));
    const before = readFileSync(join(outside, 'x.db'));
    const pid = slotPid();
    const r = await s.run('restore', ['t', name, '--yes']);
    rmSync(join(shared(), 'side'));
    s.writeEnv('t.env', env());
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`side/x.db would be written to ${outside}, outside`);
    expect(readFileSync(join(outside, 'x.db')).equals(before)).toBe(true);
    expect(slotPid()).toBe(pid);
  });

  it('a restore after which the app is not healthy puts the data of before back, and the app serves it (exit 1)', async () => {
    const name = await backup('newer-schema');
    // A database the running code cannot use (as after a migration it does not know): its copy in
    // the backup, with the manifest updated so that the backup itself is sound.
    const dir = join(s.deployPath, 'backups', name);
    execFileSync('sqlite3', [join(dir, 'sqlite/0.db'), 'ALTER TABLE notes RENAME COLUMN body TO text;']);
    const manifestFile = join(dir, 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as { entries: { path: string; size: number; sha256: string }[] };
    const db = manifest.entries.find((e) => e.path === 'sqlite/0.db');
    if (!db) throw new Error('no database in the manifest');
    const content = readFileSync(join(dir, 'sqlite/0.db'));
    db.size = content.length;
    db.sha256 = (await import('node:crypto')).createHash('sha256').update(content).digest('hex');
    writeFileSync(manifestFile, JSON.stringify(manifest));
    const rows = await count();
    const r = await s.run('restore', ['t', name, '--yes']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/restore of .* failed: .*; the data of before \(safety backup \d{8}-\d{6}\.\d{3}-before-restore\) is back and the app serves it/);
    expect(await count()).toBe(rows);
    expect(JSON.parse((await get(`${base}/api/health`)).text)).toMatchObject({ status: 'ok' });
  });

  it('keeps exactly BACKUP_KEEP backups, the newest ones, taken back to back (several in one second)', async () => {
    for (let i = 0; i < 3; i++) await backup(`keep-${i}`);
    const kept = backups();
    expect(kept).toHaveLength(4);
    expect(kept.at(-1)).toMatch(/-keep-2$/);
    const list = await s.run('backup', ['t', '--list']);
    expect(list.stdout.split('\n')[1]).toMatch(/-keep-2 /);
  });

  it('a backup named as before milliseconds were added (YYYYMMDD-HHMMSS-label) still restores', async () => {
    const name = await backup('legacy');
    const old = '20261123-041509-legacy';
    execFileSync('cp', ['-a', join(s.deployPath, 'backups', name), join(s.deployPath, 'backups', old)]);
    const file = join(s.deployPath, 'backups', old, 'manifest.json');
    writeFileSync(file, readFileSync(file, 'utf8').replace(`"name": "${name}"`, `"name": "${old}"`));
    const r = await s.run('restore', ['t', old, '--test']);
    rmSync(join(s.deployPath, 'backups', old), { recursive: true });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it.each([
    ['an unknown backup', ['20990101-000000'], 2, 'there is no backup 20990101-000000 of t'],
    // A name with / is the path of a local copy: one that is not there, or one not named like a backup.
    ['a path that is not there', ['../../no-such-backup'], 2, 'no file ../../no-such-backup: give a backup name'],
    ['a path not named like a backup', ['/etc'], 2, '"etc" is not a backup name'],
    ['a name with ..', ['20261123-000000-..'], 2, 'is not a backup name'],
    ['no terminal and no --yes', [], 2, 'no terminal to ask on; pass --yes to confirm'],
  ])('restore refuses %s (one line, nothing changed)', async (_what, args, code, message) => {
    const name = args[0] ?? backups().at(-1);
    const pid = slotPid();
    const r = await s.run('restore', ['t', name as string, ...(args.length ? ['--yes'] : [])]);
    expect(r.code).toBe(code);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(message);
    expect(slotPid()).toBe(pid);
  });

  it('restore refuses a backup of another app or env (exit 2)', async () => {
    const name = backups().at(-1) as string;
    const file = join(s.deployPath, 'backups', name, 'manifest.json');
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.replace('"env": "t"', '"env": "production"'));
    const r = await s.run('restore', ['t', name, '--yes']);
    writeFileSync(file, text);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`backup ${name} is of hello production, not hello t`);
  });

  it('BACKUP_SQLITE that is not a database: one clear line, no backup left behind (exit 1)', async () => {
    writeFileSync(join(shared(), 'notes.txt'), 'just text, not a database\n');
    s.writeEnv('t.env', env('BACKUP_SQLITE=notes.txt'));
    const before = backups();
    const r = await s.run('backup', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/backup failed: .*(not a database|file is encrypted)/);
    expect(backups()).toEqual(before);
    expect(readdirSync(join(s.deployPath, 'backups')).filter((n) => n.endsWith('.partial'))).toEqual([]);
  });

  it('a BACKUP_PATHS entry the app has not created yet is left out and said so', async () => {
    s.writeEnv('t.env', env('BACKUP_PATHS=uploads,avatars'));
    const r = await s.run('backup', ['t', 'partial-paths']);
    s.writeEnv('t.env', env());
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('not there yet, left out: avatars');
    const name = backups().at(-1) as string;
    const manifest = JSON.parse(readFileSync(join(s.deployPath, 'backups', name, 'manifest.json'), 'utf8')) as { entries: { kind: string; sources: string[] }[] };
    expect(manifest.entries.find((e) => e.kind === 'paths')?.sources).toEqual(['uploads']);
    expect((await s.run('restore', ['t', name, '--yes'])).code).toBe(0);
  });

  it('DEPLOY_BACKUP_BEFORE: a deploy backs up first and records it; rollback --with-data brings that data back', async () => {
    s.writeEnv('t.env', env('DEPLOY_BACKUP_BEFORE=true'));
    s.setVersion('1.1.0');
    const rows = await count();
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const name = /backup (\d{8}-\d{6}\.\d{3}-before-deploy)/.exec(r.stdout)?.[1];
    expect(name).toBeDefined();
    const history = readFileSync(join(s.deployPath, '.skiff/releases.jsonl'), 'utf8').trim().split('\n');
    expect(JSON.parse(history.at(-1) as string)).toMatchObject({ version: '1.1.0', status: 'live', backupId: name });
    for (let i = 0; i < 3; i++) await addNote(`written by 1.1.0 ${i}`);
    expect(await count()).toBe(rows + 3);
    const back = await s.run('rollback', ['t', '--with-data', '--yes']);
    s.writeEnv('t.env', env());
    expect(back.stderr).toBe('');
    expect(back.code).toBe(0);
    expect(back.stdout).toContain(`restored ${name}, taken while`);
    expect((await get(`${base}/`)).text).toBe('hello 1.0.0 (t)\n');
    expect(await count()).toBe(rows);
  });

  it('rollback --with-data without a backup of that release refuses before anything changes (exit 2)', async () => {
    const before = readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8');
    // 1.1.0 was live for a while, but no backup was taken then.
    const records = readFileSync(join(s.deployPath, '.skiff/releases.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; version?: string });
    const id = records.find((rec) => rec.version === '1.1.0')?.id as string;
    const r = await s.run('rollback', ['t', id, '--with-data', '--yes']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no backup on .* was taken while .* was live/);
    expect(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')).toBe(before);
  });

  describe('--download', () => {
    const local = () => join(s.dir, 'local-backups', 't');
    const opts = () => ({ env: { SKIFF_BACKUPS_DIR: join(s.dir, 'local-backups') } });
    let identity = '';
    let recipient = '';
    beforeAll(async () => {
      const age = await import('age-encryption');
      identity = await age.generateX25519Identity();
      recipient = await age.identityToRecipient(identity);
      writeFileSync(join(s.dir, 'age-identity.txt'), `# test identity\n${identity}\n`, { mode: 0o600 });
    });

    it('copies a backup here, checked entry by entry; a restore from the copy uploads it first', async () => {
      const r = await s.run('backup', ['t', 'offsite', '--download'], opts());
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const name = /downloaded (\S+) to /.exec(r.stdout)?.[1] as string;
      const file = join(local(), `${name}.tar`);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(execFileSync('tar', ['-t', '-f', file], { encoding: 'utf8' })).toContain(`${name}/sqlite/0.db`);
      const rows = await count();
      await addNote('after the download');
      rmSync(join(s.deployPath, 'backups', name), { recursive: true }); // the server lost it
      const back = await s.run('restore', ['t', file, '--yes'], opts());
      expect(back.stderr).toBe('');
      expect(back.code).toBe(0);
      expect(back.stdout).toContain(`uploaded ${name}`);
      expect(await count()).toBe(rows);
    });

    it('restore --test of a damaged copy drills it in a scratch folder and leaves the host\'s good backup of that name; a copy never replaces it', async () => {
      const r = await s.run('backup', ['t', 'twin', '--download'], opts());
      expect(r.code).toBe(0);
      const name = /downloaded (\S+) to /.exec(r.stdout)?.[1] as string;
      const file = join(local(), `${name}.tar`);
      const bytes = readFileSync(file);
      const at = bytes.indexOf(Buffer.from('SQLite format 3')) + 200;
      bytes[at] = (bytes[at] as number) ^ 0xff;
      writeFileSync(file, bytes);
      const good = readFileSync(join(s.deployPath, 'backups', name, 'sqlite/0.db'));
      const drill = await s.run('restore', ['t', file, '--test'], opts());
      expect(drill.code).toBe(1);
      expect(drill.stderr).toContain('sqlite/0.db does not match its sha256 (corrupted)');
      expect(readFileSync(join(s.deployPath, 'backups', name, 'sqlite/0.db')).equals(good)).toBe(true);
      expect(readdirSync(join(s.deployPath, 'backups')).filter((n) => n.startsWith('.test-') || n.startsWith('.upload-'))).toEqual([]);
      expect((await s.run('restore', ['t', name, '--test'], opts())).code).toBe(0);
      const over = await s.run('restore', ['t', file, '--yes'], opts());
      expect(over.code).toBe(2);
      expect(over.stderr).toContain(`has a backup ${name} already: restore it by name`);
      expect(readFileSync(join(s.deployPath, 'backups', name, 'sqlite/0.db')).equals(good)).toBe(true);
    });

    it('a 300 MB backup downloads with bounded memory: the host waits for the disk (peak RSS under 180 MB)', async () => {
      const big = join(shared(), 'uploads', 'big.bin');
      execFileSync('sh', ['-c', `head -c 300000000 /dev/urandom >"${big}"`]);
      // The largest resident set of the script and its children (tsx runs node under it), polled.
      const treeRss = (root: number): number => {
        const kids = new Map<number, number[]>();
        for (const e of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
          try {
            const ppid = Number(readFileSync(`/proc/${e}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
            kids.set(ppid, [...(kids.get(ppid) ?? []), Number(e)]);
          } catch {
            // gone
          }
        }
        let most = 0;
        const walk = (pid: number) => {
          try {
            most = Math.max(most, Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0));
          } catch {
            // gone
          }
          for (const k of kids.get(pid) ?? []) walk(k);
        };
        walk(root);
        return most;
      };
      const p = startProcess([join(ROOT, 'node_modules/.bin/tsx'), join(ROOT, 'scripts/backup.ts'), 't', 'big', '--download'], { cwd: ROOT, env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(DEPLOY_|BACKUP_|APP_NAME$|APP_DIR$)/.test(k))), SKIFF_ENV_DIR: s.envDir, HOME: s.home, ...opts().env } });
      let peakKb = 0;
      const poll = setInterval(() => (peakKb = Math.max(peakKb, p.child.pid ? treeRss(p.child.pid) : 0)), 50);
      const r = await p.result;
      clearInterval(poll);
      rmSync(big);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const name = /downloaded (\S+) to /.exec(r.stdout)?.[1] as string;
      const file = join(local(), `${name}.tar`);
      expect(statSync(file).size).toBeGreaterThan(300_000_000);
      rmSync(file);
      rmSync(join(s.deployPath, 'backups', name), { recursive: true });
      console.log(`backup --download of 300 MB (${where}): peak RSS ${Math.round(peakKb / 1024)} MB`);
      // Measured here: 382 MB (local) and 524 MB (ssh) when every chunk was queued in memory; 143 and
      // 142 MB with back-pressure, of which most is the script's own node and modules, hence 180.
      expect(peakKb / 1024).toBeLessThan(180);
    }, 120_000);

    it('a copy without a valid MAC is refused before anything is touched (exit 2) unless --trust-copy, which warns', async () => {
      const r = await s.run('backup', ['t', 'signed', '--download'], opts());
      expect(r.code).toBe(0);
      const name = /downloaded (\S+) to /.exec(r.stdout)?.[1] as string;
      const file = join(local(), `${name}.tar`);
      expect(execFileSync('tar', ['-t', '-f', file], { encoding: 'utf8' })).toContain(`${name}/manifest.mac`);
      rmSync(join(s.deployPath, 'backups', name), { recursive: true });
      const work = join(s.dir, 'mac-work');
      const variants: [string, (d: string) => void, string][] = [
        ['no MAC', (d) => rmSync(join(d, 'manifest.mac')), 'carries no MAC (manifest.mac)'],
        ['a manifest changed after signing', (d) => writeFileSync(join(d, 'manifest.json'), readFileSync(join(d, 'manifest.json'), 'utf8').replace('"version"', '"version" ')), 'does not match: the copy was changed'],
        ['a MAC made with another key', (d) => writeFileSync(join(d, 'manifest.mac'), `${createHmac('sha256', 'another key of at least 32 characters').update('skiff backup manifest 1\n').update(readFileSync(join(d, 'manifest.json'))).digest('hex')}\n`), 'does not match'],
      ];
      for (const [what, change, message] of variants) {
        rmSync(work, { recursive: true, force: true });
        mkdirSync(work);
        execFileSync('tar', ['-x', '-f', file, '-C', work]);
        change(join(work, name));
        const forged = join(s.dir, `forged-${variants.findIndex((v) => v[0] === what)}`, `${name}.tar`);
        mkdirSync(join(forged, '..'), { recursive: true });
        execFileSync('tar', ['-c', '-f', forged, '-C', work, name]);
        const rows = await count();
        const pid = slotPid();
        for (const args of [['--yes'], ['--test']]) {
          const refused = await s.run('restore', ['t', forged, ...args], opts());
          expect(refused.code, what).toBe(2);
          expect(refused.stderr.trim().split('\n')).toHaveLength(1);
          expect(refused.stderr).toContain(message);
          expect(refused.stderr).toContain('nothing was touched (pass --trust-copy to restore it anyway)');
        }
        expect(existsSync(join(s.deployPath, 'backups', name))).toBe(false);
        expect(readdirSync(join(s.deployPath, 'backups')).filter((n) => n.startsWith('.'))).toEqual([]);
        expect(await count()).toBe(rows);
        expect(slotPid()).toBe(pid);
      }
      const trusted = await s.run('restore', ['t', join(s.dir, 'forged-0', `${name}.tar`), '--test', '--trust-copy'], opts());
      expect(trusted.code).toBe(0);
      expect(trusted.stdout).toContain('warning: ');
      expect(trusted.stdout).toContain('carries no MAC');
      expect(trusted.stdout).toContain(`restore test of ${name} passed`);
    });

    it('with BACKUP_ENCRYPT_TO the copy is age-encrypted, and restore decrypts it with BACKUP_AGE_IDENTITY', async () => {
      s.writeEnv('t.env', env(`BACKUP_ENCRYPT_TO=${recipient}`));
      const r = await s.run('backup', ['t', 'sealed', '--download'], opts());
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('encrypted with age');
      const name = /downloaded (\S+) to /.exec(r.stdout)?.[1] as string;
      const file = join(local(), `${name}.tar.age`);
      const head = readFileSync(file).subarray(0, 200).toString('latin1');
      expect(head.startsWith('age-encryption.org/v1')).toBe(true);
      expect(readFileSync(file).includes(Buffer.from('SQLite format 3'))).toBe(false);
      const refused = await s.run('restore', ['t', file, '--test'], opts());
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain('is encrypted: set BACKUP_AGE_IDENTITY');
      s.writeEnv('t.env', env(`BACKUP_ENCRYPT_TO=${recipient}\nBACKUP_AGE_IDENTITY=${join(s.dir, 'age-identity.txt')}`));
      rmSync(join(s.deployPath, 'backups', name), { recursive: true });
      const drill = await s.run('restore', ['t', file, '--test'], opts());
      s.writeEnv('t.env', env());
      expect(drill.stderr).toBe('');
      expect(drill.code).toBe(0);
      expect(drill.stdout).toContain(`restore test of ${name} passed`);
    });
  });

  describe('PostgreSQL', () => {
    const PG = { dir: '/tmp/skiff-test-postgres', port: 18745 };
    const url = `postgres://app:app%20pw@127.0.0.1:${PG.port}/app`;
    const psql = (sql: string) =>
      execFileSync('psql', ['-h', '127.0.0.1', '-p', String(PG.port), '-U', 'app', '-d', 'app', '-qAt', '-v', 'ON_ERROR_STOP=1', '-c', sql], {
        encoding: 'utf8',
        env: { ...process.env, PGPASSWORD: 'app pw' },
      }).trim();
    beforeAll(() => {
      // Fails (rather than skips) when PostgreSQL cannot be had: CI installs it with test/infra/up.sh.
      execFileSync('bash', [join(ROOT, 'test/infra/postgres.sh'), PG.dir, String(PG.port)], { stdio: 'ignore' });
      psql(`DROP TABLE IF EXISTS items_${where}; CREATE TABLE items_${where} (id serial PRIMARY KEY, name text NOT NULL)`);
      s.writeEnv('t.secrets.env', `BACKUP_POSTGRES_URL=${url}\n`, 0o600);
    });
    afterAll(() => s.writeEnv('t.secrets.env', '', 0o600));

    it('a pg_dump round trip: the dump is checked, the restore brings the rows back, the password shows nowhere', async () => {
      psql(`INSERT INTO items_${where} (name) VALUES ('one'), ('two')`);
      const r = await s.run('backup', ['t', 'pg']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('postgres.dump');
      const name = /backup (\S+) \(/.exec(r.stdout)?.[1] as string;
      psql(`DELETE FROM items_${where}; INSERT INTO items_${where} (name) VALUES ('later')`);
      const drill = await s.run('restore', ['t', name, '--test']);
      expect(drill.stdout).toMatch(/postgres\.dump: pg_restore -l lists \d+ objects/);
      const back = await s.run('restore', ['t', name, '--yes']);
      expect(back.stderr).toBe('');
      expect(back.code).toBe(0);
      expect(psql(`SELECT string_agg(name, ',' ORDER BY id) FROM items_${where}`)).toBe('one,two');
      for (const out of [r.stdout, drill.stdout, back.stdout, readFileSync(join(s.deployPath, '.skiff/audit.log'), 'utf8')]) expect(out).not.toContain('app pw');
      expect(readFileSync(join(s.deployPath, 'backups', name, 'manifest.json'), 'utf8')).not.toContain('app pw');
    });

    it.each([
      ['a unix socket as ?host=', `postgres://app:app%20pw@/app?host=${PG.dir}&port=${PG.port}`],
      ['a unix socket as a percent-encoded host', `postgres://app:app%20pw@${encodeURIComponent(PG.dir)}:${PG.port}/app`],
      ['sslmode and a percent-encoded password', `postgresql://app:app%20pw@127.0.0.1:${PG.port}/app?sslmode=disable&application_name=skiff`],
    ])('reaches PostgreSQL through %s: backup and restore round trip', async (_what, form) => {
      s.writeEnv('t.secrets.env', `BACKUP_POSTGRES_URL=${form}\n`, 0o600);
      psql(`DELETE FROM items_${where}; INSERT INTO items_${where} (name) VALUES ('socket')`);
      const r = await s.run('backup', ['t', 'pg-form']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const name = /backup (\S+) \(/.exec(r.stdout)?.[1] as string;
      psql(`DELETE FROM items_${where}`);
      const back = await s.run('restore', ['t', name, '--yes']);
      s.writeEnv('t.secrets.env', `BACKUP_POSTGRES_URL=${url}\n`, 0o600);
      expect(back.stderr).toBe('');
      expect(back.code).toBe(0);
      expect(psql(`SELECT string_agg(name, ',') FROM items_${where}`)).toBe('socket');
    });

    it('a database host that accepts and never answers: the backup gives up after connect_timeout (exit 1, one line)', async () => {
      const { createServer } = await import('node:net');
      const held: import('node:net').Socket[] = [];
      const server = createServer((c) => held.push(c));
      await new Promise<void>((r) => server.listen(PG.port + 2, '127.0.0.1', () => r()));
      s.writeEnv('t.secrets.env', `BACKUP_POSTGRES_URL=postgres://app:app%20pw@127.0.0.1:${PG.port + 2}/app?connect_timeout=2\n`, 0o600);
      const started = Date.now();
      const r = await s.run('backup', ['t']);
      const took = Date.now() - started;
      for (const c of held) c.destroy();
      server.close();
      s.writeEnv('t.secrets.env', `BACKUP_POSTGRES_URL=${url}\n`, 0o600);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/backup failed: PostgreSQL app on 127\.0\.0\.1:\d+: .*timeout/);
      expect(r.stderr).not.toContain('app pw');
      expect(took).toBeLessThan(30_000);
    });

    it('a BACKUP_POSTGRES_URL libpq would read differently is refused when the env loads (exit 2), without the password', async () => {
      s.writeEnv('t.secrets.env', 'BACKUP_POSTGRES_URL=postgres://app:app%20pw@127.0.0.1:99999/app\n', 0o600);
      const r = await s.run('backup', ['t']);
      s.writeEnv('t.secrets.env', `BACKUP_POSTGRES_URL=${url}\n`, 0o600);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('BACKUP_POSTGRES_URL');
      expect(r.stderr).not.toContain('app pw');
      expect(r.stderr).not.toContain('TypeError');
    });

    it('PostgreSQL unreachable: one clear line, no backup left (exit 1)', async () => {
      s.writeEnv('t.secrets.env', `BACKUP_POSTGRES_URL=postgres://app:app%20pw@127.0.0.1:${PG.port + 1}/app\n`, 0o600);
      const before = backups();
      const r = await s.run('backup', ['t']);
      s.writeEnv('t.secrets.env', `BACKUP_POSTGRES_URL=${url}\n`, 0o600);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`backup failed: PostgreSQL app on 127\\.0\\.0\\.1:${PG.port + 1}: .*(refused|could not connect)`));
      expect(r.stderr).not.toContain('app pw');
      expect(backups()).toEqual(before);
    });
  });

  it.each([
    ['BACKUP_SQLITE outside shared/', 'BACKUP_SQLITE=../../etc/passwd', 'BACKUP_SQLITE'],
    ['BACKUP_PATHS absolute', 'BACKUP_PATHS=/etc', 'BACKUP_PATHS'],
  ])('refuses %s as a configuration error (exit 2)', async (_what, line, key) => {
    s.writeEnv('t.env', env(line));
    const r = await s.run('backup', ['t']);
    s.writeEnv('t.env', env());
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(key);
  });
});
