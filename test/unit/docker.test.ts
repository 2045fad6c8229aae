/** Docker command builders: argument lists, one word per argument. */
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { render, renderForExec } from '../../lib/core/cmd.ts';
import {
  containersStatus,
  dockerBuild,
  dockerCheck,
  freeKilobytes,
  hostImageLayers,
  imageId,
  imageLabels,
  releaseRef,
  runContainer,
  stopAndRemoveContainers,
  stopContainer,
  untagRelease,
  workerContainerName,
  workerContainers,
} from '../../lib/commands/docker.ts';
import { workerContainerRun, workerStartFailure } from '../../lib/runtime/docker.ts';
import { parseContainerStatus } from '../../lib/runtime/docker.ts';
import { words } from './shell-words.ts';

describe('docker builders', () => {
  it('builds with the Dockerfile, tag, build arguments and labels, each its own word', () => {
    expect(
      dockerBuild({ tag: 'hello:1.2.0', dockerfile: '/app dir/Dockerfile', context: '/app dir', buildArgs: ['BASE=node:20-slim', "NOTE=it's $(x)"], labels: { 'skiff.version': '1.2.0' } }),
    ).toEqual(['docker', 'build', '--file', '/app dir/Dockerfile', '--tag', 'hello:1.2.0', '--build-arg', 'BASE=node:20-slim', '--build-arg', "NOTE=it's $(x)", '--label', 'skiff.version=1.2.0', '/app dir']);
  });
  it('labels carry the version, the git sha when known, and the build time', () => {
    expect(imageLabels('1.2.0', 'abc1234', '2026-11-23T05:00:00.000Z')).toEqual({
      'org.opencontainers.image.version': '1.2.0',
      'org.opencontainers.image.revision': 'abc1234',
      'org.opencontainers.image.created': '2026-11-23T05:00:00.000Z',
      'skiff.version': '1.2.0',
    });
    expect(imageLabels('1.2.0', undefined, 't')).not.toHaveProperty('org.opencontainers.image.revision');
  });
  it('asks for an image id', () => expect(imageId('hello:1.2.0')).toEqual(['docker', 'image', 'inspect', '--format', '{{.Id}}', 'hello:1.2.0']));
});

describe('docker host commands, rendered', () => {
  it('runs a slot container with the app keys by name only, labels, and every value one word', () => {
    const text = render(
      runContainer({
        name: 'hello-prod-blue',
        image: 'sha256:abc',
        envFile: '/srv/a b/.skiff/env/1.env',
        envKeys: ['API_TOKEN', 'GREETING'],
        dataDir: '/srv/a b/shared/data',
        env: { PORT: '3001', APP_VERSION: "1.0 $(x)" },
        labels: { 'skiff.release': "r;1'" },
      }),
    );
    const w = words(text);
    expect(w.slice(0, 3)).toEqual(['sh', '-c', w[2]]);
    expect(w.slice(4)).toEqual([
      'hello-prod-blue',
      'sha256:abc',
      '/srv/a b/.skiff/env/1.env',
      '/srv/a b/shared/data',
      '2',
      '0',
      'API_TOKEN',
      'GREETING',
      '-e',
      'PORT=3001',
      '-e',
      'APP_VERSION=1.0 $(x)',
      '--label',
      "skiff.release=r;1'",
    ]);
    expect(w[2]).toContain('"$docker" run -d --name "$name" --network host --restart unless-stopped -v "$data:/data" --env-file "$tmp/env" "$@"');
  });
  describe('run by sh with a stand-in docker', () => {
    // The stand-in prints its arguments, the env file it was given, and what of its own environment the app could have set.
    const STAND_IN = [
      '#!/bin/sh',
      '[ "$1" = run ] || exit 0',
      'printf "arg %s\\n" "$@"',
      'while [ "$#" -gt 0 ]; do [ "$1" = --env-file ] && { ls -l "$2" | cut -c1-10 | sed "s/^/mode /"; sed "s/^/file /" "$2"; }; shift; done',
      'printf "client HOME=%s PATH=%s DOCKER_HOST=%s HTTPS_PROXY=%s\\n" "$HOME" "$PATH" "${DOCKER_HOST-unset}" "${HTTPS_PROXY-unset}"',
      'printf "client PEM=%s\\n" "$PEM"',
    ].join('\n');
    const runWith = (envText: string, keys: readonly string[], command?: readonly string[]): { out: string[]; dir: string; code: number } => {
      const dir = mkdtempSync(join(tmpdir(), 'skiff-run-'));
      writeFileSync(join(dir, 'docker'), `${STAND_IN}\n`, { mode: 0o755 });
      mkdirSync(join(dir, 'env'));
      writeFileSync(join(dir, 'env', 'app.env'), envText);
      mkdirSync(join(dir, 'data'));
      const text = renderForExec(
        runContainer({ name: 'hello-p-blue', image: 'sha256:good', envFile: join(dir, 'env', 'app.env'), envKeys: keys, dataDir: join(dir, 'data'), env: {}, labels: {}, ...(command ? { command } : {}) }),
      );
      const r = spawnSync('/bin/sh', ['-c', text], { encoding: 'utf8', env: { PATH: `${dir}:/usr/bin:/bin`, HOME: '/home/deployer' } });
      return { out: `${r.stdout}${r.stderr}`.trim().split('\n'), dir, code: r.status ?? -1 };
    };
    it('an app key named like a variable of the script changes none of its words', () => {
      const { out, dir } = runWith("image='evil:latest'\nname='other'\ndata='/'\ndocker='/bin/false'\nkey='k'\nv='v'\nGREETING='it'\\''s $(x)'\n", ['GREETING', 'data', 'docker', 'image', 'key', 'name', 'v']);
      try {
        const args = out.filter((l) => l.startsWith('arg ')).map((l) => l.slice(4));
        expect(args).toEqual(['run', '-d', '--name', 'hello-p-blue', '--network', 'host', '--restart', 'unless-stopped', '-v', `${join(dir, 'data')}:/data`, '--env-file', expect.stringMatching(/\/env\/\.run\.\w+\/env$/), 'sha256:good']);
        expect(out.filter((l) => l.startsWith('file '))).toEqual(["file GREETING=it's $(x)", 'file data=/', 'file docker=/bin/false', 'file image=evil:latest', 'file key=k', 'file name=other', 'file v=v']);
        expect(out).toContain('mode -rw-------');
        // The private env file is gone once docker has read it.
        expect(readdirSync(join(dir, 'env'))).toEqual(['app.env']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
    it("a worker's container runs its command's words after the image, each one word", () => {
      const command = ['sh', '-c', `node worker.js --name "a b" $(id) 'q' ; echo done`, 'x y'];
      const { out, dir } = runWith("ONE='1'\n", ['ONE'], command);
      try {
        const args = out.filter((l) => l.startsWith('arg ')).map((l) => l.slice(4));
        expect(args.slice(-5)).toEqual(['sha256:good', ...command]);
        expect(args).toContain('--env-file');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
    it('app keys such as HOME, PATH, DOCKER_HOST and HTTPS_PROXY reach the container but never the docker client', () => {
      const { out, dir } = runWith("DOCKER_HOST='tcp://evil:2375'\nHOME='/nowhere'\nHTTPS_PROXY='http://evil:3128'\nPATH='/evil/bin'\n", ['DOCKER_HOST', 'HOME', 'HTTPS_PROXY', 'PATH']);
      try {
        expect(out).toContain(`client HOME=/home/deployer PATH=${dir}:/usr/bin:/bin DOCKER_HOST=unset HTTPS_PROXY=unset`);
        expect(out.filter((l) => l.startsWith('file '))).toEqual(['file DOCKER_HOST=tcp://evil:2375', 'file HOME=/nowhere', 'file HTTPS_PROXY=http://evil:3128', 'file PATH=/evil/bin']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
    it('a value of several lines goes by name through the environment, whole; under a client key it is refused (exit 6)', () => {
      const pem = "-----BEGIN KEY-----\nab'c $(x)\n-----END KEY-----";
      const ok = runWith(`PEM=${"'" + pem.replaceAll("'", "'\\''") + "'"}\nONE='1'\n`, ['ONE', 'PEM']);
      try {
        const args = ok.out.filter((l) => l.startsWith('arg ')).map((l) => l.slice(4));
        expect(args.slice(-3)).toEqual(['-e', 'PEM', 'sha256:good']);
        expect(ok.out.filter((l) => l.startsWith('file '))).toEqual(['file ONE=1']);
        expect(ok.out.join('\n')).toContain(`client PEM=${pem}`);
      } finally {
        rmSync(ok.dir, { recursive: true, force: true });
      }
      // A line inside a value that looks like an assignment adds no name of its own.
      const inner = runWith("MULTI='line1\nexport HOME=/evil\nexport SSH_AUTH_SOCK=x'\n", ['MULTI']);
      try {
        expect(inner.out.filter((l) => l.startsWith('arg ')).map((l) => l.slice(4)).filter((a, i, all) => all[i - 1] === '-e')).toEqual(['MULTI']);
      } finally {
        rmSync(inner.dir, { recursive: true, force: true });
      }
      const bad = runWith("HOME='a\nb'\n", ['HOME']);
      try {
        expect(bad.code).toBe(6);
        expect(bad.out.join('\n')).toMatch(/^app key HOME has a value of several lines.*put the value on one line$/);
        expect(bad.out.join('\n')).not.toContain('arg run');
      } finally {
        rmSync(bad.dir, { recursive: true, force: true });
      }
    });
  });
  it('worker containers: named per process and release, read together, listed by label, stopped side by side and removed', () => {
    expect(workerContainerName('hello', 'prod', '20261206-101500-1.2.0', 'queue.2')).toBe('hello-prod-worker-queue.2-20261206-101500-1.2.0');
    expect(words(render(containersStatus(['a-1', 'b-2']))).slice(-2)).toEqual(['a-1', 'b-2']);
    expect(render(workerContainers('hello', 'prod'))).toContain(`--filter "label=skiff.app=$1" --filter "label=skiff.env=$2" --filter label=skiff.worker`);
    const stop = render(stopAndRemoveContainers(['w-1', 'w-2'], 9));
    expect(words(stop).slice(-3)).toEqual(['9', 'w-1', 'w-2']);
    expect(stop.indexOf('docker stop -t "$grace" $up')).toBeLessThan(stop.indexOf('docker rm -f $there'));
    expect(workerContainerRun('q.1', 'n running 42 0')).toEqual({ id: 'q.1', state: 'running', pid: 42, restarts: 0 });
    expect(workerContainerRun('q.1', 'n running 43 3')).toEqual({ id: 'q.1', state: 'running', pid: 43, restarts: 3 });
    expect(workerContainerRun('q.1', 'n restarting 0 5')).toEqual({ id: 'q.1', state: 'crashed', pid: 0, restarts: 5 });
    expect(workerContainerRun('q.1', 'n exited 0 0')).toEqual({ id: 'q.1', state: 'stopped' });
    expect(workerContainerRun('q.1', 'n absent')).toEqual({ id: 'q.1', state: 'stopped' });
    expect(workerContainerRun('q.1', undefined)).toEqual({ id: 'q.1', state: 'stopped' });
  });
  it("a worker container docker cannot start is one line with the daemon's reason, and the fix for an image without sh", () => {
    const stderr =
      'docker: Error response from daemon: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: "sh": executable file not found in $PATH: unknown.\n\nRun \'docker run --help\' for more information\n';
    const line = workerStartFailure('local', 'mail.1', 'r1', 'node m.js && echo', stderr.replace('unknown.', 'unknown'));
    expect(line).toBe(
      'local: docker could not start worker mail.1 of release r1: exec: "sh": executable file not found in $PATH: the image has no sh to run `node m.js && echo`; write it as plain words (no $, |, &&, >), or build the image with a shell',
    );
    expect(workerStartFailure('local', 'q.1', 'r1', 'x', 'docker: Error response from daemon: No such image: sha256:ab.\n')).toBe('local: docker could not start worker q.1 of release r1: Error response from daemon: No such image: sha256:ab.');
    expect(workerStartFailure('local', 'q.1', 'r1', 'x', '')).toBe('local: docker could not start worker q.1 of release r1: no reason given');
  });
  it('stops with a grace period and tells a kill from a stop', () => {
    expect(render(stopContainer('hello-prod-blue', 10))).toMatch(/docker stop -t "\$2" "\$1".* sh hello-prod-blue 10$/s);
  });
  it('release refs are valid docker tags of the app', () => {
    expect(releaseRef('hello', 'prod', '20261202-051500-1.2.0+build.1')).toBe('hello:prod-20261202-051500-1.2.0-build.1');
    expect(releaseRef('hello', 'prod', 'x'.repeat(200)).length).toBe('hello:'.length + 128);
  });
  it('untagging a release names its ref and the version tag as words', () => {
    expect(words(render(untagRelease('hello:prod-1', 'hello:1.0.0'))).slice(-2)).toEqual(['hello:prod-1', 'hello:1.0.0']);
  });
  it('lists host layers and checks docker without a value from outside', () => {
    expect(render(hostImageLayers())).toContain('docker image ls -a -q --no-trunc');
    expect(render(freeKilobytes("/var/lib/my docker"))).toMatch(/ sh '\/var\/lib\/my docker'$/);
    expect(render(dockerCheck())).toContain('command -v docker');
  });
});

describe('parseContainerStatus', () => {
  it.each([
    ['running 4242 sha256:abc healthy', { state: 'running', pid: 4242, pidFileOk: true, container: { name: 'c', image: 'sha256:abc', health: 'healthy' } }],
    ['restarting 0 sha256:abc -', { state: 'crashed', pid: 0, container: { name: 'c', image: 'sha256:abc', health: '-' } }],
    ['exited 0 sha256:abc -', { state: 'stopped', container: { name: 'c', image: 'sha256:abc', health: '-' } }],
    ['absent', { state: 'stopped' }],
    ['', { state: 'stopped' }],
  ])('%j', (line, expected) => expect(parseContainerStatus('c', line)).toEqual(expected));
});
