/**
 * A sandbox for end-to-end tests on this machine: a temporary HOME, an env folder (SKIFF_ENV_DIR),
 * a copy of the example app, and a way to run the real scripts as a user would.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
const TSX = join(ROOT, 'node_modules/.bin/tsx');

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface Sandbox {
  readonly dir: string;
  readonly home: string;
  readonly envDir: string;
  readonly appDir: string;
  readonly deployPath: string;
  /** Writes env/<name>.env (mode 0644) or any file under the env folder. */
  writeEnv(file: string, text: string, mode?: number): void;
  /** Runs scripts/<name>.ts with the sandbox's HOME and env folder. */
  run(script: string, args?: readonly string[], opts?: { cwd?: string; env?: Record<string, string> }): Promise<RunResult>;
  /** Starts scripts/<name>.ts without waiting for it (to signal it mid-run). */
  start(script: string, args?: readonly string[]): ReturnType<typeof startProcess>;
  /** Sets the example app's package.json version (the deployed version without git). */
  setVersion(version: string): void;
  /** Pids of processes started for a DEPLOY_PATH (found by the SKIFF_SLOT marker). */
  slotPids(deployPath?: string): number[];
  cleanup(): void;
}

/** Starts a command; `result` settles when it ends. `output()` is what it printed so far. */
export const startProcess = (argv: readonly string[], opts: { cwd: string; env: NodeJS.ProcessEnv }) => {
  const [file, ...args] = argv;
  if (!file) throw new Error('empty argv');
  const child = spawn(file, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const result = new Promise<RunResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, result, output: () => stdout + stderr };
};

/** Runs a command to its end, collecting output. */
export const runProcess = (argv: readonly string[], opts: { cwd: string; env: NodeJS.ProcessEnv }): Promise<RunResult> =>
  startProcess(argv, opts).result;

/** Pids whose environment carries SKIFF_SLOT=<deployPath>#... (zombies have none and are not counted). */
export const pidsWithMarker = (deployPath: string): number[] => {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`).toString().split('\0');
      if (env.some((e) => e.startsWith(`SKIFF_SLOT=${deployPath}#`))) pids.push(Number(entry));
    } catch {
      // gone, or not ours
    }
  }
  return pids;
};

export const makeSandbox = (name: string): Sandbox => {
  const dir = mkdtempSync(join(tmpdir(), `skiff-${name}-`));
  const home = join(dir, 'home');
  const envDir = join(dir, 'env');
  const appDir = join(dir, 'app');
  cpSync(join(ROOT, 'example'), appDir, { recursive: true, filter: (src) => !src.includes(`${join(ROOT, 'example')}/data`) });
  for (const d of [home, envDir]) mkdirSync(d);
  const deployPath = join(dir, 'srv');
  const baseEnv: NodeJS.ProcessEnv = { ...process.env, HOME: home, SKIFF_ENV_DIR: envDir };
  for (const k of Object.keys(baseEnv)) if (k.startsWith('DEPLOY_') || k.startsWith('BACKUP_') || k === 'APP_NAME' || k === 'APP_DIR') delete baseEnv[k];

  return {
    dir,
    home,
    envDir,
    appDir,
    deployPath,
    writeEnv(file, text, mode = 0o644) {
      writeFileSync(join(envDir, file), text, { mode });
    },
    run(script, args = [], opts = {}) {
      return runProcess([TSX, join(ROOT, 'scripts', `${script}.ts`), ...args], {
        cwd: opts.cwd ?? ROOT,
        env: { ...baseEnv, ...opts.env },
      });
    },
    start(script, args = []) {
      return startProcess([TSX, join(ROOT, 'scripts', `${script}.ts`), ...args], { cwd: ROOT, env: baseEnv });
    },
    setVersion(version) {
      const file = join(appDir, 'package.json');
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      writeFileSync(file, `${JSON.stringify({ ...pkg, version }, null, 2)}\n`);
    },
    slotPids(path = deployPath) {
      return pidsWithMarker(path);
    },
    cleanup() {
      for (const pid of pidsWithMarker(deployPath)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
};

/** The env file of a sandbox deploy on one port. */
export const localEnv = (s: Sandbox, port: number, extra = ''): string =>
  [
    'APP_NAME=hello',
    `APP_DIR=${s.appDir}`,
    'DEPLOY_HOSTS=local',
    `DEPLOY_PATH=${s.deployPath}`,
    `DEPLOY_PORTS=${port}`,
    'DEPLOY_START=node server.js',
    'DEPLOY_HEALTH_TIMEOUT=10',
    'DEPLOY_DRAIN_SECONDS=5',
    extra,
  ].join('\n');

/** GET a URL; status 0 when nothing answers. */
export const get = async (url: string): Promise<{ status: number; text: string }> => {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    return { status: res.status, text: await res.text() };
  } catch {
    return { status: 0, text: '' };
  }
};

/** Whether a port accepts connections (used to check that nothing listens). */
export const listening = (port: number): boolean =>
  spawnSync('bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`]).status === 0;
