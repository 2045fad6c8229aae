/**
 * Values that were accepted but should not be: a DEPLOY_PATH that is the root or holds a newline,
 * a health path curl would read as a glob, a known_hosts pattern that took seconds to match.
 */
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { type AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { renderForExec } from '../../lib/core/cmd.ts';
import { probeHealth } from '../../lib/commands/supervisor.ts';
import { probeUrl } from '../../lib/commands/proxy.ts';
import { isDeployPath } from '../../lib/config/config.ts';
import { globMatch } from '../../lib/host/known-hosts.ts';

describe('DEPLOY_PATH', () => {
  it.each(['/', '/.', '/./', '//', '/srv/..', '/srv/../..', '/srv/x/../../', '/srv/a\nb', '/srv/a\rb', '/srv/a\tb', '/srv/\u0000', 'srv/hello', ''])(
    'refuses %j',
    (path) => expect(isDeployPath(path)).toBe(false),
  );
  it.each(['/srv/hello', '/srv/my app', '/home/u/.local/share/skiff/hello', '/srv//hello', '/srv/./hello'])('takes %j', (path) => expect(isDeployPath(path)).toBe(true));
});

describe('health probes send the path as it is written', () => {
  const serve = async (): Promise<{ port: number; seen: string[]; close: () => void }> => {
    const seen: string[] = [];
    const server = createServer((req, res) => {
      seen.push(req.url ?? '');
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { port: (server.address() as AddressInfo).port, seen, close: () => server.close() }; // listen(0) gives an AddressInfo
  };
  it.each(['/health/{a,b}', '/health/[1-2]', '/h?x=[1]&y={2}'])('%s reaches the app once, unexpanded (curl -g)', async (path) => {
    const srv = await serve();
    try {
      const { stdout } = await promisify(execFile)('/bin/sh', ['-c', renderForExec(probeHealth(srv.port, path, 3))]);
      expect(stdout.trim()).toBe('200');
      const { stdout: viaUrl } = await promisify(execFile)('/bin/sh', ['-c', renderForExec(probeUrl(`http://127.0.0.1:${srv.port}${path}`, 3))]);
      expect(viaUrl.trim()).toBe('200');
      expect(srv.seen).toEqual([path, path]);
    } finally {
      srv.close();
    }
  });
});

describe('known_hosts patterns', () => {
  it.each([
    ['*.example.com', 'web.example.com', true],
    ['web?.example.com', 'web1.example.com', true],
    ['web?.example.com', 'web.example.com', false],
    ['*', 'anything', true],
    ['', '', true],
    ['', 'a', false],
    ['a*b*c', 'aXbYc', true],
    ['a*b*c', 'aXbYcd', false],
    ['[h]:22*', '[h]:2222', true],
    ['10.0.0.*', '10.0.0.5', true],
    ['10.0.0.*', '10.0.1.5', false],
    ['*.a', 'x.a.a', true],
  ])('%s against %s: %s', (pattern, name, want) => expect(globMatch(pattern, name)).toBe(want));

  // Once a regular expression of `.*` runs: 30 stars against 60 characters that never match did not end.
  it('a pattern of many stars that cannot match ends', { timeout: 5000 }, () => {
    expect(globMatch(`${'a*'.repeat(30)}b`, 'a'.repeat(60))).toBe(false);
  });
});
