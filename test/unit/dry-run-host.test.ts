/**
 * The dry-run host: a command that only reads (marked with `reads`) runs on the real host, so a dry
 * run reports the host's answers; every other command is printed and changes nothing.
 */
import { describe, expect, it } from 'vitest';
import { DryRunHost, dryRunDone } from '../../lib/cli/run.ts';
import { listReleases, missingTools, exists, prepareLayout } from '../../lib/commands/release.ts';
import { portStatus, probeHealth, slotStatus, startSlot } from '../../lib/commands/supervisor.ts';
import { liveManifestAndFiles, seedFromLive, unpackersProbe, unpackInto } from '../../lib/commands/delta.ts';
import { caddyRequest, connectionsTo, tcpMigrateReq } from '../../lib/commands/proxy.ts';
import { readFlag, setFlag } from '../../lib/commands/switch-flag.ts';
import { dockerCheck, hostImageLayers, loadImage } from '../../lib/commands/docker.ts';
import { currentRelease } from '../../lib/commands/state.ts';
import { cmd, reads, render } from '../../lib/core/cmd.ts';
import { LocalHost } from '../../lib/host/local.ts';
import type { Host } from '../../lib/host/host.ts';
import { layout } from '../../lib/core/paths.ts';
import { ok, RecordingHost, when } from '../support/recording-host.ts';

const l = layout('/srv/hello');

describe('DryRunHost', () => {
  it('runs what only reads on the real host, and prints the rest', async () => {
    const inner = new RecordingHost([when('for c in', ok('flock\n')), when('mkdir', ok('made'))], 'web1');
    const printed: string[] = [];
    const dry = new DryRunHost(inner, (line) => printed.push(line));
    expect((await dry.exec(missingTools(['sh', 'flock']))).stdout).toBe('flock\n');
    expect((await dry.exec(prepareLayout(l))).stdout).toBe('');
    expect(inner.commands).toEqual([render(missingTools(['sh', 'flock']))]);
    expect(printed).toEqual([`[dry-run] web1: ${render(prepareLayout(l))}`]);
  });

  it('prints a read that is fed input: what goes in may be what it would change', async () => {
    const inner = new RecordingHost([], 'web1');
    const printed: string[] = [];
    await new DryRunHost(inner, (line) => printed.push(line)).exec(reads(cmd('cat')), { stdin: 'x' });
    expect(inner.commands).toEqual([]);
    expect(printed).toEqual(['[dry-run] web1: cat < (input)']);
  });
});

describe('what is marked as only reading', () => {
  it.each([
    ['listReleases', listReleases(l)],
    ['missingTools', missingTools(['sh'])],
    ['exists', exists('/srv/hello/releases/x')],
    ['slotStatus', slotStatus(l, 'blue')],
    ['portStatus', portStatus(3001)],
    ['probeHealth', probeHealth(3001, '/health', 3)],
    ['liveManifestAndFiles', liveManifestAndFiles('/m.json', '/srv/r', false)],
    ['unpackersProbe', unpackersProbe()],
    ['connectionsTo', connectionsTo(3001)],
    ['tcpMigrateReq', tcpMigrateReq()],
    ['readFlag', readFlag('/var/lib/skiff/hello-t')],
    ['dockerCheck', dockerCheck()],
    ['hostImageLayers', hostImageLayers()],
    ['currentRelease', currentRelease(l)],
  ])('%s', (_name, command) => expect(command.reads).toBe(true));

  it.each([
    ['prepareLayout', prepareLayout(l)],
    ['startSlot', startSlot(l, { slot: 'blue', releaseDir: '/srv/hello/releases/r1', port: 3001, start: 'node server.js', version: '1.0.0', env: 't', envFile: '/srv/hello/.skiff/env/r1.env' })],
    ['seedFromLive', seedFromLive('/a', '/b')],
    ['unpackInto', unpackInto('/b', 'zstd')],
    ['setFlag', setFlag('/var/lib/skiff/hello-t', true)],
    ['loadImage', loadImage('zstd')],
    ['a Caddy request, which may change its config', caddyRequest('127.0.0.1:2019', 'GET', '/config/')],
  ])('not %s', (_name, command) => expect(command.reads).toBeUndefined());
});

describe('the words of a dry run', () => {
  it('says what a deploy or a rollback would do, never that it did', () => {
    expect(dryRunDone('deployed 1.2.0 (release r2) to t: http://127.0.0.1:8080')).toBe('dry run: nothing was changed (would deploy 1.2.0 (release r2) to t: http://127.0.0.1:8080)');
    expect(dryRunDone('rolled t back to r1 (version 1.0.0): http://x/')).toBe('dry run: nothing was changed (would roll t back to r1 (version 1.0.0): http://x/)');
  });

  it('marks its host as a dry run', () => {
    expect(new DryRunHost(new LocalHost(), () => {}).dryRun).toBe(true);
    const plain: Host = new LocalHost();
    expect(plain.dryRun).toBeUndefined();
  });
});
