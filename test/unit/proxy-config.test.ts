import { describe, expect, it } from 'vitest';
import { testConfig } from '../support/flow-ctx.ts';

describe('proxy settings in the config', () => {
  it('reads TLS files, ACME, headers, compression and the access log', () => {
    const cfg = testConfig({
      DEPLOY_PROXY: 'nginx',
      DEPLOY_PUBLIC_URL: 'https://example.com',
      DEPLOY_TLS_CERT: '/etc/ssl/a.pem',
      DEPLOY_TLS_KEY: '/etc/ssl/a.key',
      DEPLOY_HEADERS: 'nosniff,referrer',
      DEPLOY_COMPRESSION: 'none',
      DEPLOY_ACCESS_LOG: 'off',
    });
    expect(cfg.tls).toEqual({ cert: '/etc/ssl/a.pem', key: '/etc/ssl/a.key', certbot: false, acmeCa: undefined, acmeEmail: undefined, acmeCaRoot: undefined });
    expect(cfg.http).toEqual({ headers: ['nosniff', 'referrer'], compression: [], accessLog: 'off' });
    expect(testConfig({ DEPLOY_PUBLIC_URL: 'https://example.com', DEPLOY_ACME_CA: 'https://127.0.0.1:14000/dir' }).tls.acmeCa).toBe('https://127.0.0.1:14000/dir');
  });

  it.each([
    [{ DEPLOY_PROXY: 'none', DEPLOY_PORTS: '3001', DEPLOY_PUBLIC_URL: 'https://example.com' }, /DEPLOY_PUBLIC_URL .*an http:\/\/ URL with DEPLOY_PROXY=none/],
    [{ DEPLOY_PUBLIC_URL: 'https://203.0.113.7' }, /DEPLOY_PUBLIC_URL .*a domain name for an ACME certificate \(an IP address gets none\)/],
    [{ DEPLOY_PUBLIC_URL: 'https://[2001:db8::1]' }, /an IP address gets none/],
    [{ DEPLOY_PROXY: 'nginx', DEPLOY_PUBLIC_URL: 'https://203.0.113.7' }, /DEPLOY_PUBLIC_URL .*a domain name for a certificate from certbot \(an IP address gets none\)/],
    [{ DEPLOY_PROXY: 'haproxy', DEPLOY_PUBLIC_URL: 'https://example.com' }, /DEPLOY_TLS_CERT .*DEPLOY_PROXY=haproxy/],
    [{ DEPLOY_PUBLIC_URL: 'https://example.com', DEPLOY_TLS_CERT: '/etc/ssl/a.pem' }, /DEPLOY_TLS_KEY .*both, or neither/],
    [{ DEPLOY_TLS_KEY: 'relative.key', DEPLOY_TLS_CERT: '/a.pem' }, /DEPLOY_TLS_KEY/],
    [{ DEPLOY_HEADERS: 'hsts,csp' }, /DEPLOY_HEADERS/],
    [{ DEPLOY_HEADERS: 'none,hsts' }, /DEPLOY_HEADERS/],
    [{ DEPLOY_COMPRESSION: 'brotli' }, /DEPLOY_COMPRESSION/],
    [{ DEPLOY_ACCESS_LOG: 'yes' }, /DEPLOY_ACCESS_LOG/],
    [{ DEPLOY_ACME_CA: 'http://insecure/dir' }, /DEPLOY_ACME_CA/],
    [{ DEPLOY_ACME_EMAIL: 'not an email' }, /DEPLOY_ACME_EMAIL/],
    [{ DEPLOY_PROXY: 'traefik' }, /DEPLOY_PROXY .*`caddy`, `nginx`, `haproxy` or `none`/],
  ])('refuses %o', (values, message) => {
    expect(() => testConfig(values)).toThrow(message);
  });

  it("gives nginx certbot's files for the URL host when no files are given, and the user's files when they are", () => {
    const certbot = testConfig({ DEPLOY_PROXY: 'nginx', DEPLOY_PUBLIC_URL: 'https://app.example.com:8443' }).tls;
    expect(certbot).toMatchObject({ certbot: true, cert: '/etc/letsencrypt/live/app.example.com/fullchain.pem', key: '/etc/letsencrypt/live/app.example.com/privkey.pem' });
    expect(testConfig({ DEPLOY_PROXY: 'nginx', DEPLOY_PUBLIC_URL: 'https://app.example.com', DEPLOY_TLS_CERT: '/a.pem', DEPLOY_TLS_KEY: '/a.key' }).tls).toMatchObject({ certbot: false, cert: '/a.pem' });
    expect(testConfig({ DEPLOY_PROXY: 'nginx', DEPLOY_PUBLIC_URL: 'http://app.example.com' }).tls.certbot).toBe(false);
    expect(testConfig({ DEPLOY_PUBLIC_URL: 'https://app.example.com' }).tls.certbot).toBe(false);
  });

  it('lets Caddy get its own certificate for a domain, and use given files for an IP', () => {
    expect(testConfig({ DEPLOY_PUBLIC_URL: 'https://app.example.com' }).tls.cert).toBeUndefined();
    expect(testConfig({ DEPLOY_PUBLIC_URL: 'https://203.0.113.7', DEPLOY_TLS_CERT: '/a.pem', DEPLOY_TLS_KEY: '/a.key' }).tls.cert).toBe('/a.pem');
  });
});
