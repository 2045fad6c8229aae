/**
 * Builders for Docker commands: argument lists, run without a shell on this machine, or rendered
 * with quoting for a host.
 */
import { cmd, reads, script, type Cmd } from '../core/cmd.ts';
import type { Packing } from './delta.ts';

export interface ImageBuild {
  /** `<app>:<version>`. */
  readonly tag: string;
  /** The Dockerfile, absolute or relative to the context. */
  readonly dockerfile: string;
  /** The build context: APP_DIR. */
  readonly context: string;
  /** DEPLOY_DOCKER_BUILD_ARGS, `NAME=value` each. */
  readonly buildArgs: readonly string[];
  /** Labels recorded in the image: version, git sha, build time. */
  readonly labels: Readonly<Record<string, string>>;
}

/** `docker build` of the app, tagged and labelled; `-q` prints only the image id. */
export const dockerBuild = (b: ImageBuild): string[] => [
  'docker',
  'build',
  '--file',
  b.dockerfile,
  '--tag',
  b.tag,
  ...b.buildArgs.flatMap((a) => ['--build-arg', a]),
  ...Object.entries(b.labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
  b.context,
];

/** The labels skiff puts on every image it builds. */
export const imageLabels = (version: string, gitSha: string | undefined, builtAt: string): Record<string, string> => ({
  'org.opencontainers.image.version': version,
  ...(gitSha ? { 'org.opencontainers.image.revision': gitSha } : {}),
  'org.opencontainers.image.created': builtAt,
  'skiff.version': version,
});

/** The id of an image (`sha256:...`). */
export const imageId = (tag: string): string[] => ['docker', 'image', 'inspect', '--format', '{{.Id}}', tag];

/** The diff ids of an image's layers, bottom first, as JSON. */
export const imageLayers = (ref: string): string[] => ['docker', 'image', 'inspect', '--format', '{{json .RootFS.Layers}}', ref];

/** The size of each history step of an image in bytes, newest first (steps without files are 0). */
export const imageHistorySizes = (ref: string): string[] => ['docker', 'history', '--human=false', '--format', '{{.Size}}', ref];

/** `docker save` of an image to standard output (the archive `docker load` reads). */
export const saveImage = (ref: string): string[] => ['docker', 'save', ref];

// Commands run on a host (rendered with quoting).

/**
 * Whether Docker can be used on a host. Prints `missing`, `down <what docker said>`, or
 * `ok <server version>|<storage driver>|<root dir>|<driver status as JSON>`.
 */
export const dockerCheck = (): Cmd =>
  reads(script(
    [
      'command -v docker >/dev/null 2>&1 || { echo missing; exit 0; }',
      // docker version says why the daemon cannot be reached; docker info of 20.10 only fails its template.
      "out=$(docker version --format '{{.Server.Version}}' 2>&1) || { printf 'down %s\\n' \"$(printf '%s' \"$out\" | tr '\\n' ' ')\"; exit 0; }",
      "out=$(docker info --format '{{.ServerVersion}}|{{.Driver}}|{{.DockerRootDir}}|{{json .DriverStatus}}' 2>&1) || { printf 'down %s\\n' \"$(printf '%s' \"$out\" | tr '\\n' ' ')\"; exit 0; }",
      'printf "ok %s\\n" "$out"',
    ].join('\n'),
  ));

/**
 * Whether the Docker service starts at boot, where systemd is the init: prints what
 * `systemctl is-enabled docker.service` says (enabled, disabled, masked, ...), or `no-systemd`. Containers
 * with `--restart unless-stopped` come back after a reboot only when the daemon does.
 */
export const dockerAtBoot = (): Cmd =>
  script(
    [
      'if [ ! -d /run/systemd/system ] || ! command -v systemctl >/dev/null 2>&1; then echo no-systemd; exit 0; fi',
      // docker.socket alone starts the daemon only when a client connects: the containers wait for that.
      'a=$(systemctl is-enabled docker.service 2>/dev/null); echo "${a:-not-found}"',
    ].join('\n'),
  );

/** Every image on a host with its layers: `<id> <diff id>,<diff id>,...` per line. */
export const hostImageLayers = (): Cmd =>
  reads(script("docker image ls -a -q --no-trunc | sort -u | xargs -r docker image inspect --format '{{.Id}} {{range .RootFS.Layers}}{{.}},{{end}}'"));

/** Free kilobytes on the file system that holds a path (Docker's root dir): the one builder, shared with the backup. */
export { freeKilobytes } from '../core/disk.ts';

/** Reads a `docker save` archive on standard input (plain, gzip or zstd) into the host's image store. */
export const loadImage = (packing: Packing = 'none'): Cmd =>
  // docker load reads gzip by itself; zstd goes through the host's zstd (not every Docker reads it).
  packing === 'zstd' ? script('zstd -dcq | docker load') : cmd('docker', 'load');

/** The id of an image on a host, or nothing when it is not there. */
export const hostImageId = (ref: string): Cmd => reads(script('docker image inspect --format "{{.Id}}" "$1" 2>/dev/null; exit 0', ref));

/** Gives an image on a host another name (the release's reference, so retention can find it). */
export const tagImage = (image: string, ref: string): Cmd => cmd('docker', 'tag', image, ref);

/** A slot's container: `<app>-<env>-<color>`. */
export const containerName = (app: string, env: string, slot: string): string => `${app}-${env}-${slot}`;

/** The tag of a release's image on a host: `<app>:<env>-<release id>` (retention removes it with the release). */
export const releaseRef = (app: string, env: string, id: string): string => `${app}:${`${env}-${id}`.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 128)}`;

export interface ContainerSpec {
  readonly name: string;
  /** The image id (`sha256:...`): a tag can move, the id cannot. */
  readonly image: string;
  /** The release's env file (single-quoted shell words); its keys reach the container by name only. */
  readonly envFile: string;
  readonly envKeys: readonly string[];
  /** shared/data on the host, mounted at /data. */
  readonly dataDir: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly env: Readonly<Record<string, string>>;
  /** More `docker run` flags: limits (`--memory 512m`, `--cpus 0.5`), and a worker's `--init --no-healthcheck`. */
  readonly limits?: readonly string[];
  /** A worker's command (DEPLOY_WORKERS) as the words that follow the image: the container runs them instead of the image's CMD. */
  readonly command?: readonly string[];
}

/** App keys that steer the docker client itself: a value of several lines under one of them is refused. */
const CLIENT_KEYS = 'HOME | PATH | TMPDIR | SHELL | USER | LD_* | DOCKER_* | GO* | *_PROXY | *_proxy | SSL_CERT_* | XDG_*';

/**
 * Starts a slot's container (a stopped one of the same name goes first) and prints its id. The
 * app's values never reach the docker client's own environment, so an app key such as HOME, PATH,
 * DOCKER_HOST or HTTPS_PROXY cannot steer it: the release's env file is read in a subshell that runs
 * only shell builtins, and its values are written to a private `--env-file` (0600, in a 0700 folder
 * beside the env files, removed when docker has read it). A value of several lines, which docker's
 * env file cannot carry, is the one exception: it is exported by name alone (`-e NAME`) unless its
 * name is one the docker client reads. shared/data (with what is in it) is handed to the image's
 * user when that user is numeric. Exit 6: such a value under a client key.
 */
export const runContainer = (s: ContainerSpec): Cmd =>
  script(
    [
      'name=$1 image=$2 envfile=$3 data=$4 n=$5 c=$6; shift 6',
      'docker=$(command -v docker) || { echo "docker: not found" >&2; exit 127; }',
      // The image is checked before the slot's old container goes.
      'user=$("$docker" image inspect --format "{{.Config.User}}" "$image") || exit 1',
      'umask 077; tmp=$(mkdir -p "${envfile%/*}" && mktemp -d "${envfile%/*}/.run.XXXXXX") || exit 1',
      'trap \'rm -rf "$tmp"\' EXIT',
      'i=0; : >"$tmp/keys"',
      String.raw`while [ "$i" -lt "$n" ]; do printf "%s\n" "$1" >>"$tmp/keys"; shift; i=$((i + 1)); done`,
      // The c words of the command go after the image, at the end: "$@" is then the flags, the image, the command.
      'set -- "$@" "$image"; i=0; while [ "$i" -lt "$c" ]; do set -- "$@" "$1"; shift; i=$((i + 1)); done',
      // After the app's file is sourced nothing but builtins runs and no variable is assigned: its PATH
      // or IFS changes nothing, and each value is read under its own name (the keys are in "$@").
      '(',
      '  set --; while IFS= read -r key; do set -- "$@" "$key"; done <"$tmp/keys"',
      '  if [ -f "$envfile" ]; then . "$envfile" || exit 1; fi',
      '  while [ "$#" -gt 0 ]; do',
      '    case "$1" in "" | [0-9]* | *[!A-Za-z0-9_]*) shift; continue ;; esac',
      String.raw`    if eval "[ -z \"\${$1+x}\" ]"; then shift; continue; fi`,
      String.raw`    if eval "case \"\${$1}\" in *'${'\n'}'*) false ;; esac"; then`,
      String.raw`      eval "printf '%s=%s\n' \"\$1\" \"\${$1}\""`,
      '    else',
      `      case "$1" in ${CLIENT_KEYS}) echo "app key $1 has a value of several lines, which docker takes only from its own environment, where $1 would steer the docker client: put the value on one line" >&2; exit 6 ;; esac`,
      // A value of several lines is written as a quoted assignment, in a subshell of its own.
      '      (eval "r=\\${$1}"; q=; while :; do case "$r" in *"\'"*) q="$q${r%%"\'"*}\'\\\'\'"; r=${r#*"\'"} ;; *) q="$q$r"; break ;; esac; done; printf "export %s=\'%s\'\\n" "$1" "$q" >&3; printf "%s\\n" "$1" >&4)',
      '    fi',
      '    shift',
      '  done',
      ') >"$tmp/env" 3>"$tmp/multi" 4>"$tmp/names" || exit $?',
      // The names come from their own file: a line inside a value of several lines is never read as one.
      'while IFS= read -r k; do set -- -e "$k" "$@"; done <"$tmp/names"',
      '"$docker" rm -f "$name" >/dev/null 2>&1',
      'u=${user%%:*}; g=${user#*:}; [ "$g" = "$user" ] && g=$u',
      // Files a restore wrote (as the SSH user) are handed over too.
      'case "$u$g" in "" | *[!0-9]*) ;; *) [ -z "$(find "$data" ! -user "$u" -print 2>/dev/null | head -n 1)" ] || chown -R "$u:$g" "$data" 2>/dev/null || echo "warning: $data is not owned by the image user $u and cannot be handed to it" >&2 ;; esac',
      // Every word is fixed before the values of several lines are exported (in a subshell: $tmp stays).
      'set -- "$docker" run -d --name "$name" --network host --restart unless-stopped -v "$data:/data" --env-file "$tmp/env" "$@"',
      '(. "$tmp/multi" && "$@")',
    ].join('\n'),
    s.name,
    s.image,
    s.envFile,
    s.dataDir,
    String(s.envKeys.length),
    String(s.command?.length ?? 0),
    ...s.envKeys,
    ...(s.command ?? []),
    ...Object.entries(s.env).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
    ...Object.entries(s.labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
    ...(s.limits ?? []),
  );

/**
 * Stops a container: SIGTERM, up to `graceSeconds` to drain, then SIGKILL. It is kept (stopped) for
 * its logs until its slot is used again. Prints `stopped <name>`, `killed <name>` or `not-running`.
 */
export const stopContainer = (name: string, graceSeconds: number): Cmd =>
  script(
    [
      'state=$(docker inspect --format "{{.State.Status}}" "$1" 2>/dev/null) || { echo not-running; exit 0; }',
      'case "$state" in exited | created | dead) echo not-running; exit 0 ;; esac',
      'docker stop -t "$2" "$1" >/dev/null || exit 1',
      'code=$(docker inspect --format "{{.State.ExitCode}}" "$1")',
      'if [ "$code" = 137 ]; then echo "killed $1"; else echo "stopped $1"; fi',
    ].join('\n'),
    name,
    String(graceSeconds),
  );

/**
 * A container's state in one line: `<status> <pid> <image id> <health or ->` (`absent` when there is
 * no such container). Status is docker's: running, restarting (it keeps crashing), exited...
 */
export const containerStatus = (name: string): Cmd =>
  reads(script(
    'docker inspect --format \'{{.State.Status}} {{.State.Pid}} {{.Image}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}\' "$1" 2>/dev/null || echo absent',
    name,
  ));

/** The container of a worker process of a release: `<app>-<env>-worker-<name>.<n>-<release>`. */
export const workerContainerName = (app: string, env: string, release: string, id: string): string => `${app}-${env}-worker-${id}-${release}`;

/**
 * The state of several containers, a line each: `<name> <status> <pid> <restart count>`, or
 * `<name> absent`.
 */
export const containersStatus = (names: readonly string[]): Cmd =>
  reads(script(
    'for c in "$@"; do printf "%s " "$c"; docker inspect --format \'{{.State.Status}} {{.State.Pid}} {{.RestartCount}}\' "$c" 2>/dev/null || echo absent; done; exit 0',
    ...names,
  ));

/**
 * The worker containers of an app and env (label skiff.worker), a line each: `<name> <release>`.
 */
export const workerContainers = (app: string, env: string): Cmd =>
  reads(script(
    'docker ps -a --filter "label=skiff.app=$1" --filter "label=skiff.env=$2" --filter label=skiff.worker --format \'{{.Names}} {{.Label "skiff.release"}}\'',
    app,
    env,
  ));

/**
 * Stops containers together (`docker stop` stops them side by side: SIGTERM, `graceSeconds` to
 * finish, SIGKILL) and removes them. Prints `stopped N` (N of them ran), `killed N` (N were still
 * up after the grace) or `not-running`. Names are docker's (letters, digits, `_`, `.`, `-`).
 */
export const stopAndRemoveContainers = (names: readonly string[], graceSeconds: number): Cmd =>
  script(
    [
      'grace=$1; shift; had=0; up=; ran=; there=',
      'for c in "$@"; do',
      '  s=$(docker inspect --format "{{.State.Status}}" "$c" 2>/dev/null) || continue',
      '  there="$there $c"',
      '  case $s in running | paused) had=$((had + 1)); up="$up $c"; ran="$ran $c" ;; restarting) had=$((had + 1)); up="$up $c" ;; esac',
      'done',
      '[ -n "$there" ] || { echo not-running; exit 0; }',
      '[ -z "$up" ] || docker stop -t "$grace" $up >/dev/null',
      // 137 is SIGKILL; a restarting container keeps the status of its last crash, so only those that ran are judged.
      'killed=0; for c in $ran; do [ "$(docker inspect --format "{{.State.ExitCode}}" "$c" 2>/dev/null)" = 137 ] && killed=$((killed + 1)); done',
      'docker rm -f $there >/dev/null 2>&1',
      'if [ "$had" -eq 0 ]; then echo not-running; elif [ "$killed" -gt 0 ]; then echo "killed $killed"; else echo "stopped $had"; fi',
    ].join('\n'),
    String(graceSeconds),
    ...names,
  );

/** The last lines of a container's output (stdout and stderr), then new ones with `follow`. */
export const containerLogs = (name: string, lines: number, follow: boolean): Cmd =>
  script(`docker logs --tail "$2" ${follow ? '--follow ' : ''}"$1" 2>&1; exit 0`, name, String(lines));

/**
 * Removes a pruned release's image tag. The version tag (`<app>:<version>`) goes too when it names
 * the same image and no other release tag does; docker keeps an image a container still uses.
 */
export const untagRelease = (ref: string, versionTag: string): Cmd =>
  script(
    [
      'id=$(docker image inspect --format "{{.Id}}" "$1" 2>/dev/null) || exit 0',
      'docker image rm "$1" >/dev/null 2>&1 || exit 0',
      'left=$(docker image inspect --format \'{{range .RepoTags}}{{println .}}{{end}}\' "$id" 2>/dev/null | grep -vxF "$2" | grep -c .)',
      'if [ "$left" = 0 ] && [ "$(docker image inspect --format "{{.Id}}" "$2" 2>/dev/null)" = "$id" ]; then docker image rm "$2" >/dev/null 2>&1; fi',
      'exit 0',
    ].join('\n'),
    ref,
    versionTag,
  );
