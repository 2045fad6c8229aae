/**
 * Apps of several services (docs/groups.md): a group file `env/<group>.group` names envs in the
 * order they switch; one deploy puts them all live or none, one rollback takes them all back to
 * what they served before the group's last deploy. The group runs the deploy's own steps, each on
 * every host of every service at once, so a service that fails its health check fails before any
 * service switched; the switch then goes service by service in the stated order, and a failure
 * there switches back the services already switched (their old slots still run: nothing drains
 * before every service serves the new release).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/config.ts';
import { ENV_NAME } from '../config/env-files.ts';
import type { Cmd } from '../core/cmd.ts';
import { SkiffError, UsageError } from '../core/errors.ts';
import type { ExecOptions, ExecResult, Host, PutOptions } from '../host/host.ts';
import { publicHost, publicPort, publicPrefix } from '../proxy/route.ts';
import type { Layout } from '../core/paths.ts';
import * as d from './deploy.ts';
import type { DeployCtx, Going, Session } from './session.ts';
import type { ReleaseRecord } from '../state/state.ts';

/** A group: its name, its file, and its envs in the order they switch. */
export interface Group {
  readonly name: string;
  readonly file: string;
  readonly envs: readonly string[];
}

/**
 * Reads the envs of a group file: names separated by new lines or commas, `#` to the end of a line
 * a comment. Refuses (exit 2) an empty group, a bad or repeated name, the group itself, another
 * group and an env that has no env file: each one line naming the file and the fix.
 */
export const parseGroup = (name: string, file: string, text: string, isEnv: (env: string) => boolean, isGroup: (name: string) => boolean): Group => {
  const envs = text
    .split('\n')
    .map((line) => line.replace(/#.*$/, ''))
    .flatMap((line) => line.split(','))
    .map((word) => word.trim())
    .filter((word) => word !== '');
  if (envs.length === 0) throw new UsageError(`${file} names no env: write the envs of the group in the order they switch, one a line (e.g. api, then web)`);
  const seen = new Set<string>();
  for (const env of envs) {
    if (!ENV_NAME.test(env)) throw new UsageError(`${file}: ${JSON.stringify(env)} is not an env name (a-z, 0-9 and -): one env a line`);
    if (env === name) throw new UsageError(`${file} names the group itself (${env}): a group names envs, one a line`);
    if (seen.has(env)) throw new UsageError(`${file} names ${env} twice: each service deploys once, name it once`);
    if (isGroup(env)) throw new UsageError(`${file} names ${env}, which is a group (env/${env}.group): groups do not nest, name its envs instead`);
    if (!isEnv(env)) throw new UsageError(`${file} names ${env}, which has no env file (env/${env}.env): create it or take ${env} out of the group`);
    seen.add(env);
  }
  return { name, file, envs };
};

/** Reads env/<name>.group from the env folder. */
export const readGroup = (name: string, dir: string): Group => {
  if (!ENV_NAME.test(name)) throw new UsageError(`group name ${JSON.stringify(name)} is invalid: use a-z, 0-9 and - only (e.g. shop)`);
  const file = join(dir, `${name}.group`);
  if (!existsSync(file)) {
    const alone = existsSync(join(dir, `${name}.env`)) ? `; ${name} is an env: deploy it with \`npx tsx scripts/deploy-vps.ts ${name}\`` : '';
    throw new UsageError(`unknown group "${name}": no env/${name}.group${alone}`);
  }
  return parseGroup(name, `env/${name}.group`, readFileSync(file, 'utf8'), (env) => existsSync(join(dir, `${env}.env`)), (g) => existsSync(join(dir, `${g}.group`)));
};

/** Where a target's deploy lock and releases are: the same for two services means one app. */
const placeOf = (cfg: Config, target: Config['hosts'][number]): string => `${target.kind === 'local' ? 'local' : `${target.user}@${target.host}:${target.port}`}:${cfg.path}`;

/**
 * What the services of a group must not share or lack, checked before any host is reached: a
 * DEPLOY_PATH on a host (one lock, one release folder), a route (host, port and path prefix),
 * a slot port on a host, and a proxy (each service must be able to switch back).
 */
export const groupProblem = (group: Group, cfgs: readonly Config[]): string | undefined => {
  const places = new Map<string, string>();
  const routes = new Map<string, string>();
  const ports = new Map<string, string>();
  for (const cfg of cfgs) {
    if (cfg.proxy === 'none') {
      return `${group.file}: ${cfg.env} has DEPLOY_PROXY=none: a service of a group needs a proxy (two slots) to switch back when a later one fails; give it one or deploy it alone`;
    }
    for (const t of cfg.hosts) {
      const place = placeOf(cfg, t);
      const other = places.get(place);
      if (other) return `${group.file}: ${other} and ${cfg.env} have the same DEPLOY_PATH (${cfg.path}) on ${t.kind === 'local' ? 'local' : t.host}: give each service its own`;
      places.set(place, cfg.env);
      for (const port of cfg.ports) {
        const key = `${t.kind === 'local' ? 'local' : t.host}:${port}`;
        const holder = ports.get(key);
        if (holder) return `${group.file}: ${holder} and ${cfg.env} both use port ${port} on ${t.kind === 'local' ? 'local' : t.host} (DEPLOY_PORTS): give each service its own ports`;
        ports.set(key, cfg.env);
      }
    }
    const route = `${publicHost(cfg)}:${publicPort(cfg)}${publicPrefix(cfg) || '/'}`;
    const owner = routes.get(route);
    if (owner) return `${group.file}: ${owner} and ${cfg.env} have the same route (${cfg.publicUrl ?? route}): give one another path prefix in DEPLOY_PUBLIC_URL (e.g. ${cfg.publicUrl ?? ''}/api)`;
    routes.set(route, cfg.env);
  }
  return undefined;
};

/** The order the deploy locks are taken in: by place, so two groups over the same envs cannot take them crosswise. */
export const lockOrder = <T extends { readonly cfg: Config }>(runs: readonly T[]): T[] =>
  [...runs].sort((a, b) => {
    const ka = a.cfg.hosts.map((t) => placeOf(a.cfg, t)).join(' ');
    const kb = b.cfg.hosts.map((t) => placeOf(b.cfg, t)).join(' ');
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });

/** A host shown under its service's name (`api`, or `api on deploy@web1:22` with several hosts): every line of a group names its service. */
export class ServiceHost implements Host {
  readonly name: string;
  readonly #inner: Host;
  constructor(inner: Host, name: string) {
    this.#inner = inner;
    this.name = name;
  }
  get bytesSent(): number | undefined {
    return this.#inner.bytesSent;
  }
  exec(command: Cmd, options?: ExecOptions): Promise<ExecResult> {
    return this.#inner.exec(command, options);
  }
  put(path: string, content: string | Buffer, options?: PutOptions): Promise<void> {
    return this.#inner.put(path, content, options);
  }
  get(path: string): Promise<Buffer | undefined> {
    return this.#inner.get(path);
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}

/** The sessions of a service with its hosts named after it. */
export const asService = <S extends Session>(env: string, sessions: readonly S[]): S[] =>
  sessions.map((s) => {
    const name = sessions.length > 1 ? `${env} on ${s.host.name}` : env;
    // Its progress lines name it too: without a terminal, lines of services at work at once interleave.
    return { ...s, host: new ServiceHost(s.host, name), logTo: (sink: (line: string) => void) => s.logTo((line) => sink(`${name}: ${line}`)) };
  });

/** One service of a group run: its env and one context per host. */
export interface Service {
  readonly env: string;
  readonly ctxs: readonly DeployCtx[];
}

// ---- The record of the group's last deploy ---------------------------------------------------

/** What the group's last deploy did, on every host of every service: what group rollback goes back to. */
export interface GroupRecord {
  readonly group: string;
  /** The deploy's id: the same on every host of the group. */
  readonly id: string;
  readonly at: string;
  readonly who: string;
  /** In the order they switched; `before` is what served before the deploy (none on a first deploy). */
  readonly services: readonly { readonly env: string; readonly before: string | null; readonly after: string }[];
  /** Set by the group rollback: a second one has nothing to go back to. */
  readonly rolledBackAt?: string;
}

/** The record's file on a host: beside state.json. */
export const groupFile = (l: Layout): string => `${l.skiff}/group.json`;

/** Parses a group record; undefined when there is none, an error naming the file when it is damaged. */
export const parseGroupRecord = (text: string | undefined, where: string): GroupRecord | undefined => {
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new SkiffError(`${where} is not JSON: roll back each service with scripts/rollback.ts`, 2);
  }
  const ok =
    typeof value === 'object' &&
    value !== null &&
    'group' in value &&
    typeof value.group === 'string' &&
    'id' in value &&
    typeof value.id === 'string' &&
    'services' in value &&
    Array.isArray(value.services) &&
    value.services.every(
      (s: unknown) =>
        typeof s === 'object' && s !== null && 'env' in s && typeof s.env === 'string' && 'after' in s && typeof s.after === 'string' && 'before' in s && (s.before === null || typeof s.before === 'string'),
    );
  if (!ok) throw new SkiffError(`${where} is not a group record: roll back each service with scripts/rollback.ts`, 2);
  return value as GroupRecord; // checked field by field above
};

/** Writes the record on a host (atomically: put writes a temporary file and renames it). */
export const writeGroupRecord = (s: Session, record: GroupRecord): Promise<void> => s.host.put(groupFile(s.l), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });

/** The group's record from each host of each service: all must be the same deploy of this group. */
export const readGroupRecords = async (group: Group, services: readonly { readonly env: string; readonly sessions: readonly Session[] }[]): Promise<GroupRecord> => {
  const seen: { env: string; host: string; record: GroupRecord | undefined }[] = [];
  for (const svc of services) {
    for (const s of svc.sessions) {
      seen.push({ env: svc.env, host: s.host.name, record: parseGroupRecord((await s.host.get(groupFile(s.l)))?.toString(), `${s.host.name}: ${groupFile(s.l)}`) });
    }
  }
  return chooseGroupRecord(group, seen);
};

/** Picks the record the group rollback goes by, or says in one line why there is none to trust. */
export const chooseGroupRecord = (group: Group, seen: readonly { env: string; host: string; record: GroupRecord | undefined }[]): GroupRecord => {
  const alone = `roll back each service with \`npx tsx scripts/rollback.ts <env>\``;
  const [first] = seen;
  if (!first) throw new UsageError(`${group.file} names no env`);
  for (const x of seen) {
    if (!x.record || x.record.group !== group.name) {
      throw new SkiffError(`${x.host} has no record of a deploy of group ${group.name}${x.record ? ` (its last group deploy was of ${x.record.group})` : ''}: deploy the group first, or ${alone}`, 2);
    }
  }
  const record = first.record as GroupRecord; // every entry has one of this group: checked above
  for (const x of seen) {
    if (x.record?.id !== record.id) {
      throw new SkiffError(`the services of ${group.name} were not last deployed together (${first.host}: ${record.id}, ${x.host}: ${x.record?.id ?? 'none'}): ${alone}`, 2);
    }
  }
  const named = record.services.map((s) => s.env).join(',');
  if (named !== group.envs.join(',')) {
    throw new SkiffError(`${group.file} names ${group.envs.join(', ')}, but the group's last deploy was of ${record.services.map((s) => s.env).join(', ')}: ${alone}`, 2);
  }
  if (record.rolledBackAt) throw new SkiffError(`the last deploy of ${group.name} (${record.id}) was rolled back already, at ${record.rolledBackAt}: deploy it again, or ${alone}`, 2);
  const first_ = record.services.find((s) => s.before === null);
  if (first_) throw new SkiffError(`${first_.env} served nothing before the group's last deploy (${record.id}): there is nothing to go back to; stop it with \`npx tsx scripts/stop.ts ${first_.env}\``, 2);
  return record;
};

// ---- Undo and verdict ---------------------------------------------------------------------------

/**
 * Undo of a service's switch when a later service failed: the deploy's own switch back (the proxy
 * goes back to the old slot, which never stopped; the new release, which had the traffic for a
 * moment, drains before it stops; it is recorded rolled back).
 */
export const switchBackDrained = (c: DeployCtx, reason: string): Promise<void> => d.switchBack(c, reason);

/** The group record of a deploy that went live everywhere. */
export const deployRecord = (group: Group, id: string, services: readonly Service[], at: string, who: string): GroupRecord => ({
  group: group.name,
  id,
  at,
  who,
  services: services.map((s) => {
    const [c] = s.ctxs;
    return { env: s.env, before: c?.run.previous?.slot.release ?? null, after: c?.run.id ?? '' };
  }),
});

/** What a group rollback goes by: the record, and for each service the release it goes back to. */
export interface GroupRollbackPlan {
  readonly record: GroupRecord;
  /** For each env of the group, in order. */
  readonly going: readonly Going[];
  /** The release each host serves now (the group's), to mark bad once it is rolled back. */
  readonly liveBefore: (services: readonly Service[]) => ReadonlyMap<DeployCtx, string>;
}

/**
 * Reads the group's record and each host's releases, and says what each service goes back to.
 * Refused (exit 2, nothing changed) when a service was deployed or rolled back alone since, or when
 * the release it served before is gone from a host.
 */
export const planGroupRollback = async (group: Group, runs: readonly { readonly cfg: Config; readonly sessions: readonly Session[] }[]): Promise<GroupRollbackPlan> => {
  const named = runs.map((r, i) => ({ env: group.envs[i] ?? r.cfg.env, sessions: asService(group.envs[i] ?? r.cfg.env, r.sessions) }));
  const record = await readGroupRecords(group, named);
  const { readRollbackFacts, goingBackTo } = await import('./rollback.ts');
  const going: Going[] = [];
  for (const [i, svc] of named.entries()) {
    const entry = record.services[i];
    const cfg = runs[i]?.cfg;
    if (!entry || !cfg || entry.before === null) throw new SkiffError(`${group.file}: the group's record has no entry for ${svc.env}`, 2);
    let target: ReleaseRecord | undefined;
    for (const s of svc.sessions) {
      const facts = await readRollbackFacts(s);
      if (facts.liveId !== entry.after) {
        throw new SkiffError(
          `${s.host.name} serves ${facts.liveId ?? 'nothing'}, not ${entry.after} of the group's last deploy (${record.id}): it was deployed or rolled back alone since; roll back each service with \`npx tsx scripts/rollback.ts ${svc.env}\``,
          2,
        );
      }
      if (!facts.onHost.includes(entry.before)) throw new SkiffError(`${s.host.name}: release ${entry.before}, which served before the group's last deploy, is not on the host any more (pruned): roll back each service with scripts/rollback.ts`, 2);
      target ??= facts.history.find((r) => r.id === entry.before);
    }
    if (!target) throw new SkiffError(`${svc.env}: release ${entry.before} is not in the history of its host: roll back each service with scripts/rollback.ts`, 2);
    going.push(goingBackTo(target, cfg));
  }
  return {
    record,
    going,
    liveBefore: (services) => new Map(services.flatMap((s, i) => s.ctxs.map((c) => [c, record.services[i]?.after ?? ''] as const))),
  };
};

/** After a failed group run: whether every service serves, healthy, the release it served before the run. */
export const verdict = async (all: readonly DeployCtx[]): Promise<string> => {
  const { observeServing } = await import('./status.ts');
  const back = await Promise.all(
    all.map(async (c) => {
      let before: string | undefined;
      try {
        before = c.run.previous?.slot.release;
      } catch {
        return true; // it failed before its plan was made: nothing on it changed
      }
      if (before === undefined) return true; // it served nothing before this run
      const seen = await observeServing(c);
      return seen.healthy && seen.release === before;
    }),
  );
  return back.every(Boolean)
    ? 'every service of the group is back on the release it served before'
    : `not every service is back on the release it served before: check each with \`npx tsx scripts/status.ts <env>\``;
};
