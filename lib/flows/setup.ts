/**
 * `setup`: prepares a host for an environment. It reads what the host has in one command, works out
 * what is missing (a pure plan, `planSetup`), and makes only those changes, each idempotent, so a
 * second run changes nothing. `--dry-run` prints the plan; without `--install` missing packages are
 * listed and nothing is installed.
 */
import { connect as netConnect } from 'node:net';
import type { Config, Target } from '../config/config.ts';
import type { Cmd } from '../core/cmd.ts';
import {
  applySysctl,
  aptInstall,
  asRoot,
  CADDY_DROPIN,
  certbotObtain,
  CADDY_DROPIN_TEXT,
  daemonReload,
  enableDocker,
  enableLinger,
  hostFacts,
  makeDeployPath,
  makeFolder,
  makeSwitchDir,
  SYSCTL_FILE,
  SYSCTL_TEXT,
  tightenDeployPath,
  writeRootFile,
} from '../commands/setup.ts';
import { firstLine } from '../core/errors.ts';
import { ACME_WEBROOT } from '../proxy/nginx.ts';
import { publicHost } from '../proxy/route.ts';
import { flagDir } from '../proxy/switch-flag.ts';
import { DEADLINE, type Host } from '../host/host.ts';

/** Each command a host needs, and the Debian package that has it. */
const PACKAGE_OF: Readonly<Record<string, string>> = {
  sh: 'dash',
  tar: 'tar',
  setsid: 'util-linux',
  flock: 'util-linux',
  grep: 'grep',
  awk: 'mawk',
  curl: 'curl',
  sha256sum: 'coreutils',
  docker: 'docker.io',
  caddy: 'caddy',
  nginx: 'nginx',
  haproxy: 'haproxy',
  socat: 'socat',
  systemctl: 'systemd',
  sqlite3: 'sqlite3',
  pg_dump: 'postgresql-client',
  certbot: 'certbot',
};

/** The commands an environment needs on its hosts. */
export const toolsFor = (cfg: Config): string[] => [
  ...['sh', 'tar', 'setsid', 'flock', 'grep', 'awk', 'curl', 'sha256sum'],
  ...(cfg.runtime === 'docker' ? ['docker'] : []),
  ...(cfg.proxy === 'none' ? [] : [cfg.proxy]),
  // skiff speaks to HAProxy's runtime API socket through socat.
  ...(cfg.proxy === 'haproxy' ? ['socat'] : []),
  ...(cfg.tls.certbot ? ['certbot'] : []),
  ...(cfg.runtime === 'process' && cfg.supervisor === 'systemd' ? ['systemctl'] : []),
  ...(cfg.backup.sqlite.length > 0 ? ['sqlite3'] : []),
  ...(cfg.backup.postgresUrl ? ['pg_dump'] : []),
];

export type Facts = Readonly<Record<string, string>>;

/** Parses the `key=value` lines of `hostFacts`. */
export const parseFacts = (text: string): Facts => {
  const facts: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) facts[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return facts;
};

/** One line of setup's report, with the change that makes it true (if any). */
export interface Step {
  /** ok: in place; change: setup makes it; warn: setup cannot fix it, the user should know; fail: the host is not ready. */
  readonly kind: 'ok' | 'change' | 'warn' | 'fail';
  readonly text: string;
  /** The commands of a change, in order; `stdin` for the first that reads it. */
  readonly run?: readonly { readonly cmd: Cmd; readonly stdin?: string }[];
  /** A change that needs root, where the SSH user is not root and has no password-less sudo. */
  readonly needsRoot?: boolean;
  /** A change that may take minutes (a package install). */
  readonly long?: boolean;
}

export interface SetupOptions {
  readonly install: boolean;
}

/** What setup would do on a host with these facts. Pure. */
export const planSetup = (cfg: Config, facts: Facts, opts: SetupOptions): Step[] => {
  const steps: Step[] = [];
  const root = facts.uid === '0';
  const canRoot = facts.sudo === 'yes';
  const user = facts.user ?? '?';
  const rootly = (text: string, ...cmds: { cmd: Cmd; stdin?: string }[]): Step =>
    canRoot
      ? { kind: 'change', text, run: cmds.map((c) => ({ ...c, cmd: asRoot(c.cmd) })) }
      : { kind: 'fail', text: `${text}: needs root: give ${user} password-less sudo for setup, or have root do it on the host (docs/setup.md#without-root)`, needsRoot: true };

  // Tools: installed only when asked.
  const missing = (facts.missing ?? '').split(',').filter(Boolean);
  const packages = [...new Set(missing.map((c) => PACKAGE_OF[c] ?? c))];
  if (missing.length === 0) steps.push({ kind: 'ok', text: `tools: ${toolsFor(cfg).join(', ')} are there` });
  else if (!opts.install) steps.push({ kind: 'fail', text: `tools: ${missing.join(', ')} missing: run setup with --install to install ${packages.join(' ')} (Debian packages)` });
  else steps.push({ ...rootly(`tools: install ${packages.join(' ')} (for ${missing.join(', ')})`, { cmd: aptInstall(packages) }), long: true });

  // DEPLOY_PATH, owned by the SSH user.
  const [owner, mode = ''] = (facts.path ?? 'absent').split(' ');
  if (owner === 'absent') {
    const make = { cmd: makeDeployPath(cfg.path, user) };
    steps.push(facts.parent_writable === 'yes' ? { kind: 'change', text: `DEPLOY_PATH: create ${cfg.path} (owner ${user}, mode 750)`, run: [make] } : rootly(`DEPLOY_PATH: create ${cfg.path} (owner ${user}, mode 750)`, make));
  } else if (owner !== user) {
    steps.push({ kind: 'fail', text: `DEPLOY_PATH: ${cfg.path} belongs to ${owner}, not ${user}: choose another DEPLOY_PATH, or hand it over (chown -R ${user}: ${cfg.path}) if it is this app's` });
  } else if ((parseInt(mode, 8) & 0o022) !== 0) {
    steps.push({ kind: 'change', text: `DEPLOY_PATH: ${cfg.path} is writable by others (mode ${mode}): take that away (chmod go-w)`, run: [{ cmd: tightenDeployPath(cfg.path) }] });
  } else steps.push({ kind: 'ok', text: `DEPLOY_PATH: ${cfg.path} belongs to ${user} (mode ${mode})` });

  // The supervisor.
  if (cfg.runtime === 'process' && cfg.supervisor === 'systemd') {
    if (facts.systemd !== 'yes') steps.push({ kind: 'fail', text: 'supervisor: this host does not run systemd, so DEPLOY_SUPERVISOR=systemd cannot work: use DEPLOY_SUPERVISOR=pidfile' });
    else if (root) steps.push({ kind: 'ok', text: 'supervisor: systemd runs; units go to /etc/systemd/system' });
    else if (facts.linger === 'yes') steps.push({ kind: 'ok', text: `supervisor: ${user} has lingering, so its user units run without a login and start at boot` });
    else steps.push(rootly(`supervisor: enable lingering for ${user} (loginctl enable-linger), so its units start at boot`, { cmd: enableLinger(user) }));
  } else if (cfg.runtime === 'process') {
    steps.push({ kind: 'warn', text: `supervisor: pidfile does not restart a crashed app or start it after a reboot (run start then); DEPLOY_SUPERVISOR=systemd does` });
  }

  // Docker comes back at boot, and with it the containers.
  if (cfg.runtime === 'docker' && facts.systemd === 'yes') {
    if (facts.docker_boot === 'enabled') steps.push({ kind: 'ok', text: 'docker: the service starts at boot, and the containers with it' });
    else if (facts.docker_boot === 'not-found') steps.push({ kind: 'warn', text: 'docker: no docker.service here; make sure the Docker daemon starts at boot' });
    else steps.push(rootly(`docker: the service is ${facts.docker_boot ?? '?'} at boot: enable it, so the containers come back after a reboot`, { cmd: enableDocker() }));
  }

  // The proxy keeps skiff's routes across its restarts.
  if (cfg.proxy === 'caddy') {
    if (facts.caddy_unit !== 'yes') {
      steps.push({ kind: 'warn', text: "caddy: no caddy.service here: start Caddy with --resume so it keeps skiff's routes across restarts (or run start after each)" });
    } else if (facts.caddy_dropin === 'same') {
      steps.push({ kind: 'ok', text: `caddy: starts from its last config (--resume, ${CADDY_DROPIN})` });
    } else {
      steps.push(
        rootly(`caddy: make it start from its last config, with skiff's routes (--resume, ${CADDY_DROPIN}; from its next start)`, { cmd: writeRootFile(CADDY_DROPIN), stdin: CADDY_DROPIN_TEXT }, { cmd: daemonReload() }),
      );
    }
  }
  if (cfg.proxy === 'nginx') {
    if (facts.nginx_dir !== 'yes') steps.push(rootly(`nginx: create ${cfg.nginxConfDir} for skiff's server blocks`, { cmd: makeFolder(cfg.nginxConfDir) }));
    if (facts.nginx_includes === 'no') {
      steps.push({ kind: 'warn', text: `nginx: its config does not include ${cfg.nginxConfDir}: add \`include ${cfg.nginxConfDir}/*.conf;\` inside http { }` });
    } else if (facts.nginx_dir === 'yes') steps.push({ kind: 'ok', text: `nginx: includes ${cfg.nginxConfDir}` });
  }

  // The switch flag's folder: the SSH user makes and removes the flag in it at each switch.
  if ((cfg.proxy === 'caddy' || cfg.proxy === 'nginx') && facts.switch_dir !== undefined) {
    const dir = flagDir(cfg);
    const text = `switch: create ${dir} for the flag that picks the live slot (owner ${user}, mode 755)`;
    if (facts.switch_dir === 'yes') steps.push({ kind: 'ok', text: `switch: ${user} writes ${dir}, the folder of the flag that picks the live slot` });
    else if (facts.switch_dir === 'make') steps.push({ kind: 'change', text, run: [{ cmd: makeSwitchDir(dir, user) }] });
    else steps.push(rootly(text, { cmd: makeSwitchDir(dir, user) }));
  }

  // Certificates given as files must be there before the proxy is told to load them; certbot's are obtained here.
  if (cfg.tls.certbot && cfg.tls.cert !== undefined && cfg.tls.key !== undefined) {
    const name = publicHost(cfg);
    if (facts.tls_cert === 'yes' && facts.tls_key === 'yes') steps.push({ kind: 'ok', text: `tls: certbot's certificate for ${name} is there (${cfg.tls.cert}); certbot's timer renews it` });
    else {
      const obtain = certbotObtain({ name, webroot: ACME_WEBROOT, email: cfg.tls.acmeEmail, server: cfg.tls.acmeCa, caRoot: cfg.tls.acmeCaRoot, nginxCmd: cfg.nginxCmd });
      const from = cfg.tls.acmeCa ?? "Let's Encrypt";
      steps.push({ ...rootly(`tls: obtain a certificate for ${name} from ${from} with certbot (HTTP-01 from ${ACME_WEBROOT} through nginx on port 80; renewals reload nginx)`, { cmd: obtain }), long: true });
    }
  } else if (cfg.tls.cert !== undefined && cfg.tls.key !== undefined) {
    const missingFiles = [cfg.tls.cert, cfg.tls.key].filter((_, i) => facts[i === 0 ? 'tls_cert' : 'tls_key'] !== 'yes');
    if (missingFiles.length === 0) steps.push({ kind: 'ok', text: `tls: ${cfg.tls.cert} and ${cfg.tls.key} are there` });
    else steps.push({ kind: 'fail', text: `tls: ${missingFiles.join(' and ')} missing on the host: obtain the certificate first (docs/proxies.md#tls)` });
  }

  // Connections queued on a reloading proxy's old listener move to the new one.
  if (cfg.proxy === 'caddy') {
    if (facts.sysctl_file === 'same' && facts.migrate_req === '1') steps.push({ kind: 'ok', text: `kernel: net.ipv4.tcp_migrate_req = 1 (${SYSCTL_FILE})` });
    else if (facts.migrate_req === 'none') steps.push({ kind: 'warn', text: 'kernel: no net.ipv4.tcp_migrate_req (Linux before 5.14): a switch behind Caddy may reset a connection' });
    else {
      const step = rootly(`kernel: set net.ipv4.tcp_migrate_req = 1 and keep it in ${SYSCTL_FILE}`, { cmd: writeRootFile(SYSCTL_FILE), stdin: SYSCTL_TEXT }, { cmd: applySysctl() });
      steps.push(step);
    }
  }
  return steps;
};

/** Whether a TCP port of a host answers from this machine within `ms`. */
const reachable = (host: string, port: number, ms = 2000): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = netConnect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(ms, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });

/** A warning for each slot port that answers from this machine: the app is reachable past the proxy. */
export const exposedPorts = async (cfg: Config, target: Target): Promise<Step[]> => {
  if (target.kind === 'local' || cfg.proxy === 'none') return [];
  const open: number[] = [];
  for (const port of cfg.ports) if (await reachable(target.host, port)) open.push(port);
  if (open.length === 0) return [{ kind: 'ok', text: `firewall: the slot ports (${cfg.ports.join(', ')}) do not answer from here` }];
  return [
    {
      kind: 'warn',
      text: `firewall: port ${open.join(', ')} of ${target.host} answers from here, so the app is reachable past the proxy: block it (ufw deny ${open[0]}/tcp) or have the app listen on 127.0.0.1`,
    },
  ];
};

const WORD = { ok: 'ok     ', change: 'changed', warn: 'warning', fail: 'failed ' } as const;
const WOULD = { ok: 'ok     ', change: 'would  ', warn: 'warning', fail: 'failed ' } as const;

/**
 * Runs a plan on a host: every change in order (none with `dryRun`), one line each. Returns the
 * lines and whether the host is ready (no step failed, no change failed).
 */
export const applySetup = async (host: Host, steps: readonly Step[], dryRun: boolean): Promise<{ lines: string[]; ready: boolean; changed: number }> => {
  const lines: string[] = [];
  let ready = true;
  let changed = 0;
  // Without the tools nothing else is worth changing: a host that lacks a package is left as it was.
  const blocked = steps.some((s) => s.kind === 'fail');
  for (const step of steps) {
    if (step.kind !== 'change' || dryRun || blocked) {
      lines.push(`  ${(dryRun || blocked) && step.kind === 'change' ? WOULD.change : (dryRun ? WOULD : WORD)[step.kind]}  ${step.text}`);
      if (step.kind === 'fail') ready = false;
      continue;
    }
    if (!ready) {
      // After a failed change nothing else is made: fix it, then run setup again.
      lines.push(`  ${WOULD.change}  ${step.text} (not made: a change above failed)`);
      continue;
    }
    try {
      for (const r of step.run ?? []) {
        // An install may download for minutes and wait for dpkg's lock: it gets the long deadline.
        const result = await host.exec(r.cmd, { check: false, timeoutMs: step.long ? DEADLINE.transfer : DEADLINE.command, ...(r.stdin !== undefined ? { stdin: r.stdin } : {}) });
        if (result.code !== 0) throw new Error(result.stderr.trim().split('\n').at(-1) || `exit ${result.code}`);
      }
      changed += 1;
      lines.push(`  ${WORD.change}  ${step.text}`);
    } catch (error) {
      ready = false;
      lines.push(`  ${WORD.fail}  ${step.text}: ${firstLine(error)}`);
    }
  }
  return { lines, ready, changed };
};
