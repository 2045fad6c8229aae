/**
 * Groups (docs/groups.md): the group file, what its services must not share, the record of the
 * group's last deploy, and the group deploy against recording hosts: a later service that fails
 * leaves every service on the release it served before.
 */
import { Listr } from 'listr2';
import { describe, expect, it } from 'vitest';
import { SkiffError, UsageError } from '../../lib/core/errors.ts';
import {
  asService,
  chooseGroupRecord,
  deployRecord,
  groupProblem,
  lockOrder,
  parseGroup,
  parseGroupRecord,
  type Group,
  type GroupRecord,
  type Service,
  verdict,
} from '../../lib/flows/group.ts';
import { groupDeployTasks, groupRollbackTasks } from '../../lib/cli/group-tasks.ts';
import { withRun, type Going } from '../../lib/flows/session.ts';
import { CMD, DEPLOY_ID, flowSession, forPort, hostState, slot, testConfig, thrown, historyAppended, type FlowSession } from '../support/flow-ctx.ts';
import { ok, type RecordingHost } from '../support/recording-host.ts';
import { words } from './shell-words.ts';

const ENVS = new Set(['api', 'web', 'worker']);
const parse = (text: string, name = 'shop') => parseGroup(name, `env/${name}.group`, text, (e) => ENVS.has(e), (g) => g === 'shop' || g === 'other');

describe('the group file', () => {
  it('names envs in order, one a line or comma-separated, with # comments', () => {
    expect(parse('api\nweb\n').envs).toEqual(['api', 'web']);
    expect(parse('# the API first: web calls it\napi, web  # then the frontend\n\n').envs).toEqual(['api', 'web']);
  });

  it.each([
    ['empty', '', 'env/shop.group names no env: write the envs of the group in the order they switch, one a line (e.g. api, then web)'],
    ['only comments', '# nothing yet\n', 'env/shop.group names no env: write the envs of the group in the order they switch, one a line (e.g. api, then web)'],
    ['an env twice', 'api\nweb\napi\n', 'env/shop.group names api twice: each service deploys once, name it once'],
    ['itself', 'api\nshop\n', 'env/shop.group names the group itself (shop): a group names envs, one a line'],
    ['another group', 'api\nother\n', 'env/shop.group names other, which is a group (env/other.group): groups do not nest, name its envs instead'],
    ['an env without a file', 'api\nfront\n', 'env/shop.group names front, which has no env file (env/front.env): create it or take front out of the group'],
    ['a bad name', 'api\nWeb App\n', 'env/shop.group: "Web App" is not an env name (a-z, 0-9 and -): one env a line'],
  ])('refuses %s with one line, exit 2', (_name, text, message) => {
    const error = thrown(() => parse(text));
    expect(error).toBeInstanceOf(UsageError);
    expect(error.message).toBe(message);
    expect((error as UsageError).exitCode).toBe(2);
  });
});

const GROUP: Group = { name: 'shop', file: 'env/shop.group', envs: ['api', 'web'] };
const apiCfg = (extra: Record<string, string> = {}) =>
  testConfig({ DEPLOY_PATH: '/srv/api', DEPLOY_PORTS: '4001,4002', DEPLOY_PUBLIC_URL: 'http://127.0.0.1:8080/api', DEPLOY_HEALTH_PATH: '/api/health', ...extra }, 'api');
const webCfg = (extra: Record<string, string> = {}) => testConfig({ DEPLOY_PATH: '/srv/web', ...extra }, 'web');

describe('what the services of a group must not share', () => {
  it('accepts an API at /api and a frontend at / on one host and port', () => {
    expect(groupProblem(GROUP, [apiCfg(), webCfg()])).toBeUndefined();
  });

  it.each([
    ['the same route', () => [apiCfg({ DEPLOY_PUBLIC_URL: 'http://127.0.0.1:8080', DEPLOY_HEALTH_PATH: '' }), webCfg()], 'env/shop.group: api and web have the same route (http://127.0.0.1:8080): give one another path prefix in DEPLOY_PUBLIC_URL (e.g. http://127.0.0.1:8080/api)'],
    ['the same DEPLOY_PATH on a host', () => [apiCfg({ DEPLOY_PATH: '/srv/web' }), webCfg()], 'env/shop.group: api and web have the same DEPLOY_PATH (/srv/web) on local: give each service its own'],
    ['a slot port', () => [apiCfg({ DEPLOY_PORTS: '3002,4002' }), webCfg()], 'env/shop.group: api and web both use port 3002 on local (DEPLOY_PORTS): give each service its own ports'],
    ['no proxy', () => [apiCfg(), webCfg({ DEPLOY_PROXY: 'none', DEPLOY_PORTS: '3001', DEPLOY_PUBLIC_URL: '' })], 'env/shop.group: web has DEPLOY_PROXY=none: a service of a group needs a proxy (two slots) to switch back when a later one fails; give it one or deploy it alone'],
  ])('refuses %s', (_name, cfgs, message) => {
    expect(groupProblem(GROUP, cfgs())).toBe(message);
  });

  it('takes the locks in the order of their places, whatever the order of the group', () => {
    const runs = [{ cfg: webCfg() }, { cfg: apiCfg() }];
    expect(lockOrder(runs).map((r) => r.cfg.env)).toEqual(['api', 'web']);
    expect(lockOrder([...runs].reverse()).map((r) => r.cfg.env)).toEqual(['api', 'web']);
  });
});

const A_API = '20261130-090000-1.1.0';
const A_WEB = '20261130-090001-1.1.0';
const RECORD: GroupRecord = {
  group: 'shop',
  id: '20261201-100000-shop',
  at: '2026-12-01T10:00:00.000Z',
  who: 'me@here',
  services: [
    { env: 'api', before: A_API, after: `${DEPLOY_ID}` },
    { env: 'web', before: A_WEB, after: `${DEPLOY_ID}` },
  ],
};

describe("the record of the group's last deploy", () => {
  const seen = (records: (GroupRecord | undefined)[]) => records.map((record, i) => ({ env: GROUP.envs[i] ?? '', host: GROUP.envs[i] ?? '', record }));

  it('round-trips, and a damaged one is named', () => {
    expect(parseGroupRecord(JSON.stringify(RECORD), 'x')).toEqual(RECORD);
    expect(parseGroupRecord(undefined, 'x')).toBeUndefined();
    expect(thrown(() => parseGroupRecord('{', 'api: /srv/api/.skiff/group.json')).message).toBe('api: /srv/api/.skiff/group.json is not JSON: roll back each service with scripts/rollback.ts');
    expect(thrown(() => parseGroupRecord('{"group":"shop"}', 'f')).message).toBe('f is not a group record: roll back each service with scripts/rollback.ts');
  });

  it('is taken when every service holds the same one', () => {
    expect(chooseGroupRecord(GROUP, seen([RECORD, RECORD]))).toBe(RECORD);
  });

  it.each<[string, (GroupRecord | undefined)[], string]>([
    ['a service without one', [RECORD, undefined], 'web has no record of a deploy of group shop: deploy the group first, or roll back each service with `npx tsx scripts/rollback.ts <env>`'],
    ['a service deployed with another group since', [RECORD, { ...RECORD, group: 'other' }], 'web has no record of a deploy of group shop (its last group deploy was of other): deploy the group first, or roll back each service with `npx tsx scripts/rollback.ts <env>`'],
    ['services not last deployed together', [RECORD, { ...RECORD, id: 'later' }], 'the services of shop were not last deployed together (api: 20261201-100000-shop, web: later): roll back each service with `npx tsx scripts/rollback.ts <env>`'],
    ['rolled back already', [{ ...RECORD, rolledBackAt: 'T' }, { ...RECORD, rolledBackAt: 'T' }], 'the last deploy of shop (20261201-100000-shop) was rolled back already, at T: deploy it again, or roll back each service with `npx tsx scripts/rollback.ts <env>`'],
    [
      'a service that served nothing before',
      [{ ...RECORD, services: [{ env: 'api', before: null, after: DEPLOY_ID }, RECORD.services[1] as GroupRecord['services'][number]] }, { ...RECORD, services: [{ env: 'api', before: null, after: DEPLOY_ID }, RECORD.services[1] as GroupRecord['services'][number]] }],
      'api served nothing before the group\'s last deploy (20261201-100000-shop): there is nothing to go back to; stop it with `npx tsx scripts/stop.ts api`',
    ],
  ])('is refused (exit 2) with %s', (_name, records, message) => {
    const error = thrown(() => chooseGroupRecord(GROUP, seen(records)));
    expect(error.message).toBe(message);
    expect((error as SkiffError).exitCode).toBe(2);
  });

  it('a group file that names other envs than the record is refused', () => {
    const error = thrown(() => chooseGroupRecord({ ...GROUP, envs: ['web', 'api'] }, seen([RECORD, RECORD])));
    expect(error.message).toBe('env/shop.group names web, api, but the group\'s last deploy was of api, web: roll back each service with `npx tsx scripts/rollback.ts <env>`');
  });
});

// ---- The flow against recording hosts ------------------------------------------------------------

/** A service on its own recording host, blue live (A) behind a fake Caddy; `rules` go first. */
const service = (env: 'api' | 'web', live: string, rules: Parameters<typeof flowSession>[0] = {}): { f: FlowSession; env: string } => {
  const cfg = env === 'api' ? testConfig({ DEPLOY_PUBLIC_URL: 'http://127.0.0.1:8080/api', DEPLOY_HEALTH_PATH: '/api/health' }, 'api') : testConfig({}, 'web');
  const f = flowSession({
    cfg,
    state: hostState('blue', { blue: slot(live, 3001) }),
    hostName: 'local',
    runtime: (base, host) => ({
      ...base,
      ship: async (_h, _l, spec) => {
        host.note(`ship ${spec.id}`);
        return { bytes: 10, files: 2, reused: 1 };
      },
    }),
    ...rules,
  });
  return { f, env };
};

const going: Going = { action: 'deploy', id: DEPLOY_ID, version: '1.2.0', gitSha: 'abc1234', start: 'node server.js' };

const runTasks = async (tasks: ReturnType<typeof groupDeployTasks>) => {
  const list = new Listr<object, 'silent'>(tasks, { renderer: 'silent', registerSignalListeners: false, exitOnError: true });
  return list.run({});
};

const startsOf = (host: RecordingHost) => host.events.filter((e) => e.includes(CMD.start) || e.startsWith('switch ') || e.includes(CMD.stop)).map((e) => (e.startsWith('switch ') ? e : e.includes(CMD.start) ? 'start' : 'stop'));

describe('a group deploy against recording hosts', () => {
  const make = (api: ReturnType<typeof service>, web: ReturnType<typeof service>): Service[] =>
    [api, web].map((s) => ({ env: s.env, ctxs: withRun(asService(s.env, [s.f.session]), going) }));

  it('switches every service in order, then drains the old slots and records each live', async () => {
    const api = service('api', A_API);
    const web = service('web', A_WEB);
    const services = make(api, web);
    await runTasks(groupDeployTasks(services, { dryRun: false, noBuild: true }));
    expect(api.f.switches).toEqual([3002]);
    expect(web.f.switches).toEqual([3002]);
    // api's switch comes before web's: the events of both hosts share the fake clock's order.
    expect(historyAppended(api.f.host).map((r) => r.status)).toEqual(['live']);
    expect(historyAppended(web.f.host).map((r) => r.status)).toEqual(['live']);
    expect(deployRecord(GROUP, 'g1', services, 'T', 'me@here').services).toEqual([
      { env: 'api', before: A_API, after: DEPLOY_ID },
      { env: 'web', before: A_WEB, after: DEPLOY_ID },
    ]);
  });

  it('web fails its health check: api\'s new release stops before anything switched, and the error names web', async () => {
    const api = service('api', A_API);
    const web = service('web', A_WEB, { rules: [forPort(CMD.probe, 3002, ok('503'))] });
    const services = make(api, web);
    const error = await runTasks(groupDeployTasks(services, { dryRun: false, noBuild: true })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message.split('\n')[0]).toMatch(/^web: /);
    expect(message).toContain('undone on api');
    // Neither proxy moved; each new release started and was stopped; both recorded failed.
    expect(api.f.switches).toEqual([]);
    expect(web.f.switches).toEqual([]);
    expect(startsOf(api.f.host).slice(-2)).toEqual(['start', 'stop']);
    expect(historyAppended(api.f.host).map((r) => r.status)).toEqual(['failed']);
    expect(historyAppended(web.f.host).map((r) => r.status)).toEqual(['failed']);
    expect(historyAppended(api.f.host)[0]?.reason).toMatch(/^web failed: /);
    expect(await verdict(services.flatMap((x) => x.ctxs))).toBe('every service of the group is back on the release it served before');
  });

  it("web's switch fails: api, switched already, switches back to its old slot, which never stopped", async () => {
    const api = service('api', A_API);
    // web's check through the proxy fails after its switch: switchOver switches it back itself.
    const web = service('web', A_WEB, { rules: [(c) => (c.includes(CMD.publicProbe) ? ok('502') : undefined)] });
    const services = make(api, web);
    const error = await runTasks(groupDeployTasks(services, { dryRun: false, noBuild: true })).catch((e: unknown) => e);
    const message = (error as Error).message;
    expect(message.split('\n')[0]).toMatch(/^web: .*HTTP 502 through the proxy; switched back$/);
    expect(message).toContain('undone on api');
    expect(api.f.switches).toEqual([3002, 3001]);
    expect(web.f.switches).toEqual([3002, 3001]);
    // The old slots were never drained: nothing stops blue, only the new green of each.
    for (const h of [api.f.host, web.f.host]) expect(h.commands.filter((c) => c.includes(CMD.stop) && c.includes('/srv/hello/.skiff/blue.pid'))).toEqual([]);
    expect(historyAppended(api.f.host).map((r) => r.status)).toEqual(['rolled-back']);
    expect(historyAppended(api.f.host)[0]?.reason).toMatch(/^web failed: /);
    // api's new release had the traffic for a moment: it drains (SIGTERM, DEPLOY_DRAIN_SECONDS) after the switch back, not killed.
    const apiStops = api.f.host.events.filter((e) => e.includes(CMD.stop) || e.startsWith('switch ') || e.includes(CMD.connections));
    expect(apiStops.map((e) => (e.startsWith('switch ') ? e : e.includes(CMD.connections) ? 'connections' : 'stop')).slice(-4)).toEqual(['switch 3002', 'switch 3001', 'connections', 'stop']);
    expect(words((apiStops.at(-1) ?? '').replace(/^exec /, '')).slice(-2)).toEqual(['/srv/hello#green', '10']);
    expect(historyAppended(web.f.host).map((r) => r.status)).toEqual(['rolled-back']);
    // web's old release answers 502 through this fake proxy too: the verdict says so, it does not claim.
    expect(await verdict(services.flatMap((x) => x.ctxs))).toBe('not every service is back on the release it served before: check each with `npx tsx scripts/status.ts <env>`');
  });

  it('api\'s migration fails: web\'s new release stops too, nothing switched', async () => {
    const api = service('api', A_API, { cfg: testConfig({ DEPLOY_PUBLIC_URL: 'http://127.0.0.1:8080/api', DEPLOY_HEALTH_PATH: '/api/health', DEPLOY_MIGRATE: 'alembic upgrade head' }, 'api'), rules: [(c) => (c.includes('alembic') ? { code: 1, stdout: '', stderr: 'boom' } : undefined)] });
    const web = service('web', A_WEB);
    const error = await runTasks(groupDeployTasks(make(api, web), { dryRun: false, noBuild: true })).catch((e: unknown) => e);
    const message = (error as Error).message;
    expect(message.split('\n')[0]).toMatch(/^api: DEPLOY_MIGRATE /);
    expect(message).toContain('stopped the new release of web (not switched yet)');
    expect(api.f.switches).toEqual([]);
    expect(web.f.switches).toEqual([]);
    expect(historyAppended(web.f.host).map((r) => r.status)).toEqual(['failed']);
  });

  it('a group rollback switches back the last service first and marks the group\'s releases bad', async () => {
    const api = service('api', DEPLOY_ID);
    const web = service('web', DEPLOY_ID);
    const back = (s: ReturnType<typeof service>, id: string): Service => ({ env: s.env, ctxs: withRun(asService(s.env, [s.f.session]), { ...going, action: 'rollback', id, version: '1.1.0' }) });
    const services = [back(api, A_API), back(web, A_WEB)];
    const live = new Map(services.flatMap((s) => s.ctxs.map((c) => [c, DEPLOY_ID] as const)));
    const order: string[] = [];
    for (const s of [api, web]) {
      const proxy = s.f.session.proxy;
      if (!proxy) throw new Error('a proxy');
      const switchTo = proxy.switchTo.bind(proxy);
      Object.assign(proxy, { switchTo: async (h: Parameters<typeof switchTo>[0], port: number) => (order.push(s.env), switchTo(h, port)) });
    }
    await runTasks(groupRollbackTasks(services, { dryRun: false }, live));
    expect(order).toEqual(['web', 'api']);
    expect(historyAppended(api.f.host).map((r) => [r.id, r.status])).toEqual([
      [A_API, 'live'],
      [DEPLOY_ID, 'bad'],
    ]);
  });
});

describe('a group deploy in a dry run', () => {
  it('checks every service and starts, switches and stops nothing', async () => {
    const api = service('api', A_API);
    const web = service('web', A_WEB);
    const services = [api, web].map((s) => ({ env: s.env, ctxs: withRun(asService(s.env, [s.f.session]), going) }));
    await runTasks(groupDeployTasks(services, { dryRun: true, noBuild: true }));
    for (const s of [api, web]) {
      expect(s.f.switches).toEqual([]);
      expect(s.f.host.commands.filter((c) => c.includes(CMD.start) || c.includes(CMD.stop))).toEqual([]);
      // It asked each host what it has (its tools, state.json) like a deploy's preflight.
      expect(s.f.host.commands.some((c) => c.includes(CMD.tools))).toBe(true);
    }
  });

  it('a group rollback stops when a service changed since it was planned (deployed alone)', async () => {
    const api = service('api', DEPLOY_ID);
    const web = service('web', '20261202-100000-1.3.0');
    const services = [api, web].map((s, i) => ({ env: s.env, ctxs: withRun(asService(s.env, [s.f.session]), { ...going, action: 'rollback' as const, id: [A_API, A_WEB][i] ?? '' }) }));
    const live = new Map(services.flatMap((s) => s.ctxs.map((c) => [c, DEPLOY_ID] as const)));
    const error = await runTasks(groupRollbackTasks(services, { dryRun: false }, live)).catch((e: unknown) => e);
    expect((error as Error).message).toContain(`web serves 20261202-100000-1.3.0 now, not ${DEPLOY_ID} of the group's last deploy: it changed since; run the rollback again`);
    expect((error as SkiffError).exitCode).toBe(2);
    expect([...api.f.switches, ...web.f.switches]).toEqual([]);
  });
});
