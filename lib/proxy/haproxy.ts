/**
 * The HAProxy driver. skiff owns `<confDir>/skiff-<app>-<env>.cfg`: a frontend on the public URL's
 * address and port, and a backend with both slots as servers, `blue` and `green`, the idle one
 * `disabled`. A switch changes the two servers' states through the runtime API (no reload), so no
 * client connection is closed: requests in flight finish on the old server, the next request on any
 * connection goes to the new one. Then the file is rewritten to match, so a restart or a reload of
 * HAProxy keeps the live server. HAProxy is reloaded only when the file itself changes shape: the
 * first deploy, or changed settings (ports, URL, TLS, headers, compression, log).
 */
import { isIP } from 'node:net';
import { script } from '../core/cmd.ts';
import {
  API_SECONDS,
  filesBindingPort,
  folderState,
  haproxyApi,
  haproxyCheck,
  haproxyProcess,
  linkFile,
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
import { publicHost, publicPort, routeId } from './route.ts';
import { haproxyMaintenanceMap, haproxyMaintenanceRules } from './maintenance-page.ts';
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
 * One JSON object a line. Request headers are gone when HAProxy logs, so Host and User-Agent are
 * captured (captures 0 and 1); the `json` converter escapes what a client sent.
 */
export const JSON_LOG_FORMAT =
  '{"time":%Ts.%ms,"client":"%ci","method":"%HM","uri":"%[capture.req.uri,json(utf8s)]","host":"%[capture.req.hdr(0),json(utf8s)]",' +
  '"status":%ST,"bytes":%B,"ms":%Ta,"backend":"%b","server":"%s","termination":"%ts","ua":"%[capture.req.hdr(1),json(utf8s)]"}';

/** The address a frontend binds: an IP literal as given, else every IPv4 address (a name may not resolve when HAProxy starts). */
const bindAddress = (host: string, port: number): string =>
  isIP(host) === 4 ? `${host}:${port}` : isIP(host) === 6 ? `[${host}]:${port}` : `:${port}`;

/** Whether the URL is https on 443: its frontend also binds port 80, to redirect. */
const redirectsFrom80 = (cfg: Config): boolean => cfg.publicUrl?.startsWith('https:') === true && publicPort(cfg) === 443;

/** The ports skiff's frontend binds. */
export const boundPorts = (cfg: Config): number[] => (redirectsFrom80(cfg) ? [publicPort(cfg), 80] : [publicPort(cfg)]);

/**
 * Where skiff links the certificate for HAProxy. HAProxy 2.6 takes no key file on a `bind` line: when
 * the PEM holds no key it loads `<crt>.key` (`ssl-load-extra-files`, on by default), so the key is
 * linked beside it under that name. Links, not copies: a renewed certificate is read at the next reload.
 */
export const certLink = (cfg: Config): string => `${cfg.haproxy.confDir}/${routeId(cfg)}.pem`;

/** skiff's HAProxy file for an app and env, with `live` the enabled server. */
export const haproxyConfig = (cfg: Config, live: Slot): string => {
  const name = routeId(cfg);
  const https = cfg.publicUrl?.startsWith('https:') === true;
  const host = publicHost(cfg);
  const address = bindAddress(host, publicPort(cfg));
  const lines = [
    `# Written by skiff for ${cfg.app.name} ${cfg.env}; rewritten at every switch (edits here do not last).`,
    '# The live slot is the server without `disabled`: a switch changes the servers\' states through the',
    '# runtime API, with no reload, then writes this file to match, so a restart keeps the live server.',
    `frontend ${name}-in`,
    '    mode http',
    https ? `    bind ${address} ssl crt ${certLink(cfg)} alpn h2,http/1.1` : `    bind ${address}`,
    ...(redirectsFrom80(cfg)
      ? [`    bind ${bindAddress(host, 80)}`, `    http-request redirect prefix ${new URL(cfg.publicUrl as string).origin} code 301 unless { ssl_fc }`]
      : []),
    '    option forwardfor',
    `    http-request set-header X-Forwarded-Proto ${https ? 'https' : 'http'}`,
    ...(cfg.http.accessLog === 'json'
      ? [
          '    http-request capture req.hdr(host) len 256',
          '    http-request capture req.hdr(user-agent) len 256',
          '    log global',
          `    log-format '${JSON_LOG_FORMAT}'`,
        ]
      : ['    no log']),
    ...haproxyMaintenanceRules(cfg),
    `    default_backend ${name}`,
    '',
    `backend ${name}`,
    '    mode http',
    // Idle connections to a server close within half a second (HAProxy's default is 5 s and more): the
    // old slot's connections are gone soon after its last request, so the drain before its stop ends
    // then rather than after its 2 s at most. Measured on one kept-alive client: 4,900 requests/s, 5,050 with 5 s.
    '    default-server pool-purge-delay 200ms',
    ...cfg.http.headers
      .filter((h) => h !== 'hsts' || https)
      .map((h) => `    http-response set-header ${HEADERS[h][0]} ${HEADERS[h][1]}`),
    ...(cfg.http.compression.includes('gzip') ? ['    compression algo gzip', `    compression type ${COMPRESSED_TYPES}`] : []),
    ...SLOTS.map((slot, i) => `    server ${slot} 127.0.0.1:${cfg.ports[i]}${slot === live ? '' : ' disabled'}`),
    '',
  ];
  return lines.join('\n');
};

const lastLine = (text: string): string => text.trim().split('\n').at(-1) ?? '';

export const haproxyProxy = (cfg: Config, clock: Clock): Proxy => {
  const backend = routeId(cfg);
  const file = `${cfg.haproxy.confDir}/${backend}.cfg`;
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

  /** A switch needs a reload when HAProxy lacks skiff's backend or the file changes shape. */
  const needsReload = async (host: Host) => {
    const servers = parseServersState(await api(host, [showServersState(backend)]));
    const old = (await host.get(file))?.toString();
    const sameFile = old !== undefined && shapeOf(old) === shapeOf(haproxyConfig(cfg, 'blue'));
    return { reload: servers === undefined || !matchesPorts(servers) || !sameFile, loadedBefore: servers !== undefined, old };
  };

  const configCheck = async (host: Host, files: readonly string[], chdir: string | undefined): Promise<string | undefined> => {
    const r = await host.exec(haproxyCheck(cfg.haproxy.cmd, files, chdir), { check: false, timeoutMs: 60_000 });
    return r.code === 0 ? undefined : checkProblem(r.stdout);
  };

  const restore = async (host: Host, content: string | undefined): Promise<void> => {
    if (content !== undefined) await host.put(file, content);
    else await host.exec(script('rm -f "$1"', file));
  };

  /** Writes the file, checks it, reloads HAProxy and waits until the runtime API shows `slot` live. */
  const reloadWith = async (host: Host, slot: Slot, old: string | undefined): Promise<void> => {
    const port = cfg.ports[SLOTS.indexOf(slot)] as number;
    const before = await loaded(host);
    if (cfg.publicUrl?.startsWith('https:') && cfg.tls.cert !== undefined && cfg.tls.key !== undefined) {
      await host.exec(linkFile(cfg.tls.cert, certLink(cfg)));
      await host.exec(linkFile(cfg.tls.key, `${certLink(cfg)}.key`));
    }
    // The maintenance rule's map must exist when HAProxy loads the file (empty: maintenance off).
    if (haproxyMaintenanceRules(cfg).length > 0) await host.exec(ensureFile(haproxyMaintenanceMap(cfg)));
    await host.put(file, haproxyConfig(cfg, slot));
    const problem = await configCheck(host, before.files ?? [DEFAULT_MAIN_CONFIG, cfg.haproxy.confDir], before.chdir);
    if (problem) {
      await restore(host, old);
      throw new SkiffError(`${host.name}: HAProxy's config check fails with skiff's ${file}: ${problem}; the old config is in place`);
    }
    const reload = await host.exec(userCommand(cfg.haproxy.reload), { check: false, timeoutMs: 60_000 });
    if (reload.code !== 0) {
      await restore(host, old);
      throw new SkiffError(`${host.name}: \`${cfg.haproxy.reload}\` failed (exit ${reload.code}): ${lastLine(reload.stdout)}; the old config is back in place`);
    }
    // A reload is asynchronous: wait until a new process answers with skiff's backend and `slot` live.
    const deadline = clock.now() + RELOAD_WAIT_MS;
    while (clock.now() < deadline) {
      const answer = await api(host, ['show info', showServersState(backend)]).catch(() => '');
      const pid = pidIn(answer);
      const servers = parseServersState(answer);
      const renewed = before.pid === undefined || (pid !== undefined && pid !== before.pid);
      if (renewed && servers && matchesPorts(servers) && serving(servers).map((s) => s.port).join() === String(port)) return;
      await clock.sleep(100);
    }
    await restore(host, old);
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
      const running = await loaded(host);
      if (running.files && !loadsFolder(running.files, cfg.haproxy.confDir, file)) {
        throw refuse(
          `HAProxy (pid ${running.pid}) does not load ${cfg.haproxy.confDir}: add \`-f ${cfg.haproxy.confDir}\` to its command line (Debian: EXTRAOPTS="-S /run/haproxy-master.sock -f ${cfg.haproxy.confDir}" in /etc/default/haproxy) and restart it`,
        );
      }
      const plan = await needsReload(host);
      if (!plan.reload) return;
      if (!plan.loadedBefore) {
        // Two frontends on one port would share its connections at random: one env per public port.
        for (const port of boundPorts(cfg)) {
          const other = (await host.exec(filesBindingPort(cfg.haproxy.confDir, file, port))).stdout.trim().split('\n')[0];
          if (other) throw refuse(`port ${port} of ${cfg.publicUrl} is bound by ${other} already: each env behind HAProxy needs a public port of its own (docs/haproxy.md)`);
          if ((await host.exec(portStatus(port))).stdout.trim() === 'in-use') {
            throw new SkiffError(`${host.name}: port ${port} of ${cfg.publicUrl} is in use already (another HAProxy frontend, or another program): free it, or give DEPLOY_PUBLIC_URL another port`);
          }
        }
      }
      const problem = await configCheck(host, running.files ?? [DEFAULT_MAIN_CONFIG, cfg.haproxy.confDir], running.chdir);
      if (problem) throw new SkiffError(`${host.name}: HAProxy's config check fails before any change: ${problem}; fix the HAProxy config first`);
    },
    async switchRisk(host) {
      const plan = await needsReload(host).catch(() => undefined);
      if (!plan?.reload) return undefined;
      return (
        `${host.name}: HAProxy will be reloaded to load ${file} (${plan.loadedBefore ? 'its settings changed' : 'the first deploy of this env'}): ` +
        'idle kept-alive client connections of every frontend of this HAProxy are closed; switches after it change server states with no reload'
      );
    },
    async current(host) {
      const r = await host.exec(haproxyApi(socket, [showServersState(backend)]), { check: false, timeoutMs: apiTimeoutMs });
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
      const plan = await needsReload(host);
      if (plan.reload) return reloadWith(host, slot, plan.old);
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
