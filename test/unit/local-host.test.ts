/**
 * lib/host/local.ts against real local processes: argv crosses verbatim with no shell, the
 * environment is exactly the one given, stdin in every form, check, streaming, abort, ENOENT, and
 * the stream of streamFrom. These pin the behaviour the callers (build, image ship, git) rely on.
 */
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { cmd, script, Secret } from '../../lib/core/cmd.ts';
import { RemoteCommandError } from '../../lib/core/errors.ts';
import { DEADLINE, DeadlineError, OutputBuffer, STREAM_TAIL_BYTES, deadlineOf, shortCommand } from '../../lib/host/host.ts';
import { LocalHost, baseEnv, run, runAttached, streamFrom } from '../../lib/host/local.ts';

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'skiff-local-')));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PATH = process.env.PATH ?? '/usr/bin:/bin';
const opts = { label: 'local' } as const;
const collect = async (s: Readable): Promise<Buffer> => {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
};
const node = (code: string): string[] => [process.execPath, '-e', code];

describe('run', () => {
  it('passes each word of argv verbatim, with no shell in between', async () => {
    const words = ['a b', "it's", '"q"', '$HOME', '`id`', '; rm -rf /', 'line\nbreak', '', '*', '\\'];
    const r = await run(['printf', '[%s]', ...words], { ...opts, env: { PATH } });
    expect(r).toEqual({ code: 0, stdout: words.map((w) => `[${w}]`).join(''), stderr: '' });
  });

  it('gives the process exactly the environment passed, nothing added', async () => {
    const r = await run(['env'], { ...opts, env: { PATH, ONLY: 'this' } });
    expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual([`ONLY=this`, `PATH=${PATH}`]);
  });

  it('defaults to baseEnv: the login-like keys of this process and no others', async () => {
    const r = await run(['env'], opts);
    const keys = r.stdout.split('\n').filter(Boolean).map((l) => l.slice(0, l.indexOf('='))).sort();
    expect(keys).toEqual(Object.keys(baseEnv()).sort());
    expect(baseEnv({ PATH: '/bin', HOME: '/h', NODE_OPTIONS: '--x', npm_config_x: '1', SECRET: 's' })).toEqual({ PATH: '/bin', HOME: '/h' });
  });

  it('runs in cwd, else in the current folder', async () => {
    expect((await run(['pwd'], { ...opts, cwd: dir })).stdout.trim()).toBe(dir);
    expect((await run(['pwd'], opts)).stdout.trim()).toBe(process.cwd());
  });

  it.each<[string, string | Buffer | (() => Readable) | undefined, string]>([
    ['no stdin: an ended one, so a reader does not wait', undefined, ''],
    ['an empty string', '', ''],
    ['a string', 'héllo\n', 'héllo\n'],
    ['a Buffer', Buffer.from([0x61, 0x00, 0x62]), 'a\0b'],
    ['a stream', () => Readable.from([Buffer.from('one '), Buffer.from('two')]), 'one two'],
  ])('stdin: %s', async (_name, input, expected) => {
    const stdin = typeof input === 'function' ? input() : input;
    const r = await run(['cat'], { ...opts, ...(stdin !== undefined ? { stdin } : {}) });
    expect(r.stdout).toBe(expected);
  });

  it('a stdin stream that fails ends the input; the status decides', async () => {
    const source = new PassThrough();
    const p = run(['cat'], { ...opts, stdin: source });
    source.write('partial');
    setTimeout(() => source.destroy(new Error('broken archive')), 50);
    expect(await p).toEqual({ code: 0, stdout: 'partial', stderr: '' });
  });

  it('a command that exits before reading its stdin is judged by its status', async () => {
    const r = await run(['true'], { ...opts, stdin: Buffer.alloc(4 * 1024 * 1024) });
    expect(r.code).toBe(0);
  });

  it('rejects a non-zero exit with RemoteCommandError: label, argv, status, stderr', async () => {
    const e = await run(['sh', '-c', 'echo one >&2; echo two >&2; exit 3'], { label: 'here' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RemoteCommandError);
    expect(e).toMatchObject({ host: 'here', command: 'sh -c echo one >&2; echo two >&2; exit 3', status: 3, stderrTail: 'one\ntwo\n' });
    expect((e as Error).message).toBe('here: command failed (exit 3): sh -c echo one >&2; echo two >&2; exit 3: one | two');
  });

  it('with check false resolves whatever the status', async () => {
    expect(await run(['sh', '-c', 'echo out; echo err >&2; exit 7'], { ...opts, check: false })).toEqual({ code: 7, stdout: 'out\n', stderr: 'err\n' });
  });

  it('a missing program is exit 127, "<file>: not found"', async () => {
    const e = await run(['skiff-no-such-program', 'x'], opts).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RemoteCommandError);
    expect(e).toMatchObject({ host: 'local', command: 'skiff-no-such-program x', status: 127, stderrTail: 'skiff-no-such-program: not found' });
    // Even with check false: there is no status to judge.
    await expect(run(['skiff-no-such-program'], { ...opts, check: false })).rejects.toMatchObject({ status: 127 });
  });

  it('an empty argv is refused', async () => {
    await expect(run([], opts)).rejects.toThrow('run: empty argv');
  });

  it('streams output as it arrives and still returns all of it', async () => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const r = await run(['sh', '-c', 'echo a; echo b >&2; echo c'], { ...opts, onStdout: (b) => void out.push(b), onStderr: (b) => void err.push(b) });
    expect(Buffer.concat(out).toString()).toBe('a\nc\n');
    expect(Buffer.concat(err).toString()).toBe('b\n');
    expect(r).toEqual({ code: 0, stdout: 'a\nc\n', stderr: 'b\n' });
  });

  it('discardStdout keeps no stdout in the result; onStdout still gets it', async () => {
    let bytes = 0;
    const r = await run(['head', '-c', '3000000', '/dev/zero'], { ...opts, discardStdout: true, onStdout: (b) => void (bytes += b.length) });
    expect(bytes).toBe(3_000_000);
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('decodes UTF-8 across chunk boundaries', async () => {
    const code = "const b=Buffer.from('é');process.stdout.write(b.subarray(0,1));setTimeout(()=>process.stdout.write(b.subarray(1)),100)";
    const chunks: Buffer[] = [];
    const r = await run(node(code), { ...opts, env: { PATH }, onStdout: (b) => void chunks.push(b) });
    expect(chunks.length).toBe(2);
    expect(r.stdout).toBe('é');
  });

  it('an abort sends SIGTERM and resolves, even with check; output until the end is kept', async () => {
    const ac = new AbortController();
    const code = "process.on('SIGTERM',()=>{process.stdout.write('term\\n');process.exit(0)});process.stdout.write('ready\\n');setInterval(()=>{},1000)";
    const r = await run(node(code), { ...opts, env: { PATH }, signal: ac.signal, onStdout: (b) => void (b.toString().includes('ready') && ac.abort()) });
    expect(r).toEqual({ code: 0, stdout: 'ready\nterm\n', stderr: '' });
  });

  it('an aborted process that dies of the signal resolves with code null', async () => {
    const ac = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ac.abort(), 100);
    const r = await run(['sleep', '30'], { ...opts, signal: ac.signal });
    expect(r.code).toBeNull();
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});

describe('streamFrom', () => {
  it('hands over stdout as a stream, fed the input given', async () => {
    const s = streamFrom(['sh', '-c', 'printf "<%s>" "$(cat)"'], dir, Buffer.from('in put'));
    expect((await collect(s.stdout)).toString()).toBe('<in put>');
    await s.done;
  });

  it('loses nothing when the reader comes late, and holds back the writer meanwhile', async () => {
    const s = streamFrom(['head', '-c', '5000000', '/dev/zero'], dir);
    await new Promise((r) => setTimeout(r, 300));
    expect(s.stdout.readableLength).toBeLessThan(1_000_000); // not all read ahead into memory
    expect((await collect(s.stdout)).length).toBe(5_000_000);
    await s.done;
  });

  it('runs in cwd with baseEnv, or the env given', async () => {
    const s = streamFrom(['sh', '-c', 'pwd; echo "$ONLY"'], dir, undefined, { PATH, ONLY: 'x' });
    expect((await collect(s.stdout)).toString()).toBe(`${dir}\nx\n`);
    await s.done;
  });

  it('done rejects a non-zero exit with the stderr', async () => {
    const s = streamFrom(['sh', '-c', 'echo bad archive >&2; exit 2'], dir);
    const done = s.done.catch((x: unknown) => x);
    await collect(s.stdout);
    const e = await done;
    expect(e).toBeInstanceOf(RemoteCommandError);
    expect((e as Error).message).toBe('local: command failed (exit 2): sh -c echo bad archive >&2; exit 2: bad archive');
  });

  it('a missing program: the stream ends and done rejects with ENOENT', async () => {
    const s = streamFrom(['skiff-no-such-program'], dir);
    const done = s.done.catch((x: unknown) => x);
    expect((await collect(s.stdout)).length).toBe(0);
    expect(await done).toMatchObject({ code: 'ENOENT' });
  });

  it('an empty argv throws at once', () => {
    expect(() => streamFrom([], dir)).toThrow('streamFrom: empty argv');
  });
});

describe('LocalHost', () => {
  const host = new LocalHost();

  it('runs a rendered Cmd with /bin/sh: values stay single words', async () => {
    const r = await host.exec(cmd('printf', '[%s]', 'a b', '$(id)', "'"));
    expect(r.stdout).toBe("[a b][$(id)][']");
  });

  it('an error shows the redacted command, not the executed text', async () => {
    const e = await host.exec(script('echo "no $1" >&2; exit 4', new Secret('hunter2'))).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RemoteCommandError);
    expect((e as Error).message).toBe(`local: command failed (exit 4): sh -c 'echo "no $1" >&2; exit 4' sh [REDACTED]: no [REDACTED]`);
    expect((e as RemoteCommandError).command).not.toContain('hunter2');
  });

  it('put writes atomically with the mode, get reads or says undefined', async () => {
    const p = join(dir, 'f.txt');
    await host.put(p, 'x', { mode: 0o600 });
    expect((await host.get(p))?.toString()).toBe('x');
    expect(await host.get(join(dir, 'none'))).toBeUndefined();
  });
});

/** Whether a process exists (a zombie is gone for this purpose: it holds nothing). */
const exists = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
};

/** Whether a process still exists half a second on (a SIGKILL takes effect a moment after it is sent). */
const alive = async (pid: number): Promise<boolean> => {
  for (let i = 0; i < 50 && exists(pid); i++) await new Promise((r) => setTimeout(r, 10));
  return exists(pid);
};

describe('deadlines', () => {
  const host = new LocalHost();

  it('stops a command past its deadline, with what it started, and fails with one line naming host, command and deadline', async () => {
    const pids = join(dir, 'pids');
    const t0 = Date.now();
    // A child in the background and one in the foreground: the whole group must go.
    const e = await host
      .exec(script('sleep 60 & echo $! >"$1"; echo $$ >>"$1"; sleep 60', pids), { timeoutMs: 300 })
      .catch((x: unknown) => x);
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(e).toBeInstanceOf(DeadlineError);
    const message = (e as Error).message;
    expect(message).not.toContain('\n');
    expect(message).toBe(
      `local: stopped a command still running after 0.3s, its deadline: sh -c 'sleep 60 & echo $! >"$1"; echo $$ >>"$1"; sleep…' sh ${join(dir, 'pids')}; ` +
        'check what it waits for on the host (an app, the proxy, a database, the network), then run again',
    );
    expect((e as DeadlineError).exitCode).toBe(1);
    const started = readFileSync(pids, 'utf8').split('\n').filter(Boolean).map(Number);
    expect(started).toHaveLength(2);
    for (const pid of started) expect(await alive(pid), `pid ${pid}`).toBe(false);
  });

  it('a command that ignores SIGTERM gets SIGKILL, at most two seconds later', async () => {
    const pidFile = join(dir, 'stubborn');
    const t0 = Date.now();
    const e = await host.exec(script('trap "" TERM; echo $$ >"$1"; while :; do sleep 0.1; done', pidFile), { timeoutMs: 200 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DeadlineError);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(await alive(Number(readFileSync(pidFile, 'utf8')))).toBe(false);
  });

  it('shows a secret of the command as [REDACTED]', async () => {
    const e = await host.exec(script('sleep 5', new Secret('hunter2-deadline')), { timeoutMs: 100 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DeadlineError);
    expect((e as Error).message).toContain("sh -c 'sleep 5' sh [REDACTED];");
    expect((e as Error).message).not.toContain('hunter2');
    expect((e as DeadlineError).command).not.toContain('hunter2');
  });

  it('a command within its deadline is not touched; DEADLINE.none sets no timer', async () => {
    expect((await host.exec(script('sleep 0.2; echo done'), { timeoutMs: 5000 })).stdout).toBe('done\n');
    expect((await host.exec(script('sleep 0.2; echo done'), { timeoutMs: DEADLINE.none })).stdout).toBe('done\n');
  });

  it('every command has one: a few minutes unless the step names another; nonsense is refused', () => {
    expect(deadlineOf({})).toBe(DEADLINE.command);
    expect(DEADLINE.command).toBe(5 * 60_000);
    expect(deadlineOf({ timeoutMs: 1500 })).toBe(1500);
    expect(deadlineOf({ timeoutMs: DEADLINE.none })).toBeUndefined();
    expect(deadlineOf({ timeoutMs: DEADLINE.transfer })).toBe(2 * 60 * 60_000);
    // setTimeout would fire at once for these.
    for (const bad of [0, -1, Number.NaN, 2 ** 31]) expect(() => deadlineOf({ timeoutMs: bad })).toThrow(RangeError);
  });

  it('an abort ends the whole group of a host command too', async () => {
    const pids = join(dir, 'abort-pids');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const r = await host.exec(script('sleep 60 & echo $! >"$1"; sleep 60', pids), { signal: ac.signal });
    expect(r.code).toBeNull();
    const [child] = readFileSync(pids, 'utf8').split('\n').filter(Boolean).map(Number);
    expect(await alive(child ?? 0)).toBe(false);
  });
});

describe('streamed output', () => {
  const host = new LocalHost();

  it('200 MB through onStdout: memory stays bounded and the result holds the last 64 KiB', async () => {
    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    let bytes = 0;
    const r = await host.exec(script('head -c 200000000 /dev/zero | tr "\\0" a; echo; echo END'), {
      onStdout: (b) => {
        bytes += b.length;
        if (bytes % (16 * 1024 * 1024) < b.length) peak = Math.max(peak, process.memoryUsage().rss);
      },
      timeoutMs: 60_000,
    });
    peak = Math.max(peak, process.memoryUsage().rss);
    expect(bytes).toBe(200_000_005);
    // Kept whole, the output alone would be 200 MB twice over (chunks, then one Buffer and a string).
    expect(peak - before).toBeLessThan(100 * 1024 * 1024);
    expect(r.stdout.length).toBe(STREAM_TAIL_BYTES);
    expect(r.stdout.endsWith('aaaa\nEND\n')).toBe(true);
  });

  it('stderr handed to onStderr is kept as its tail too; without a callback all of it is kept', async () => {
    let seen = 0;
    const r = await host.exec(script('head -c 300000 /dev/zero | tr "\\0" e >&2; head -c 300000 /dev/zero | tr "\\0" o'), {
      onStderr: (b) => (seen += b.length),
    });
    expect(seen).toBe(300_000);
    expect(r.stderr.length).toBe(STREAM_TAIL_BYTES);
    expect(r.stdout.length).toBe(300_000);
  });

  it('the tail starts at a whole UTF-8 character', () => {
    const buffer = new OutputBuffer(true, 10);
    for (let i = 0; i < 50; i++) buffer.push(Buffer.from('é1')); // 3 bytes each: é is 2
    const tail = buffer.toBuffer().toString();
    expect(tail).not.toContain('\uFFFD');
    expect(tail).toBe('1é1é1é1');
    const whole = new OutputBuffer(false, 10);
    for (let i = 0; i < 50; i++) whole.push(Buffer.from('é1'));
    expect(whole.toBuffer().toString()).toBe('é1'.repeat(50));
  });
});

describe('shortCommand', () => {
  it('folds a script to one line, cuts its text and keeps its arguments, secrets redacted', () => {
    const long = script(['if [ "$1" = GET ]; then', '  curl -sS -X "$1" "http://$2$3"', 'fi'].join('\n'), 'GET', '127.0.0.1:2019', new Secret('hunter2-x'));
    expect(shortCommand(long)).toBe(`sh -c 'if [ "$1" = GET ]; then curl -sS -X "$1" "http:…' sh GET 127.0.0.1:2019 [REDACTED]`);
    expect(shortCommand(cmd('echo', 'a'.repeat(300))).length).toBe(160);
    expect(shortCommand(cmd('echo', 'a b'))).toBe("echo 'a b'");
  });
});

describe('runAttached', () => {
  it('resolves to the exit code; 1 when the child died of a signal', async () => {
    expect(await runAttached(['sh', '-c', 'exit 5'], dir)).toBe(5);
    expect(await runAttached(['sh', '-c', 'kill -TERM $$'], dir)).toBe(1);
  });

  it('rejects when the program cannot be started', async () => {
    await expect(runAttached(['skiff-no-such-program'], dir)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
