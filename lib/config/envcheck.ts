/** env-check: validates every env file (and the examples) and reports every problem at once. */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { envDir, loadConfig, validateFile } from './config.ts';
import { SkiffError } from '../core/errors.ts';

export interface EnvCheck {
  readonly file: string;
  readonly problems: readonly string[];
}

/** Checks each env/<name>.env as an environment and each env/*.env.example on its own. */
export const checkEnvFiles = (processEnv: NodeJS.ProcessEnv = process.env): EnvCheck[] => {
  const dir = envDir(processEnv);
  const files = existsSync(dir) ? readdirSync(dir).sort() : [];
  const results: EnvCheck[] = [];
  for (const f of files) {
    const env = /^([a-z0-9-]+)\.env$/.exec(f)?.[1];
    const example = /^[a-z0-9-]+\.env\.example$/.test(f);
    if (!env && !example) continue;
    try {
      if (env) loadConfig(env, processEnv);
      else validateFile(join(dir, f), { HOME: processEnv.HOME });
      results.push({ file: `env/${f}`, problems: [] });
    } catch (error) {
      if (!(error instanceof SkiffError)) throw error;
      results.push({ file: `env/${f}`, problems: error.message.split('\n') });
    }
  }
  return results;
};
