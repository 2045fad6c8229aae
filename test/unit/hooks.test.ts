/**
 * DEPLOY_RELEASE_CMD and DEPLOY_MIGRATE: the builders as strings (and run by a real sh, so the
 * environment, the cache keys and the deadline are what they claim), the config keys and their bad
 * values, and the flows against the recording host: what runs, what is skipped, what is recorded,
 * what an error says, and that a failure leaves the live release alone.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cacheKeys, hookInContainer, parseCacheKeys, reuseFolders, runHook } from '../../lib/commands/hooks.ts';
import { renderEnvFile } from '../../lib/config/appenv.ts';
import { render, renderForExec, Secret, type Cmd } from '../../lib/core/cmd.ts';
import { ConfigError } from '../../lib/core/errors.ts';
import { lineSplitter, migrateOnce, releaseCommand, unreleaseCommand } from '../../lib/flows/hooks.ts';
import { migratedSince, schemaWarning } from '../../lib/flows/rollback.ts';
import { withRun } from '../../lib/flows/session.ts';
import type { ExecOptions, ExecResult } from '../../lib/host/host.ts';
import { CMD, deployCtx, DEPLOY_ID, flowSession, forSlot, historyAppended, hostState, rejection, release, slot, testConfig, thrown } from '../support/flow-ctx.ts';
import { failed, inOrder, ok, RecordingHost, when, type Rule } from '../support/recording-host.ts';
import { words } from './shell-words.ts';

const A = '20261130-090000-1.1.0';
const LIVE_BLUE = hostState('blue', { blue: slot(A, 3001) });
const spec = {
  releaseDir: '/srv/a b/releases/r1',
  envFile: '/srv/a b/.skiff/env/r1.env',
  dataDir: '/srv/a b/shared/data',
  version: '1.2.0',
  env: 'staging',
  command: 'npm ci && echo "$X" > out; rm -rf $HOME/x',
  timeoutSeconds: 30,
};

/** The positional words a script receives ($1...). */
const argsOf = (c: Cmd): string[] => words(render(c)).slice(4);

describe('hook builders: every value one quoted word', () => {
  it('runHook: the command, its folder and env file as $1..$8', () => {
    const c = runHook(spec);
    expect(argsOf(c)).toEqual([spec.releaseDir, spec.envFile, spec.dataDir, '1.2.0', 'staging', '30', '10', spec.command]);
    expect(render(c)).toContain("'npm ci && echo \"$X\" > out; rm -rf $HOME/x'");
    expect(render(c)).toContain('exec timeout -k "$7" "$6" sh -c "$8" </dev/null 2>&1');
  });
  it('cacheKeys: each entry is its folder, the count of its inputs, and the inputs', () => {
    const c = cacheKeys('/srv/r', 'pip install -r requirements.txt', [
      { folder: '.venv', inputs: ['requirements.txt', 'constraints file.txt'] },
      { folder: 'node_modules', inputs: ['package-lock.json'] },
    ]);
    expect(argsOf(c)).toEqual(['/srv/r', 'pip install -r requirements.txt', '.venv', '2', 'requirements.txt', 'constraints file.txt', 'node_modules', '1', 'package-lock.json']);
  });
  it('hookInContainer: docker exec in the slot container under timeout', () => {
    expect(render(hookInContainer('hello-staging-green', 'alembic upgrade head; echo "$X"', 60))).toBe(
      `sh -c 'exec timeout -k "$3" "$2" docker exec "$1" sh -c "$4" </dev/null 2>&1' sh hello-staging-green 60 10 'alembic upgrade head; echo "$X"'`,
    );
  });
  it('reuseFolders: the live and new folders, then the folders', () => {
    expect(argsOf(reuseFolders('/srv/r/old', '/srv/r/new', ['node_modules', "it's"]))).toEqual(['/srv/r/old', '/srv/r/new', 'node_modules', "it's"]);
  });
  it('parseCacheKeys reads `<key> <folder>` lines and ignores the rest', () => {
    const k = 'a'.repeat(64);
    expect(parseCacheKeys(`${k} node_modules\n${k} dir with space\nnoise\n`)).toEqual(new Map([['node_modules', k], ['dir with space', k]]));
  });
});

describe('hook builders, run by sh', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-hooks-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const sh = (c: Cmd) => spawnSync('sh', ['-c', renderForExec(c)], { encoding: 'utf8', timeout: 20_000 });

  it('runHook runs in the release with the app environment; the secret is in no argument', () => {
    const rel = join(dir, 'rel');
    mkdirSync(rel);
    const envFile = join(dir, 'r1.env');
    writeFileSync(envFile, renderEnvFile({ TOKEN: new Secret("s3cr3t-'quoted' $value"), PLAIN: 'a b' }));
    const c = runHook({ ...spec, releaseDir: rel, envFile, dataDir: '/data here', command: 'pwd; echo "$TOKEN|$PLAIN|$DATA_DIR|$APP_VERSION|$APP_ENV|${PORT-none}"; echo err >&2' });
    expect(render(c)).not.toContain('s3cr3t');
    const r = sh(c);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${rel}\ns3cr3t-'quoted' $value|a b|/data here|1.2.0|staging|none\nerr\n`);
  });
  it('runHook: the deadline stops the command and what it started (exit 124)', () => {
    const t0 = Date.now();
    const r = sh(runHook({ ...spec, releaseDir: dir, envFile: join(dir, 'none.env'), command: 'sleep 30 & sleep 30; wait', timeoutSeconds: 1 }));
    expect(r.status).toBe(124);
    expect(Date.now() - t0).toBeLessThan(15_000);
  });
  it('runHook passes the exit status through', () => {
    expect(sh(runHook({ ...spec, releaseDir: dir, envFile: join(dir, 'none.env'), command: 'exit 7' })).status).toBe(7);
  });
  it('cacheKeys: a key changes with an input, with the command, and says when an input is missing', () => {
    const rel = join(dir, 'keys');
    mkdirSync(rel);
    writeFileSync(join(rel, 'lock'), 'v1');
    const entries = [{ folder: 'node_modules', inputs: ['lock'] }, { folder: '.venv', inputs: ['req.txt'] }];
    const keys = (command: string) => parseCacheKeys(sh(cacheKeys(rel, command, entries)).stdout);
    const first = keys('npm ci');
    expect([...first.keys()]).toEqual(['node_modules', '.venv']);
    expect(keys('npm ci')).toEqual(first);
    expect(keys('npm ci --omit=dev').get('node_modules')).not.toBe(first.get('node_modules'));
    writeFileSync(join(rel, 'lock'), 'v2');
    const after = keys('npm ci');
    expect(after.get('node_modules')).not.toBe(first.get('node_modules'));
    expect(after.get('.venv')).toBe(first.get('.venv'));
    writeFileSync(join(rel, 'req.txt'), '');
    expect(keys('npm ci').get('.venv')).not.toBe(first.get('.venv'));
  });
  it('reuseFolders hard-links the folder; a folder the live release lacks is exit 3 and changes nothing', () => {
    const live = join(dir, 'live');
    const next = join(dir, 'next');
    mkdirSync(join(live, 'node_modules/x'), { recursive: true });
    mkdirSync(next);
    writeFileSync(join(live, 'node_modules/x/index.js'), 'x');
    expect(sh(reuseFolders(live, next, ['node_modules'])).status).toBe(0);
    expect(spawnSync('stat', ['-c', '%h', join(next, 'node_modules/x/index.js')], { encoding: 'utf8' }).stdout.trim()).toBe('2');
    const r = sh(reuseFolders(live, next, ['node_modules', '.venv']));
    expect(r.status).toBe(3);
    expect(r.stderr).toContain('.venv is not in the live release');
  });
});

describe('config: DEPLOY_RELEASE_CMD, DEPLOY_RELEASE_CACHE, DEPLOY_MIGRATE', () => {
  it('reads the keys, with their defaults', () => {
    const cfg = testConfig({ DEPLOY_RELEASE_CMD: 'npm ci', DEPLOY_RELEASE_CACHE: 'node_modules:package-lock.json  .venv/:./requirements.txt,constraints.txt', DEPLOY_MIGRATE: 'npm run migrate' });
    expect(cfg.releaseCmd).toBe('npm ci');
    expect(cfg.releaseCmdTimeoutSeconds).toBe(900);
    expect(cfg.releaseCache).toEqual([
      { folder: 'node_modules', inputs: ['package-lock.json'] },
      { folder: '.venv', inputs: ['requirements.txt', 'constraints.txt'] },
    ]);
    expect(cfg.migrate).toBe('npm run migrate');
    expect(cfg.migrateTimeoutSeconds).toBe(600);
    const none = testConfig();
    expect([none.releaseCmd, none.migrate, none.releaseCache]).toEqual([undefined, undefined, []]);
  });
  it.each<[string, Record<string, string>, string]>([
    ['a cache folder outside the release', { DEPLOY_RELEASE_CMD: 'x', DEPLOY_RELEASE_CACHE: '../up:lock' }, 'DEPLOY_RELEASE_CACHE is "../up:lock", expected'],
    ['a cache entry without inputs', { DEPLOY_RELEASE_CMD: 'x', DEPLOY_RELEASE_CACHE: 'node_modules' }, 'DEPLOY_RELEASE_CACHE is "node_modules"'],
    ['an absolute input', { DEPLOY_RELEASE_CMD: 'x', DEPLOY_RELEASE_CACHE: 'node_modules:/etc/passwd' }, 'DEPLOY_RELEASE_CACHE'],
    ['the release folder itself', { DEPLOY_RELEASE_CMD: 'x', DEPLOY_RELEASE_CACHE: '.:lock' }, 'DEPLOY_RELEASE_CACHE'],
    ['a folder twice', { DEPLOY_RELEASE_CMD: 'x', DEPLOY_RELEASE_CACHE: 'a:l1 a/:l2' }, 'DEPLOY_RELEASE_CACHE'],
    ['one folder inside another', { DEPLOY_RELEASE_CMD: 'x', DEPLOY_RELEASE_CACHE: 'a:l1 a/b:l2' }, 'DEPLOY_RELEASE_CACHE'],
    ['a cache without a release command', { DEPLOY_RELEASE_CACHE: 'node_modules:package-lock.json' }, 'DEPLOY_RELEASE_CACHE is "node_modules:package-lock.json", expected set with DEPLOY_RELEASE_CMD'],
    ['a deadline of 0', { DEPLOY_MIGRATE: 'x', DEPLOY_MIGRATE_TIMEOUT: '0' }, 'DEPLOY_MIGRATE_TIMEOUT is "0", expected seconds, 1-86400'],
    ['a deadline that is not a number', { DEPLOY_RELEASE_CMD: 'x', DEPLOY_RELEASE_CMD_TIMEOUT: '10m' }, 'DEPLOY_RELEASE_CMD_TIMEOUT is "10m"'],
    ['a release command with docker', { DEPLOY_RUNTIME: 'docker', DEPLOY_RELEASE_CMD: 'npm ci' }, 'DEPLOY_RELEASE_CMD is "npm ci", expected unset with DEPLOY_RUNTIME=docker (put the command in the Dockerfile'],
    [
      'a migration with docker and no proxy',
      { DEPLOY_RUNTIME: 'docker', DEPLOY_MIGRATE: 'm', DEPLOY_PROXY: 'none', DEPLOY_PORTS: '3001', DEPLOY_PUBLIC_URL: '' },
      'DEPLOY_MIGRATE is "m", expected set with a proxy when DEPLOY_RUNTIME=docker',
    ],
  ])('refuses %s (exit 2, the key named)', (_name, values, message) => {
    const error = thrown(() => testConfig(values));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain(message);
  });
});

describe('lineSplitter', () => {
  it('gives whole lines, scrubbed of known secrets even when a chunk cuts one in two, and keeps the last five', () => {
    new Secret('split-secret-value-1');
    const lines: string[] = [];
    const s = lineSplitter((l) => lines.push(l));
    for (const chunk of ['one\ntwo split-sec', 'ret-value-1 end\r\n\n', 'three\nfour\nfive\nsix', '']) s.push(chunk);
    s.end();
    expect(lines).toEqual(['one', 'two [REDACTED] end', 'three', 'four', 'five', 'six']);
    expect(s.tail()).toEqual(['two [REDACTED] end', 'three', 'four', 'five', 'six']);
  });
});

/** A recording host whose commands print their stdout through onStdout, as the real hosts stream it. */
class StreamingHost extends RecordingHost {
  override async exec(command: Cmd, options: ExecOptions = {}): Promise<ExecResult> {
    const r = await super.exec(command, options);
    if (options.onStdout && r.stdout) options.onStdout(Buffer.from(r.stdout));
    return r;
  }
}

const HOOK = 'exec timeout -k';
const KEYS_CMD = 'cut -c1-64) || exit 1';
const REUSE = 'cp -al';
const K1 = '1'.repeat(64);
const K2 = '2'.repeat(64);
const WITH_CACHE = { DEPLOY_RELEASE_CMD: 'npm ci', DEPLOY_RELEASE_CACHE: 'node_modules:package-lock.json' };

const hookCtx = (values: Record<string, string>, rules: readonly Rule[], files: Record<string, string> = {}) => {
  const made = deployCtx({ cfg: testConfig(values), state: LIVE_BLUE, rules, files });
  const streaming = new StreamingHost(made.host.rules, made.host.name);
  for (const [k, v] of made.host.files) streaming.files.set(k, v);
  const ctx = { ...made.ctx, host: streaming };
  return { ...made, ctx, host: streaming };
};

describe('releaseCommand', () => {
  it('runs the command in the new release and streams its lines; records it ran', async () => {
    const { ctx, host, logs } = hookCtx({ DEPLOY_RELEASE_CMD: 'npm ci' }, [when(HOOK, ok('added 3 packages\nnpm notice x\n'))]);
    await releaseCommand(ctx);
    const [hook] = host.commands.filter((c) => c.includes(HOOK));
    expect(words(hook ?? '').slice(4, 6)).toEqual([`/srv/hello/releases/${DEPLOY_ID}`, `/srv/hello/.skiff/env/${DEPLOY_ID}.env`]);
    expect(host.execs.find((e) => e.command.includes(HOOK))?.options.timeoutMs).toBe((900 + 60) * 1000);
    expect(logs).toEqual(expect.arrayContaining(['added 3 packages', 'npm notice x']));
    expect(ctx.run.releaseCmd).toMatchObject({ status: 'ran' });
  });
  it('inputs unchanged since the live release: its folders are hard-linked and the command skipped', async () => {
    const { ctx, host, logs } = hookCtx(WITH_CACHE, [when(KEYS_CMD, ok(`${K1} node_modules\n`))], { [`/srv/hello/releases/${A}/.skiff-release-cache`]: `${K1} node_modules\n` });
    await releaseCommand(ctx);
    expect(host.commands.some((c) => c.includes(HOOK))).toBe(false);
    expect(inOrder(host.events, [KEYS_CMD, `get /srv/hello/releases/${A}/.skiff-release-cache`, REUSE, `put /srv/hello/releases/${DEPLOY_ID}/.skiff-release-cache`])).toHaveLength(4);
    expect(host.files.get(`/srv/hello/releases/${DEPLOY_ID}/.skiff-release-cache`)?.content.toString()).toBe(`${K1} node_modules\n`);
    expect(ctx.run.releaseCmd).toMatchObject({ status: 'skipped', reusedFrom: A });
    expect(logs.at(-1)).toBe(`inputs unchanged: node_modules taken from ${A}; DEPLOY_RELEASE_CMD skipped`);
  });
  it('a changed input: the command runs from scratch, and its keys are written after it succeeded', async () => {
    const { ctx, host, logs } = hookCtx(WITH_CACHE, [when(KEYS_CMD, ok(`${K2} node_modules\n`)), when(HOOK, ok('installed\n'))], { [`/srv/hello/releases/${A}/.skiff-release-cache`]: `${K1} node_modules\n` });
    await releaseCommand(ctx);
    expect(host.commands.some((c) => c.includes(REUSE))).toBe(false);
    expect(inOrder(host.events, [HOOK, `put /srv/hello/releases/${DEPLOY_ID}/.skiff-release-cache`])).toHaveLength(2);
    expect(logs).toContain(`changed since ${A}: node_modules: running DEPLOY_RELEASE_CMD`);
  });
  it('the live release lacks the folder: the command runs', async () => {
    const { ctx, host } = hookCtx(WITH_CACHE, [when(KEYS_CMD, ok(`${K1} node_modules\n`)), when(REUSE, failed(3, 'node_modules is not in the live release')), when(HOOK, ok(''))], {
      [`/srv/hello/releases/${A}/.skiff-release-cache`]: `${K1} node_modules\n`,
    });
    await releaseCommand(ctx);
    expect(host.commands.some((c) => c.includes(HOOK))).toBe(true);
    expect(ctx.run.releaseCmd?.status).toBe('ran');
  });
  it('a failure: exit status and last lines in one message, the release recorded failed, nothing else touched', async () => {
    const { ctx, host } = hookCtx({ DEPLOY_RELEASE_CMD: 'make' }, [when(HOOK, { code: 2, stdout: 'a\nb\nc\nd\ne\nf\ng: no compiler\n', stderr: '' })]);
    const error = await rejection(releaseCommand(ctx));
    expect(error.message).toBe(`web1: DEPLOY_RELEASE_CMD failed (exit 2); its last lines: c | d | e | f | g: no compiler; nothing was switched: ${A} still serves`);
    expect(historyAppended(host).at(-1)).toMatchObject({ id: DEPLOY_ID, status: 'failed', releaseCmd: { status: 'failed', exitCode: 2 } });
    expect(host.commands.filter((c) => c.includes(CMD.start) || c.includes(CMD.stop) || c.includes(CMD.switchCurrent))).toEqual([]);
  });
  it('the deadline: exit 124 after DEPLOY_RELEASE_CMD_TIMEOUT is said as such', async () => {
    const made = hookCtx({ DEPLOY_RELEASE_CMD: 'make', DEPLOY_RELEASE_CMD_TIMEOUT: '5' }, [when(HOOK, { code: 124, stdout: 'waiting\n', stderr: '' })]);
    // The fake clock moves when the code sleeps; the command "took" its whole deadline.
    const ctx = { ...made.ctx, clock: { now: (() => { let t = 0; return () => (t += 5000); })(), sleep: async () => {} } };
    const error = await rejection(releaseCommand(ctx));
    expect(error.message).toContain('DEPLOY_RELEASE_CMD stopped at its deadline of 5 s (DEPLOY_RELEASE_CMD_TIMEOUT); its last lines: waiting');
    expect(ctx.run.releaseCmd?.status).toBe('timed-out');
  });
  it('unreleaseCommand records the release failed on a host where the command had succeeded', async () => {
    const { ctx, host } = hookCtx({ DEPLOY_RELEASE_CMD: 'make' }, []);
    await unreleaseCommand(ctx, 'web2 failed: DEPLOY_RELEASE_CMD failed (exit 1)');
    expect(historyAppended(host).at(-1)).toMatchObject({ status: 'failed', reason: 'web2 failed: DEPLOY_RELEASE_CMD failed (exit 1)' });
  });
});

describe('migrateOnce', () => {
  const MIGRATE = { DEPLOY_MIGRATE: 'alembic upgrade head' };
  /** Two hosts of one deploy, each past its health gate in green. */
  const two = (rules: readonly Rule[]) => {
    const cfg = testConfig(MIGRATE);
    const hosts = ['web1', 'web2'].map((name) => {
      const fs = flowSession({ cfg, state: LIVE_BLUE, hostName: name, rules });
      const host = new StreamingHost(fs.host.rules, name);
      return { ...fs, session: { ...fs.session, host }, host };
    });
    const all = withRun(hosts.map((h) => h.session), { action: 'deploy', id: DEPLOY_ID, version: '1.2.0', gitSha: undefined, start: 'node server.js' });
    for (const c of all) c.run.fix({ previous: { state: LIVE_BLUE, slot: slot(A, 3001) }, target: { slot: 'green', port: 3002 } });
    return { all, hosts: hosts.map((h) => h.host) };
  };
  it('runs on the first host only, and every host records that it ran', async () => {
    const { all, hosts } = two([when(HOOK, ok('upgraded\n'))]);
    await migrateOnce(all);
    expect(hosts.map((h) => h.commands.filter((c) => c.includes(HOOK)).length)).toEqual([1, 0]);
    expect(words(hosts[0]?.commands.find((c) => c.includes(HOOK)) ?? '').at(-1)).toBe('alembic upgrade head');
    for (const c of all) expect(c.run.migration).toMatchObject({ host: 'web1', status: 'ok' });
  });
  it('a failure stops the new slot on every host, records the release failed with the migration, and names the backup', async () => {
    const { all, hosts } = two([when(HOOK, { code: 1, stdout: 'sqlite3.OperationalError: no such table: x\n', stderr: '' })]);
    for (const c of all) c.run.backupId = '20261201-095959.000-before-deploy';
    const error = await rejection(migrateOnce(all));
    expect(error.message).toBe(
      `web1: DEPLOY_MIGRATE failed (exit 1); its last lines: sqlite3.OperationalError: no such table: x; nothing was switched: ${A} still serves; ` +
        'backup 20261201-095959.000-before-deploy (DEPLOY_BACKUP_BEFORE) holds the data of before it: `npx tsx scripts/restore.ts staging 20261201-095959.000-before-deploy` if it left the schema half changed',
    );
    for (const h of hosts) {
      expect(h.commands.filter((c) => c.includes(CMD.stop) && c.includes('/srv/hello/.skiff/green.pid'))).toHaveLength(1);
      expect(h.commands.some((c) => c.includes('/srv/hello/.skiff/blue.pid') && c.includes(CMD.stop))).toBe(false);
      expect(historyAppended(h).at(-1)).toMatchObject({ status: 'failed', backupId: '20261201-095959.000-before-deploy', migration: { host: 'web1', status: 'failed', exitCode: 1 } });
    }
  });
  it('with proxy none there is no new slot to stop (the migration ran before the replace)', async () => {
    const { ctx, host } = deployCtx({ cfg: testConfig({ ...MIGRATE, DEPLOY_PROXY: 'none', DEPLOY_PORTS: '3001', DEPLOY_PUBLIC_URL: '' }), state: LIVE_BLUE, rules: [when(HOOK, failed(1))] });
    await rejection(migrateOnce([ctx]));
    expect(host.commands.filter((c) => c.includes(CMD.stop))).toEqual([]);
    expect(historyAppended(host).at(-1)).toMatchObject({ status: 'failed', migration: { status: 'failed' } });
  });
  it('with docker it runs in the new slot container, which a failure stops', async () => {
    const { dockerRuntime } = await import('../../lib/runtime/docker.ts');
    const cfg = testConfig({ ...MIGRATE, DEPLOY_RUNTIME: 'docker', DEPLOY_START: '' });
    const { ctx, host } = deployCtx({ cfg, state: LIVE_BLUE, runtime: () => dockerRuntime(cfg), rules: [when('docker exec', failed(1))] });
    await rejection(migrateOnce([ctx]));
    expect(host.commands.filter((c) => c.includes('docker exec'))).toEqual([
      `sh -c 'exec timeout -k "$3" "$2" docker exec "$1" sh -c "$4" </dev/null 2>&1' sh hello-staging-green 600 10 'alembic upgrade head'`,
    ]);
    expect(host.commands.filter((c) => c.includes('docker stop'))).toHaveLength(1);
    expect(host.commands.find((c) => c.includes('docker stop'))).toContain('hello-staging-green');
  });
  it('does nothing without DEPLOY_MIGRATE', async () => {
    const { ctx, host } = deployCtx({ state: LIVE_BLUE, rules: [forSlot(CMD.find, 'green', ok('running 1 pidfile'))] });
    await migrateOnce([ctx]);
    expect(host.commands).toEqual([]);
  });
});

describe('rollback over a migration', () => {
  const B = '20261201-080000-1.2.0';
  const C = '20261201-090000-1.3.0';
  const history = [release(A), release(B, 'live', { migration: { host: 'web1', status: 'ok', ms: 10 }, backupId: '20261201-075959.000-before-deploy' }), release(C)];
  it('finds the releases after the target whose migration went through', () => {
    expect(migratedSince(history, A).map((r) => r.id)).toEqual([B]);
    expect(migratedSince(history, B)).toEqual([]);
    expect(migratedSince([release(A), release(B, 'failed', { migration: { host: 'web1', status: 'failed', ms: 1 } })], A)).toEqual([]);
  });
  it('warns in one line and points at --with-data', () => {
    const target = history[0] as (typeof history)[number];
    expect(schemaWarning(migratedSince(history, A), target, 'production')).toBe(
      `warning: ${B} ran DEPLOY_MIGRATE, so the schema moved since ${A}: it will run on the migrated data, which works only if the migration kept the old schema readable (docs/migrations.md); ` +
        `to put the data of before back too, roll back with --with-data, which restores the newest backup taken while ${A} was live (the deploy of ${B} took 20261201-075959.000-before-deploy before its migration): ` +
        `npx tsx scripts/rollback.ts production ${A} --with-data`,
    );
    expect(schemaWarning([], target, 'production')).toBeUndefined();
  });
});

describe('preflight with hooks', () => {
  it('asks the host for timeout and sha256sum only when DEPLOY_RELEASE_CMD or DEPLOY_MIGRATE is set', async () => {
    const { preflight } = await import('../../lib/flows/deploy.ts');
    const plain = deployCtx({ plan: 'unfixed' });
    await preflight(plain.ctx);
    expect(words(plain.host.commands[0] ?? '').slice(4)).toEqual(['sh', 'tar', 'setsid', 'grep', 'awk']);
    const hooked = deployCtx({ plan: 'unfixed', cfg: testConfig({ DEPLOY_MIGRATE: 'm' }), rules: [when(CMD.tools, ok('timeout\n'))] });
    await expect(preflight(hooked.ctx)).rejects.toThrow(/^web1 lacks timeout: run `npx tsx scripts\/setup.ts staging --install`/);
  });
});
