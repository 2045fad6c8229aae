/**
 * What `init` finds in an app, and the env files it writes from that. Pure: the caller reads the
 * files (`readAppFacts` in lib/init/plan.ts) and passes their text.
 *
 * Node: the package manager from the lockfile, the build script, the start script (or `main`), the
 * port variable the code reads. Python: requirements.txt or pyproject.toml, a uvicorn (FastAPI,
 * Starlette) or gunicorn (Flask, Django) entry point. A Dockerfile: the docker runtime.
 */

export interface AppFacts {
  /** The app folder's name (the fallback for APP_NAME). */
  readonly folder: string;
  /** package.json, parsed (undefined: there is none). */
  readonly packageJson: Readonly<Record<string, unknown>> | undefined;
  /** Names of the files at the app's root. */
  readonly rootFiles: ReadonlySet<string>;
  /** Text of a few source files that tell the port variable and the entry point: relative path -> text. */
  readonly sources: Readonly<Record<string, string>>;
}

export type PackageManager = 'npm' | 'pnpm' | 'yarn' | 'bun';

export interface Detected {
  readonly appName: string;
  readonly kind: 'node' | 'python' | 'unknown';
  readonly runtime: 'process' | 'docker';
  readonly packageManager: PackageManager | undefined;
  readonly build: string | undefined;
  readonly start: string | undefined;
  /** The variable the app reads its port from, when found. */
  readonly portVar: string | undefined;
  readonly healthPath: string;
  /** One line per finding, for the message and the env file's header. */
  readonly found: readonly string[];
  /** What the user must still decide (shown in the next steps). */
  readonly todo: readonly string[];
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** A name of a-z, 0-9 and -, from a package name (`@scope/my_app` -> `my-app`) or a folder. */
export const appNameOf = (raw: string): string => {
  const base = raw.replace(/^@[^/]+\//, '').toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
  return base === '' ? 'app' : base.slice(0, 63);
};

const LOCKFILES: readonly (readonly [string, PackageManager])[] = [
  ['pnpm-lock.yaml', 'pnpm'],
  ['yarn.lock', 'yarn'],
  ['bun.lockb', 'bun'],
  ['bun.lock', 'bun'],
  ['package-lock.json', 'npm'],
  ['npm-shrinkwrap.json', 'npm'],
];

/** `<pm> run <script>` as each package manager spells it. */
export const runScript = (pm: PackageManager, script: string): string => (pm === 'yarn' ? `yarn ${script}` : `${pm} run ${script}`);

/** Port variables read by Node (`process.env.X`, `process.env['X']`) or Python (`os.environ.get("X")`, `os.getenv("X")`). */
const PORT_READS = [
  /process\.env\.([A-Z_]*PORT[A-Z_]*)/g,
  /process\.env\[\s*['"]([A-Z_]*PORT[A-Z_]*)['"]\s*\]/g,
  /os\.environ(?:\.get\(\s*|\[\s*)['"]([A-Z_]*PORT[A-Z_]*)['"]/g,
  /os\.getenv\(\s*['"]([A-Z_]*PORT[A-Z_]*)['"]/g,
];

/** The port variable the sources read: PORT when any reads it, else the first one found. */
export const portVarOf = (sources: Readonly<Record<string, string>>): string | undefined => {
  const names = Object.values(sources).flatMap((text) => PORT_READS.flatMap((re) => [...text.matchAll(re)].map((m) => m[1] as string)));
  return names.includes('PORT') ? 'PORT' : names[0];
};

/** A health route the sources name as a string ('/health', "/api/health", '/healthz'), else `/`. */
export const healthPathOf = (sources: Readonly<Record<string, string>>): string => {
  for (const candidate of ['/api/health', '/health', '/healthz', '/api/healthz', '/status']) {
    const quoted = new RegExp(`['"\`]${candidate.replaceAll('/', '\\/')}['"\`]`);
    if (Object.values(sources).some((t) => quoted.test(t))) return candidate;
  }
  return '/';
};

/** A Python module that makes an ASGI or WSGI app: `main:app`, with the server that runs it. */
const pythonEntry = (sources: Readonly<Record<string, string>>, deps: string): { server: 'uvicorn' | 'gunicorn'; target: string } | undefined => {
  for (const [file, text] of Object.entries(sources)) {
    if (!file.endsWith('.py')) continue;
    const module = file.slice(0, -3).replaceAll('/', '.');
    const asgi = /^(\w+)\s*=\s*(?:FastAPI|Starlette)\(/m.exec(text);
    if (asgi) return { server: 'uvicorn', target: `${module}:${asgi[1]}` };
    const wsgi = /^(\w+)\s*=\s*Flask\(/m.exec(text);
    if (wsgi) return { server: 'gunicorn', target: `${module}:${wsgi[1]}` };
  }
  if (/\buvicorn\b/i.test(deps)) return { server: 'uvicorn', target: 'main:app' };
  if (/\bgunicorn\b/i.test(deps)) return { server: 'gunicorn', target: 'app:app' };
  return undefined;
};

/** What the app is and how it builds and starts, from its files. */
export const detectApp = (facts: AppFacts): Detected => {
  const found: string[] = [];
  const todo: string[] = [];
  const pkg = facts.packageJson;
  const appName = appNameOf(str(pkg?.name) ?? facts.folder);
  const docker = facts.rootFiles.has('Dockerfile');
  const portVar = portVarOf(facts.sources);
  const healthPath = healthPathOf(facts.sources);
  let kind: Detected['kind'] = 'unknown';
  let packageManager: PackageManager | undefined;
  let build: string | undefined;
  let start: string | undefined;

  if (pkg) {
    kind = 'node';
    const lock = LOCKFILES.find(([file]) => facts.rootFiles.has(file));
    packageManager = lock?.[1] ?? 'npm';
    found.push(lock ? `Node app, ${lock[1]} (${lock[0]})` : 'Node app, no lockfile (npm assumed)');
    const scripts = (pkg.scripts ?? {}) as Record<string, unknown>;
    if (str(scripts.build)) {
      build = runScript(packageManager, 'build');
      found.push(`build script: ${String(scripts.build)}`);
    }
    const startScript = str(scripts.start);
    if (startScript) {
      // A plain `node file` runs as it is, with no package manager needed on the host.
      start = /^node [^;&|`$]+$/.test(startScript) ? startScript : runScript(packageManager, 'start');
      found.push(`start script: ${startScript}`);
    } else if (str(pkg.main)) {
      start = `node ${String(pkg.main)}`;
      found.push(`main: ${String(pkg.main)}`);
    } else if (facts.rootFiles.has('server.js') || facts.rootFiles.has('index.js')) {
      start = `node ${facts.rootFiles.has('server.js') ? 'server.js' : 'index.js'}`;
      found.push(`entry file: ${start.slice(5)}`);
    }
  } else if (facts.rootFiles.has('requirements.txt') || facts.rootFiles.has('pyproject.toml')) {
    kind = 'python';
    const deps = `${facts.sources['requirements.txt'] ?? ''}\n${facts.sources['pyproject.toml'] ?? ''}`;
    found.push(`Python app (${facts.rootFiles.has('requirements.txt') ? 'requirements.txt' : 'pyproject.toml'})`);
    const entry = pythonEntry(facts.sources, deps);
    if (entry) {
      start =
        entry.server === 'uvicorn'
          ? `python3 -m uvicorn ${entry.target} --host 127.0.0.1 --port "$PORT"`
          : `python3 -m gunicorn --bind "127.0.0.1:$PORT" ${entry.target}`;
      found.push(`${entry.server} entry point: ${entry.target}`);
    }
    if (!docker) todo.push("install the app's Python packages on each host (or add a Dockerfile for the docker runtime)");
  }

  if (docker) {
    found.push('Dockerfile: the docker runtime');
    // The image says what starts; PORT is set in the container.
    start = undefined;
    build = undefined;
  }
  if (portVar) found.push(`port variable: ${portVar}`);
  if (portVar && portVar !== 'PORT' && start) start = `${portVar}="$PORT" ${start}`;
  if (!portVar) todo.push('make the app listen on the port in $PORT (skiff sets it for each release)');
  if (!docker && !start) todo.push('set DEPLOY_START in env/staging.env and env/production.env: the command that starts the app');
  if (healthPath === '/') todo.push('point DEPLOY_HEALTH_PATH at a URL that answers 2xx when the app is ready (now /)');
  else found.push(`health route: ${healthPath}`);
  return { appName, kind, runtime: docker ? 'docker' : 'process', packageManager, build, start, portVar, healthPath, found, todo };
};

/** The env file of one environment, from what was detected. Placeholders are documentation addresses (203.0.113.0/24). */
export const envFileFor = (env: 'staging' | 'production', d: Detected): string => {
  const lines = [
    `# ${env}: written by skiff init from what it found in the app (${d.found.join('; ') || 'nothing it knows'}).`,
    '# Edit freely; every key is in docs/configuration.md. Secrets go in env/' + env + '.secrets.env (chmod 600, gitignored).',
    `APP_NAME=${d.appName}`,
    '# The app is this repository (skiff is inside it).',
    'APP_DIR=.',
    '# The server: user@host[:port]. Take its host key once: ssh-keyscan HOST >> ~/.ssh/known_hosts (and compare the fingerprint).',
    `DEPLOY_HOSTS=deploy@${env === 'staging' ? '203.0.113.10' : '203.0.113.20'}`,
    `DEPLOY_PATH=/srv/${d.appName}/${env}`,
    `DEPLOY_RUNTIME=${d.runtime}`,
  ];
  if (env === 'staging') {
    lines.push('# One port and no proxy: the app answers on it directly. DEPLOY_PROXY=caddy with two ports gives zero-downtime switches.', 'DEPLOY_PROXY=none', 'DEPLOY_PORTS=3001');
  } else {
    lines.push('# Blue-green behind Caddy (running on the host): two slot ports, the public URL Caddy serves.', 'DEPLOY_PROXY=caddy', 'DEPLOY_PORTS=3001,3002', 'DEPLOY_PUBLIC_URL=https://example.com');
  }
  if (d.runtime === 'docker') lines.push('DEPLOY_DOCKERFILE=Dockerfile');
  if (d.build) lines.push(`DEPLOY_BUILD=${d.build}`);
  if (d.start) lines.push(`DEPLOY_START=${d.start}`);
  else if (d.runtime === 'process') lines.push('# DEPLOY_START=node server.js   (the command that starts the app: set it)');
  lines.push(`DEPLOY_HEALTH_PATH=${d.healthPath}`, 'DEPLOY_HEALTH_TIMEOUT=60', `DEPLOY_KEEP_RELEASES=${env === 'staging' ? 3 : 5}`);
  lines.push('', "# The app's own environment (every key that does not start with DEPLOY_ or BACKUP_).");
  if (d.kind === 'node') lines.push('NODE_ENV=production');
  return `${lines.join('\n')}\n`;
};
