/**
 * Runs once before the tests: makes sure the example app's dependencies are installed (its native
 * SQLite module compiles on first install), so end-to-end tests can copy a ready APP_DIR.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const example = fileURLToPath(new URL('../../example', import.meta.url));

export default function setup(): void {
  if (existsSync(join(example, 'package.json')) && !existsSync(join(example, 'node_modules', 'better-sqlite3'))) {
    execFileSync('npm', ['install', '--omit=dev', '--no-audit', '--no-fund'], { cwd: example, stdio: 'inherit' });
  }
}
