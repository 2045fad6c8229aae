/**
 * What each script takes: its arguments, its own flags, the shared flags it offers and why it does
 * not offer the others. Data only, in one place, so `--help`, the Taskfile and the tests read the
 * same table (docs/README.md#flags) without running a script.
 */
import { command, shared } from './cli.ts';

const env = { name: '<env>', required: true, description: 'environment: the name of a file env/<env>.env' } as const;

/** Why a script that takes no deploy lock does not offer the lock flags. */
const noLock = (why: string) => ({ 'force-unlock': why, 'lock-wait': why }) as const;

export const specs = {
  backup: command({
    name: 'backup',
    summary: 'Back up the data of an environment on its host (SQLite online copies, BACKUP_PATHS, shared/.env), or list the backups.',
    usage: '<env> [<label>] [--list] [--download] [--dry-run] [--json] [--force-unlock] [--lock-wait SECONDS]',
    positionals: [env, { name: '<label>', required: false, description: 'a word added to the backup name (a-z, 0-9, -), e.g. before-migration' }],
    flags: {
      list: { type: 'boolean', short: 'l', description: 'print the backups on each host, newest first' },
      download: { type: 'boolean', description: 'also copy it to backups/<env>/ here, checked entry by entry (encrypted with BACKUP_ENCRYPT_TO if set)' },
      ...shared('dry-run', 'json', 'force-unlock', 'lock-wait'),
    },
    notOffered: { yes: 'it asks nothing: it only adds a backup (and removes the oldest beyond BACKUP_KEEP), so a timer can run it' },
    examples: ['npx tsx scripts/backup.ts production', 'npx tsx scripts/backup.ts production nightly --download', 'npx tsx scripts/backup.ts production before-migration', 'npx tsx scripts/backup.ts production --list --json'],
  }),
  build: command({
    name: 'build',
    summary: 'Run the build of an environment (DEPLOY_BUILD in APP_DIR, or docker build with DEPLOY_RUNTIME=docker) and print the version it would deploy.',
    usage: '<env> [--dry-run] [--json]',
    positionals: [env],
    flags: { ...shared('dry-run', 'json') },
    notOffered: { yes: 'it asks nothing', ...noLock('it takes no deploy lock: it runs on this machine and touches no host') },
    examples: ['npx tsx scripts/build.ts local', 'npx tsx scripts/build.ts staging --json'],
  }),
  'deploy-vps': command({
    name: 'deploy-vps',
    summary: 'Build the app and deploy it to an environment, keeping the previous version serving if anything fails.',
    usage: '<env> [--yes] [--dry-run] [--json] [--no-build] [--verify] [--force-unlock] [--lock-wait SECONDS] [--verbose]',
    positionals: [{ ...env, description: 'environment: the name of a file env/<env>.env (e.g. local, staging)' }],
    flags: {
      ...shared('yes', 'dry-run', 'json', 'force-unlock', 'lock-wait'),
      'no-build': { type: 'boolean', description: 'ship APP_DIR as it is (already built by scripts/build.ts)' },
      verify: { type: 'boolean', description: 'check the live release on each host by sha256 before reusing its files (by size otherwise)' },
    },
    notOffered: {},
    examples: ['npx tsx scripts/deploy-vps.ts local', 'npx tsx scripts/deploy-vps.ts production --yes', 'npx tsx scripts/deploy-vps.ts staging --dry-run'],
  }),
  export: command({
    name: 'export',
    summary: 'Write what Compose, Swarm or Kubernetes needs to run the release an env deploys (its docker image, environment, health check, limits), from the same config (docs/scaling.md).',
    usage: '<env> --to compose|swarm|kubernetes [--out DIR] [--version V] [--image NAME] [--replicas N] [--probe curl|wget|node] [--with-secrets] [--force] [--dry-run] [--json]',
    positionals: [env],
    flags: {
      to: { type: 'string', value: 'TARGET', description: 'compose (a Compose file), swarm (a stack file with deploy keys) or kubernetes (manifests)' },
      out: { type: 'string', value: 'DIR', description: 'the folder to write into (default exported/<env>/<target>); made if missing' },
      version: { type: 'string', value: 'V', description: 'the image tag to run (default: the version deploy would build now, as build prints it)' },
      image: { type: 'string', value: 'NAME', description: 'the image name without its tag, e.g. registry.example.com/hello (default APP_NAME, as the docker runtime tags it)' },
      replicas: { type: 'string', value: 'N', description: 'how many containers or pods (default: the number of hosts in DEPLOY_HOSTS)' },
      probe: { type: 'string', value: 'PROGRAM', description: 'Compose and Swarm: the program in the image that asks the health path (default node for a Node base image, else curl)' },
      'with-secrets': { type: 'boolean', description: 'also write the secret values (*.secrets.yaml or secret.yaml, mode 600); without it no file holds one' },
      force: { type: 'boolean', description: 'replace files the folder holds already' },
      ...shared('dry-run', 'json'),
    },
    notOffered: {
      yes: 'it asks nothing: it writes files here, never over one without --force',
      ...noLock('it takes no deploy lock: it writes files on this machine and touches no host'),
    },
    examples: [
      'npx tsx scripts/export.ts production --to kubernetes --dry-run',
      'npx tsx scripts/export.ts production --to swarm --image registry.example.com/hello --out deploy/swarm',
      'npx tsx scripts/export.ts production --to compose --with-secrets',
    ],
  }),
  'deploy-group': command({
    name: 'deploy-group',
    summary: 'Deploy the services of a group (env/<group>.group) together, switching in its order: all go live or none; --rollback takes them all back to what they served before.',
    usage: '<group> [--rollback] [--yes] [--dry-run] [--json] [--no-build] [--verify] [--force-unlock] [--lock-wait SECONDS]',
    positionals: [{ name: '<group>', required: true, description: 'group: the name of a file env/<group>.group that names envs in order' }],
    flags: {
      rollback: { type: 'boolean', description: "take every service back to the release it served before the group's last deploy" },
      ...shared('yes', 'dry-run', 'json', 'force-unlock', 'lock-wait'),
      'no-build': { type: 'boolean', description: 'ship each APP_DIR as it is (already built by scripts/build.ts)' },
      verify: { type: 'boolean', description: 'check the live release on each host by sha256 before reusing its files (by size otherwise)' },
    },
    notOffered: {},
    examples: ['npx tsx scripts/deploy-group.ts shop', 'npx tsx scripts/deploy-group.ts shop --dry-run', 'npx tsx scripts/deploy-group.ts shop --rollback --yes'],
  }),
  init: command({
    name: 'init',
    summary: "Bring skiff into an existing app's git repository: its scripts, lib/, the Taskfile, npm aliases and packages in package.json, env/staging.env and env/production.env from what it finds in the app.",
    usage: '<app-folder> [--dry-run] [--force] [--update] [--yes]',
    positionals: [{ name: '<app-folder>', required: true, description: "the app's folder, in a git repository (its top level, or the app's folder in one)" }],
    flags: {
      ...shared('yes', 'dry-run'),
      update: { type: 'boolean', description: 'show what this skiff would change in the files an earlier init copied (a diff); applied with --yes' },
      force: { type: 'boolean', description: 'go ahead with uncommitted changes in the repository; with --update, also replace files edited since init' },
    },
    notOffered: {
      json: 'it prints the files it writes and the next steps for people',
      ...noLock('it takes no deploy lock: it writes files in the app, not on a host'),
    },
    examples: ['npx tsx scripts/init.ts ../my-app --dry-run', 'npx tsx scripts/init.ts ../my-app', 'npx tsx scripts/init.ts ../my-app --update --yes'],
  }),
  exec: command({
    name: 'exec',
    summary: 'Run a command in the live release of an environment, with the app\'s environment; its output streams here and exec exits with its status.',
    usage: '<env> [--host H | --all] [--tty] [--timeout SECONDS] [--dry-run] -- <command...> | --db [-- <args...>]',
    positionals: [env],
    flags: {
      host: { type: 'string', value: 'H', description: 'the host to run on: user@host:port, user@host, host:port or host, as in DEPLOY_HOSTS' },
      all: { type: 'boolean', description: 'run on every host of DEPLOY_HOSTS, one after another; each host\'s status is printed' },
      tty: { type: 'boolean', short: 't', description: 'an interactive session with a terminal (a console, a shell); needs a terminal here' },
      timeout: { type: 'string', value: 'SECONDS', description: 'stop the command after SECONDS (exit 124); default 3600, none with --tty; 0: no deadline' },
      db: { type: 'boolean', description: 'open the database console on the host: psql for BACKUP_POSTGRES_URL, else sqlite3 on BACKUP_SQLITE (words after -- go to it)' },
      ...shared('dry-run'),
    },
    notOffered: {
      yes: 'it asks nothing: it runs the command you typed, as ssh would',
      json: 'it prints what the command prints, as it comes',
      ...noLock('it takes no deploy lock: it runs in the release that is live when it starts (docs/exec.md)'),
    },
    examples: [
      "npx tsx scripts/exec.ts production -- 'python manage.py migrate && echo done'",
      'npx tsx scripts/exec.ts production -- ls -la data',
      'npx tsx scripts/exec.ts production --tty -- python manage.py shell',
      'npx tsx scripts/exec.ts staging --all -- uptime',
      'npx tsx scripts/exec.ts production --db --tty',
    ],
  }),
  logs: command({
    name: 'logs',
    summary: 'Print the log of the live release of an environment.',
    usage: '<env> [--follow] [--lines N]',
    positionals: [env],
    flags: {
      follow: { type: 'boolean', short: 'f', description: 'keep printing new lines until Ctrl-C' },
      lines: { type: 'string', short: 'n', value: 'N', description: 'how many of the last lines to print (default 100)' },
    },
    notOffered: {
      yes: 'it asks nothing',
      'dry-run': 'it only reads: there is nothing to change',
      json: 'it prints the log as the app wrote it, a stream of lines',
      ...noLock('it takes no deploy lock: it only reads'),
    },
    examples: ['npx tsx scripts/logs.ts local', 'npx tsx scripts/logs.ts local --follow'],
  }),
  maintenance: command({
    name: 'maintenance',
    summary: 'Put up (on) or take down (off) a 503 maintenance page with Retry-After at the proxy, for the env\'s route; the slots behind it keep running and skiff\'s health checks reach them directly.',
    usage: '<env> on|off [--message TEXT] [--retry-after SECONDS] [--dry-run] [--json] [--force-unlock] [--lock-wait SECONDS]',
    positionals: [env, { name: 'on|off', required: true, description: 'on: serve the page (again with new text when on already); off: give the app back, once it answers' }],
    flags: {
      message: { type: 'string', value: 'TEXT', description: 'the text of the page, one line of at most 500 characters (default: down for maintenance, back shortly)' },
      'retry-after': { type: 'string', value: 'SECONDS', description: 'what Retry-After tells clients, whole seconds from 1 to 86400 (default 120)' },
      ...shared('dry-run', 'json', 'force-unlock', 'lock-wait'),
    },
    notOffered: { yes: 'it asks nothing: the app keeps running behind the page, and `off` gives it back at once' },
    examples: [
      'npx tsx scripts/maintenance.ts production on --message "Back at 14:00 UTC" --retry-after 900',
      'npx tsx scripts/maintenance.ts production off',
      'npx tsx scripts/maintenance.ts staging on --dry-run',
    ],
  }),
  restore: command({
    name: 'restore',
    summary: 'Restore a backup on the host. It is checked before anything stops; if the app is not healthy after, the data of before comes back.',
    usage: '<env> <backup> [--test] [--yes] [--dry-run] [--trust-copy] [--force-unlock] [--lock-wait SECONDS]',
    positionals: [
      env,
      { name: '<backup>', required: true, description: 'a backup name from `backup.ts <env> --list` (always the host\'s), or the path of a downloaded copy (backups/<env>/<name>.tar[.age]), uploaded first' },
    ],
    flags: {
      test: { type: 'boolean', description: 'restore into a scratch folder on the host and check it; nothing live is touched' },
      'trust-copy': { type: 'boolean', description: 'restore a local copy whose MAC (BACKUP_SIGNING_KEY) is missing or wrong; a warning says so' },
      ...shared('yes', 'dry-run', 'force-unlock', 'lock-wait'),
    },
    notOffered: { json: 'it prints its steps for people; `backup <env> --list --json` lists the backups after it, its safety backup among them' },
    examples: ['npx tsx scripts/restore.ts production 20261123-041500 --test', 'npx tsx scripts/restore.ts production 20261123-041500 --dry-run', 'npx tsx scripts/restore.ts staging 20261123-041500-before-migration --yes'],
  }),
  rollback: command({
    name: 'rollback',
    summary: 'Go back to an earlier release (default: the newest good one before the live one, which is marked bad).',
    usage: '<env> [<release>] [--list] [--with-data] [--yes] [--dry-run] [--json] [--force-unlock] [--lock-wait SECONDS]',
    positionals: [env, { name: '<release>', required: false, description: 'a release id from --list (default: the previous good release)' }],
    flags: {
      list: { type: 'boolean', short: 'l', description: 'print the releases, newest first, the live one marked *' },
      'with-data': { type: 'boolean', description: 'also restore the newest backup taken while that release was live (asks first)' },
      ...shared('yes', 'dry-run', 'json', 'force-unlock', 'lock-wait'),
    },
    notOffered: {},
    examples: ['npx tsx scripts/rollback.ts staging', 'npx tsx scripts/rollback.ts staging --list', 'npx tsx scripts/rollback.ts staging 20261122-234512-1.2.0'],
  }),
  setup: command({
    name: 'setup',
    summary: 'Prepare each host of an environment (idempotent): says what it changed; a second run changes nothing.',
    usage: '<env> [--dry-run] [--install]',
    positionals: [env],
    flags: {
      ...shared('dry-run'),
      install: { type: 'boolean', description: 'install missing Debian packages (apt-get, as root or with password-less sudo)' },
    },
    notOffered: {
      yes: 'it asks nothing: every change it makes is one line of its output, and --dry-run lists them first',
      json: 'it prints a line per check and change for people; its exit code says whether every host is ready',
      ...noLock('it takes no deploy lock: it prepares the host, not the app\'s releases'),
    },
    examples: ['npx tsx scripts/setup.ts staging --dry-run', 'npx tsx scripts/setup.ts production --install'],
  }),
  start: command({
    name: 'start',
    summary: 'Start the live release of an environment (no second process if it already runs).',
    usage: '<env> [--dry-run] [--force-unlock] [--lock-wait SECONDS]',
    positionals: [env],
    flags: { ...shared('dry-run', 'force-unlock', 'lock-wait') },
    notOffered: {
      yes: 'it asks nothing: it starts only the release that is live already',
      json: 'it prints one line per host; `status <env> --json` gives the state it leaves as JSON',
    },
    examples: ['npx tsx scripts/start.ts local', 'npx tsx scripts/start.ts production --dry-run'],
  }),
  status: command({
    name: 'status',
    summary: 'Show the live release of an environment, its process, health and lock.',
    usage: '<env> [--json]',
    positionals: [env],
    flags: { ...shared('json') },
    notOffered: {
      yes: 'it asks nothing',
      'dry-run': 'it only reads: there is nothing to change',
      ...noLock('it takes no deploy lock: it only reads (and shows who holds the lock)'),
    },
    examples: ['npx tsx scripts/status.ts local', 'npx tsx scripts/status.ts staging --json'],
  }),
  stop: command({
    name: 'stop',
    summary: 'Stop the live release of an environment (it drains for DEPLOY_DRAIN_SECONDS, then is killed). Asks first in production.',
    usage: '<env> [--yes] [--dry-run] [--force-unlock] [--lock-wait SECONDS]',
    positionals: [env],
    flags: { ...shared('yes', 'dry-run', 'force-unlock', 'lock-wait') },
    notOffered: { json: 'it prints one line per host; `status <env> --json` gives the state it leaves as JSON' },
    examples: ['npx tsx scripts/stop.ts local', 'npx tsx scripts/stop.ts production --yes'],
  }),
  'version-tag': command({
    name: 'version-tag',
    summary: 'Release a version of the repository deploy reads its version from: check it, bump package.json, update CHANGELOG.md, commit and tag (and push).',
    usage: '<patch|minor|major|prerelease|X.Y.Z> [--env <env> | --repo <folder>] [--preid rc] [--push] [--yes] [--dry-run] [--no-tests] [--json]',
    positionals: [{ name: '<bump>', required: true, description: 'patch, minor, major, prerelease, or an explicit version greater than the current' }],
    flags: {
      env: { type: 'string', value: 'ENV', description: 'release the repository that holds APP_DIR of env/<ENV>.env (default: of every env file; they must agree)' },
      repo: { type: 'string', value: 'FOLDER', description: 'release the git repository of FOLDER instead' },
      preid: { type: 'string', value: 'ID', description: 'prerelease id for prerelease bumps (default rc)' },
      push: { type: 'boolean', description: 'push the branch and the tag together (git push --atomic)' },
      'no-tests': { type: 'boolean', description: 'do not run npm test before releasing' },
      'any-branch': { type: 'boolean', description: 'allow a release from a branch other than main or master' },
      branch: { type: 'string', value: 'a,b', description: 'release branches, comma-separated (default main,master)' },
      ...shared('yes', 'dry-run', 'json'),
    },
    notOffered: noLock('it takes no deploy lock: it changes a git repository, not a host'),
    examples: [
      'npx tsx scripts/version-tag.ts patch',
      'npx tsx scripts/version-tag.ts minor --env staging --push --yes',
      'npx tsx scripts/version-tag.ts prerelease --preid beta --dry-run',
    ],
  }),
} as const;

export type ScriptName = keyof typeof specs;
