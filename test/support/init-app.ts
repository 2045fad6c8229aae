/**
 * An app none of skiff's code knows, in a git repository with a bare origin, brought under skiff
 * with the real scripts/init.ts, its staging env pointed at a loopback SSH host: the fixture of the
 * init, CI-example and getting-started tests.
 */
import { symlinkSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { makeRepo, type Repo } from './git-repo.ts';
import { ROOT, runProcess, type RunResult } from './sandbox.ts';

/** A small CommonJS app: its version from APP_VERSION, a health route, PORT. */
export const SHOP_SERVER = `const http = require('node:http');
const port = Number(process.env.PORT || 3000);
http.createServer((req, res) => {
  if (req.url === '/healthz') return res.end('ok');
  res.end(\`shop \${process.env.APP_VERSION}\\n\`);
}).listen(port, '127.0.0.1');
`;

/** The shop app committed in a new repository (package.json indented by 4, no lockfile, CommonJS). */
export const makeShopRepo = (): Repo => {
  const app = makeRepo({ version: '1.0.0' });
  const pkg = { name: 'shop', version: '1.0.0', description: 'a shop', main: 'server.js', scripts: { start: 'node server.js', test: 'node -e "process.exit(0)"' }, license: 'MIT' };
  app.write('package.json', `${JSON.stringify(pkg, null, 4)}\n`);
  app.write('server.js', SHOP_SERVER);
  app.write('.gitignore', 'node_modules\n');
  app.git('add', '-A');
  app.git('commit', '-q', '-m', 'feat: the shop');
  return app;
};

/** The environment of a command run as a user would: the repo's HOME, no DEPLOY_* from this process. */
export const userEnv = (app: Repo): NodeJS.ProcessEnv => {
  const env = { ...app.env };
  for (const k of Object.keys(env)) if (k.startsWith('DEPLOY_') || k.startsWith('BACKUP_') || k === 'APP_NAME' || k === 'APP_DIR' || k === 'SKIFF_ENV_DIR') delete env[k];
  return env;
};

/** Runs skiff's scripts/init.ts (of this checkout) on a folder. */
export const runInit = (args: readonly string[], env: NodeJS.ProcessEnv): Promise<RunResult> =>
  runProcess([join(ROOT, 'node_modules/.bin/tsx'), join(ROOT, 'scripts/init.ts'), ...args], { cwd: ROOT, env });

/** env/staging.env as init wrote it, pointed at an SSH host, a DEPLOY_PATH and a port; `extra` lines added. */
export const pointStaging = (app: Repo, host: { ip: string; port: number }, deployPath: string, appPort: number, extra: readonly string[] = []): void => {
  const file = join(app.work, 'env/staging.env');
  const text = readFileSync(file, 'utf8')
    .replace(/^DEPLOY_HOSTS=.*$/m, `DEPLOY_HOSTS=${userInfo().username}@${host.ip}:${host.port}`)
    .replace(/^DEPLOY_PATH=.*$/m, `DEPLOY_PATH=${deployPath}`)
    .replace(/^DEPLOY_PORTS=.*$/m, [`DEPLOY_PORTS=${appPort}`, 'DEPLOY_DRAIN_SECONDS=1', ...extra].join('\n'));
  app.write('env/staging.env', text);
};

/** The packages an `npm install` would bring, linked from this checkout (no registry here). */
export const linkPackages = (dir: string): void => symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
