/**
 * exec over a real OpenSSH server on 127.0.0.47: a command in the live release with the app's
 * environment, its exit status, its output as it comes, a session with a terminal driven through a
 * pty (`script`), the bad inputs, and the Taskfile tasks built on it (db:migrate, db:shell, shell,
 * restart, db:backup).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localEnv, makeSandbox, ROOT, runProcess, startProcess, type RunResult, type Sandbox } from '../support/sandbox.ts';

const PORT = 18571;
const SSH = { ip: '127.0.0.47', port: 2277 };
const TSX = join(ROOT, 'node_modules/.bin/tsx');
const SECRET = 'tok-7f3a9c1e55d2';

describe('exec over SSH', () => {
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
        'GREETING=hello from the env file',
        'BACKUP_SQLITE=data/app.db',
        extra,
      ].join('\n'),
    );
  const processEnv = (): NodeJS.ProcessEnv => {
    const e: NodeJS.ProcessEnv = { ...process.env, HOME: s.home, SKIFF_ENV_DIR: s.envDir };
    for (const k of Object.keys(e)) if (k.startsWith('DEPLOY_') || k.startsWith('BACKUP_')) delete e[k];
    return e;
  };
  /** Runs argv with `input` on its stdin (a pipe, not a terminal). */
  const withInput = (argv: readonly string[], input: string): Promise<RunResult> =>
    new Promise((resolve, reject) => {
      const [file = '', ...args] = argv;
      const child = spawn(file, args, { cwd: ROOT, env: processEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
      child.stdin.end(input);
    });
  const exec = (args: readonly string[]) => s.run('exec', args);
  const taskfile = (args: readonly string[]) => runProcess([TSX, join(ROOT, 'Taskfile.ts'), ...args], { cwd: '/', env: processEnv() });
  /**
   * Runs a shell line under `script` on a pty of python3's (this test's terminal), typing `send`
   * once `after` has been printed; resolves to what the terminal showed, without carriage returns.
   */
  const inPty = async (inner: string, after = '', send = ''): Promise<string> => {
    const driver = [
      'import os, pty, sys, time',
      'pid, fd = pty.fork()',
      'if pid == 0:',
      "    os.execvp('script', ['script', '-qec', sys.argv[1], '/dev/null'])",
      "out = b''",
      'sent = not sys.argv[3]',
      'deadline = time.time() + 60',
      'while time.time() < deadline:',
      '    try:',
      '        chunk = os.read(fd, 4096)',
      '    except OSError:',
      '        break',
      '    if not chunk:',
      '        break',
      '    out += chunk',
      '    if not sent and sys.argv[2].encode() in out:',
      '        os.write(fd, sys.argv[3].encode())',
      '        sent = True',
      "sys.stdout.write(out.decode(errors='replace'))",
    ].join('\n');
    const r = await runProcess(['python3', '-c', driver, inner, after, send], { cwd: ROOT, env: processEnv() });
    return r.stdout.replace(/\r/g, '');
  };
  const audit = () => readFileSync(join(s.deployPath, '.skiff/audit.log'), 'utf8');

  beforeAll(async () => {
    s = makeSandbox('exec');
    sshDir = join(s.dir, 'sshd');
    // Fails (rather than skips) when sshd cannot be had: CI installs it with test/infra/up.sh.
    execFileSync('bash', [join(ROOT, 'test/infra/sshd.sh'), sshDir, SSH.ip, String(SSH.port)], { stdio: 'ignore' });
    s.writeEnv('t.env', env());
    s.writeEnv('t.secrets.env', `API_TOKEN=${SECRET}\n`, 0o600);
    const r = await s.run('deploy-vps', ['t']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
  afterAll(() => {
    const pid = join(sshDir, 'sshd.pid');
    if (existsSync(pid)) process.kill(Number(readFileSync(pid, 'utf8')), 'SIGTERM');
    s.cleanup();
  });

  it('runs a shell line in the live release with the app\'s environment, a secret redacted, and exits with its status', async () => {
    const r = await exec(['t', '--', 'echo "$GREETING|$PORT|$APP_ENV|$(pwd)"; echo "token=$API_TOKEN"; echo to-stderr >&2; exit 7']);
    expect(r.code).toBe(7);
    const state = JSON.parse(readFileSync(join(s.deployPath, '.skiff/state.json'), 'utf8')) as { live: string; slots: Record<string, { release: string }> };
    const release = state.slots[state.live]?.release ?? '';
    expect(r.stdout).toBe(`hello from the env file|${PORT}|t|${join(s.deployPath, 'releases', release)}\ntoken=[REDACTED]\n`);
    expect(r.stderr).toBe('to-stderr\n');
    expect(r.stdout + r.stderr).not.toContain(SECRET);
    expect(audit()).toMatch(/exec in \S+: echo "\$GREETING/);
  });

  it('several words are passed word by word: nothing in them is run by a shell', async () => {
    const r = await exec(['t', '--', 'printf', '%s|', '$(touch pwned)', 'a b;c', "it's", '']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("$(touch pwned)|a b;c|it's||");
    expect((await exec(['t', '--', 'ls pwned 2>/dev/null || echo none'])).stdout).toBe('none\n');
  });

  it('streams the output as it comes, and passes piped input on', async () => {
    const p = startProcess([TSX, join(ROOT, 'scripts/exec.ts'), 't', '--', 'echo first; sleep 3; echo second'], { cwd: ROOT, env: processEnv() });
    const started = Date.now();
    while (!p.output().includes('first') && Date.now() - started < 20_000) await new Promise((r) => setTimeout(r, 50));
    // The first line is here while the command still sleeps.
    expect(p.output()).toBe('first\n');
    expect(p.child.exitCode).toBeNull();
    const r = await p.result;
    expect([r.code, r.stdout]).toEqual([0, 'first\nsecond\n']);
    const piped = await withInput([TSX, join(ROOT, 'scripts/exec.ts'), 't', '--', 'tr', 'a-z', 'A-Z'], 'piped in\n');
    expect([piped.code, piped.stdout]).toEqual([0, 'PIPED IN\n']);
  });

  it('--timeout stops the command: exit 124 and one line', async () => {
    const r = await exec(['t', '--timeout', '1', '--', 'sleep 20']);
    expect(r.code).toBe(124);
    expect(r.stderr).toMatch(/^exec: \S+: stopped a command still running after 1s, its deadline: /);
  });

  it('--tty: a pty of this terminal\'s size, keys typed reach the command, the status comes back, the terminal is restored', async () => {
    // `script` is the terminal here: it gives the command a pty as a user's terminal would.
    const inner = `stty cols 101 rows 31; ${TSX} ${join(ROOT, 'scripts/exec.ts')} t --tty -- sh -c 'tty; stty size; echo "[$GREETING]"; read x; echo "got:$x"; exit 5'; echo "status:$?"; stty -a`;
    const out = await inPty(inner, '[hello from the env file]', 'typed line\r');
    expect(out).toMatch(/\/dev\/pts\/\d+\n31 101\n\[hello from the env file\]\n/);
    expect(out).toContain('got:typed line\n');
    expect(out).toContain('status:5\n');
    // After exec, the local terminal is in its normal (cooked, echoing) mode again.
    expect(out).toMatch(/ icanon /);
    expect(out).toMatch(/ echo /);
  });

  describe('bad inputs: one line, exit 2, nothing run', () => {
    it.each([
      ['no command', ['t'], 'error: exec needs a command after --: e.g. npx tsx scripts/exec.ts t -- ls -la'],
      ['no command after --', ['t', '--'], 'error: exec needs a command after --: e.g. npx tsx scripts/exec.ts t -- ls -la'],
      ['a --host that is no host of the env', ['t', '--host', 'nope', '--', 'true'], `error: --host "nope" is no host of t: DEPLOY_HOSTS has ${userInfo().username}@${SSH.ip}:${SSH.port}`],
      ['--tty without a terminal', ['t', '--tty', '--', 'sh'], 'error: --tty needs a terminal on stdin: run exec without --tty, or from a terminal'],
      ['a bad --timeout', ['t', '--timeout', 'soon', '--', 'true'], 'error: --timeout takes whole seconds (0: no deadline), not "soon"'],
      ['an offered-not flag', ['t', '--yes', '--', 'true'], 'error: exec does not offer --yes: it asks nothing: it runs the command you typed, as ssh would'],
    ])('%s', async (_what, args, line) => {
      const before = audit();
      const r = await exec(args);
      expect([r.code, r.stderr.trim(), r.stdout]).toEqual([2, line, '']);
      expect(audit()).toBe(before);
    });

    it('an env with nothing deployed', async () => {
      s.writeEnv('empty.env', env().replace(`DEPLOY_PATH=${s.deployPath}`, `DEPLOY_PATH=${join(s.dir, 'nothing')}`));
      const r = await exec(['empty', '--', 'true']);
      expect(r.code).toBe(2);
      expect(r.stderr.trim()).toBe(`error: nothing deployed to empty on ${userInfo().username}@${SSH.ip}:${SSH.port} yet: run \`npx tsx scripts/deploy-vps.ts empty\` first`);
      expect(existsSync(join(s.dir, 'nothing'))).toBe(false);
    });

    it('--dry-run says what would run, and runs nothing', async () => {
      const r = await exec(['t', '--dry-run', '--', 'touch $DATA_DIR/dry']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/dry run: \S+: would run touch \$DATA_DIR\/dry in release \S+ \(version 1\.0\.0\) with its env file; nothing was run/);
      expect(existsSync(join(s.deployPath, 'shared/data/dry'))).toBe(false);
    });
  });

  describe('docker runtime: docker exec in the live container', () => {
    const dk = () =>
      env(['DEPLOY_RUNTIME=docker', 'DEPLOY_DOCKER_BUILD_ARGS=BASE=local/node-base:20', 'DEPLOY_HEALTH_TIMEOUT=20'].join('\n'))
        .replace('APP_NAME=hello', 'APP_NAME=hello-ex')
        .replace(`DEPLOY_PATH=${s.deployPath}`, `DEPLOY_PATH=${join(s.dir, 'dk')}`)
        .replace(`DEPLOY_PORTS=${PORT}`, `DEPLOY_PORTS=${PORT + 1}`);
    beforeAll(async () => {
      // Fails (rather than skips) when Docker cannot be had: CI starts it with test/infra/docker.sh.
      execFileSync('bash', [join(ROOT, 'test/infra/docker.sh')], { stdio: 'ignore' });
      // A build context holds no symbolic link docker could follow: the app's node_modules as files.
      const modules = join(s.appDir, 'node_modules');
      if (lstatSync(modules).isSymbolicLink()) {
        const target = realpathSync(modules);
        rmSync(modules);
        cpSync(target, modules, { recursive: true });
      }
      s.writeEnv('dk.env', dk());
      s.writeEnv('dk.secrets.env', `API_TOKEN=${SECRET}\n`, 0o600);
      const r = await s.run('deploy-vps', ['dk']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    });
    afterAll(() => {
      // The engine is shared: its containers and image tags go with the test.
      spawnSync('sh', ['-c', 'docker rm -f hello-ex-dk-blue hello-ex-dk-green; docker images --format "{{.Repository}}:{{.Tag}}" hello-ex | xargs -r docker rmi -f'], { stdio: 'ignore' });
    });

    // The test image has Node and no shell: the command is several words, run without one.
    it('runs in the container with its environment and WORKDIR, a secret redacted, and exits with its status', async () => {
      const js = 'console.log([process.env.GREETING, process.env.PORT, process.cwd(), process.getuid(), "token=" + process.env.API_TOKEN].join("|")); process.exit(3)';
      const r = await exec(['dk', '--', 'node', '-e', js]);
      expect([r.code, r.stdout, r.stderr]).toEqual([3, `hello from the env file|${PORT + 1}|/app|1000|token=[REDACTED]\n`, '']);
    });

    it('--tty: docker exec -it through the SSH pty, of this terminal\'s size', async () => {
      const js = 'console.log(String(process.stdout.isTTY), process.stdout.columns, process.stdout.rows); process.exit(4)';
      const out = await inPty(`stty cols 90 rows 20; ${TSX} ${join(ROOT, 'scripts/exec.ts')} dk --tty -- node -e '${js}'; echo "status:$?"`);
      expect(out.replace(/\x1b\[[0-9;]*m/g, '')).toContain('true 90 20\n');
      expect(out).toContain('status:4\n');
    });
  });

  describe('the Taskfile tasks', () => {
    it('db:migrate refuses without DEPLOY_MIGRATE (exit 2), and runs it in the live release once set', async () => {
      const unset = await taskfile(['db:migrate', 't']);
      expect(unset.code).toBe(2);
      expect(unset.stderr.trim()).toBe('error: db:migrate: DEPLOY_MIGRATE is not set for t: set it in env/t.env to the migration command (e.g. DEPLOY_MIGRATE=alembic upgrade head)');
      s.writeEnv('t.env', env('DEPLOY_MIGRATE=echo "migrating $APP_ENV" && sqlite3 "$DATA_DIR/app.db" "create table if not exists migrated (v int)"'));
      const r = await taskfile(['db:migrate', 't']);
      expect([r.code, r.stdout]).toEqual([0, 'migrating t\n']);
      const tables = execFileSync('sqlite3', [join(s.deployPath, 'shared/data/app.db'), '.tables'], { encoding: 'utf8' });
      expect(tables).toContain('migrated');
    });

    it('db:shell opens sqlite3 on the env\'s database (SQL piped in), and npm runs the same task', async () => {
      const r = await withInput([TSX, join(ROOT, 'Taskfile.ts'), 'db:shell', 't'], "select 'answer', 40 + 2;\n");
      expect([r.code, r.stdout]).toEqual([0, 'answer|42\n']);
      const npm = await withInput(['npm', 'run', '--silent', 'db:shell', '--', 't'], '.tables\n');
      expect(npm.code).toBe(0);
      expect(npm.stdout).toContain('migrated');
    });

    it('shell runs a shell in the live release folder with its environment', async () => {
      const r = await withInput([TSX, join(ROOT, 'Taskfile.ts'), 'shell', 't'], 'echo "$GREETING in $(basename "$(dirname "$(pwd)")")"\n');
      expect([r.code, r.stdout]).toEqual([0, 'hello from the env file in releases\n']);
    });

    it('restart stops the live release (it drains) and starts it again, healthy', async () => {
      const before = s.slotPids();
      const r = await taskfile(['restart', 't']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/stopped pid \d+/);
      expect(r.stdout).toMatch(/started 1\.0\.0 \(pid \d+\)/);
      const after = s.slotPids();
      expect(after.length).toBeGreaterThan(0);
      expect(after.some((p) => before.includes(p))).toBe(false);
    });

    it('db:backup takes a backup', async () => {
      const r = await taskfile(['db:backup', 't', 'before-migration']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/before-migration/);
    });
  });
});
