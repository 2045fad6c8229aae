import { describe, expect, it } from 'vitest';
import { render } from '../../lib/core/cmd.ts';
import {
  foreignUnits,
  parseWorkerUnitName,
  startUnit,
  stopAndRemoveUnits,
  stopUnit,
  systemdCheck,
  unitFile,
  unitLog,
  unitName,
  unitsStatus,
  unitStatus,
  unitWord,
  workerUnitFile,
  workerUnitName,
  type UnitSpec,
  type WorkerUnitSpec,
} from '../../lib/commands/systemd.ts';
import { parseUnitStatus, systemdProblem, workerRunOf } from '../../lib/runtime/systemd.ts';
import { testConfig } from '../support/flow-ctx.ts';

const spec: UnitSpec = {
  app: 'hello',
  env: 'staging',
  slot: 'blue',
  root: '/srv/hello',
  releaseDir: '/srv/hello/releases/r1',
  envFile: '/srv/hello/.skiff/env/r1.env',
  port: 3001,
  dataDir: '/srv/hello/shared/data',
  version: '1.2.3',
  release: 'r1',
  marker: '/srv/hello#blue',
  start: 'node server.js',
  drainSeconds: 10,
  memory: undefined,
  cpus: undefined,
};

/** The words systemd reads from an ExecStart= line: double quotes, C escapes, %% and $$ (as in systemd.service(5)). */
const systemdWords = (line: string): string[] => {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ') i++;
    if (i >= line.length) break;
    let w = '';
    if (line[i] === '"') {
      i++;
      while (line[i] !== '"') {
        if (line[i] === '\\') {
          const c = line[i + 1];
          if (c === 'x') {
            w += String.fromCharCode(parseInt(line.slice(i + 2, i + 4), 16));
            i += 4;
            continue;
          }
          w += ({ n: '\n', t: '\t', r: '\r' } as Record<string, string>)[c ?? ''] ?? c;
          i += 2;
          continue;
        }
        w += line[i];
        i++;
      }
      i++;
    } else {
      while (i < line.length && line[i] !== ' ') w += line[i++];
    }
    words.push(w.replace(/%%/g, '%').replace(/\$\$/g, '$'));
  }
  return words;
};

describe('unit files', () => {
  it('names a unit per app, env and slot', () => {
    expect(unitName('hello', 'staging', 'green')).toBe('skiff-hello-staging-green.service');
  });

  it('writes a unit that restarts on failure, drains, logs to the journal and starts at boot', () => {
    const text = unitFile(spec);
    expect(text.split('\n')[0]).toBe('# written by skiff: hello staging, slot blue, in /srv/hello');
    expect(text).toContain('\nRestart=on-failure\n');
    expect(text).toContain('\nKillMode=control-group\n');
    expect(text).toContain('\nTimeoutStopSec=15\n');
    expect(text).toContain('\nStandardOutput=journal\n');
    expect(text).toContain('\nWantedBy=default.target\n');
    expect(text).not.toContain('MemoryMax');
    expect(text).not.toContain('CPUQuota');
  });

  it('sets resource limits from DEPLOY_MEMORY_LIMIT and DEPLOY_CPU_LIMIT', () => {
    const text = unitFile({ ...spec, memory: '512M', cpus: 0.5 });
    expect(text).toContain('\nMemoryMax=512M\n');
    expect(text).toContain('\nCPUQuota=50%\n');
  });

  it('passes every value to the launcher as one word, whatever it holds', () => {
    const hostile = { ...spec, root: '/srv/a b', releaseDir: '/srv/a b/releases/%n $HOME "q" \\x', start: 'echo "$PORT" 100% \\ done\nnext\tline; `id`' };
    const line = unitFile(hostile).split('\n').find((l) => l.startsWith('ExecStart=')) ?? '';
    const words = systemdWords(line.slice('ExecStart='.length));
    expect(words[0]).toBe('/bin/sh');
    expect(words[1]).toBe('-c');
    expect(words[4]).toBe(hostile.releaseDir);
    expect(words[6]).toBe('3001');
    expect(words.at(-1)).toBe(hostile.start);
    expect(words).toHaveLength(12);
  });

  it('keeps a control character in the path out of the comment line', () => {
    expect(unitFile({ ...spec, root: '/srv/x\n[Service]' }).split('\n')[0]).toBe('# written by skiff: hello staging, slot blue, in /srv/x?[Service]');
  });

  it('quotes a word for systemd', () => {
    expect(unitWord('a b')).toBe('"a b"');
    expect(unitWord('$X %i "q" \\')).toBe('"$$X %%i \\"q\\" \\\\"');
    expect(unitWord('\u0001')).toBe('"\\x01"');
  });
});

describe('systemd commands', () => {
  it('picks system units for root and user units otherwise', () => {
    const text = render(systemdCheck());
    expect(text).toContain('systemctl --user');
    expect(text).toContain('/var/lib/systemd/linger/');
    expect(text).toContain('/run/systemd/system');
  });

  it('writes the unit atomically, refuses one skiff did not write, enables and starts it', () => {
    const text = render(startUnit('skiff-hello-staging-blue.service'));
    expect(text).toMatch(/ skiff-hello-staging-blue\.service '# written by skiff: '$/);
    expect(text).toMatch(/cat >"\$dir\/\$1\.tmp" && mv -f/);
    expect(text).toContain('exit 3');
    expect(text.indexOf('enable --quiet')).toBeLessThan(text.indexOf('$sc start'));
  });

  it('disables a unit before it stops it, and kills what is left after the drain', () => {
    const text = render(stopUnit('skiff-hello-staging-blue.service', 7));
    expect(text.indexOf('disable --quiet')).toBeLessThan(text.indexOf('stop --no-block'));
    expect(text).toContain('kill -s KILL');
    expect(text).toMatch(/ 7$/);
  });

  it('reads the state, the log and foreign units of quoted names', () => {
    expect(render(unitStatus('u.service'))).toContain('NRestarts');
    expect(render(unitLog('u.service', 50, true))).toMatch(/-o cat --no-pager -f/);
    expect(render(unitLog('u.service', 50, false))).not.toContain(' -f');
    expect(render(foreignUnits(['a.service', 'b.service']))).toMatch(/'# written by skiff: ' a\.service b\.service$/);
  });
});

describe('parseUnitStatus', () => {
  it('reads running, crashed, stopped and missing units', () => {
    expect(parseUnitStatus('u', 'active running 42 42 2 enabled')).toEqual({ state: 'running', pid: 42, pidFileOk: true, unit: { name: 'u', enabled: 'enabled', restarts: 2 } });
    expect(parseUnitStatus('u', 'activating auto-restart 0 41 3 enabled')).toMatchObject({ state: 'crashed', pid: 41 });
    expect(parseUnitStatus('u', 'failed failed 0 40 9 enabled')).toMatchObject({ state: 'crashed', pid: 40 });
    expect(parseUnitStatus('u', 'inactive dead 0 40 0 disabled')).toMatchObject({ state: 'stopped', unit: { enabled: 'disabled' } });
    expect(parseUnitStatus('u', 'none')).toBeUndefined();
    expect(parseUnitStatus('u', '')).toBeUndefined();
  });
});

describe('systemdProblem', () => {
  it('says why a host cannot run the units, and the fix', () => {
    expect(systemdProblem('h', 'staging', 'ok user')).toBeUndefined();
    expect(systemdProblem('h', 'staging', 'no-systemd')).toMatch(/does not run systemd.*DEPLOY_SUPERVISOR=pidfile/);
    expect(systemdProblem('h', 'staging', 'no-linger deploy')).toMatch(/deploy has no lingering.*scripts\/setup\.ts staging.*loginctl enable-linger deploy/);
    expect(systemdProblem('h', 'staging', 'no-manager deploy')).toMatch(/user manager of deploy/);
  });
});

describe('resource limits in the config', () => {
  it('reads sizes and CPUs for systemd and docker', () => {
    const cfg = testConfig({ DEPLOY_SUPERVISOR: 'systemd', DEPLOY_MEMORY_LIMIT: '512m', DEPLOY_CPU_LIMIT: '1.5' });
    expect(cfg.limits).toEqual({ memory: { bytes: 512 * 1024 ** 2, text: '512M' }, cpus: 1.5 });
    expect(testConfig({ DEPLOY_RUNTIME: 'docker', DEPLOY_MEMORY_LIMIT: '1G' }).limits.memory?.bytes).toBe(1024 ** 3);
  });

  it.each([
    ['DEPLOY_MEMORY_LIMIT', 'lots'],
    ['DEPLOY_MEMORY_LIMIT', '-1M'],
    ['DEPLOY_MEMORY_LIMIT', '0'],
    ['DEPLOY_MEMORY_LIMIT', '1.5G'],
    ['DEPLOY_MEMORY_LIMIT', '1'],
    ['DEPLOY_MEMORY_LIMIT', '5M'],
    ['DEPLOY_MEMORY_LIMIT', '9999999999999999G'],
    ['DEPLOY_CPU_LIMIT', 'two'],
    ['DEPLOY_CPU_LIMIT', '0'],
    ['DEPLOY_CPU_LIMIT', '-1'],
    ['DEPLOY_CPU_LIMIT', '5000'],
  ])('refuses %s=%s', (key, value) => {
    expect(() => testConfig({ DEPLOY_SUPERVISOR: 'systemd', [key]: value })).toThrow(new RegExp(key));
  });

  it('refuses limits the pidfile supervisor cannot hold', () => {
    expect(() => testConfig({ DEPLOY_MEMORY_LIMIT: '512M' })).toThrow(/DEPLOY_MEMORY_LIMIT.*DEPLOY_SUPERVISOR=systemd or DEPLOY_RUNTIME=docker/);
  });
});

describe('worker units', () => {
  const worker: WorkerUnitSpec = {
    app: 'hello',
    env: 'staging',
    id: 'queue.2',
    root: '/srv/hello',
    release: '20261206-101500-1.2.3-rc.1',
    releaseDir: '/srv/hello/releases/20261206-101500-1.2.3-rc.1',
    envFile: '/srv/hello/.skiff/env/20261206-101500-1.2.3-rc.1.env',
    dataDir: '/srv/hello/shared/data',
    version: '1.2.3-rc.1',
    marker: '/srv/hello#worker-queue.2@20261206-101500-1.2.3-rc.1',
    command: 'node worker.js --queue "$QUEUE" 100%',
    graceSeconds: 30,
    memory: '256M',
    cpus: 0.5,
  };

  it('names a unit per process and release, and reads the name back', () => {
    const name = workerUnitName('hello', 'staging', worker.release, 'queue.2');
    expect(name).toBe('skiff-hello-staging-worker-queue.2-20261206-101500-1.2.3-rc.1.service');
    expect(parseWorkerUnitName('hello', 'staging', name)).toEqual({ id: 'queue.2', release: worker.release });
    expect(parseWorkerUnitName('hello', 'staging', workerUnitName('hello', 'staging', '20261206-101500-2.0.0', 'mail-out.11'))).toEqual({ id: 'mail-out.11', release: '20261206-101500-2.0.0' });
    for (const other of ['skiff-hello-staging-blue.service', 'skiff-hello-staging-worker-x.service', 'skiff-hello-prod-worker-queue.1-20261206-101500-1.0.0.service', 'skiff-hello-staging-worker-queue.1-bad.service']) {
      expect(parseWorkerUnitName('hello', 'staging', other)).toBeUndefined();
    }
  });

  it('writes a unit with no port that restarts on failure, gives its grace at shutdown, is limited and starts at boot', () => {
    const text = workerUnitFile(worker);
    expect(text.split('\n')[0]).toBe(`# written by skiff: hello staging, worker queue.2 of release ${worker.release}, in /srv/hello`);
    for (const line of ['Restart=on-failure', 'KillMode=control-group', 'TimeoutStopSec=35', 'MemoryMax=256M', 'CPUQuota=50%', 'WantedBy=default.target', 'SyslogIdentifier=skiff-hello-staging-worker-queue']) {
      expect(text.split('\n')).toContain(line);
    }
    const words = systemdWords((text.split('\n').find((l) => l.startsWith('ExecStart=')) ?? '').slice('ExecStart='.length));
    expect(words[2]).toContain('unset PORT');
    expect(words.slice(4)).toEqual([worker.releaseDir, worker.envFile, worker.dataDir, worker.version, 'staging', worker.marker, 'queue.2', worker.command]);
  });

  it('reads the state of several units in one command, and stops them together before removing their files', () => {
    const names = ['skiff-hello-staging-worker-q.1-20261206-101500-1.0.0.service', 'skiff-hello-staging-worker-q.2-20261206-101500-1.0.0.service'];
    expect(render(unitsStatus(names))).toMatch(new RegExp(`' sh ${names.map((n) => n.replace(/\./g, '\\.')).join(' ')}$`));
    const stop = render(stopAndRemoveUnits(names, 12));
    expect(stop).toMatch(new RegExp(` sh 12 '# written by skiff: ' ${names.map((n) => n.replace(/\./g, '\\.')).join(' ')}$`));
    expect(stop.indexOf('disable --quiet')).toBeLessThan(stop.indexOf('stop --no-block'));
    expect(stop.indexOf('stop --no-block')).toBeLessThan(stop.indexOf('kill -s KILL "$u" 2>/dev/null; done; fi\nj='));
    expect(stop.indexOf('rm -f "$dir/$u"')).toBeGreaterThan(stop.indexOf('stop --no-block'));
  });

  it('reads a worker process from its unit line', () => {
    expect(workerRunOf('q.1', 'u active running 42 42 0 enabled')).toEqual({ id: 'q.1', state: 'running', pid: 42, restarts: 0 });
    // Running again after systemd restarted it: the count says it exited.
    expect(workerRunOf('q.1', 'u active running 43 43 2 enabled')).toEqual({ id: 'q.1', state: 'running', pid: 43, restarts: 2 });
    expect(workerRunOf('q.1', 'u activating auto-restart 0 41 3 enabled')).toEqual({ id: 'q.1', state: 'crashed', pid: 41, restarts: 3 });
    expect(workerRunOf('q.1', 'u inactive dead 0 0 0 disabled')).toEqual({ id: 'q.1', state: 'stopped' });
    expect(workerRunOf('q.1', 'u none')).toEqual({ id: 'q.1', state: 'stopped' });
    expect(workerRunOf('q.1', undefined)).toEqual({ id: 'q.1', state: 'stopped' });
  });
});
