/**
 * Failed requests while deploys run: a probe sends requests back to back to the public URL while
 * `deploy-vps.ts <env>` runs N times, and counts every refused, reset, timed-out or non-2xx answer.
 *
 *   npx tsx bench/zero-downtime.ts <env> [--deploys 10] [--url URL] [--close]
 *
 * --close sends `Connection: close`, a new connection per request; without it the probe reuses
 * keep-alive connections, as browsers and most HTTP clients do.
 *
 * The env must be deployed once already; URL defaults to its DEPLOY_PUBLIC_URL (or the single port).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../lib/config.ts';
import { REPO_ROOT } from '../lib/paths.ts';
import { startProbe } from '../test/support/probe.ts';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { deploys: { type: 'string', default: '10' }, url: { type: 'string' }, close: { type: 'boolean', default: false } },
});
const env = positionals[0];
if (!env) throw new Error('usage: npx tsx bench/zero-downtime.ts <env> [--deploys N] [--url URL]');
const cfg = loadConfig(env);
const url = values.url ?? cfg.publicUrl ?? `http://127.0.0.1:${cfg.ports[0]}/`;

const deploy = () =>
  new Promise<number>((resolve, reject) => {
    const child = spawn(join(REPO_ROOT, 'node_modules/.bin/tsx'), [join(REPO_ROOT, 'scripts/deploy-vps.ts'), env, '--yes'], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });

const probe = startProbe(url, values.close ? { headers: { connection: 'close' } } : {});
const times: number[] = [];
for (let i = 0; i < Number(values.deploys); i++) {
  const t0 = Date.now();
  const code = await deploy();
  times.push(Date.now() - t0);
  if (code !== 0) process.stderr.write(`deploy ${i + 1} exited ${code}\n`);
}
const r = await probe.stop();
times.sort((a, b) => a - b);
process.stdout.write(
  `${env} (${cfg.proxy}, ${values.close ? 'new connection per request' : 'keep-alive'}): ${times.length} deploys, median ${times[Math.floor(times.length / 2)]} ms each; ` +
    `${r.requests} requests, ${r.failures} failed, longest outage ${r.longestOutageMs} ms${r.firstErrors.length ? `; first errors: ${r.firstErrors.join('; ')}` : ''}\n`,
);
