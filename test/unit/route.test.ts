/** DEPLOY_PUBLIC_URL as an env's route: its path prefix, read from the text as written, and what is refused. */
import { describe, expect, it } from 'vitest';
import { publicHealthUrl } from '../../lib/flows/health.ts';
import { prefixProblem, publicPrefix, underPrefix } from '../../lib/proxy/route.ts';
import { testConfig } from '../support/flow-ctx.ts';

describe('the path prefix of DEPLOY_PUBLIC_URL', () => {
  it.each([
    ['https://example.com', ''],
    ['https://example.com/', ''],
    ['https://example.com/api', '/api'],
    ['http://127.0.0.1:8080/api/v1', '/api/v1'],
    ['https://example.com/a-b_c.d~e', '/a-b_c.d~e'],
  ])('%s: prefix %j', (url, prefix) => {
    expect(prefixProblem(url)).toBeUndefined();
    expect(publicPrefix(testConfig({ DEPLOY_PROXY: 'caddy', DEPLOY_PUBLIC_URL: url, DEPLOY_HEALTH_PATH: `${prefix}/health` }))).toBe(prefix);
  });

  it.each([
    ['https://example.com/api/', 'without a trailing / (/api, not /api/)'],
    ['https://example.com/a/../api', 'without . or .. segments'],
    ['https://example.com/./api', 'without . or .. segments'],
    ['https://example.com/a b', '"a b" in "/a b"'],
    ['https://example.com/a%2Fb', '"a%2Fb"'],
    ['https://example.com/api*', '"api*"'],
    ['https://example.com/api(v1)?', 'without a query or fragment'],
    ['https://example.com/a[b]', '"a[b]"'],
    ['https://example.com/a^b', '"a^b"'],
    ['https://example.com/a$', '"a$"'],
    ['https://example.com/a;b', '"a;b"'],
    ['https://example.com/a"b', '"a\\"b"'],
    ['https://example.com//api', '"" in "//api"'],
    ['https://example.com/api?x=1', 'without a query or fragment'],
    ['https://example.com/#top', 'without a query or fragment'],
    ['https://example.com?', 'without a query or fragment'],
  ])('%s is refused: %s', (url, said) => {
    expect(prefixProblem(url)).toContain(said);
  });

  it('a path belongs to a prefix when it is the prefix or below it', () => {
    expect([underPrefix('/api', '/api'), underPrefix('/api/x', '/api'), underPrefix('/apix', '/api'), underPrefix('/', ''), underPrefix('/x', '')]).toEqual([true, true, false, true, true]);
  });

  it('the check through the proxy asks the health path on the origin: the app gets the path unchanged', () => {
    expect(publicHealthUrl(testConfig({ DEPLOY_PROXY: 'caddy', DEPLOY_PUBLIC_URL: 'https://example.com/api', DEPLOY_HEALTH_PATH: '/api/health' }))).toBe('https://example.com/api/health');
    expect(publicHealthUrl(testConfig({ DEPLOY_PROXY: 'caddy', DEPLOY_PUBLIC_URL: 'http://127.0.0.1:8080/', DEPLOY_HEALTH_PATH: '/up' }))).toBe('http://127.0.0.1:8080/up');
  });

  it.each([
    [{ DEPLOY_PUBLIC_URL: 'https://example.com/api', DEPLOY_HEALTH_PATH: '/health' }, 'DEPLOY_HEALTH_PATH is /health, outside the route of DEPLOY_PUBLIC_URL (e.g. DEPLOY_HEALTH_PATH=/api/health)'],
    [{ DEPLOY_PUBLIC_URL: 'https://example.com/app' }, 'DEPLOY_HEALTH_PATH is /api/health (its default), outside the route of DEPLOY_PUBLIC_URL (e.g. DEPLOY_HEALTH_PATH=/app/health)'],
    [{ DEPLOY_PUBLIC_URL: 'https://example.com/api', DEPLOY_HEALTH_PATH: '/apix/health' }, 'DEPLOY_HEALTH_PATH is /apix/health, outside'],
    [{ DEPLOY_PUBLIC_URL: 'http://example.com/api', DEPLOY_PROXY: 'haproxy', DEPLOY_HEALTH_PATH: '/health' }, 'DEPLOY_HEALTH_PATH is /health, outside the route of DEPLOY_PUBLIC_URL (e.g. DEPLOY_HEALTH_PATH=/api/health)'],
    [{ DEPLOY_PUBLIC_URL: 'http://example.com/a b', DEPLOY_PROXY: 'haproxy' }, 'expected a path prefix of letters, digits and - . _ ~ between slashes'],
    [{ DEPLOY_PUBLIC_URL: 'http://example.com/x/../api', DEPLOY_PROXY: 'haproxy' }, 'without . or .. segments'],
    [{ DEPLOY_PUBLIC_URL: 'http://example.com/api(v1)?', DEPLOY_PROXY: 'haproxy' }, 'without a query or fragment'],
    [{ DEPLOY_PUBLIC_URL: 'http://example.com/api[0-9]', DEPLOY_PROXY: 'haproxy' }, 'expected a path prefix of letters, digits and - . _ ~ between slashes'],
  ])('the config refuses %o', (values, said) => {
    expect(() => testConfig({ DEPLOY_PROXY: 'caddy', ...values })).toThrow(said);
  });

  it('HAProxy takes a path prefix like the other proxies', () => {
    const cfg = testConfig({ DEPLOY_PROXY: 'haproxy', DEPLOY_PUBLIC_URL: 'https://example.com/api', DEPLOY_HEALTH_PATH: '/api/health', DEPLOY_TLS_CERT: '/c.pem', DEPLOY_TLS_KEY: '/c.key' });
    expect(publicHealthUrl(cfg)).toBe('https://example.com/api/health');
  });
});
