/** The env files shipped in the repo: every example validates, and env/local.env loads as is. */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, validateFile } from '../../lib/config/config.ts';
import { isSecretSetting } from '../../lib/config/env-files.ts';
import { REPO_ROOT } from '../../lib/core/paths.ts';

const ENV_DIR = join(REPO_ROOT, 'env');
const examples = readdirSync(ENV_DIR)
  .filter((f) => f.endsWith('.env.example') && !f.endsWith('.secrets.env.example'))
  .sort();

describe('env files in the repo', () => {
  const home = mkdtempSync(join(tmpdir(), 'skiff-home-'));
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  it('has examples to check', () => {
    expect(examples.length).toBeGreaterThan(0);
  });

  it.each(examples)('env/%s validates', (file) => {
    const cfg = validateFile(join(ENV_DIR, file), { HOME: home });
    expect(cfg.app.name).toMatch(/^[a-z0-9-]+$/);
    expect(cfg.path.startsWith('/')).toBe(true);
  });

  it('env/local.env loads with HOME set to a temp folder', () => {
    const cfg = loadConfig('local', { HOME: home });
    expect(cfg.env).toBe('local');
    expect(cfg.hosts).toEqual([{ kind: 'local' }]);
    expect(cfg.path.startsWith(`${home}/`)).toBe(true);
    expect(cfg.app.dir).toBe(join(REPO_ROOT, 'example'));
    // HOME is not an app key: only keys named in the files reach the app.
    expect(cfg.appEnv).not.toHaveProperty('HOME');
  });
});

describe('which settings are secret by their name', () => {
  it.each<[string, boolean]>([
    ['BACKUP_SIGNING_KEY', true],
    ['BACKUP_POSTGRES_URL', true],
    ['BACKUP_SECRET_TOKEN', true],
    ['DEPLOY_SSH_KEY', false],
    ['DEPLOY_KNOWN_HOSTS', false],
    ['APP_NAME', false],
    ['PRIVATE_NETWORK', false],
    ['GITHUB_TOKEN', true],
    ['STRIPE_KEY', true],
    ['CACHE_KEYSPACE', false],
  ])('%s: %s', (key, secret) => expect(isSecretSetting(key, 'plain-value')).toBe(secret));
});
