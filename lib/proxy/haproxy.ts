/**
 * The HAProxy driver. skiff owns `<confDir>/skiff-<app>-<env>.cfg`: the env's backend, with both
 * slots as servers, `blue` and `green`, the idle one `disabled`; the frontend is shared by every env
 * on the URL's address and port, which routes by host and path prefix through a map
 * (lib/proxy/haproxy-front.ts). A switch changes the two servers' states through the runtime API
 * (no reload), so no client connection is closed: requests in flight finish on the old server, the
 * next request on any connection goes to the new one. Then the file is rewritten to match, so a
 * restart or a reload of HAProxy keeps the live server. HAProxy is reloaded only when a file changes
 * shape: a new route (the first deploy), changed settings (ports, URL, TLS, headers, compression,
 * log), or an env's file of the previous layout (a frontend of its own) moving to the shared one.
 */
import { reads, script } from '../core/cmd.ts';
import {
  API_SECONDS,
  filesBindingPort,
  folderState,
  haproxyApi,
  haproxyCheck,
  haproxyProcess,
  linkFile,
  makeFolder,
  readLink,
  removeFiles,
  setServerState,
  showServersState,
  socketState,
  userCommand,
} from '../commands/haproxy.ts';
import { portStatus } from '../commands/supervisor.ts';
import type { Config } from '../config/config.ts';
import type { Clock } from '../core/clock.ts';
import { EXIT, SkiffError } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import type { Proxy } from './proxy.ts';
import { publicHost, publicPrefix, routeId } from './route.ts';
import { haproxyMaintenanceMap, haproxyMaintenanceProblem, haproxyMaintenanceRules, parseMapEntries } from './maintenance-page.ts';
import {
  boundPorts,
  certLinkIn,
  frontConfig,
  frontOf,
  hasOwnFrontend,
  otherRoutes,
  parseRouteMap,
  readRouteRecord,
  routeKeys,
  routeOwner,
  routeRecordLine,
  withoutRoutes,
  withRoute,
} from './haproxy-front.ts';

export { boundPorts, JSON_LOG_FORMAT } from './haproxy-front.ts';
import { ensureFile } from '../commands/maintenance.ts';

/** How long a reload may take until the runtime API shows the new config. */
export const RELOAD_WAIT_MS = 20_000;
/** Where Debian's HAProxy reads its main config: what `-c` checks when the running command line cannot be read. */
export const DEFAULT_MAIN_CONFIG = '/etc/haproxy/haproxy.cfg';

const SLOTS = ['blue', 'green'] as const;
type Slot = (typeof SLOTS)[number];

/** One server of a backend, as `show servers state` lists it. */
export interface ServerState {
  readonly name: string;
  readonly addr: string;
  readonly port: number;
  /** srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping. */
  readonly op: number;
  /** srv_admin_state: a mask of MAINT and DRAIN flags (0x04, "disabled in the config", alone takes traffic). */
  readonly admin: number;
}

/** FMAINT, IMAINT, FDRAIN, IDRAIN, RMAINT: a server with any of these gets no new requests. */
const NO_TRAFFIC = 0x01 | 0x02 | 0x08 | 0x10 | 0x20;

/**
 * The servers of `show servers state <backend>`; undefined when HAProxy has no such backend (or the
 * answer is not that listing). Columns are found by the header line's names.
 */
export const parseServersState = (answer: string): ServerState[] | undefined => {
  const lines = answer.split('\n');
  const at = lines.findIndex((l) => l.startsWith('# be_id '));
  if (at === -1) return undefined;
  const columns = (lines[at] as string).slice(2).trim().split(/\s+/);
  const col = (row: string[], name: string) => row[columns.indexOf(name)] ?? '';
  const servers: ServerState[] = [];
  for (const line of lines.slice(at + 1)) {
    if (line.trim() === '' || line.startsWith('#')) break;
    const row = line.trim().split(/\s+/);
    servers.push({
      name: col(row, 'srv_name'),
      addr: col(row, 'srv_addr'),
      port: Number(col(row, 'srv_port')),
      op: Number(col(row, 'srv_op_state')),
      admin: Number(col(row, 'srv_admin_state')),
    });
  }
  return servers;
};

/** The servers that get new requests: up (running or starting) and neither in maintenance nor draining. */
export const serving = (servers: readonly ServerState[]): ServerState[] =>
  servers.filter((s) => (s.op === 1 || s.op === 2) && (s.admin & NO_TRAFFIC) === 0);

/** The port of the server the file leaves enabled (the one without `disabled`). */
export const livePortInFile = (text: string): number | undefined => {
  const ports = [...text.matchAll(/^\s*server \S+ 127\.0\.0\.1:(\d+)\s*$/gm)].map((m) => Number(m[1]));
  return ports.length === 1 ? ports[0] : undefined;
};

/** The file without which server is disabled: two files of one shape differ only in the live slot. */
export const shapeOf = (text: string): string => text.replace(/^(\s*server \S+ \S+) disabled$/gm, '$1');

/** The HAProxy `Pid:` in a `show info` answer. */
export const pidIn = (answer: string): number | undefined => {
  const m = /^Pid: (\d+)$/m.exec(answer);
  return m ? Number(m[1]) : undefined;
};

/** What the running HAProxy loads, from its command line: its `-f` files and folders (absolute) and `-C`. */
export interface Loaded {
  readonly pid: number | undefined;
  /** undefined when the command line could not be read. */
  readonly files: readonly string[] | undefined;
  readonly chdir: string | undefined;
}

const absolute = (path: string, base: string | undefined): string | undefined =>
  path.startsWith('/') ? path : base === undefined ? undefined : `${base.replace(/\/+$/, '')}/${path}`;

/**
 * Reads the answer of `haproxyProcess`: `-f X` (and every word after `--`) are what HAProxy loads,
 * relative to `-C` or its working folder. A relative path that cannot be made absolute makes the
 * list unknown: it is not compared, and not checked with a wrong path.
 */
export const parseLoaded = (answer: string): Loaded => {
  const lines = answer.split('\n');
  const value = (key: string) => lines.find((l) => l.startsWith(`${key} `))?.slice(key.length + 1);
  const pidText = value('pid');
  const pid = pidText && /^\d+$/.test(pidText) ? Number(pidText) : undefined;
  const args = lines.filter((l) => l.startsWith('arg ')).map((l) => l.slice(4));
  if (args.length === 0) return { pid, files: undefined, chdir: undefined };
  const cwd = value('cwd');
  const raw: string[] = [];
  let chdirRaw: string | undefined;
  for (let i = 1; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--') {
      raw.push(...args.slice(i + 1));
      break;
    }
    if ((a === '-f' || a === '-C') && i + 1 < args.length) {
      if (a === '-f') raw.push(args[i + 1] as string);
      else chdirRaw = args[i + 1] as string;
      i++;
    }
  }
  const chdir = chdirRaw === undefined ? undefined : absolute(chdirRaw, cwd);
  const base = chdir ?? cwd;
  const files = raw.map((f) => absolute(f, base));
  if (files.some((f) => f === undefined) || (chdirRaw !== undefined && chdir === undefined)) return { pid, files: undefined, chdir: undefined };
  return { pid, files: files as string[], chdir };
};

/** Whether `files` (from the command line) load `confDir`, or skiff's file in it by name. */
export const loadsFolder = (files: readonly string[], confDir: string, own: string): boolean => {
  const clean = (p: string) => p.replace(/\/+$/, '').replace(/\/\.\//g, '/');
  return files.some((f) => clean(f) === clean(confDir) || clean(f) === clean(own));
};

/** The most useful line of `haproxy -c` output: the last alert other than the closing "Fatal errors". */
export const checkProblem = (output: string): string => {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  const alerts = lines.filter((l) => l.includes('[ALERT]') && !/Fatal errors found in configuration/.test(l));
  const line = alerts.at(-1) ?? lines.at(-1) ?? 'haproxy -c failed';
  return line.replace(/^\[ALERT\]\s*\(\d+\)\s*:\s*/, '');
};

const HEADERS = {
  hsts: ['Strict-Transport-Security', '"max-age=31536000"'],
  nosniff: ['X-Content-Type-Options', 'nosniff'],
  frame: ['X-Frame-Options', 'SAMEORIGIN'],
  referrer: ['Referrer-Policy', 'strict-origin-when-cross-origin'],
} as const;

const COMPRESSED_TYPES = 'text/html text/plain text/css text/javascript application/javascript application/json application/xml image/svg+xml';

/**
 * Where the previous layout linked the env's certificate (one frontend per env): removed once the
 * env's route is in the shared frontend, whose folder holds the link now (haproxy-front.ts).
 */
export const certLink = (cfg: Config): string => `${cfg.haproxy.confDir}/${routeId(cfg)}.pem`;

/**
 * skiff's HAProxy file for an app and env, with `live` the enabled server: the env's backend, with
 * what is the env's own (maintenance page, headers, compression, whether its requests are logged).
 * The frontend is shared by the envs of its address and port (lib/proxy/haproxy-front.ts).
 */
export const haproxyConfig = (cfg: Config, live: Slot): string => {
  const name = routeId(cfg);
  const front = frontOf(cfg);
  const lines = [
    `# Written by skiff for ${cfg.app.name} ${cfg.env}; rewritten at every switch (edits here do not last).`,
    routeRecordLine(cfg),
    `# Its route is in ${front.map}, served by the frontend of ${front.file}. The live slot is the server`,
    '# without `disabled`: a switch changes the servers\' states through the runtime API, with no reload,',
    '# then writes this file to match, so a restart keeps the live server.',
    `backend ${name}`,
    '    mode http',
    // Idle connections to a server close within half a second (HAProxy's default is 5 s and more): the
    // old slot's connections are gone soon after its last request, so the drain before its stop ends
    // then rather than after its 2 s at most. Measured on one kept-alive client: 4,900 requests/s, 5,050 with 5 s.
    '    default-server pool-purge-delay 200ms',
    ...(cfg.http.accessLog === 'json' ? [] : ['    http-request set-log-level silent']),
    ...haproxyMaintenanceRules(cfg),
    ...cfg.http.headers
      .filter((h) => h !== 'hsts' || front.https)
      .map((h) => `    http-response set-header ${HEADERS[h][0]} ${HEADERS[h][1]}`),
    ...(cfg.http.compression.includes('gzip') ? ['    compression algo gzip', `    compression type ${COMPRESSED_TYPES}`] : []),
    ...SLOTS.map((slot, i) => `    server ${slot} 127.0.0.1:${cfg.ports[i]}${slot === live ? '' : ' disabled'}`),
    '',
  ];
  return lines.join('\n');
};

const lastLine = (text: string): string => text.trim().split('\n').at(-1) ?? '';

/** A file skiff writes at a reload: what it was (undefined: not there) and what it becomes (undefined: removed). */
interface Change {
  readonly path: string;
  readonly old: string | undefined;
  readonly want: string | undefined;
}

/** What a switch needs: a reload (and which files change), or only server states. */
interface Plan {
  readonly reload: boolean;
  /** HAProxy has the env's backend already. */
  readonly loadedBefore: boolean;
  /** The env's file has a frontend of its own (an earlier version): this reload moves it to the shared one. */
  readonly migrates: boolean;
  readonly oldEnv: string | undefined;
  readonly oldFront: string | undefined;
  readonly oldMap: string;
  /** The files to write, but the env's own (written with the slot at the switch): the map first, the frontend after. */
  readonly changes: readonly Change[];
}

export const haproxyProxy = (cfg: Config, clock: Clock): Proxy => {
  const backend = routeId(cfg);
  const file = `${cfg.haproxy.confDir}/${backend}.cfg`;
  const front = frontOf(cfg);
  const keys = routeKeys(cfg);
  const socket = cfg.haproxy.socket;
  const apiTimeoutMs = (2 * API_SECONDS + 15) * 1000;

  const slotOf = (port: number): Slot => {
    const i = cfg.ports.indexOf(port);
    if (i !== 0 && i !== 1) throw new SkiffError(`port ${port} is neither slot port of DEPLOY_PORTS (${cfg.ports.join(', ')})`);
    return SLOTS[i] as Slot;
  };

  /** One line of runtime API commands; their answer. Throws when the API does not answer. */
  const api = async (host: Host, commands: readonly string[]): Promise<string> => {
    const r = await host.exec(haproxyApi(socket, commands), { check: false, timeoutMs: apiTimeoutMs });
    if (r.code !== 0) {
      throw new SkiffError(`${host.name}: HAProxy's runtime API at ${socket} does not answer: start HAProxy, or fix DEPLOY_HAPROXY_SOCKET (${lastLine(r.stderr)})`);
    }
    return r.stdout;
  };

  const loaded = async (host: Host): Promise<Loaded> => parseLoaded((await host.exec(haproxyProcess(socket), { timeoutMs: apiTimeoutMs })).stdout);

  /** Whether the running backend has both slots on the configured ports. */
  const matchesPorts = (servers: readonly ServerState[]): boolean =>
    SLOTS.every((slot, i) => servers.some((s) => s.name === slot && s.addr === '127.0.0.1' && s.port === cfg.ports[i]));

  /** Whether the running HAProxy routes the env's keys to its backend (an answer of `show map <front map>`). */
  const routed = (answer: string): boolean => {
    const entries = parseMapEntries(answer);
    return keys.every((k) => entries.get(k) === backend);
  };

  const read = async (host: Host, path: string) => (await host.get(path))?.toString();

  /** A switch needs a reload when HAProxy lacks skiff's backend or route, or a file changes shape. */
  const plan = async (host: Host): Promise<Plan> => {
    const servers = parseServersState(await api(host, [showServersState(backend)]));
    const runningRoute = routed(await api(host, [`show map ${front.map}`]));
    const oldEnv = await read(host, file);
    const oldFront = await read(host, front.file);
    const mapFile = await read(host, front.map);
    // Lines of an env whose file is gone (removed by hand) route to nothing: they are dropped, not a conflict.
    const stale: string[] = [];
    for (const other of otherRoutes(mapFile ?? '', backend)) {
      if (/^skiff-[a-z0-9-]+$/.test(other) && (await read(host, `${cfg.haproxy.confDir}/${other}.cfg`)) === undefined) stale.push(other);
    }
    const oldMap = withoutRoutes(mapFile ?? '', stale);
    const changes: Change[] = [{ path: front.map, old: mapFile, want: withRoute(oldMap, backend, keys) }];
    changes.push({ path: front.file, old: oldFront, want: frontConfig(front) });
    // An env whose URL moved to another address or port takes its route out of the frontend it left
    // (and that frontend's files when no route is left there).
    const was = oldEnv === undefined ? undefined : readRouteRecord(oldEnv);
    if (was && was.front !== front.name) {
      const leftMap = `${cfg.haproxy.confDir}/${was.front}.map`;
      const leftFile = `${cfg.haproxy.confDir}/${was.front}.cfg`;
      const old = await read(host, leftMap);
      if (old !== undefined) {
        const left = withRoute(old, backend, []);
        changes.push({ path: leftMap, old, want: left === '' ? undefined : left });
        if (left === '') changes.push({ path: leftFile, old: await read(host, leftFile), want: undefined });
      }
    }
    const sameEnv = oldEnv !== undefined && shapeOf(oldEnv) === shapeOf(haproxyConfig(cfg, 'blue'));
    const filesChange = changes.some((c) => c.old !== c.want);
    return {
      reload: servers === undefined || !matchesPorts(servers) || !sameEnv || filesChange || !runningRoute,
      loadedBefore: servers !== undefined,
      migrates: oldEnv !== undefined && hasOwnFrontend(oldEnv),
      oldEnv,
      oldFront,
      oldMap,
      changes,
    };
  };

  const configCheck = async (host: Host, files: readonly string[], chdir: string | undefined): Promise<string | undefined> => {
    const r = await host.exec(haproxyCheck(cfg.haproxy.cmd, files, chdir), { check: false, timeoutMs: 60_000 });
    return r.code === 0 ? undefined : checkProblem(r.stdout);
  };

  /** Puts every changed file back as it was, the env's own last (it is the first written). */
  const restore = async (host: Host, changes: readonly Change[]): Promise<void> => {
    for (const c of [...changes].reverse()) {
      if (c.old !== undefined) await host.put(c.path, c.old);
      else await host.exec(script('rm -f "$1"', c.path));
    }
  };

  /** Why another env's route, frontend or certificate keeps this env from its route; undefined when nothing does. */
  const conflict = async (host: Host, p: Plan): Promise<string | undefined> => {
    const owner = routeOwner(p.oldMap, backend, keys);
    const prefix = publicPrefix(cfg);
    const where = `${publicHost(cfg)}:${front.port}`;
    if (owner) return `${prefix === '' ? 'the root' : `the path prefix ${prefix}`} of ${where} is served by skiff's route ${owner} already: give DEPLOY_PUBLIC_URL another path, or deploy to another host name`;
    const others = otherRoutes(p.oldMap, backend);
    if (others.length === 0) return undefined;
    if (p.oldFront !== undefined && / ssl crt /.test(p.oldFront) !== front.https) {
      return `the TLS settings for ${where} differ from those of ${others.join(', ')} on it (${front.https ? 'http' : 'https'} on ${front.binds[0]}, ${front.file}): the envs of one address and port share the URL's scheme`;
    }
    if (front.https) {
      const onHost = parseRouteMap(p.oldMap).filter(([k, b]) => b !== backend && (k.startsWith(`${keys[0]?.split('/')[0]}/`) || k.startsWith(`${keys[1]?.split('/')[0]}/`)));
      const link = certLinkIn(front, cfg);
      const target = (await host.exec(readLink(link))).stdout.trim();
      const keyTarget = (await host.exec(readLink(`${link}.key`))).stdout.trim();
      if (onHost.length > 0 && ((target !== '' && target !== cfg.tls.cert) || (keyTarget !== '' && keyTarget !== cfg.tls.key))) {
        return `the TLS settings for ${where} differ from those of ${[...new Set(onHost.map(([, b]) => b))].join(', ')} on it (${target}, ${keyTarget}): envs on one host must agree on DEPLOY_TLS_CERT and DEPLOY_TLS_KEY`;
      }
    }
    return undefined;
  };

  /** Writes the files, checks them, reloads HAProxy and waits until the runtime API shows `slot` live and the route. */
  const reloadWith = async (host: Host, slot: Slot, p: Plan): Promise<void> => {
    const port = cfg.ports[SLOTS.indexOf(slot)] as number;
    const before = await loaded(host);
    const changes: Change[] = [{ path: file, old: p.oldEnv, want: haproxyConfig(cfg, slot) }, ...p.changes];
    if (front.https && cfg.tls.cert !== undefined && cfg.tls.key !== undefined) {
      // The key first: HAProxy reads `<crt>.key` when it loads `<crt>`.
      await host.exec(makeFolder(front.certDir));
      await host.exec(linkFile(cfg.tls.key, `${certLinkIn(front, cfg)}.key`));
      await host.exec(linkFile(cfg.tls.cert, certLinkIn(front, cfg)));
    }
    // The maintenance rule's map must exist when HAProxy loads the file (empty: maintenance off).
    if (haproxyMaintenanceRules(cfg).length > 0) await host.exec(ensureFile(haproxyMaintenanceMap(cfg)));
    // The map before the frontend that reads it; the env's backend before the map names it.
    for (const c of changes) {
      if (c.want === c.old) continue;
      if (c.want !== undefined) await host.put(c.path, c.want);
      else await host.exec(script('rm -f "$1"', c.path));
    }
    const problem = await configCheck(host, before.files ?? [DEFAULT_MAIN_CONFIG, cfg.haproxy.confDir], before.chdir);
    if (problem) {
      await restore(host, changes);
      throw new SkiffError(`${host.name}: HAProxy's config check fails with skiff's ${file}: ${problem}; the old config is in place`);
    }
    const reload = await host.exec(userCommand(cfg.haproxy.reload), { check: false, timeoutMs: 60_000 });
    if (reload.code !== 0) {
      await restore(host, changes);
      throw new SkiffError(`${host.name}: \`${cfg.haproxy.reload}\` failed (exit ${reload.code}): ${lastLine(reload.stdout)}; the old config is back in place`);
    }
    // A reload is asynchronous: wait until a new process answers with skiff's backend, `slot` live, and the route.
    const deadline = clock.now() + RELOAD_WAIT_MS;
    while (clock.now() < deadline) {
      const answer = await api(host, ['show info', showServersState(backend)]).catch(() => '');
      const pid = pidIn(answer);
      const servers = parseServersState(answer);
      const renewed = before.pid === undefined || (pid !== undefined && pid !== before.pid);
      if (renewed && servers && matchesPorts(servers) && serving(servers).map((s) => s.port).join() === String(port)) {
        if (routed(await api(host, [`show map ${front.map}`]).catch(() => ''))) {
          // The previous layout's certificate links, beside the env's file: the frontend's folder has them now.
          if (p.migrates) await host.exec(removeFiles([certLink(cfg), `${certLink(cfg)}.key`]));
          return;
        }
      }
      await clock.sleep(100);
    }
    await restore(host, changes);
    throw new SkiffError(
      `${host.name}: HAProxy did not show skiff's backend ${backend} within ${RELOAD_WAIT_MS / 1000}s of \`${cfg.haproxy.reload}\`: ` +
        `check that HAProxy loads ${cfg.haproxy.confDir} (-f) and what its log says; the old file is back in place`,
    );
  };

  return {
    kind: 'haproxy',
    async check(host) {
      const state = (await host.exec(socketState(socket))).stdout.trim();
      const refuse = (text: string) => new SkiffError(`${host.name}: ${text}`, EXIT.usage);
      if (state === 'no-socat') throw refuse('skiff drives HAProxy through socat, which this host lacks: apt-get install socat');
      if (state === 'missing' || state === 'not-a-socket') {
        throw refuse(
          `HAProxy's runtime API socket ${socket} is ${state === 'missing' ? 'missing' : 'not a socket'}: add \`stats socket ${socket} level admin\` to the global section of haproxy.cfg and restart HAProxy, or set DEPLOY_HAPROXY_SOCKET to the socket it has`,
        );
      }
      if (state === 'not-writable') {
        throw refuse(`HAProxy's runtime API socket ${socket} is not writable by this user: give it to the deploy user's group (\`stats socket ${socket} mode 660 group <group> level admin\`), or deploy as root`);
      }
      const level = (await api(host, ['show cli level'])).trim();
      if (level === 'operator' || level === 'user') {
        throw refuse(`HAProxy's runtime API socket ${socket} is at level ${level}: skiff changes server states, which needs \`level admin\` on its \`stats socket\` line`);
      }
      const dir = (await host.exec(folderState(cfg.haproxy.confDir))).stdout.trim();
      if (dir === 'missing' || dir === 'not-writable') {
        throw refuse(`${cfg.haproxy.confDir} (DEPLOY_HAPROXY_CONF_DIR) ${dir === 'missing' ? 'does not exist: create it' : 'is not writable by this user: give it to the deploy user'}, and have HAProxy load it (-f ${cfg.haproxy.confDir})`);
      }
      // The route map is named inside a sample expression, which takes no quoting.
      const pathProblem = haproxyMaintenanceProblem(cfg);
      if (pathProblem) throw refuse(pathProblem);
      const running = await loaded(host);
      if (running.files && !loadsFolder(running.files, cfg.haproxy.confDir, file)) {
        throw refuse(
          `HAProxy (pid ${running.pid}) does not load ${cfg.haproxy.confDir}: add \`-f ${cfg.haproxy.confDir}\` to its command line (Debian: EXTRAOPTS="-S /run/haproxy-master.sock -f ${cfg.haproxy.confDir}" in /etc/default/haproxy) and restart it`,
        );
      }
      const p = await plan(host);
      if (!p.reload) return;
      const taken = await conflict(host, p);
      if (taken) throw refuse(`${taken}; nothing was changed`);
      // Two frontends on one port would share its connections at random: the port is the shared frontend's alone.
      for (const port of boundPorts(cfg)) {
        const others = (await host.exec(filesBindingPort(cfg.haproxy.confDir, file, port))).stdout.trim().split('\n').filter((f) => f !== '' && f !== front.file);
        const other = others[0];
        if (port === 80 && other?.startsWith(`${cfg.haproxy.confDir}/skiff-front-`) && other.endsWith('-443.cfg')) {
          throw refuse(`port 80 of ${cfg.publicUrl} is bound by ${other}, which redirects it to https for its envs on port 443: give this env an https:// URL too, or another port; nothing was changed`);
        }
        if (port === 80 && front.port === 443 && other?.startsWith(`${cfg.haproxy.confDir}/skiff-front-`) && other.endsWith('-80.cfg')) {
          throw refuse(`port 80, which an https URL on 443 redirects, is bound by ${other} for http envs: give those envs https:// URLs first, or this env another port; nothing was changed`);
        }
        if (other?.startsWith(`${cfg.haproxy.confDir}/skiff-front-`)) {
          throw refuse(`port ${port} of ${cfg.publicUrl} is bound by ${other} already, for another address: the envs of one port share one address (give DEPLOY_PUBLIC_URL that address, or another port); nothing was changed`);
        }
        if (other) {
          throw refuse(
            `port ${port} of ${cfg.publicUrl} is bound by ${other}, an env's frontend of an earlier skiff version: deploy that env once (it moves to the frontend its address and port share), then this one; nothing was changed`,
          );
        }
        const ours = p.oldFront !== undefined || p.migrates;
        if (!ours && (await host.exec(portStatus(port))).stdout.trim() === 'in-use') {
          throw new SkiffError(`${host.name}: port ${port} of ${cfg.publicUrl} is in use already (another HAProxy frontend, or another program): free it, or give DEPLOY_PUBLIC_URL another port`);
        }
      }
      const problem = await configCheck(host, running.files ?? [DEFAULT_MAIN_CONFIG, cfg.haproxy.confDir], running.chdir);
      if (problem) throw new SkiffError(`${host.name}: HAProxy's config check fails before any change: ${problem}; fix the HAProxy config first`);
    },
    async switchRisk(host) {
      const p = await plan(host).catch(() => undefined);
      if (!p?.reload) return undefined;
      const why = p.migrates ? 'its frontend moves to the one its address and port share' : p.loadedBefore ? 'its settings changed' : 'the first deploy of this env';
      return (
        `${host.name}: HAProxy will be reloaded to load ${file} (${why}): ` +
        'idle kept-alive client connections of every frontend of this HAProxy are closed; switches after it change server states with no reload'
      );
    },
    async current(host) {
      const r = await host.exec(reads(haproxyApi(socket, [showServersState(backend)])), { check: false, timeoutMs: apiTimeoutMs });
      if (r.code === 0) {
        if (/Can't find backend/.test(r.stdout)) return undefined;
        const servers = parseServersState(r.stdout);
        if (servers) {
          const live = serving(servers);
          if (live.length === 0) return undefined;
          if (live.length === 1) return live[0]?.port;
          // Both serving: a switch stopped between its two commands; the file says which it meant.
        }
      }
      const text = (await host.get(file))?.toString();
      return text ? livePortInFile(text) : undefined;
    },
    async switchTo(host, port) {
      const slot = slotOf(port);
      const p = await plan(host);
      if (p.reload) {
        // The refusals of check, again: nothing of another env is ever overwritten.
        const taken = await conflict(host, p);
        if (taken) throw new SkiffError(`${host.name}: ${taken}; nothing was changed`, EXIT.usage);
        return reloadWith(host, slot, p);
      }
      const other = SLOTS.find((s) => s !== slot) as Slot;
      // The new server first: for an instant both take requests, never neither. `maint`, not
      // `drain`: a drained server still takes clients that a persistence cookie sends there.
      const answer = await api(host, [setServerState(backend, slot, 'ready'), setServerState(backend, other, 'maint')]);
      if (answer.trim() !== '') throw new SkiffError(`${host.name}: HAProxy refused to switch ${backend} to ${slot}: ${answer.trim().split('\n')[0]}`);
      const servers = parseServersState(await api(host, [showServersState(backend)])) ?? [];
      const live = serving(servers).map((s) => s.port);
      if (live.join() !== String(port)) {
        throw new SkiffError(`${host.name}: after the switch HAProxy's ${backend} sends new requests to ${live.length ? `port ${live.join(' and ')}` : 'no server'}, not ${port}`);
      }
      // The runtime state is what serves; the file follows so that a restart keeps it.
      await host.put(file, haproxyConfig(cfg, slot));
    },
  };
};
