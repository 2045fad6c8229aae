/**
 * SshHost against a real OpenSSH server on loopback (127.0.0.2:2222), started by test/infra/sshd.sh
 * in a temporary folder. Without sshd the tests are skipped, unless CI is set: then they fail.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cmd, script, Secret } from '../../lib/core/cmd.ts';
import { EXIT, RemoteCommandError, SkiffError } from '../../lib/core/errors.ts';
import { fingerprint } from '../../lib/host/known-hosts.ts';
import { DeadlineError, STREAM_TAIL_BYTES } from '../../lib/host/host.ts';
import { connectSsh, type SshHost, type SshOptions } from '../../lib/host/ssh.ts';
import { ROOT } from '../support/sandbox.ts';

const IP = '127.0.0.2';
const PORT = 2222;
const SSHD = '/usr/sbin/sshd';
const target = { user: userInfo().username, host: IP, port: PORT };

const skip = !existsSync(SSHD) && !process.env.CI;
if (skip) console.warn(`skipping the SSH host tests: ${SSHD} is missing (apt-get install openssh-server; with CI set they fail instead)`);

/** Makes a key pair with ssh-keygen; returns the private key file. */
const newKey = (dir: string, name: string, passphrase = ''): string => {
  const file = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', name, '-f', file]);
  return file;
};

/** The message of the error a promise rejects with, checked to be a one-line SkiffError with this exit code. */
const refusal = async (p: Promise<unknown>, exitCode: number = EXIT.failed): Promise<string> => {
  const e = await p.then(
    () => expect.fail('expected a refusal'),
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(SkiffError);
  expect((e as SkiffError).exitCode).toBe(exitCode);
  expect((e as SkiffError).message).not.toContain('\n');
  return (e as SkiffError).message;
};

describe.skipIf(skip)('SshHost on a real sshd', () => {
  let dir: string;
  let host: SshHost;
  let hostKeyLine: string;
  const opts = (more: Partial<SshOptions> = {}): SshOptions => ({
    keyFile: join(dir, 'id_ed25519'),
    knownHostsFile: join(dir, 'known_hosts'),
    timeoutMs: 10_000,
    ...more,
  });
  /** A known_hosts file in the test folder with this text. */
  const knownHosts = (name: string, text: string): string => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'skiff-ssh-'));
    execFileSync('bash', [join(ROOT, 'test/infra/sshd.sh'), dir, IP, String(PORT)], { stdio: 'pipe' });
    hostKeyLine = readFileSync(join(dir, 'host_ed25519_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
    host = await connectSsh(target, opts());
  });

  afterAll(async () => {
    await host?.close();
    const pidFile = join(dir, 'sshd.pid');
    if (existsSync(pidFile)) process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  describe('exec', () => {
    it('runs a command and collects its output', async () => {
      expect(host.name).toBe(`${target.user}@${IP}:${PORT}`);
      await expect(host.exec(cmd('echo', 'hello'))).resolves.toEqual({ code: 0, stdout: 'hello\n', stderr: '' });
      const r = await host.exec(script('echo out; echo err >&2'));
      expect([r.stdout, r.stderr]).toEqual(['out\n', 'err\n']);
    });

    it('reports exit codes, and throws for them unless check is false', async () => {
      expect((await host.exec(script('exit 3'), { check: false })).code).toBe(3);
      const e = await host.exec(script('echo oops >&2; exit 3')).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(RemoteCommandError);
      expect((e as RemoteCommandError).status).toBe(3);
      expect((e as RemoteCommandError).message).toBe(`${host.name}: command failed (exit 3): sh -c 'echo oops >&2; exit 3' sh: oops`);
    });

    it('passes a string on stdin', async () => {
      const r = await host.exec(cmd('cat'), { stdin: 'line 1\nline 2\n' });
      expect(r.stdout).toBe('line 1\nline 2\n');
    });

    it('streams 5 MB on stdin and counts the bytes sent', async () => {
      const data = randomBytes(5 * 1024 * 1024);
      const chunks = Array.from({ length: 80 }, (_, i) => data.subarray(i * 65536, (i + 1) * 65536));
      const before = host.bytesSent;
      const r = await host.exec(cmd('sha256sum'), { stdin: Readable.from(chunks) });
      expect(r.stdout).toBe(`${createHash('sha256').update(data).digest('hex')}  -\n`);
      expect(host.bytesSent - before).toBeGreaterThanOrEqual(data.length);
    });

    it('hands output to onStdout as it arrives', async () => {
      const seen: string[] = [];
      const r = await host.exec(script('echo a; sleep 0.2; echo b'), { onStdout: (b) => void seen.push(b.toString()) });
      expect(seen.join('')).toBe('a\nb\n');
      expect(r.stdout).toBe('a\nb\n');
    });

    it('passes a value full of shell syntax as one literal argument', async () => {
      const sentinel = join(dir, 'ran');
      const value = `it's "quoted" $(touch ${sentinel}) \`touch ${sentinel}\` $HOME; a && b | c\nline 2\n\ttab *`;
      expect((await host.exec(cmd('printf', '%s', value))).stdout).toBe(value);
      expect(existsSync(sentinel)).toBe(false);
    });

    it('reveals a Secret to the command but shows [REDACTED] in errors', async () => {
      const secret = new Secret('hunter2-s3cret');
      expect((await host.exec(cmd('printf', '%s', secret))).stdout).toBe('hunter2-s3cret');
      const e = await host.exec(cmd('false', secret)).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(RemoteCommandError);
      expect((e as Error).message).toContain('false [REDACTED]');
      expect((e as Error).message).not.toContain('hunter2');
    });

    it('runs more commands at once than the server allows sessions, one connection for all', async () => {
      const results = await Promise.all(Array.from({ length: 25 }, (_, i) => host.exec(script('sleep 0.1; echo "$1"', String(i)))));
      expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 25 }, (_, i) => `${i}\n`));
    });

    it('closes the channel when the signal aborts, which ends a command at its next write', async () => {
      // Aborted a little after its first line: a busy machine may take longer than a fixed delay to start it.
      const abort = new AbortController();
      const loop = script('while :; do echo tick; sleep 0.1; done # skiff-abort-test');
      let scheduled = false;
      let abortedAt = 0;
      const r = await host.exec(loop, {
        signal: abort.signal,
        onStdout: () => {
          if (scheduled) return;
          scheduled = true;
          setTimeout(() => {
            abortedAt = Date.now();
            abort.abort();
          }, 300);
        },
      });
      expect(r.code).toBeNull();
      expect(r.stdout).toMatch(/^(tick\n)+$/);
      expect(Date.now() - abortedAt).toBeLessThan(2000);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(spawnSync('pgrep', ['-f', 'skiff-abort-test']).status).toBe(1); // none left
    });

    it('returns at once on abort even while a silent command runs on', async () => {
      // sshd refuses signals in root sessions ("requires privilege separation"): the sleep runs out its time.
      const started = Date.now();
      await expect(host.exec(cmd('sleep', '2'), { signal: AbortSignal.timeout(200) })).resolves.toMatchObject({ code: null });
      expect(Date.now() - started).toBeLessThan(1500);
      await expect(host.exec(cmd('touch', join(dir, 'never')), { signal: AbortSignal.abort() })).resolves.toMatchObject({ code: null });
      expect(existsSync(join(dir, 'never'))).toBe(false);
    });
  });

  describe('deadlines and streamed output', () => {
    it('stops a command past its deadline: one line naming the host, the command and the deadline; the connection serves on', async () => {
      const started = Date.now();
      const loop = script('while :; do echo tick; sleep 0.1; done # skiff-deadline-test');
      const e = await host.exec(loop, { timeoutMs: 500 }).catch((err: unknown) => err);
      expect(Date.now() - started).toBeLessThan(2000);
      expect(e).toBeInstanceOf(DeadlineError);
      expect((e as DeadlineError).exitCode).toBe(EXIT.failed);
      expect((e as Error).message).toBe(
        `${host.name}: stopped a command still running after 0.5s, its deadline: sh -c 'while :; do echo tick; sleep 0.1; done # skiff-…' sh; ` +
          'check what it waits for on the host (an app, the proxy, a database, the network), then run again',
      );
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(spawnSync('pgrep', ['-f', 'skiff-deadline-test']).status).toBe(1); // it ended at its next write
      await expect(host.exec(cmd('echo', 'still here'))).resolves.toMatchObject({ stdout: 'still here\n' });
    });

    it('a silent command past its deadline fails at once too (sshd sends root sessions no signal: it runs out its time)', async () => {
      const started = Date.now();
      await expect(host.exec(cmd('sleep', '3'), { timeoutMs: 300 })).rejects.toBeInstanceOf(DeadlineError);
      expect(Date.now() - started).toBeLessThan(1500);
    });

    it('200 MB through onStdout: memory stays bounded and the result holds the last 64 KiB', async () => {
      const before = process.memoryUsage().rss;
      let peak = before;
      let bytes = 0;
      const r = await host.exec(script('head -c 200000000 /dev/zero | tr "\\0" a; echo; echo END'), {
        onStdout: (b) => {
          bytes += b.length;
          if (bytes % (16 * 1024 * 1024) < b.length) peak = Math.max(peak, process.memoryUsage().rss);
        },
        timeoutMs: 120_000,
      });
      peak = Math.max(peak, process.memoryUsage().rss);
      expect(bytes).toBe(200_000_005);
      expect(peak - before).toBeLessThan(100 * 1024 * 1024);
      expect(r.stdout.length).toBe(STREAM_TAIL_BYTES);
      expect(r.stdout.endsWith('aaaa\nEND\n')).toBe(true);
    });

    it('reads a stdin stream only as fast as a slow command takes it', async () => {
      let produced = 0;
      const total = 64 * 1024 * 1024;
      const chunk = Buffer.alloc(64 * 1024, 1);
      const source = new Readable({
        read() {
          if (produced >= total) return void this.push(null);
          produced += chunk.length;
          this.push(chunk);
        },
      });
      const running = host.exec(script('sleep 2; cat >/dev/null'), { stdin: source });
      await new Promise((resolve) => setTimeout(resolve, 1500));
      // What sits in the SSH window and the stream buffers while the command sleeps: a few MB.
      expect(produced).toBeLessThan(16 * 1024 * 1024);
      await running;
      expect(produced).toBe(total);
    });
  });

  describe('put and get', () => {
    it('writes a file with its mode, content on stdin, no temporary file left', async () => {
      const folder = join(dir, 'files');
      mkdirSync(folder, { recursive: true });
      const path = join(folder, 'secret.env');
      const before = host.bytesSent;
      await host.put(path, 'TOKEN=abc\n', { mode: 0o600 });
      expect(host.bytesSent - before).toBe('TOKEN=abc\n'.length);
      expect((await host.exec(cmd('stat', '-c', '%a', path))).stdout).toBe('600\n');
      expect(readFileSync(path, 'utf8')).toBe('TOKEN=abc\n');
      await host.put(path, 'TOKEN=new\n');
      expect((await host.exec(cmd('stat', '-c', '%a', path))).stdout).toBe('644\n');
      expect((await host.exec(cmd('ls', '-A', folder))).stdout).toBe('secret.env\n');
    });

    it('fails without a trace when the folder does not exist', async () => {
      const e = await host.put(join(dir, 'absent', 'x'), 'x').catch((err: unknown) => err);
      expect(e).toBeInstanceOf(RemoteCommandError);
      expect(existsSync(join(dir, 'absent'))).toBe(false);
    });

    it('reads back bytes exactly, and undefined for a missing file', async () => {
      const path = join(dir, 'files', 'bytes.bin');
      const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      await host.put(path, bytes);
      expect((await host.get(path))?.equals(bytes)).toBe(true);
      await expect(host.get(join(dir, 'files', 'missing'))).resolves.toBeUndefined();
      await expect(host.get(join(dir, 'no-folder', 'missing'))).resolves.toBeUndefined();
      await expect(host.get(dir)).rejects.toBeInstanceOf(RemoteCommandError); // a folder is not missing
    });
  });

  describe('connecting', () => {
    it('accepts a hashed known_hosts entry made by ssh-keygen -H', async () => {
      const file = join(dir, 'known_hosts_hashed');
      copyFileSync(join(dir, 'known_hosts'), file);
      execFileSync('ssh-keygen', ['-q', '-H', '-f', file], { stdio: 'ignore' });
      expect(readFileSync(file, 'utf8')).toMatch(/^\|1\|/);
      const h = await connectSsh(target, opts({ knownHostsFile: file }));
      expect((await h.exec(cmd('echo', 'ok'))).stdout).toBe('ok\n');
      await h.close();
    });

    it('authenticates with ssh-agent when no key file is given', async () => {
      const socket = join(dir, 'agent.sock');
      const agent = execFileSync('ssh-agent', ['-a', socket], { encoding: 'utf8' });
      const pid = Number(/SSH_AGENT_PID=(\d+)/.exec(agent)?.[1]);
      const saved = process.env.SSH_AUTH_SOCK;
      try {
        execFileSync('ssh-add', ['-q', join(dir, 'id_ed25519')], { env: { ...process.env, SSH_AUTH_SOCK: socket }, stdio: 'ignore' });
        process.env.SSH_AUTH_SOCK = socket;
        const h = await connectSsh(target, opts({ keyFile: undefined }));
        expect((await h.exec(cmd('echo', 'agent'))).stdout).toBe('agent\n');
        await h.close();
      } finally {
        process.env.SSH_AUTH_SOCK = saved;
        if (saved === undefined) delete process.env.SSH_AUTH_SOCK;
        process.kill(pid);
      }
    });

    it('refuses an unknown host, naming its fingerprint and how to trust it', async () => {
      const message = await refusal(connectSsh(target, opts({ knownHostsFile: knownHosts('empty', '') })));
      const hostKey = Buffer.from(hostKeyLine.split(' ')[1] as string, 'base64');
      expect(message).toContain(`unknown host ${IP}:${PORT}`);
      expect(message).toContain(`ssh-ed25519 ${fingerprint(hostKey)}`);
      expect(message).toContain(`ssh-keyscan -p ${PORT} ${IP} >> ${join(dir, 'empty')}`);
    });

    it('refuses loudly a host whose key changed', async () => {
      const other = readFileSync(`${newKey(dir, 'other_host_key')}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
      const message = await refusal(connectSsh(target, opts({ knownHostsFile: knownHosts('changed', `[${IP}]:${PORT} ${other}\n`) })));
      expect(message).toMatch(/^WARNING: the host key of 127\.0\.0\.2:2222 has CHANGED/);
      expect(message).toContain(`ssh-keygen -R '[${IP}]:${PORT}'`);
    });

    it('refuses a revoked host key', async () => {
      const file = knownHosts('revoked', `@revoked * ${hostKeyLine}\n[${IP}]:${PORT} ${hostKeyLine}\n`);
      expect(await refusal(connectSsh(target, opts({ knownHostsFile: file })))).toContain('@revoked');
    });

    it('says when the server refuses the key', async () => {
      const message = await refusal(connectSsh(target, opts({ keyFile: newKey(dir, 'stranger') })));
      expect(message).toBe(`${target.user}@${IP}:${PORT} refused the key: check DEPLOY_SSH_KEY and authorized_keys`);
    });

    it('says when nothing listens on the port', async () => {
      const message = await refusal(connectSsh({ ...target, port: 2299 }, opts()));
      expect(message).toContain(`${IP}:2299: connection refused`);
    });

    it('gives up when the server never speaks SSH', async () => {
      const sockets: Socket[] = [];
      const silent: Server = createServer((s) => sockets.push(s));
      await new Promise<void>((resolve) => silent.listen(2298, IP, resolve));
      try {
        const message = await refusal(connectSsh({ ...target, port: 2298 }, opts({ timeoutMs: 300 })));
        expect(message).toMatch(/^cannot reach 127\.0\.0\.2:2298: timed out after 0\.3s/);
      } finally {
        for (const s of sockets) s.destroy();
        silent.close();
      }
    });

    it('rejects a key file with a passphrase, a public key and no key at all as configuration errors', async () => {
      expect(await refusal(connectSsh(target, opts({ keyFile: newKey(dir, 'locked', 'pass phrase') })), EXIT.usage)).toMatch(/encrypted with a passphrase.*ssh-add/);
      expect(await refusal(connectSsh(target, opts({ keyFile: join(dir, 'id_ed25519.pub') })), EXIT.usage)).toContain('is a public key');
      const saved = process.env.SSH_AUTH_SOCK;
      delete process.env.SSH_AUTH_SOCK;
      try {
        expect(await refusal(connectSsh(target, opts({ keyFile: undefined })), EXIT.usage)).toMatch(/^no SSH key for .*DEPLOY_SSH_KEY/);
      } finally {
        if (saved !== undefined) process.env.SSH_AUTH_SOCK = saved;
      }
    });

    it('fails commands clearly once the connection is lost', async () => {
      const h = await connectSsh(target, opts());
      // $PPID of the login shell is the sshd process serving this connection.
      await expect(h.exec(script('kill -9 "$PPID"; sleep 5'))).rejects.toThrow(/connection was lost/);
      await expect(h.exec(cmd('true'))).rejects.toThrow(/connection was lost/);
      await h.close();
    });

    it('closes safely twice, and refuses commands after', async () => {
      const h = await connectSsh(target, opts());
      await Promise.all([h.close(), h.close()]);
      await h.close();
      await expect(h.exec(cmd('true'))).rejects.toThrow(/connection was closed/);
    });
  });
});
