/** Opens a Host for each target of DEPLOY_HOSTS. */
import type { Config, Target } from './config.ts';
import { SkiffError, EXIT } from './errors.ts';
import type { Host } from './host.ts';
import { LocalHost } from './local.ts';

export const targetName = (t: Target): string => (t.kind === 'local' ? 'local' : `${t.user}@${t.host}:${t.port}`);

/** Connects to one target. */
export const connect = async (t: Target): Promise<Host> => {
  if (t.kind === 'local') return new LocalHost();
  throw new SkiffError(
    `DEPLOY_HOSTS ${targetName(t)}: SSH hosts are not supported by this version of skiff yet; use DEPLOY_HOSTS=local`,
    EXIT.usage,
  );
};

/** Checks what this version of skiff can run before anything is touched. */
export const checkSupported = (cfg: Config): void => {
  if (cfg.runtime !== 'process') {
    throw new SkiffError(`DEPLOY_RUNTIME=${cfg.runtime} is not supported by this version of skiff yet; use DEPLOY_RUNTIME=process`, EXIT.usage);
  }
  if (cfg.supervisor !== 'pidfile') {
    throw new SkiffError(`DEPLOY_SUPERVISOR=${cfg.supervisor} is not supported by this version of skiff yet; use DEPLOY_SUPERVISOR=pidfile`, EXIT.usage);
  }
};
