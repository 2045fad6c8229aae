import { describe, expect, it } from 'vitest';
import { render, type Cmd } from '../../lib/core/cmd.ts';
import { acquireLock, breakAndTake, releaseLock } from '../../lib/commands/lock.ts';
import {
  appendLine,
  exists,
  listReleases,
  prepareLayout,
  publishEnv,
  removePartials,
  removeReleases,
  switchCurrent,
  tail,
} from '../../lib/commands/release.ts';
import { finishRelease, linkInto, seedFromLive, unpackInto, updateManifest } from '../../lib/commands/delta.ts';
import { caddyRequest, nginx, nginxMaster, nginxWorkers, probeUrl } from '../../lib/commands/proxy.ts';
import { portStatus, probeHealth, slotMarker, slotStatus, startSlot, stopSlot, type SlotSpec } from '../../lib/commands/supervisor.ts';
import { layout } from '../../lib/core/paths.ts';
import { words } from './shell-words.ts';

/** The arguments of a `script()` command as sh would receive them ($1, $2...), from the rendered text. */
const scriptArgs = (c: Cmd): string[] => {
  if (c.kind !== 'script') throw new Error(`not a script: ${c.kind}`);
  const w = words(render(c));
  expect(w.slice(0, 4)).toEqual(['sh', '-c', c.text, 'sh']);
  return w.slice(4);
};

const l = layout('/srv/a b');
const EVIL = '1; rm -rf /';

describe('release builders: exact text', () => {
  it.each<[string, Cmd, string]>([
    [
      'switchCurrent (the style guide example)',
      switchCurrent(l, '1.2.0'),
      "ln -sfn releases/1.2.0 '/srv/a b/.current-tmp' && mv -T '/srv/a b/.current-tmp' '/srv/a b/current'",
    ],
    ['switchCurrent, plain path', switchCurrent(layout('/srv/app'), 'r1'), 'ln -sfn releases/r1 /srv/app/.current-tmp && mv -T /srv/app/.current-tmp /srv/app/current'],
    [
      'removeReleases',
      removeReleases(l, ['r1', 'r2']),
      "rm -rf '/srv/a b/releases/r1' '/srv/a b/.skiff/env/r1.env' '/srv/a b/.skiff/manifests/r1.json' '/srv/a b/releases/r2' '/srv/a b/.skiff/env/r2.env' '/srv/a b/.skiff/manifests/r2.json'",
    ],
    ['removeReleases of none', removeReleases(l, []), 'rm -rf'],
    [
      'prepareLayout',
      prepareLayout(l),
      "mkdir -p '/srv/a b/releases' '/srv/a b/shared/data' '/srv/a b/shared/logs' '/srv/a b/.skiff/env' '/srv/a b/.skiff/manifests' && chmod 700 '/srv/a b/.skiff' '/srv/a b/.skiff/env' '/srv/a b/shared/logs'",
    ],
    [
      'publishEnv',
      publishEnv(l, 'r1'),
      "cp '/srv/a b/.skiff/env/r1.env' '/srv/a b/shared/.env.tmp' && chmod 600 '/srv/a b/shared/.env.tmp' && mv -T '/srv/a b/shared/.env.tmp' '/srv/a b/shared/.env'",
    ],
    [
      'appendLine',
      appendLine(l.history),
      `sh -c 'if [ -s "$1" ] && [ -n "$(tail -c 1 "$1")" ]; then echo >>"$1"; fi; cat >>"$1"' sh '/srv/a b/.skiff/releases.jsonl'`,
    ],
  ])('%s', (_name, c, expected) => {
    expect(render(c)).toBe(expected);
  });
});

describe('release builders: a hostile release id stays one word', () => {
  it.each<[string, Cmd, string[]]>([
    [
      'switchCurrent',
      switchCurrent(layout('/srv/app'), EVIL),
      ['ln', '-sfn', `releases/${EVIL}`, '/srv/app/.current-tmp', '&&', 'mv', '-T', '/srv/app/.current-tmp', '/srv/app/current'],
    ],
    ['removeReleases', removeReleases(l, [EVIL]), ['rm', '-rf', `/srv/a b/releases/${EVIL}`, `/srv/a b/.skiff/env/${EVIL}.env`, `/srv/a b/.skiff/manifests/${EVIL}.json`]],
    [
      'publishEnv',
      publishEnv(l, EVIL),
      ['cp', `/srv/a b/.skiff/env/${EVIL}.env`, '/srv/a b/shared/.env.tmp', '&&', 'chmod', '600', '/srv/a b/shared/.env.tmp', '&&', 'mv', '-T', '/srv/a b/shared/.env.tmp', '/srv/a b/shared/.env'],
    ],
    ['a path with quotes', prepareLayout(layout(`/srv/it's "x"`)), [
      'mkdir', '-p', `/srv/it's "x"/releases`, `/srv/it's "x"/shared/data`, `/srv/it's "x"/shared/logs`, `/srv/it's "x"/.skiff/env`, `/srv/it's "x"/.skiff/manifests`, '&&',
      'chmod', '700', `/srv/it's "x"/.skiff`, `/srv/it's "x"/.skiff/env`, `/srv/it's "x"/shared/logs`,
    ]],
  ])('%s', (_name, c, expected) => {
    expect(words(render(c))).toEqual(expected);
  });
});

const spec: SlotSpec = {
  slot: 'blue',
  releaseDir: `/srv/a b/releases/${EVIL}`,
  port: 3001,
  start: `node "server.js" --name 'x y'`,
  version: "1.0.0 it's",
  env: 'staging',
  envFile: `/srv/a b/.skiff/env/${EVIL}.env`,
};

describe('script builders: arguments cross as single quoted words', () => {
  it.each<[string, Cmd, string[]]>([
    ['acquireLock', acquireLock(l, EVIL), ['/srv/a b/.skiff', '/srv/a b/.skiff/lock', '/srv/a b/.skiff/lock/holder.json', '/srv/a b/.skiff/lock.mutex', EVIL]],
    ['releaseLock', releaseLock(l, `tok'en ${EVIL}`), ['/srv/a b/.skiff', '/srv/a b/.skiff/lock', '/srv/a b/.skiff/lock/holder.json', '/srv/a b/.skiff/lock.mutex', `"token": "tok'en ${EVIL}"`]],
    ['breakAndTake', breakAndTake(l, EVIL, `t ${EVIL}`, `{${EVIL}}`), ['/srv/a b/.skiff', '/srv/a b/.skiff/lock', '/srv/a b/.skiff/lock/holder.json', '/srv/a b/.skiff/lock.mutex', EVIL, `t ${EVIL}`, `{${EVIL}}`]],
    ['listReleases', listReleases(l), ['/srv/a b/releases']],
    ['exists', exists(l.release(EVIL)), [`/srv/a b/releases/${EVIL}`]],
    ['tail', tail(l.log('blue'), 10), ['/srv/a b/shared/logs/blue.log', '10']],
    ['slotStatus', slotStatus(l, 'blue'), ['/srv/a b/.skiff/blue.pid', '/srv/a b#blue']],
    ['stopSlot', stopSlot(l, 'green', 10), ['/srv/a b/.skiff/green.pid', '/srv/a b#green', '10']],
    [
      'startSlot',
      startSlot(l, spec),
      [
        `/srv/a b/releases/${EVIL}`,
        `/srv/a b/.skiff/env/${EVIL}.env`,
        '3001',
        '/srv/a b/shared/data',
        "1.0.0 it's",
        'staging',
        '/srv/a b#blue',
        `node "server.js" --name 'x y'`,
        '/srv/a b/shared/logs/blue.log',
        '/srv/a b/.skiff/blue.pid',
      ],
    ],
    ['portStatus', portStatus(3001), ['3001']],
    ['probeHealth', probeHealth(3001, `/api/health?q=a b'c"; rm -rf /`, 5), ['3001', `/api/health?q=a b'c"; rm -rf /`, '5']],
    ['caddyRequest', caddyRequest('127.0.0.1:2019', 'PATCH', `/id/skiff-a-b/x'y`), ['PATCH', '127.0.0.1:2019', `/id/skiff-a-b/x'y`, '5', '15']],
    ['nginx', nginx('nginx -p /srv/n x -c /srv/n/nginx.conf', '-s', 'reload'), ['nginx -p /srv/n x -c /srv/n/nginx.conf', '-s', 'reload']],
    ['nginxMaster', nginxMaster(`sudo nginx -c '/etc/n $(x).conf'`), [`sudo nginx -c '/etc/n $(x).conf'`]],
    ['nginxWorkers', nginxWorkers('1234'), ['1234']],
    ['seedFromLive', seedFromLive(l.release(EVIL), `${l.release(EVIL)}.partial`), [`/srv/a b/releases/${EVIL}`, `/srv/a b/releases/${EVIL}.partial`]],
    ['removePartials', removePartials(l), ['/srv/a b/releases']],
    ['updateManifest', updateManifest(`/srv/a b/.skiff/manifests/${EVIL}.json`, '/srv/a b/.skiff/manifests/r.json'), [`/srv/a b/.skiff/manifests/${EVIL}.json`, '/srv/a b/.skiff/manifests/r.json']],
    ['unpackInto', unpackInto(`/srv/a b/releases/${EVIL}.partial`), [`/srv/a b/releases/${EVIL}.partial`]],
    ['linkInto', linkInto(`/srv/a b/releases/${EVIL}.partial`), [`/srv/a b/releases/${EVIL}.partial`]],
    ['finishRelease', finishRelease('/srv/a b/releases/r.partial', `/srv/a b/releases/${EVIL}`, 12), ['/srv/a b/releases/r.partial', `/srv/a b/releases/${EVIL}`, '12']],
    ['probeUrl', probeUrl(`http://h/$(id)`, 5), [`http://h/$(id)`, '5']],
  ])('%s', (_name, c, expected) => {
    expect(scriptArgs(c)).toEqual(expected);
  });

  it.each<[string, Cmd, string]>([
    ['acquireLock', acquireLock(l, "it's"), " sh '/srv/a b/.skiff' '/srv/a b/.skiff/lock' '/srv/a b/.skiff/lock/holder.json' '/srv/a b/.skiff/lock.mutex' 'it'\\''s'"],
    ['releaseLock', releaseLock(l, "it's"), " sh '/srv/a b/.skiff' '/srv/a b/.skiff/lock' '/srv/a b/.skiff/lock/holder.json' '/srv/a b/.skiff/lock.mutex' '\"token\": \"it'\\''s\"'"],
    ['probeHealth', probeHealth(8080, '/health', 3), ' sh 8080 /health 3'],
    ['stopSlot', stopSlot(layout('/srv/app'), 'blue', 0), " sh /srv/app/.skiff/blue.pid '/srv/app#blue' 0"],
  ])('%s: rendered arguments', (_name, c, suffix) => {
    expect(render(c).slice(0, 7)).toBe("sh -c '");
    expect(render(c).slice(-suffix.length)).toBe(suffix);
  });

  it.each<[string, Cmd]>([
    ['acquireLock', acquireLock(l, '{}')],
    ['releaseLock', releaseLock(l, 't')],
    ['slotStatus', slotStatus(l, 'blue')],
    ['startSlot', startSlot(l, spec)],
    ['stopSlot', stopSlot(l, 'blue', 1)],
    ['portStatus', portStatus(1)],
    ['probeHealth', probeHealth(1, '/', 1)],
  ])('%s: positional parameters past 9 are braced (sh reads $10 as ${1}0)', (_name, c) => {
    if (c.kind !== 'script') throw new Error('not a script');
    expect(c.text).not.toMatch(/\$[1-9][0-9]/);
  });

  it('the slot marker names the deploy path and the slot', () => {
    expect(slotMarker(l, 'blue')).toBe('/srv/a b#blue');
  });
});

describe('time limits inside remote scripts', () => {
  it('every curl to Caddy\'s admin API has a connect timeout and a limit on the whole answer', () => {
    const c = caddyRequest('127.0.0.1:2019', 'GET', '/config/');
    if (c.kind !== 'script') throw new Error('not a script');
    const curls = c.text.split('\n').filter((line) => line.includes('curl '));
    expect(curls).toHaveLength(2);
    for (const line of curls) expect(line).toContain('curl -sS --connect-timeout "$4" --max-time "$5" -X "$1"');
    expect(scriptArgs(caddyRequest('a:1', 'PUT', '/x', 3)).slice(3)).toEqual(['3', '3']); // connecting never outlasts the answer
    expect(scriptArgs(caddyRequest('a:1', 'PUT', '/x', 60)).slice(3)).toEqual(['5', '60']);
  });

  it('a health probe limits the whole request: curl -m, wget under timeout; a cut or late answer is 000', () => {
    const c = probeHealth(3001, '/health', 4);
    if (c.kind !== 'script') throw new Error('not a script');
    expect(c.text).toContain('c=$(curl -g -s -o /dev/null -w "%{http_code}" -m "$3" "$url") || c=000; echo "$c"');
    expect(c.text).toContain('h=$(timeout "$3" wget -q -S -O /dev/null -T "$3" "$url" 2>&1); s=$?');
    expect(c.text).toContain('case "$s" in 0 | 8) ;; *) h= ;; esac');
    const u = probeUrl('http://127.0.0.1:8080/health', 5);
    if (u.kind !== 'script') throw new Error('not a script');
    expect(u.text).toBe('c=$(curl -g -s -o /dev/null -w "%{http_code}" -m "$2" "$1") || c=000; echo "$c"');
  });
});
