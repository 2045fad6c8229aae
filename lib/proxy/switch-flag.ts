/**
 * The switch of the Caddy and nginx drivers: both slots are in the proxy's config, written and
 * loaded once (on the first deploy, or when a setting changes), and the proxy picks the slot for
 * each request by whether a flag file exists (Caddy: a `file` matcher; nginx: `if (-f ...)`), at the
 * cost of one `stat` per request. A switch creates the flag by rename or removes it: no reload, so
 * kept-alive connections, websockets and long requests are never cut by it (docs/proxies.md).
 */
import { FLAG, flagReach, readFlag, setFlag, workerUsers } from '../commands/switch-flag.ts';
import type { Config } from '../config/config.ts';
import { EXIT, SkiffError } from '../core/errors.ts';
import type { Host } from '../host/host.ts';

/** Where Caddy's flag folders go without DEPLOY_SWITCH_DIR: a folder of skiff's that setup makes for the SSH user. */
export const CADDY_SWITCH_ROOT = '/var/lib/skiff';

/**
 * The env's flag folder, its own whatever the settings (two envs sharing one would move each other):
 * `<app>-<env>` in DEPLOY_SWITCH_DIR, else beside the files skiff writes for nginx, else in /var/lib/skiff.
 */
export const flagDir = (cfg: Config): string => {
  const name = `${cfg.app.name}-${cfg.env}`;
  if (cfg.switchDir !== undefined) return `${cfg.switchDir === '/' ? '' : cfg.switchDir}/${name}`;
  return cfg.proxy === 'nginx' ? `${cfg.nginxConfDir}/${name}.slot` : `${CADDY_SWITCH_ROOT}/${name}`;
};

/** The flag file the proxy stats. */
export const flagFile = (cfg: Config): string => `${flagDir(cfg)}/${FLAG}`;

/**
 * The two slot ports the config routes to, first and second: DEPLOY_PORTS, or, for a port outside
 * it (a switch back to a slot of ports since changed), that port first and the other of DEPLOY_PORTS.
 */
export const slotPair = (cfg: Config, port: number): readonly [number, number] => {
  const [a = port, b = port] = cfg.ports;
  if (port === a || port === b) return [a, b];
  return [port, b];
};

/** What the flag is now: `second`, `first`, or `none` (no folder). */
export const flagNow = async (host: Host, dir: string): Promise<'second' | 'first' | 'none'> => {
  const said = (await host.exec(readFlag(dir))).stdout.trim();
  return said === 'second' ? 'second' : said === 'first' ? 'first' : 'none';
};

/** Makes the flag send requests to `port` of `pair`. */
export const flagTo = async (host: Host, dir: string, pair: readonly [number, number], port: number): Promise<void> => {
  await host.exec(setFlag(dir, port === pair[1] && port !== pair[0]));
};

/** Puts the flag back as `was` said (a folder left empty for `none`: harmless, and the next switch uses it). */
export const flagBack = async (host: Host, dir: string, was: 'second' | 'first' | 'none'): Promise<void> => {
  await host.exec(setFlag(dir, was === 'second'));
};

/**
 * Refuses (exit 2, nothing changed) a flag folder this user cannot write or make, or one the
 * proxy's users cannot reach: a proxy that cannot stat the flag fails every request (nginx: 500).
 */
export const checkFlagReach = async (host: Host, cfg: Config, proxy: 'caddy' | 'nginx', master = ''): Promise<void> => {
  const dir = flagDir(cfg);
  const users = (await host.exec(workerUsers(proxy, master))).stdout.split('\n').map((u) => u.trim()).filter(Boolean);
  const said = (await host.exec(flagReach(dir, users))).stdout.trim().split(' ');
  const how = cfg.switchDir === undefined ? ` (or set DEPLOY_SWITCH_DIR to a folder ${proxy} can search)` : '';
  if (said[0] === 'write') {
    throw new SkiffError(
      `${host.name}: cannot make the switch folder ${dir}: ${said[1] ?? ''} is not writable by the deploying user: run \`npx tsx scripts/setup.ts ${cfg.env}\`, which makes it for you${how}; nothing was changed`,
      EXIT.usage,
    );
  }
  if (said[0] === 'search') {
    throw new SkiffError(
      `${host.name}: ${proxy} runs as ${said[1] ?? '?'}, which cannot search ${said[2] ?? '?'} (mode ${said[3] ?? '?'}), so it could not see the switch flag in ${dir}: ` +
        `let it in (chmod o+x ${said[2] ?? ''})${cfg.switchDir === undefined ? ', or set DEPLOY_SWITCH_DIR to a folder it can search' : ', or choose another DEPLOY_SWITCH_DIR'}; nothing was changed`,
      EXIT.usage,
    );
  }
};
