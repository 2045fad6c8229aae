/** exec: its builders as strings (and run by a real shell), the choice of hosts, and the flow against recording hosts. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { execInContainer, execInRelease, execWords, psqlConsole, shownWords, sqliteConsole, wordsWithoutShell, type ExecWords } from '../../lib/commands/exec.ts';
import { render, renderForExec } from '../../lib/core/cmd.ts';
import { NotDeployedError, SkiffError, UsageError } from '../../lib/core/errors.ts';
import { layout } from '../../lib/core/paths.ts';
import { PG_VARIABLES } from '../../lib/config/pg-url.ts';
import { DEADLINE, DeadlineError, type Host } from '../../lib/host/host.ts';
import { dryRunLine, overallCode, pickTargets, planDbConsole, planExec, streamExec, targetName, ttyExec } from '../../lib/flows/exec.ts';
import type { Session } from '../../lib/flows/session.ts';
import { auditAppended, flowSession, hostState, rejection, slot, testConfig, thrown } from '../support/flow-ctx.ts';
import { ok, when } from '../support/recording-host.ts';

const l = layout('/srv/hello');
const live = { releaseDir: '/srv/hello/releases/r1', envFile: '/srv/hello/.skiff/env/r1.env', port: 3001, version: '1.2.0', env: 'staging' };
const words = (...w: string[]): ExecWords => {
  const x = execWords(w);
  if (!x) throw new Error('no words');
  return x;
};

describe('the words after --', () => {
  it('none is no command; one is a shell line; several are argv, word by word', () => {
    expect(execWords([])).toBeUndefined();
    expect(execWords(['a && b'])).toEqual({ kind: 'shell', line: 'a && b' });
    expect(execWords(['ls', '-la', 'my file'])).toEqual({ kind: 'argv', words: ['ls', '-la', 'my file'] });
    expect(shownWords(words('ls', "it's", '$HOME'))).toBe(`ls 'it'\\''s' '$HOME'`);
    expect(shownWords(words('python manage.py migrate && echo done'))).toBe('python manage.py migrate && echo done');
  });
});

describe('execInRelease', () => {
  it('cds to the release, sources its env file, sets what the app gets after it, and execs the words as arguments', () => {
    const text = render(execInRelease(l, live, words('printf', '%s\n', 'a b', "'$(x)'")));
    expect(text).toContain(`sh /srv/hello/releases/r1 /srv/hello/.skiff/env/r1.env 3001 /srv/hello/shared/data 1.2.0 staging printf '%s\n' 'a b' ''\\''$(x)'\\'''`);
    expect(text).toContain('set -a; . "$2"');
    expect(text).toContain('export PORT="$3" DATA_DIR="$4" APP_VERSION="$5" APP_ENV="$6"');
    expect(text).toContain('exec "$@"');
    // The slot's marker would make this process look like the slot's own.
    expect(text).not.toContain('SKIFF_SLOT');
  });

  it('a single word goes to sh -c', () => {
    expect(render(execInRelease(l, live, words('echo $PORT && exit 3')))).toMatch(/ staging sh -c 'echo \$PORT && exit 3'$/);
  });

  it('a real shell runs it: the env file values arrive, hostile words arrive literally, the status is the command\'s', () => {
    const dir = mkdtempSync(join(tmpdir(), 'skiff-exec-'));
    writeFileSync(join(dir, 'app.env'), "GREETING='hi there'\nTOKEN='s3cret'\n");
    const spec = { ...live, releaseDir: dir, envFile: join(dir, 'app.env') };
    const run = (w: ExecWords) => {
      try {
        return { out: execFileSync('/bin/sh', ['-c', renderForExec(execInRelease(layout(dir), spec, w))], { encoding: 'utf8', cwd: '/' }), code: 0 };
      } catch (e) {
        const err = e as { status: number; stdout: string };
        return { out: err.stdout, code: err.status };
      }
    };
    expect(run(words('echo "$GREETING|$PORT|$APP_ENV|$(pwd)"; exit 7'))).toEqual({ out: `hi there|3001|staging|${dir}\n`, code: 7 });
    expect(run(words('printf', '%s|', '$(touch pwned)', 'a;b', "it's", ''))).toEqual({ out: "$(touch pwned)|a;b|it's||", code: 0 });
    expect(run(words('ls pwned 2>/dev/null || echo none'))).toEqual({ out: 'none\n', code: 0 });
    expect(run({ ...spec, kind: 'argv', words: ['true'] }).code).toBe(0);
    const gone = { ...spec, releaseDir: join(dir, 'gone') };
    expect(() => execFileSync('/bin/sh', ['-c', renderForExec(execInRelease(layout(dir), gone, words('true')))], { stdio: 'pipe' })).toThrow(/release folder .* is gone/);
  });
});

describe('execInContainer', () => {
  it('docker exec -i, or -it with a terminal, in the slot container', () => {
    expect(render(execInContainer('hello-staging-blue', words('python', 'manage.py', 'shell'), true))).toBe('docker exec -it hello-staging-blue python manage.py shell');
    expect(render(execInContainer('hello-staging-blue', words('echo $PORT; exit 2'), false))).toBe("docker exec -i hello-staging-blue sh -c 'echo $PORT; exit 2'");
  });
});

describe('the database consoles', () => {
  it('sqlite3 on the file, refused when it is not there', () => {
    expect(render(sqliteConsole('/srv/hello/shared/data/app.db', ['select 1;']))).toMatch(/ sh \/srv\/hello\/shared\/data\/app\.db 'select 1;'$/);
    expect(() => execFileSync('/bin/sh', ['-c', renderForExec(sqliteConsole('/nonexistent/app.db', []))], { stdio: 'pipe' })).toThrow(/no database at \/nonexistent\/app\.db/);
  });

  it('psql with the PG* variables as words, validated; the password only as a file name', () => {
    const text = render(psqlConsole(PG_VARIABLES, { PGHOST: 'db', PGUSER: 'app', PGDATABASE: 'app' }, '/srv/hello/.skiff/.pgpass-1', 10, ['-c', 'select 1']));
    expect(text).toMatch(/ sh \/srv\/hello\/\.skiff\/\.pgpass-1 3 PGHOST=db PGUSER=app PGDATABASE=app -c 'select 1'$/);
    expect(text).toContain('unset PGPASSWORD PGPASSFILE');
    expect(text).toContain('trap : INT QUIT');
  });
});

describe('which hosts', () => {
  const one = testConfig({ DEPLOY_HOSTS: 'deploy@web1:22' });
  const two = testConfig({ DEPLOY_HOSTS: 'deploy@web1:22,deploy@web2:2222' });
  const pick = (cfg = two, o: Partial<{ host: string; all: boolean; tty: boolean }> = {}) => pickTargets(cfg, { host: undefined, all: false, tty: false, ...o }).map(targetName);

  it('the only host; the one --host names in any of its forms; every one in order with --all', () => {
    expect(pick(one)).toEqual(['deploy@web1:22']);
    for (const name of ['deploy@web2:2222', 'deploy@web2', 'web2:2222', 'web2']) expect(pick(two, { host: name })).toEqual(['deploy@web2:2222']);
    expect(pick(two, { all: true })).toEqual(['deploy@web1:22', 'deploy@web2:2222']);
    expect(pick(testConfig({ DEPLOY_HOSTS: 'local' }), { host: 'local' })).toEqual(['local']);
  });

  it('refuses, exit 2, before any host is reached: several hosts with neither flag, a name that fits none or several, --tty over several, both flags', () => {
    const refusal = (o: Partial<{ host: string; all: boolean; tty: boolean }>, cfg = two) => thrown(() => pick(cfg, o));
    expect(refusal({}).message).toBe('staging has 2 hosts (deploy@web1:22, deploy@web2:2222): name one with --host, or run on each in turn with --all');
    expect(refusal({ host: 'web3' }).message).toBe('--host "web3" is no host of staging: DEPLOY_HOSTS has deploy@web1:22, deploy@web2:2222');
    expect(refusal({ host: 'deploy@web' }).message).toContain('is no host');
    expect(refusal({ host: 'web1' }, testConfig({ DEPLOY_HOSTS: 'a@web1:22,a@web1:2222' })).message).toContain('fits several hosts');
    expect(refusal({ all: true, tty: true }).message).toContain('--tty runs on one host');
    expect(refusal({ all: true, host: 'web1' }).message).toBe('exec takes --host or --all, not both');
    for (const o of [{}, { host: 'web3' }, { all: true, tty: true }]) expect(refusal(o)).toBeInstanceOf(UsageError);
  });
});

const deployed = (name = 'web1', rules = [when('echo deadline', ok())]) =>
  flowSession({ hostName: name, state: hostState('blue', { blue: slot('20261130-090000-1.1.0', 3001) }), rules });

describe('the exec flow', () => {
  it('nothing deployed: exit 2, and nothing runs', async () => {
    const { session, host } = flowSession({});
    const error = await rejection(planExec(session, words('ls'), false));
    expect(error).toBeInstanceOf(NotDeployedError);
    expect(error.message).toBe('nothing deployed to staging on web1 yet: run `npx tsx scripts/deploy-vps.ts staging` first');
    expect(host.commands).toEqual([]);
  });

  it('runs in the live release on each host in turn, lines prefixed by host, each status noted; the first failure is the exit code', async () => {
    const a = flowSession({ hostName: 'web1', state: hostState('blue', { blue: slot('20261130-090000-1.1.0', 3001) }), rules: [when('exec "$@"', { code: 0, stdout: 'one\ntwo', stderr: '' })] });
    const b = flowSession({ hostName: 'web2', state: hostState('green', { green: slot('20261130-090000-1.1.0', 3002) }), rules: [when('exec "$@"', { code: 5, stdout: '', stderr: 'bad\n' })] });
    // The recording host answers at once; output a real host streams is given to onStdout/onStderr.
    for (const f of [a, b]) {
      const exec = f.host.exec.bind(f.host);
      f.host.exec = async (c, o = {}) => {
        const r = await exec(c, o);
        if (o.onStdout && r.stdout) o.onStdout(Buffer.from(r.stdout));
        if (o.onStderr && r.stderr) o.onStderr(Buffer.from(r.stderr));
        return r;
      };
    }
    const plans = [await planExec(a.session, words('echo hi'), false), await planExec(b.session, words('echo hi'), false)];
    const out: string[] = [];
    const err: string[] = [];
    const notes: string[] = [];
    const ends = await streamExec(plans, { timeoutMs: 60_000, stdout: (x) => out.push(x.toString()), stderr: (x) => err.push(x.toString()), note: (n) => notes.push(n) });
    expect(ends).toEqual([{ host: 'web1', code: 0 }, { host: 'web2', code: 5 }]);
    expect(overallCode(ends)).toBe(5);
    expect(out.join('')).toBe('[web1] one\n[web1] two\n');
    expect(err.join('')).toBe('[web2] bad\n');
    expect(notes).toEqual(['[web1] exit 0', '[web2] exit 5']);
    expect(a.host.commands.at(-1)).toContain(`/srv/hello/releases/20261130-090000-1.1.0 /srv/hello/.skiff/env/20261130-090000-1.1.0.env 3001`);
    expect(b.host.commands.at(-1)).toContain(' 3002 ');
    expect(auditAppended(a.host)).toEqual(['exec in 20261130-090000-1.1.0: echo hi']);
    // The deadline and the stream reach the host.
    const options = a.host.execs.at(-1)?.options;
    expect(options?.timeoutMs).toBe(60_000);
    expect(options?.check).toBe(false);
  });

  it('a command past its deadline is exit 124 with the deadline\'s line', async () => {
    const f = deployed();
    const plan = await planExec(f.session, words('sleep 100'), false);
    f.host.exec = async (c, o = {}) => {
      if (render(c).includes('exec "$@"')) throw new DeadlineError('web1', c, o.timeoutMs ?? 0);
      return ok();
    };
    const notes: string[] = [];
    const ends = await streamExec([plan], { timeoutMs: 1000, stdout: () => {}, stderr: () => {}, note: (n) => notes.push(n) });
    expect(ends).toEqual([{ host: 'web1', code: 124 }]);
    expect(notes[0]).toContain('stopped a command still running after 1s');
  });

  it('docker: docker exec in the live container; refused when it does not run', async () => {
    const cfg = testConfig({ DEPLOY_RUNTIME: 'docker', DEPLOY_START: '' });
    const { dockerRuntime } = await import('../../lib/runtime/docker.ts');
    const running = flowSession({ cfg, state: hostState('blue', { blue: slot('20261130-090000-1.1.0', 3001) }), rules: [when('docker inspect', ok('running 42 sha256:abc -'))], runtime: () => dockerRuntime(cfg) });
    const plan = await planExec(running.session, words('python', 'manage.py', 'shell'), true);
    expect(render(plan.command)).toBe('docker exec -it hello-staging-blue python manage.py shell');
    expect(dryRunLine(plan)).toBe('dry run: web1: would run python manage.py shell in release 20261130-090000-1.1.0 (version 1.1.0): docker exec -it hello-staging-blue python manage.py shell; nothing was run');
    const stopped = flowSession({ cfg, state: hostState('blue', { blue: slot('20261130-090000-1.1.0', 3001) }), rules: [when('docker inspect', ok('exited 0 sha256:abc -'))], runtime: () => dockerRuntime(cfg) });
    expect((await rejection(planExec(stopped.session, words('ls'), false))).message).toContain('the live container hello-staging-blue is not running');
  });

  it('--tty: a host without a terminal is refused; a deadline is 124; the terminal is the host\'s to restore', async () => {
    const f = deployed();
    const plan = await planExec(f.session, words('sh'), true);
    const terminal = { rows: 30, cols: 100, term: 'xterm', input: process.stdin, write: () => {}, raw: () => {}, onResize: () => () => {} };
    expect(await rejection(ttyExec(plan, terminal, DEADLINE.none, () => {}))).toBeInstanceOf(SkiffError);
    const seen: unknown[] = [];
    const host: Host = f.host;
    host.attach = async (c, t, o) => {
      seen.push(render(c).endsWith(' sh'), t.rows, t.cols, o?.timeoutMs);
      return 3;
    };
    expect(await ttyExec(plan, terminal, DEADLINE.none, () => {})).toBe(3);
    expect(seen).toEqual([true, 30, 100, DEADLINE.none]);
    expect(auditAppended(f.host)).toEqual(['exec --tty in 20261130-090000-1.1.0: sh']);
    host.attach = async (c) => {
      throw new DeadlineError('web1', c, 2000);
    };
    expect(await ttyExec(plan, terminal, 2000, () => {})).toBe(124);
  });
});

describe('exec --db', () => {
  const pg = (session: Session) => planDbConsole(session, ['-c', 'select 1']);

  it('postgres: the password goes to a 0600 pgpass file just before, which is removed after; never in a command', async () => {
    const cfg = testConfig({ BACKUP_POSTGRES_URL: 'postgres://app:pa%3Ass%20word@db.internal:5433/app' });
    const f = flowSession({ cfg, state: hostState('blue', { blue: slot('20261130-090000-1.1.0', 3001) }) });
    const plan = await pg(f.session);
    expect(f.host.puts).toEqual([]); // planning writes nothing
    await streamExec([plan], { timeoutMs: 1000, stdout: () => {}, stderr: () => {}, note: () => {} });
    const [put] = f.host.puts;
    expect(put?.path).toMatch(/^\/srv\/hello\/\.skiff\/\.pgpass-[0-9a-f]{12}$/);
    expect(put?.mode).toBe(0o600);
    expect(put?.content.toString()).toBe('*:*:*:*:pa\\:ss word\n');
    const commands = f.host.commands.join('\n');
    expect(commands).not.toContain('ss word');
    expect(commands).toContain(' 4 PGUSER=app PGHOST=db.internal PGPORT=5433 PGDATABASE=app -c ');
    expect(f.host.commands.at(-1)).toBe(`rm -f -- ${put?.path}`);
    expect(f.host.events.findIndex((e) => e.startsWith('put '))).toBeLessThan(f.host.events.findIndex((e) => e.includes('psql "$@"')));
    expect(plan.shown).toBe("psql (app on db.internal:5433) -c 'select 1'");
  });

  it('a pgpass file that cannot be removed is a line of its own, and the command\'s status still stands', async () => {
    const cfg = testConfig({ BACKUP_POSTGRES_URL: 'postgres://app:secretpw@db/app' });
    const f = flowSession({ cfg, state: hostState('blue', { blue: slot('20261130-090000-1.1.0', 3001) }), rules: [when('psql "$@"', { code: 3, stdout: '', stderr: '' }), when('rm -f --', { code: 1, stdout: '', stderr: '' })] });
    const notes: string[] = [];
    const ends = await streamExec([await pg(f.session)], { timeoutMs: 1000, stdout: () => {}, stderr: () => {}, note: (n) => notes.push(n) });
    expect(ends).toEqual([{ host: 'web1', code: 3 }]);
    expect(notes).toEqual([expect.stringMatching(/^web1: could not remove \/srv\/hello\/\.skiff\/\.pgpass-\w+ \(exit 1\): remove it on the host$/)]);
  });

  it('sqlite: sqlite3 on the first BACKUP_SQLITE file under shared/; neither set: exit 2', async () => {
    const cfg = testConfig({ BACKUP_SQLITE: 'data/app.db,data/other.db' });
    const f = flowSession({ cfg, state: hostState('blue', { blue: slot('20261130-090000-1.1.0', 3001) }) });
    const plan = await planDbConsole(f.session, []);
    expect(render(plan.command)).toMatch(/ sh \/srv\/hello\/shared\/data\/app\.db$/);
    expect(dryRunLine(plan)).toBe('dry run: web1: would run sqlite3 /srv/hello/shared/data/app.db on the host, as backups reach the database; nothing was run');
    const none = deployed();
    const error = await rejection(planDbConsole(none.session, []));
    expect(error).toBeInstanceOf(UsageError);
    expect(error.message).toBe('staging names no database: set BACKUP_SQLITE (a file under shared/) or BACKUP_POSTGRES_URL in env/staging.env');
  });
});

describe('wordsWithoutShell', () => {
  it('splits plain words and quoted parts as the shell would', () => {
    expect(wordsWithoutShell('node worker.js')).toEqual(['node', 'worker.js']);
    expect(wordsWithoutShell(`  node  -e "process.on('SIGTERM',()=>process.exit(0))"\tx `)).toEqual(['node', '-e', "process.on('SIGTERM',()=>process.exit(0))", 'x']);
    expect(wordsWithoutShell(`bin/run --queue='a b' --n=2 x"y z"w ''`)).toEqual(['bin/run', '--queue=a b', '--n=2', 'xy zw', '']);
    expect(wordsWithoutShell(`python3 -m app.worker --dsn postgres://u@h:5432/db?x=1%2C`)).toBeUndefined(); // ? is a glob
    expect(wordsWithoutShell(`python3 -m app.worker --rate 50%`)).toEqual(['python3', '-m', 'app.worker', '--rate', '50%']);
    expect(wordsWithoutShell(`'A=1' node`)).toEqual(['A=1', 'node']);
    // exec replaces the shell with the program: with no shell, the program runs as it would.
    expect(wordsWithoutShell(`exec node w.js --q "a b"`)).toEqual(['node', 'w.js', '--q', 'a b']);
  });

  it('leaves anything the shell acts on to the shell', () => {
    for (const line of ['node w.js; echo', 'a && b', 'a | b', 'a > log', 'echo $HOME', 'echo "$HOME"', 'echo `id`', 'ls *.js', 'cd ~', 'a # c', 'a\\ b', 'A=1 node w.js', "it's", '"open', 'a\nb', '', '   ', 'a (b)', 'echo "\\n"', 'exec', 'exec -a x node', 'exec node $X', '. ./env', 'cd app', 'ulimit -n 10']) {
      expect(wordsWithoutShell(line), line).toBeUndefined();
    }
  });
});
