/**
 * init: what it copies, what it finds in an app, how it merges package.json, and its plan on real
 * folders (first run, second run, an app's own file, an edited file under --update), and that what
 * it copied never ships.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { validateFile } from '../../lib/config/config.ts';
import { REPO_ROOT } from '../../lib/core/paths.ts';
import { appNameOf, detectApp, envFileFor, healthPathOf, portVarOf, type AppFacts } from '../../lib/init/detect.ts';
import { readSkiff } from '../../lib/init/init.ts';
import { defaultAppDir, INIT_MANIFEST, readInitManifest, skiffOwnPaths } from '../../lib/init/manifest.ts';
import { mergePackageJson, parsePackageJson, renderJson, styleOf } from '../../lib/init/package-json.ts';
import { InitRefusal, isApplied, planInit, readApp, type InitPlan } from '../../lib/init/plan.ts';
import { importsOf, skiffSources } from '../../lib/init/sources.ts';
import { shipRules } from '../../lib/ship/ignore.ts';
import { releaseRules, walkRelease } from '../../lib/ship/manifest.ts';
import type { Config } from '../../lib/config/config.ts';

const facts = (over: Partial<AppFacts> = {}): AppFacts => ({ folder: 'shop', packageJson: undefined, rootFiles: new Set(), sources: {}, ...over });

describe('what init copies', () => {
  it('follows static, dynamic and side-effect imports', () => {
    expect(importsOf(`import { a } from './a.ts';\nconst b = await import('../b/c.ts');\nimport './d.ts';\nimport type { E } from './e.ts';\nimport x from 'zx';`)).toEqual(['./a.ts', '../b/c.ts', './d.ts', './e.ts']);
  });

  it('is the scripts (not init), the Taskfile and the lib modules they load: no tests, bench, docs or example', () => {
    const paths = skiffSources(REPO_ROOT).map((s) => s.path);
    expect(paths).toContain('scripts/deploy-vps.ts');
    expect(paths).toContain('Taskfile.ts');
    expect(paths).toContain('lib/ship/manifest.ts');
    expect(paths).toContain('lib/init/manifest.ts');
    expect(paths).not.toContain('scripts/init.ts');
    expect(paths).not.toContain('lib/init/plan.ts');
    expect(paths.filter((p) => !/^(scripts\/[\w-]+\.ts|Taskfile\.ts|lib\/[\w-]+\/[\w-]+\.ts)$/.test(p))).toEqual([]);
  });
});

describe('what init finds in an app', () => {
  it('a Node app: package manager from the lockfile, build and start scripts, the port variable, a health route', () => {
    const d = detectApp(
      facts({
        packageJson: { name: '@acme/Shop_Front', scripts: { build: 'tsc', start: 'node dist/server.js' } },
        rootFiles: new Set(['pnpm-lock.yaml', 'package.json']),
        sources: { 'dist/server.js': "app.get('/healthz', ok); app.listen(process.env.PORT ?? 3000)" },
      }),
    );
    expect(d).toMatchObject({ appName: 'shop-front', kind: 'node', runtime: 'process', packageManager: 'pnpm', build: 'pnpm run build', start: 'node dist/server.js', portVar: 'PORT', healthPath: '/healthz' });
  });

  it('a start script that is not a plain `node file` runs through the package manager; another port variable is set from PORT', () => {
    const d = detectApp(facts({ packageJson: { scripts: { start: 'NODE_OPTIONS=x node s.js' } }, rootFiles: new Set(['yarn.lock']), sources: { 's.js': "process.env['HTTP_PORT']" } }));
    expect(d.start).toBe('HTTP_PORT="$PORT" yarn start');
    expect(d.todo.some((t) => t.includes('DEPLOY_HEALTH_PATH'))).toBe(true);
  });

  it('Python: a FastAPI app runs under uvicorn, a Flask one under gunicorn', () => {
    expect(detectApp(facts({ rootFiles: new Set(['requirements.txt']), sources: { 'main.py': 'from fastapi import FastAPI\napi = FastAPI()\n', 'requirements.txt': 'fastapi\nuvicorn\n' } })).start).toBe(
      'python3 -m uvicorn main:api --host 127.0.0.1 --port "$PORT"',
    );
    expect(detectApp(facts({ rootFiles: new Set(['pyproject.toml']), sources: { 'app.py': 'app = Flask(__name__)\nos.environ.get("PORT")' } }))).toMatchObject({
      kind: 'python',
      start: 'python3 -m gunicorn --bind "127.0.0.1:$PORT" app:app',
      portVar: 'PORT',
    });
  });

  it('a Dockerfile: the docker runtime, no start or build command', () => {
    const d = detectApp(facts({ packageJson: { scripts: { start: 'node s.js', build: 'x' } }, rootFiles: new Set(['Dockerfile']) }));
    expect(d).toMatchObject({ runtime: 'docker', start: undefined, build: undefined });
  });

  it('names, ports and health routes', () => {
    expect(appNameOf('@x/My App!')).toBe('my-app');
    expect(appNameOf('___')).toBe('app');
    expect(portVarOf({ a: 'os.getenv("APP_PORT")' })).toBe('APP_PORT');
    expect(portVarOf({ a: 'nothing' })).toBeUndefined();
    expect(healthPathOf({ a: 'router.get("/api/health")' })).toBe('/api/health');
  });

  it.each(['staging', 'production'] as const)('the %s env file it writes is valid, for each kind of app', (env) => {
    const dir = mkdtempSync(join(tmpdir(), 'skiff-init-env-'));
    try {
      const kinds = [
        detectApp(facts({ packageJson: { scripts: { start: 'node s.js' } }, sources: { 's.js': 'process.env.PORT' } })),
        detectApp(facts({ rootFiles: new Set(['Dockerfile']) })),
        detectApp(facts({ rootFiles: new Set(['requirements.txt']), sources: { 'requirements.txt': 'uvicorn' } })),
      ];
      for (const d of kinds) {
        writeFileSync(join(dir, 'x.env'), envFileFor(env, d).replace('APP_DIR=.', `APP_DIR=${dir}`));
        expect(() => validateFile(join(dir, 'x.env'), { HOME: dir })).not.toThrow();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the app's package.json", () => {
  const want = { scripts: { 'deploy:staging': 'tsx scripts/deploy-vps.ts staging', backup: 'tsx Taskfile.ts backup' }, deps: { tsx: '^4.0.0', zod: '^4.1.0' } };

  it('keeps its indentation, line endings, key order and final newline', () => {
    const text = '{\r\n\t"name": "a",\r\n\t"scripts": {\r\n\t\t"test": "vitest"\r\n\t},\r\n\t"dependencies": {\r\n\t\t"express": "^4.0.0"\r\n\t}\r\n}';
    const merged = mergePackageJson(parsePackageJson(text), want);
    const out = renderJson(merged.pkg, styleOf(text));
    expect(out).toBe(
      '{\r\n\t"name": "a",\r\n\t"scripts": {\r\n\t\t"test": "vitest",\r\n\t\t"deploy:staging": "tsx scripts/deploy-vps.ts staging",\r\n\t\t"backup": "tsx Taskfile.ts backup"\r\n\t},\r\n\t"dependencies": {\r\n\t\t"express": "^4.0.0"\r\n\t},\r\n\t"devDependencies": {\r\n\t\t"tsx": "^4.0.0",\r\n\t\t"zod": "^4.1.0"\r\n\t}\r\n}',
    );
    // Unchanged text comes back byte for byte.
    const same = '{\n    "b": 1,\n    "a": [1, 2]\n}\n';
    expect(renderJson(parsePackageJson(same), styleOf(same))).toBe('{\n    "b": 1,\n    "a": [\n        1,\n        2\n    ]\n}\n');
  });

  it('puts a dependency where it sorts when the object is sorted', () => {
    const merged = mergePackageJson({ devDependencies: { a: '1', vitest: '1' } }, { scripts: {}, deps: { tsx: '^4.0.0' } });
    expect(Object.keys(merged.pkg.devDependencies as object)).toEqual(['a', 'tsx', 'vitest']);
  });

  it("never overwrites the app's scripts or packages, and lists the conflicts", () => {
    const merged = mergePackageJson({ scripts: { 'deploy:staging': './deploy.sh' }, dependencies: { zod: '^3.22.0', tsx: '^4.2.0' } }, want);
    expect(merged.pkg.scripts).toEqual({ 'deploy:staging': './deploy.sh', backup: 'tsx Taskfile.ts backup' });
    expect(merged.pkg.dependencies).toEqual({ zod: '^3.22.0', tsx: '^4.2.0' });
    expect(merged.pkg.devDependencies).toBeUndefined();
    expect(merged.conflicts).toEqual([
      `scripts.deploy:staging is the app's own ("./deploy.sh"): kept; skiff's would be "tsx scripts/deploy-vps.ts staging", run it as npx tsx scripts/deploy-vps.ts staging`,
      "dependencies.zod is ^3.22.0, skiff needs ^4.1.0: kept the app's; skiff's scripts may not run until they agree",
    ]);
  });

  it('moves an entry it added earlier to a new value, and leaves one the app changed', () => {
    const pkg = { scripts: { backup: 'tsx Taskfile.ts backup --old', 'deploy:staging': 'mine' }, devDependencies: { tsx: '^4.0.0', zod: '^4.0.0' } };
    const merged = mergePackageJson(pkg, want, { scripts: { backup: 'tsx Taskfile.ts backup --old', 'deploy:staging': 'tsx old' }, devDependencies: { zod: '^4.0.0' } });
    expect(merged.pkg.scripts).toEqual({ backup: 'tsx Taskfile.ts backup', 'deploy:staging': 'mine' });
    expect(merged.pkg.devDependencies).toEqual({ tsx: '^4.0.0', zod: '^4.1.0' });
  });

  it('refuses a package.json that is not JSON, or not an object', () => {
    expect(() => parsePackageJson('{ "name": "a", }')).toThrow(/^package.json is not valid JSON/);
    expect(() => parsePackageJson('[]')).toThrow('package.json is not a JSON object');
  });
});

describe('the plan on a real folder', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const skiff = readSkiff(REPO_ROOT);
  const app = (files: Record<string, string>): string => {
    const dir = mkdtempSync(join(tmpdir(), 'skiff-init-plan-'));
    dirs.push(dir);
    for (const [p, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, p)), { recursive: true });
      writeFileSync(join(dir, p), text);
    }
    return dir;
  };
  const write = (dir: string, plan: InitPlan) => {
    for (const c of plan.changes.filter(isApplied)) {
      if (c.action === 'remove') rmSync(join(dir, c.path));
      else {
        mkdirSync(dirname(join(dir, c.path)), { recursive: true });
        writeFileSync(join(dir, c.path), c.content ?? '');
      }
    }
  };
  const pkg = `{\n  "name": "shop",\n  "version": "1.0.0",\n  "type": "module",\n  "scripts": { "start": "node server.js" }\n}\n`;

  it('a first run writes every file, a second one nothing', () => {
    const dir = app({ 'package.json': pkg, 'server.js': 'process.env.PORT', 'lib/db.js': 'export {}' });
    const first = planInit(skiff, readApp(dir), { update: false, force: false });
    const paths = first.changes.map((c) => c.path);
    expect(paths).toEqual(expect.arrayContaining(['scripts/deploy-vps.ts', 'Taskfile.ts', 'tsconfig.json', 'package.json', 'env/staging.env', 'env/production.env', '.gitignore', INIT_MANIFEST]));
    expect(paths).not.toContain('lib/package.json');
    write(dir, first);
    expect(planInit(skiff, readApp(dir), { update: false, force: false }).changes).toEqual([]);
    expect(planInit(skiff, readApp(dir), { update: true, force: false }).changes).toEqual([]);
    expect(readFileSync(join(dir, '.gitignore'), 'utf8')).toContain('/env/*.secrets.env\n/backups/\n');
    expect(defaultAppDir(dir)).toBe('.');
    expect(readInitManifest(dir)?.files['scripts/deploy-vps.ts']).toMatch(/^[0-9a-f]{64}$/);
  });

  it('reads the file the start script names (express-generator: node ./bin/www) for the port variable', () => {
    const dir = app({ 'package.json': '{"name":"shop","scripts":{"start":"node ./bin/www"}}', 'bin/www': "var port = normalizePort(process.env.PORT || '3000');" });
    const plan = planInit(skiff, readApp(dir), { update: false, force: false });
    expect(plan.detected).toMatchObject({ start: 'node ./bin/www', portVar: 'PORT', healthPath: '/' });
  });

  it("a Dockerfile app gets .dockerignore lines for skiff's files, once", () => {
    const dir = app({ 'package.json': pkg, Dockerfile: 'FROM x\nCOPY . .\n', '.dockerignore': 'node_modules', 'lib/cli/mine.ts': '' });
    const plan = planInit(skiff, readApp(dir), { update: false, force: false });
    const text = plan.changes.find((c) => c.path === '.dockerignore')?.content?.toString() ?? '';
    expect(text.startsWith("node_modules\n# skiff: its own files stay out of the image\n/.skiff/\n/env/\n/backups/\n")).toBe(true);
    expect(text).toContain('\n/scripts/deploy-vps.ts\n');
    expect(text).toContain('\n/lib/ship/\n');
    expect(text).toContain('\n/lib/cli/cli.ts\n');
    expect(text).not.toContain('/lib/cli/\n');
    write(dir, plan);
    expect(planInit(skiff, readApp(dir), { update: false, force: false }).changes).toEqual([]);
  });

  it("an app with its own tsconfig.json gets tsconfig.skiff.json; a CommonJS one, markers and Taskfile.mts", () => {
    const dir = app({ 'package.json': '{"name":"a","scripts":{}}', 'tsconfig.json': '{}' });
    const plan = planInit(skiff, readApp(dir), { update: false, force: false });
    expect(plan.tsconfig).toBe('tsconfig.skiff.json');
    expect(plan.taskfile).toBe('Taskfile.mts');
    expect(plan.changes.map((c) => c.path)).toEqual(expect.arrayContaining(['scripts/package.json', 'lib/package.json', 'Taskfile.mts', 'tsconfig.skiff.json']));
    expect(plan.changes.find((c) => c.path === 'tsconfig.json')).toBeUndefined();
  });

  it('refuses when a file it would write is the app\'s own, or CommonJS files would change meaning', () => {
    expect(() => planInit(skiff, readApp(app({ 'package.json': pkg, 'scripts/deploy-vps.ts': '// mine' })), { update: false, force: false })).toThrow(
      new InitRefusal('scripts/deploy-vps.ts already exists and was not made by skiff init: move it away (or delete it), then run init again'),
    );
    expect(() => planInit(skiff, readApp(app({ 'package.json': '{}', 'scripts/seed.js': '' })), { update: false, force: false })).toThrow(/scripts\/seed.js would turn into ES modules: rename them .cjs/);
    expect(() => readApp(app({ 'package.json': '{ "name": ' }))).toThrow(/package.json: package.json is not valid JSON .*: fix it/);
  });

  it('--update: a newer skiff changes a file the user left alone; a file the user edited is kept unless --force', () => {
    const dir = app({ 'package.json': pkg });
    write(dir, planInit(skiff, readApp(dir), { update: false, force: false }));
    const newer = { ...skiff, version: '9.9.9', sources: skiff.sources.map((s) => (s.path === 'scripts/status.ts' || s.path === 'scripts/logs.ts' ? { ...s, content: Buffer.concat([s.content, Buffer.from('// newer\n')]) } : s)) };
    writeFileSync(join(dir, 'scripts/logs.ts'), '// edited by the user\n');
    const init = planInit(newer, readApp(dir), { update: false, force: false });
    expect(init.changes).toEqual([]);
    expect(init.kept).toEqual(expect.arrayContaining(['scripts/logs.ts: edited since init: kept (init --update shows the change)']));
    const update = planInit(newer, readApp(dir), { update: true, force: false });
    expect(update.changes.filter(isApplied).map((c) => `${c.action} ${c.path}`)).toEqual(['change scripts/status.ts', `change ${INIT_MANIFEST}`]);
    expect(update.kept).toContain('scripts/logs.ts: edited since init: kept (its diff is above; --update --force replaces it)');
    write(dir, update);
    expect(readFileSync(join(dir, 'scripts/logs.ts'), 'utf8')).toBe('// edited by the user\n');
    const forced = planInit(newer, readApp(dir), { update: true, force: true });
    expect(forced.changes.filter(isApplied).map((c) => `${c.action} ${c.path}`)).toEqual(['change scripts/logs.ts', `change ${INIT_MANIFEST}`]);
  });

  it("the release rules of an env: skiff's record inside the app, or a skiff checkout in a folder of the app, never ship", async () => {
    const dir = app({ 'package.json': pkg, 'server.js': '', 'deploy/scripts/deploy-vps.ts': '', 'deploy/package.json': '{}' });
    // releaseRules reads only these two fields of the config.
    const cfgOf = (root: string, releaseDir: string) => ({ root, app: { name: 'shop', dir: releaseDir, releaseDir } }) as unknown as Config;
    const beside = await walkRelease(dir, await releaseRules(cfgOf(join(dir, 'deploy'), dir), { SKIFF_ENV_DIR: join(dir, 'deploy/env') }));
    expect(beside.leftOut).toEqual([{ path: 'deploy/', reason: 'never ships: skiff itself' }]);
    write(dir, planInit(skiff, readApp(dir), { update: false, force: false }));
    const inside = await walkRelease(dir, await releaseRules(cfgOf(dir, dir), { SKIFF_ENV_DIR: join(dir, 'env') }));
    expect(inside.manifest.entries.filter((e) => e.type === 'file').map((e) => e.path).sort()).toEqual(['.gitignore', 'deploy/package.json', 'deploy/scripts/deploy-vps.ts', 'package.json', 'server.js']);
    expect(inside.leftOut.map((l) => l.path)).toEqual(expect.arrayContaining(['.skiff/', 'env/', 'lib/', 'scripts/', 'Taskfile.ts', 'tsconfig.json']));
  });

  it('what init copied never ships; the app\'s own files beside them do', async () => {
    const dir = app({ 'package.json': pkg, 'server.js': '', 'lib/db.js': '', 'scripts/seed.js': '' });
    write(dir, planInit(skiff, readApp(dir), { update: false, force: false }));
    const own = skiffOwnPaths(dir);
    expect(own).toEqual(expect.arrayContaining(['.skiff', 'Taskfile.ts', 'lib/cli', 'lib/ship', 'scripts/deploy-vps.ts', 'tsconfig.json']));
    expect(own).not.toContain('lib');
    expect(own).not.toContain('scripts');
    const walk = await walkRelease(dir, shipRules(undefined, [...own.map((path) => ({ path, what: "skiff's own" })), { path: 'env', what: 'env' }]));
    expect(walk.manifest.entries.filter((e) => e.type === 'file').map((e) => e.path).sort()).toEqual(['.gitignore', 'lib/db.js', 'package.json', 'scripts/seed.js', 'server.js']);
  });
});
