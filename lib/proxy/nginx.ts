/** The nginx driver: `<app>-<env>.conf` and an upstream file in DEPLOY_NGINX_CONF_DIR, `nginx -t` before every reload. */
import { script } from '../core/cmd.ts';
import { nginx, nginxMaster, nginxWorkers } from '../commands/proxy.ts';
import type { Config } from '../config/config.ts';
import type { Clock } from '../core/clock.ts';
import { SkiffError } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import type { Proxy } from './proxy.ts';
import { publicHost, publicPort } from './route.ts';

export const nginxProxy = (cfg: Config, clock: Clock): Proxy => {
  const base = `${cfg.nginxConfDir}/${cfg.app.name}-${cfg.env}`;
  const confFile = `${base}.conf`;
  const upstreamFile = `${base}.upstream`;
  const upstreamName = `skiff_${cfg.app.name}_${cfg.env}`.replace(/-/g, '_');
  const upstream = (port: number) => `# written by skiff: the live slot of ${cfg.app.name} ${cfg.env}\nserver 127.0.0.1:${port};\n`;
  const serverBlock = [
    `# written by skiff for ${cfg.app.name} ${cfg.env}; the upstream lives in ${upstreamFile}`,
    `upstream ${upstreamName} {`,
    `    include ${upstreamFile};`,
    '    keepalive 16;',
    '}',
    'server {',
    `    listen ${publicHost(cfg).includes(':') ? `[${publicHost(cfg)}]` : publicHost(cfg)}:${publicPort(cfg)};`,
    `    server_name ${publicHost(cfg)};`,
    '    location / {',
    `        proxy_pass http://${upstreamName};`,
    '        proxy_http_version 1.1;',
    '        proxy_set_header Connection "";',
    '        proxy_set_header Host $host;',
    '        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '        proxy_set_header X-Forwarded-Proto $scheme;',
    '    }',
    '}',
    '',
  ].join('\n');

  const test = async (host: Host): Promise<string | undefined> => {
    const r = await host.exec(nginx(cfg.nginxCmd, '-t'), { check: false });
    return r.code === 0 ? undefined : r.stdout.trim().split('\n').filter((l) => !/test failed/.test(l)).at(-1) ?? 'nginx -t failed';
  };

  return {
    kind: 'nginx',
    async check(host) {
      const problem = await test(host);
      if (problem) throw new SkiffError(`${host.name}: nginx -t fails before any change: ${problem}; fix the nginx config first`);
    },
    // nginx keeps its listening socket across reloads: new workers take over from the same queue.
    switchRisk: () => Promise.resolve(undefined),
    async current(host) {
      const text = (await host.get(upstreamFile))?.toString();
      const m = text ? /server 127\.0\.0\.1:(\d+);/.exec(text) : null;
      return m ? Number(m[1]) : undefined;
    },
    async switchTo(host, port) {
      const oldUpstream = await host.get(upstreamFile);
      const oldConf = await host.get(confFile);
      await host.put(upstreamFile, upstream(port));
      if (oldConf?.toString() !== serverBlock) await host.put(confFile, serverBlock);
      const problem = await test(host);
      if (problem) {
        // Put back exactly what was there, so the running nginx and its files agree again.
        await restore(host, upstreamFile, oldUpstream);
        await restore(host, confFile, oldConf);
        throw new SkiffError(`${host.name}: nginx -t fails with the new upstream: ${problem}; the old config is in place`);
      }
      const master = (await host.exec(nginxMaster(cfg.nginxCmd))).stdout.trim();
      const before = new Set((await host.exec(nginxWorkers(master))).stdout.split('\n').filter(Boolean));
      const reload = await host.exec(nginx(cfg.nginxCmd, '-s', 'reload'), { check: false });
      if (reload.code !== 0) throw new SkiffError(`${host.name}: nginx -s reload failed: ${reload.stdout.trim().split('\n').at(-1)}`);
      // A reload is asynchronous: wait until every worker accepting connections is a new one.
      const deadline = clock.now() + 10_000;
      while (clock.now() < deadline) {
        const workers = (await host.exec(nginxWorkers(master))).stdout.split('\n').filter(Boolean);
        if (workers.length > 0 && workers.every((w) => !before.has(w))) return;
        await clock.sleep(50);
      }
      throw new SkiffError(`${host.name}: nginx did not start new workers within 10s of the reload`);
    },
  };
};

const restore = async (host: Host, path: string, content: Buffer | undefined): Promise<void> => {
  if (content) await host.put(path, content);
  else await host.exec(script('rm -f "$1"', path));
};
