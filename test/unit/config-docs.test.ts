/** docs/configuration.md and the KEYS table of lib/config/config.ts say the same: every key, every default. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KEYS } from '../../lib/config/config.ts';
import { REPO_ROOT } from '../../lib/core/paths.ts';

const docs = readFileSync(join(REPO_ROOT, 'docs/configuration.md'), 'utf8');
/** `| \`KEY\` | default | ...` rows of the keys table. */
const rows = new Map([...docs.matchAll(/^\| `([A-Z][A-Z0-9_]*)` \| ([^|]*) \|/gm)].map((m) => [m[1] as string, (m[2] as string).trim()]));
const isSkiffKey = (k: string) => k === 'APP_NAME' || k === 'APP_DIR' || k.startsWith('DEPLOY_') || k.startsWith('BACKUP_');
/** Defaults that are not a value of skiff's: what ssh reads when the key is unset. */
const OUTSIDE_KEYS: Readonly<Record<string, string>> = { DEPLOY_KNOWN_HOSTS: '`~/.ssh/known_hosts`' };
const defaultOf = (key: keyof typeof KEYS): string | undefined => {
  const spec = KEYS[key];
  return 'default' in spec ? spec.default : undefined;
};

describe('docs/configuration.md', () => {
  it.each(Object.keys(KEYS) as (keyof typeof KEYS)[])('documents %s with the default skiff uses', (key) => {
    const shown = rows.get(key);
    expect(shown, `${key} has no row in docs/configuration.md`).toBeDefined();
    const d = defaultOf(key);
    if (OUTSIDE_KEYS[key] !== undefined) expect(shown).toBe(OUTSIDE_KEYS[key]);
    else if (d === undefined) expect(shown, `${key} has no default in KEYS`).not.toMatch(/^`[^`]*`$/);
    else if (d === '') expect(shown).toMatch(/^empty\b/);
    else expect(shown).toBe(`\`${d}\``);
  });

  it('documents no skiff key that KEYS does not have', () => {
    expect([...rows.keys()].filter((k) => isSkiffKey(k) && !(k in KEYS))).toEqual([]);
  });
});
