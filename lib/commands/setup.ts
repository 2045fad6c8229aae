/**
 * Builders for `setup`: one read-only command that tells what a host has (`hostFacts`), and the
 * changes setup makes, each idempotent, those that need root run through `asRoot`.
 */
import { quote, render, script, type Cmd } from '../core/cmd.ts';

/** Where setup persists the kernel settings skiff needs. */
export const SYSCTL_FILE = '/etc/sysctl.d/60-skiff.conf';
export const SYSCTL_TEXT = '# written by skiff: proxies reloading their config hand queued connections to the new listener\nnet.ipv4.tcp_migrate_req = 1\n';

/** The drop-in that makes Caddy start from its last config (with skiff's routes) when it has one. */
export const CADDY_DROPIN = '/etc/systemd/system/caddy.service.d/skiff-resume.conf';
export const CADDY_DROPIN_TEXT = [
  '# written by skiff: Caddy starts from the config it last ran (autosave.json, which keeps the routes',
  '# skiff set through the admin API); the Caddyfile only when there is none yet.',
  '[Service]',
  'ExecStart=',
  'ExecStart=/usr/bin/caddy run --environ --config /etc/caddy/Caddyfile --resume',
  '',
].join('\n');

/**
 * What a host has, one `key=value` a line: uid, user, home, systemd (yes/no), sudo (yes/no: without a
 * password), missing (the tools of `tools` it lacks, comma-separated), path (absent, or
 * `OWNER MODE`), parent_writable, linger, docker_boot, caddy_unit, caddy_dropin (same, other,
 * absent), nginx_dir (yes/no), nginx_includes (yes/no/unknown), migrate_req, sysctl_file (same,
 * other, absent). Changes nothing.
 */
export const hostFacts = (a: {
  readonly path: string;
  readonly tools: readonly string[];
  readonly nginxDir: string;
  readonly nginxCmd: string;
  /** DEPLOY_TLS_CERT and DEPLOY_TLS_KEY, when given: `tls_cert`, `tls_key` are yes when the file is there. */
  readonly tlsFiles?: readonly [string, string] | undefined;
  /** The switch flag's folder (Caddy, nginx): `switch_dir` is yes (this user writes it), make (this user can make it), no, or absent when not given. */
  readonly switchDir?: string | undefined;
}): Cmd =>
  script(
    [
      'path=$1 ndir=$2 ncmd=$3 dropin_text=$4 sysctl_text=$5 cert=$6 key=$7 sdir=$8; shift 8',
      'if [ -n "$sdir" ]; then if [ -d "$sdir" ]; then [ -w "$sdir" ] && echo switch_dir=yes || echo switch_dir=no; else p=$sdir; while [ ! -e "$p" ]; do p=$(dirname "$p"); done; [ -d "$p" ] && [ -w "$p" ] && echo switch_dir=make || echo switch_dir=no; fi; fi',
      'if [ -n "$cert" ]; then [ -e "$cert" ] && echo tls_cert=yes || echo tls_cert=no; [ -e "$key" ] && echo tls_key=yes || echo tls_key=no; fi',
      'echo "uid=$(id -u)"; echo "user=$(id -un)"; echo "home=$HOME"',
      'if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then sd=yes; else sd=no; fi; echo "systemd=$sd"',
      'if [ "$(id -u)" = 0 ] || sudo -n true >/dev/null 2>&1; then echo sudo=yes; else echo sudo=no; fi',
      'm=; for c in "$@"; do command -v "$c" >/dev/null 2>&1 || m="$m${m:+,}$c"; done; echo "missing=$m"',
      'if [ -e "$path" ]; then echo "path=$(stat -c "%U %a" "$path")"; else echo path=absent; fi',
      'p=$path; while [ ! -e "$p" ]; do p=$(dirname "$p"); done; if [ -w "$p" ]; then echo parent_writable=yes; else echo parent_writable=no; fi',
      'if [ -e "/var/lib/systemd/linger/$(id -un)" ]; then echo linger=yes; else echo linger=no; fi',
      'if [ "$sd" = yes ]; then d=$(systemctl is-enabled docker.service 2>/dev/null); echo "docker_boot=${d:-not-found}"; else echo docker_boot=no-systemd; fi',
      'if [ "$sd" = yes ] && [ "$(systemctl show -p LoadState --value caddy.service 2>/dev/null)" = loaded ]; then echo caddy_unit=yes; else echo caddy_unit=no; fi',
      `if [ ! -f ${CADDY_DROPIN} ]; then echo caddy_dropin=absent; elif [ "$(cat ${CADDY_DROPIN}; echo x)" = "$(printf "%s" "$dropin_text"; echo x)" ]; then echo caddy_dropin=same; else echo caddy_dropin=other; fi`,
      'if [ -d "$ndir" ]; then echo nginx_dir=yes; else echo nginx_dir=no; fi',
      'set -f; if command -v "${ncmd%% *}" >/dev/null 2>&1; then if $ncmd -T 2>/dev/null | grep -qF "$ndir/"; then echo nginx_includes=yes; else echo nginx_includes=no; fi; else echo nginx_includes=unknown; fi; set +f',
      'echo "migrate_req=$(cat /proc/sys/net/ipv4/tcp_migrate_req 2>/dev/null || echo none)"',
      `if [ ! -f ${SYSCTL_FILE} ]; then echo sysctl_file=absent; elif [ "$(cat ${SYSCTL_FILE}; echo x)" = "$(printf "%s" "$sysctl_text"; echo x)" ]; then echo sysctl_file=same; else echo sysctl_file=other; fi`,
    ].join('\n'),
    a.path,
    a.nginxDir,
    a.nginxCmd,
    CADDY_DROPIN_TEXT,
    SYSCTL_TEXT,
    a.tlsFiles?.[0] ?? '',
    a.tlsFiles?.[1] ?? '',
    a.switchDir ?? '',
    ...a.tools,
  );

/** Runs a command as root: directly as root, else through `sudo -n` (never asking for a password). Exit 77: neither. */
export const asRoot = (inner: Cmd): Cmd =>
  script(
    [
      'if [ "$(id -u)" = 0 ]; then exec sh -c "$1"; fi',
      'if sudo -n true >/dev/null 2>&1; then exec sudo -n sh -c "$1"; fi',
      'echo "this needs root, and sudo asks for a password here" >&2; exit 77',
    ].join('\n'),
    render(inner),
  );

/** Installs Debian packages (as root). */
export const aptInstall = (packages: readonly string[]): Cmd =>
  script(
    // dpkg's lock is often held by unattended-upgrades on a fresh server: wait for it rather than fail.
    'export DEBIAN_FRONTEND=noninteractive; apt-get -o DPkg::Lock::Timeout=300 update -qq && apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$@" >/dev/null',
    ...packages,
  );

/** Makes DEPLOY_PATH, owned by `user`, not writable by others (as root, or as the user where it may). */
export const makeDeployPath = (path: string, user: string): Cmd =>
  script('mkdir -p "$1" && chown "$2": "$1" && chmod 750 "$1"', path, user);

/** Takes write permission on DEPLOY_PATH from group and others. */
export const tightenDeployPath = (path: string): Cmd => script('chmod go-w "$1"', path);

/** Lets a user's systemd manager run without a login, and start at boot (as root). */
export const enableLinger = (user: string): Cmd =>
  script(
    [
      'loginctl enable-linger "$1" || exit 1',
      'sock="/run/user/$(id -u "$1")/systemd/private"; i=0',
      'while [ ! -S "$sock" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done',
      '[ -S "$sock" ] || { echo "lingering is on, but the systemd manager of $1 did not start within 10 s" >&2; exit 1; }',
    ].join('\n'),
    user,
  );

/** Starts the Docker service at boot (as root). */
export const enableDocker = (): Cmd => script('systemctl enable --quiet docker.service');

/** Makes the switch flag's folder for `user` (as root when needed): its own, mode 755, so the proxy's user can search it and only `user` write it. */
export const makeSwitchDir = (path: string, user: string): Cmd => script('mkdir -p "$1" && chown "$2": "$1" && chmod 755 "$1"', path, user);

/** Writes a file (stdin) atomically, with its folder, mode 644 (as root). */
export const writeRootFile = (path: string): Cmd =>
  script('mkdir -p "$(dirname "$1")" && cat >"$1.tmp" && chmod 644 "$1.tmp" && mv -f "$1.tmp" "$1"', path);

/** Reloads systemd's units (a drop-in written). */
export const daemonReload = (): Cmd => script('systemctl daemon-reload');

/** Applies the sysctl file now. Prints nothing; fails where /proc/sys is read-only (a container). */
export const applySysctl = (): Cmd => script('sysctl -q -p "$1"', SYSCTL_FILE);

/** Makes a folder (as root). */
export const makeFolder = (path: string): Cmd => script('mkdir -p "$1"', path);

/**
 * Obtains the certificate of `name` from an ACME server with certbot, answering HTTP-01 from
 * `webroot` (which nginx serves on port 80 for `/.well-known/acme-challenge/`). The deploy hook,
 * kept in certbot's renewal file of this name only, checks and reloads nginx after each renewal.
 * `caRoot`: the CA certbot trusts for a private ACME directory's own HTTPS (as root).
 */
export const certbotObtain = (a: {
  readonly name: string;
  readonly webroot: string;
  readonly email: string | undefined;
  readonly server: string | undefined;
  readonly caRoot: string | undefined;
  readonly nginxCmd: string;
}): Cmd =>
  script(
    [
      'name=$1 webroot=$2 email=$3 server=$4 caroot=$5 hook=$6',
      'set -- certonly --non-interactive --agree-tos --webroot -w "$webroot" -d "$name" --cert-name "$name" --deploy-hook "$hook"',
      'if [ -n "$email" ]; then set -- "$@" -m "$email"; else set -- "$@" --register-unsafely-without-email; fi',
      'if [ -n "$server" ]; then set -- "$@" --server "$server"; fi',
      'if [ -n "$caroot" ]; then export REQUESTS_CA_BUNDLE="$caroot"; fi',
      // certbot says why among lines of advice: keep the CA's Detail when there is one, else its last word.
      'out=$(certbot "$@" 2>&1) && exit 0',
      'code=$?',
      `printf "%s\\n" "$out" | awk '/^[[:space:]]*$/ || /^(Saving debug log|Ask for help|Hint:|See the logfile|Requesting a certificate|Account registered)/ { next } /Detail:/ { d = $0 } { l = $0 } END { sub(/^[[:space:]]+/, "", d); print (d != "" ? d : l) }' >&2`,
      'exit "$code"',
    ].join('\n'),
    a.name,
    a.webroot,
    a.email ?? '',
    a.server ?? '',
    a.caRoot ?? '',
    certbotHook(a.nginxCmd),
  );

/**
 * The command certbot runs (with a shell, as root) after each renewal: DEPLOY_NGINX_CMD split into
 * words as the nginx driver runs it (no globbing), each word quoted, then `-t -q` and `-s reload`.
 */
export const certbotHook = (nginxCmd: string): string => {
  const words = nginxCmd.trim().split(/\s+/).map(quote).join(' ');
  return `${words} -t -q && ${words} -s reload`;
};
