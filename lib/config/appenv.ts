/** The app's environment file, `shared/.env`: one `KEY='value'` line per key. */
import { quote, Secret } from '../core/cmd.ts';

/**
 * Renders the app environment as single-quoted shell assignments. The supervisor sources this file,
 * and inside single quotes nothing is expanded, so `$()`, backticks, quotes and newlines arrive in
 * the app literally. Secrets are revealed here: the text is only ever written to a 0600 file.
 */
export const renderEnvFile = (appEnv: Readonly<Record<string, string | Secret>>): string =>
  Object.entries(appEnv)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${quote(v instanceof Secret ? v.reveal() : v)}\n`)
    .join('');
