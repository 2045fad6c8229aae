import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { render } from '../../lib/core/cmd.ts';
import { asRoot, certbotHook, certbotObtain, hostFacts } from '../../lib/commands/setup.ts';
import { applySetup, parseFacts, planSetup, toolsFor, type Facts } from '../../lib/flows/setup.ts';
import { testConfig } from '../support/flow-ctx.ts';
import { anything, failed, RecordingHost, when } from '../support/recording-host.ts';

/** A fresh Debian VPS as root: systemd, Caddy installed, nothing of skiff's. */
const FRESH: Facts = {
  uid: '0',
  user: 'root',
  home: '/root',
  systemd: 'yes',
  sudo: 'yes',
  missing: '',
  path: 'absent',
  parent_writable: 'yes',
  linger: 'no',
  docker_boot: 'enabled',
  caddy_unit: 'yes',
  caddy_dropin: 'absent',
  nginx_dir: 'yes',
  nginx_includes: 'yes',
  migrate_req: '0',
  sysctl_file: 'absent',
};
/** The same host after setup. */
const READY: Facts = { ...FRESH, path: 'root 750', caddy_dropin: 'same', migrate_req: '1', sysctl_file: 'same' };

const systemd = testConfig({ DEPLOY_SUPERVISOR: 'systemd' });
const kinds = (facts: Facts, cfg = systemd, install = false) => planSetup(cfg, facts, { install }).map((s) => `${s.kind}: ${s.text}`);

describe('planSetup', () => {
  it('prepares a fresh root host: the path, Caddy resuming its config, the kernel setting', () => {
    const plan = kinds(FRESH);
    expect(plan.filter((l) => l.startsWith('change'))).toEqual([
      'change: DEPLOY_PATH: create /srv/hello (owner root, mode 750)',
      "change: caddy: make it start from its last config, with skiff's routes (--resume, /etc/systemd/system/caddy.service.d/skiff-resume.conf; from its next start)",
      'change: kernel: set net.ipv4.tcp_migrate_req = 1 and keep it in /etc/sysctl.d/60-skiff.conf',
    ]);
    expect(plan).toContain('ok: supervisor: systemd runs; units go to /etc/systemd/system');
  });

  it('changes nothing on a host that setup prepared', () => {
    expect(kinds(READY).filter((l) => !l.startsWith('ok'))).toEqual([]);
  });

  it('lists missing packages without --install, and installs them with it', () => {
    const facts = { ...READY, missing: 'caddy,setsid,flock' };
    expect(kinds(facts)).toContain('fail: tools: caddy, setsid, flock missing: run setup with --install to install caddy util-linux (Debian packages)');
    const step = planSetup(systemd, facts, { install: true })[0];
    expect(step?.kind).toBe('change');
    expect(render(step?.run?.[0]?.cmd ?? { kind: 'argv', args: [] })).toContain('apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends');
  });

  it('refuses a DEPLOY_PATH of another user, and takes write rights from others', () => {
    expect(kinds({ ...READY, path: 'alice 755' })).toContain(
      'fail: DEPLOY_PATH: /srv/hello belongs to alice, not root: choose another DEPLOY_PATH, or hand it over (chown -R root: /srv/hello) if it is this app\'s',
    );
    expect(kinds({ ...READY, path: 'root 777' })).toContain('change: DEPLOY_PATH: /srv/hello is writable by others (mode 777): take that away (chmod go-w)');
    expect(kinds({ ...READY, path: 'root 2755' }).some((l) => l.includes('writable'))).toBe(false);
  });

  it('gives a non-root user lingering through sudo, or says that it needs root', () => {
    const user = { ...READY, uid: '1001', user: 'deploy', caddy_dropin: 'same' };
    expect(kinds(user)).toContain('change: supervisor: enable lingering for deploy (loginctl enable-linger), so its units start at boot');
    expect(kinds({ ...user, sudo: 'no' })).toContain(
      'fail: supervisor: enable lingering for deploy (loginctl enable-linger), so its units start at boot: needs root: give deploy password-less sudo for setup, or have root do it on the host (docs/setup.md#without-root)',
    );
    expect(kinds({ ...user, linger: 'yes' })).toContain('ok: supervisor: deploy has lingering, so its user units run without a login and start at boot');
  });

  it('refuses systemd on a host without it, and warns about what pidfile does not do', () => {
    expect(kinds({ ...READY, systemd: 'no' })).toContain('fail: supervisor: this host does not run systemd, so DEPLOY_SUPERVISOR=systemd cannot work: use DEPLOY_SUPERVISOR=pidfile');
    expect(kinds(READY, testConfig()).some((l) => l.startsWith('warn: supervisor: pidfile does not restart'))).toBe(true);
  });

  it('enables Docker at boot for the docker runtime', () => {
    const docker = testConfig({ DEPLOY_RUNTIME: 'docker', DEPLOY_START: '' });
    expect(kinds({ ...READY, docker_boot: 'disabled' }, docker)).toContain('change: docker: the service is disabled at boot: enable it, so the containers come back after a reboot');
    expect(toolsFor(docker)).toContain('docker');
  });

  it('makes the nginx folder and warns when nginx does not include it', () => {
    const nginx = testConfig({ DEPLOY_PROXY: 'nginx' });
    expect(kinds({ ...READY, nginx_dir: 'no', nginx_includes: 'no' }, nginx)).toEqual(
      expect.arrayContaining(['change: nginx: create /etc/nginx/conf.d for skiff\'s server blocks', 'warn: nginx: its config does not include /etc/nginx/conf.d: add `include /etc/nginx/conf.d/*.conf;` inside http { }']),
    );
  });
});

describe('planSetup: TLS files', () => {
  const tls = testConfig({ DEPLOY_PROXY: 'nginx', DEPLOY_PUBLIC_URL: 'https://example.com', DEPLOY_TLS_CERT: '/etc/ssl/a.pem', DEPLOY_TLS_KEY: '/etc/ssl/a.key' });
  it('checks that the certificate and key files are on the host', () => {
    expect(kinds({ ...READY, tls_cert: 'yes', tls_key: 'yes' }, tls)).toContain('ok: tls: /etc/ssl/a.pem and /etc/ssl/a.key are there');
    expect(kinds({ ...READY, tls_cert: 'yes', tls_key: 'no' }, tls)).toContain('fail: tls: /etc/ssl/a.key missing on the host: obtain the certificate first (docs/proxies.md#tls)');
    expect(toolsFor(testConfig({ DEPLOY_PROXY: 'haproxy' }))).toContain('haproxy');
  });
});

describe('planSetup: the switch flag folder', () => {
  it('made for the SSH user (mode 755), by itself where it can, as root where it cannot; ok once it writes it', () => {
    const cfg = testConfig({ DEPLOY_PROXY: 'caddy' });
    const deploy = { ...READY, uid: '1000', user: 'deploy', sudo: 'yes' };
    const made = planSetup(cfg, { ...deploy, switch_dir: 'no' }, { install: false }).find((s) => s.text.startsWith('switch:'));
    expect(made?.text).toBe('switch: create /var/lib/skiff/hello-staging for the flag that picks the live slot (owner deploy, mode 755)');
    expect(render(made?.run?.[0]?.cmd ?? { kind: 'argv', args: [] })).toContain('sudo -n sh -c');
    expect(render(made?.run?.[0]?.cmd ?? { kind: 'argv', args: [] })).toContain('chown');
    const own = planSetup(cfg, { ...deploy, switch_dir: 'make' }, { install: false }).find((s) => s.text.startsWith('switch:'));
    expect(render(own?.run?.[0]?.cmd ?? { kind: 'argv', args: [] })).not.toContain('sudo');
    expect(kinds({ ...deploy, switch_dir: 'yes' }, cfg)).toContain('ok: switch: deploy writes /var/lib/skiff/hello-staging, the folder of the flag that picks the live slot');
    expect(kinds({ ...deploy, sudo: 'no', switch_dir: 'no' }, cfg).find((k) => k.includes('switch:'))).toMatch(/^fail: switch: create .*: needs root/);
    expect(kinds({ ...deploy, switch_dir: 'no' }, testConfig({ DEPLOY_PROXY: 'none', DEPLOY_PORTS: '3001' })).some((k) => k.includes('switch:'))).toBe(false);
  });

  it('asks the host about the folder', () => {
    const text = render(hostFacts({ path: '/srv/a', tools: ['sh'], nginxDir: '/etc/nginx/conf.d', nginxCmd: 'nginx', switchDir: '/var/lib/skiff/hello-staging' }));
    expect(text).toContain('echo switch_dir=make');
    expect(text).toMatch(/ \/var\/lib\/skiff\/hello-staging sh$/);
  });
});

describe('planSetup: certbot for nginx', () => {
  const cfg = testConfig({ DEPLOY_PROXY: 'nginx', DEPLOY_PUBLIC_URL: 'https://app.example.com', DEPLOY_ACME_EMAIL: 'ops@example.com' });
  it('obtains the certificate when it is not there, as root, with the long deadline', () => {
    expect(toolsFor(cfg)).toContain('certbot');
    const step = planSetup(cfg, { ...READY, tls_cert: 'no', tls_key: 'no' }, { install: false }).find((s) => s.text.startsWith('tls:'));
    expect(step).toMatchObject({ kind: 'change', long: true, text: "tls: obtain a certificate for app.example.com from Let's Encrypt with certbot (HTTP-01 from /var/www/html through nginx on port 80; renewals reload nginx)" });
    expect(render(step?.run?.[0]?.cmd ?? { kind: 'argv', args: [] })).toContain('sudo -n sh -c');
    expect(kinds({ ...READY, tls_cert: 'yes', tls_key: 'yes' }, cfg)).toContain("ok: tls: certbot's certificate for app.example.com is there (/etc/letsencrypt/live/app.example.com/fullchain.pem); certbot's timer renews it");
  });
  it('says it needs root for a user without sudo', () => {
    expect(kinds({ ...READY, uid: '1000', user: 'deploy', sudo: 'no', tls_cert: 'no', tls_key: 'no' }, cfg).find((k) => k.includes('tls:'))).toMatch(/^fail: tls: obtain .*: needs root/);
  });
  it('runs certbot non-interactively, every value quoted, the hook kept for this name only', () => {
    const text = render(certbotObtain({ name: 'app.example.com', webroot: '/var/www/my html', email: undefined, server: 'https://ca.example/dir', caRoot: '/etc/ca.pem', nginxCmd: 'nginx -p /x' }));
    expect(text).toContain('certonly --non-interactive --agree-tos --webroot -w "$webroot" -d "$name" --cert-name "$name" --deploy-hook "$hook"');
    expect(text).toContain('--register-unsafely-without-email');
    expect(text).toMatch(/ app\.example\.com '\/var\/www\/my html' '' https:\/\/ca\.example\/dir \/etc\/ca\.pem 'nginx -p \/x -t -q && nginx -p \/x -s reload'$/);
  });
  it("the renewal hook runs DEPLOY_NGINX_CMD's words as the driver does: shell syntax in them stays inert", () => {
    expect(certbotHook('nginx')).toBe('nginx -t -q && nginx -s reload');
    const hook = certbotHook('nginx -c /etc/my;touch$(id).conf');
    expect(hook).toBe("nginx -c '/etc/my;touch$(id).conf' -t -q && nginx -c '/etc/my;touch$(id).conf' -s reload");
    const out = execFileSync('sh', ['-c', hook.replaceAll('nginx ', 'printf "[%s]" ')]).toString();
    expect(out).toBe('[-c][/etc/my;touch$(id).conf][-t][-q][-c][/etc/my;touch$(id).conf][-s][reload]');
  });
});

describe('applySetup after a failed change', () => {
  it('makes no further change once one failed, and says so', async () => {
    const host = new RecordingHost([when('apt-get', failed(100, 'E: Unable to locate package sqlite3')), anything]);
    const steps = planSetup(systemd, { ...FRESH, missing: 'sqlite3' }, { install: true });
    const r = await applySetup(host, steps, false);
    expect(r.ready).toBe(false);
    expect(r.lines.find((l) => l.includes('tools'))).toContain('failed   tools: install sqlite3 (for sqlite3): E: Unable to locate package sqlite3');
    expect(r.lines.find((l) => l.includes('DEPLOY_PATH'))).toContain('(not made: a change above failed)');
    expect(host.commands.filter((c) => c.includes('mkdir -p'))).toEqual([]);
  });
});

describe('setup commands', () => {
  it('reads the facts of a host in one command with every value quoted', () => {
    const text = render(hostFacts({ path: "/srv/it's here", tools: ['sh', 'caddy'], nginxDir: '/etc/nginx/conf.d', nginxCmd: 'nginx' }));
    expect(text).toContain("'/srv/it'\\''s here'");
    expect(text).toMatch(/ sh caddy$/);
  });

  it('runs a change as root directly or through sudo -n, never asking for a password', () => {
    const text = render(asRoot({ kind: 'argv', args: ['systemctl', 'daemon-reload'] }));
    expect(text).toContain('sudo -n sh -c "$1"');
    expect(text).toContain('exit 77');
  });

  it('parses the facts', () => {
    expect(parseFacts('uid=0\nhome=/root\npath=root 750\nbad line\n')).toEqual({ uid: '0', home: '/root', path: 'root 750' });
  });
});

describe('applySetup', () => {
  it('changes nothing when a step fails (a missing package) or in a dry run', async () => {
    const host = new RecordingHost();
    const failing = planSetup(systemd, { ...FRESH, missing: 'caddy' }, { install: false });
    const r = await applySetup(host, failing, false);
    expect(r.ready).toBe(false);
    expect(r.changed).toBe(0);
    expect(host.commands).toEqual([]);
    const dry = await applySetup(host, planSetup(systemd, FRESH, { install: false }), true);
    expect(dry.lines.filter((l) => l.includes('would'))).toHaveLength(3);
    expect(host.commands).toEqual([]);
  });
});
