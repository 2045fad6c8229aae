/** Opens a Host for each target of DEPLOY_HOSTS. */
import type { Config, Target } from '../config/config.ts';
import type { Host } from './host.ts';
import { LocalHost } from './local.ts';

export const targetName = (t: Target): string => (t.kind === 'local' ? 'local' : `${t.user}@${t.host}:${t.port}`);

/** Connects to one target: this machine, or a server over SSH (ssh2 is loaded only then). */
export const connect = async (t: Target, cfg: Config): Promise<Host> => {
  if (t.kind === 'local') return new LocalHost();
  const { connectSsh } = await import('./ssh.ts');
  return connectSsh(t, {
    ...(cfg.sshKey ? { keyFile: cfg.sshKey } : {}),
    ...(cfg.knownHosts ? { knownHostsFile: cfg.knownHosts } : {}),
  });
};
