/**
 * A real systemd server for end-to-end tests: a Debian 12 container booting systemd as PID 1, reached
 * over real OpenSSH at 127.0.0.1:<port> (test/infra/systemd-host.sh). Users root and deploy (uid
 * 1001, no sudo, no linger until a test grants them) log in with the key in <dir>/id_ed25519.
 *
 *   const skip = systemdHostSkip();
 *   describe.skipIf(skip)('...', () => {
 *     beforeAll(async () => (host = await startSystemdHost({ name: 'skiff-x', port: 2291, dir })));
 *     afterAll(() => host?.stop());
 *     ... s.writeEnv('staging.env', [systemdHostEnv(host, 'deploy'), 'DEPLOY_PATH=/home/deploy/hello'].join('\n'))
 *   });
 */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, type RunResult } from './sandbox.ts';

const SCRIPT = join(ROOT, 'test/infra/systemd-host.sh');

export type HostUser = 'root' | 'deploy';

export interface SystemdHostOptions {
  /** The container's name, also its hostname. */
  readonly name: string;
  /** The port on 127.0.0.1 where this machine reaches the host's sshd. */
  readonly port: number;
  /** A folder for the keys and the socat's files; an id_ed25519 already there is kept. */
  readonly dir: string;
}

export interface SystemdHost extends SystemdHostOptions {
  /** The user key, authorized for root and deploy. */
  readonly keyFile: string;
  /** A known_hosts file that trusts [127.0.0.1]:<port> with the host's key. */
  readonly knownHosts: string;
  /** Runs a command as root inside the host (docker exec bash -c), not over SSH. Never throws for an exit code. */
  exec(command: string, opts?: { timeoutMs?: number }): Promise<RunResult>;
  /** Runs a command over real SSH as root or deploy, with the ssh client. Never throws for an exit code. */
  ssh(command: string, user?: HostUser, opts?: { timeoutMs?: number }): Promise<RunResult>;
  /** The env-file lines that point skiff at this host as that user (see systemdHostEnv). */
  env(user?: HostUser): string;
  /** Restarts the container (systemd shuts down and boots again); resolves once sshd answers. */
  reboot(): Promise<void>;
  /** Removes the container and stops the socat; does nothing the second time. */
  stop(): Promise<void>;
}

/** Runs argv to its end, killing it after timeoutMs; code null when it was killed. */
const run = (argv: readonly string[], timeoutMs: number): Promise<RunResult> =>
  new Promise((resolve, reject) => {
    const [file, ...args] = argv;
    if (!file) throw new Error('empty argv');
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });

/** Runs a subcommand of test/infra/systemd-host.sh; throws with what it said when it fails. */
const script = async (args: readonly string[], timeoutMs: number): Promise<RunResult> => {
  const r = await run(['bash', SCRIPT, ...args], timeoutMs);
  if (r.code !== 0) {
    const why = r.code === null ? `killed after ${timeoutMs / 1000} s` : `exit ${r.code}`;
    throw new Error(`systemd-host.sh ${args.join(' ')} failed (${why}): ${(r.stderr || r.stdout).trim()}`);
  }
  return r;
};

/**
 * Why the systemd host tests cannot run here (not root, or no Docker daemon answering), or undefined.
 * With CI set it is always undefined: there the tests run, and fail when the host cannot be made.
 */
export const systemdHostSkip = (): string | undefined => {
  if (process.env.CI) return undefined;
  if (process.getuid?.() !== 0) return 'the systemd host needs root (nsenter, mmdebstrap)';
  if (spawnSync('docker', ['info'], { stdio: 'ignore', timeout: 20_000 }).status !== 0) return 'no Docker daemon answers (run test/infra/docker.sh)';
  return undefined;
};

/**
 * The env-file lines for deploying to the host as root or deploy: DEPLOY_HOSTS, DEPLOY_SSH_KEY and
 * DEPLOY_KNOWN_HOSTS. The app's own keys (DEPLOY_PATH, DEPLOY_PORTS, ...) are the test's to add.
 */
export const systemdHostEnv = (host: Pick<SystemdHost, 'port' | 'keyFile' | 'knownHosts'>, user: HostUser = 'root'): string =>
  [`DEPLOY_HOSTS=${user}@127.0.0.1:${host.port}`, `DEPLOY_SSH_KEY=${host.keyFile}`, `DEPLOY_KNOWN_HOSTS=${host.knownHosts}`].join('\n');

/** Makes (or remakes) the host and waits until root can log in over SSH; builds the image when missing. */
export const startSystemdHost = async (opts: SystemdHostOptions): Promise<SystemdHost> => {
  const { name, port, dir } = opts;
  // The first run builds the image (about 30 s); a boot takes about 2 s.
  try {
    await script(['up', dir, name, String(port)], 240_000);
  } catch (e) {
    await script(['down', dir, name], 30_000).catch(() => undefined);
    throw e;
  }
  const keyFile = join(dir, 'id_ed25519');
  const knownHosts = join(dir, 'known_hosts');
  let stopped = false;
  const host: SystemdHost = {
    name,
    port,
    dir,
    keyFile,
    knownHosts,
    exec: (command, o = {}) => run(['docker', 'exec', name, 'bash', '-c', command], o.timeoutMs ?? 60_000),
    ssh: (command, user = 'root', o = {}) =>
      run(
        [
          'ssh',
          ...['-F', '/dev/null', '-i', keyFile, '-p', String(port)],
          ...['-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10'],
          ...['-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${knownHosts}`],
          `${user}@127.0.0.1`,
          '--',
          command,
        ],
        o.timeoutMs ?? 60_000,
      ),
    env: (user = 'root') => systemdHostEnv(host, user),
    reboot: async () => {
      await script(['reboot', name], 90_000);
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await script(['down', dir, name], 30_000);
    },
  };
  return host;
};
