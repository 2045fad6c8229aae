/**
 * Builders for Docker commands: argument lists, run without a shell on this machine, or rendered
 * with quoting for a host.
 */

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
