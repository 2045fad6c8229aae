/** onEachHost: a step on every host, all or nothing. */
import { Listr } from 'listr2';
import { describe, expect, it } from 'vitest';
import { redirectableLog, type Session } from '../../lib/flows/session.ts';
import { HostFailedError } from '../../lib/core/errors.ts';
import { onEachHost } from '../../lib/cli/run.ts';

// onEachHost reads only a host's name and where its log goes.
const ctxs = (...names: string[]): Session[] => names.map((name) => ({ host: { name }, ...redirectableLog() }) as unknown as Session);

const run = async (task: ReturnType<typeof onEachHost>) => {
  const list = new Listr<object, 'silent'>([task], { renderer: 'silent', registerSignalListeners: false, exitOnError: true });
  return list.run({});
};

describe('onEachHost', () => {
  it('runs the step on every host, at once', async () => {
    const hosts = ctxs('a', 'b', 'c');
    const started: string[] = [];
    let running = 0;
    let most = 0;
    await run(
      onEachHost(hosts, 'step', async (c) => {
        started.push(c.host.name);
        most = Math.max(most, ++running);
        await new Promise((r) => setTimeout(r, 20));
        running--;
      }),
    );
    expect(started.sort()).toEqual(['a', 'b', 'c']);
    expect(most).toBe(3);
  });

  it('with one host, the step runs as it is and its error is thrown unchanged', async () => {
    const boom = new Error('boom');
    await expect(run(onEachHost(ctxs('a'), 'step', () => Promise.reject(boom)))).rejects.toBe(boom);
  });

  it('when one host fails, the others finish, are undone, and the failure names the host', async () => {
    const hosts = ctxs('a', 'b', 'c');
    const undone: string[] = [];
    const finished: string[] = [];
    const error = await run(
      onEachHost(
        hosts,
        'step',
        async (c) => {
          if (c.host.name === 'b') throw new Error('disk full');
          await new Promise((r) => setTimeout(r, 30));
          finished.push(c.host.name);
        },
        { undo: async (c, reason) => void undone.push(`${c.host.name}: ${reason}`) },
      ),
    ).catch((e: unknown) => e);
    expect(finished.sort()).toEqual(['a', 'c']);
    expect(undone.sort()).toEqual(['a: b failed: disk full', 'c: b failed: disk full']);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain('b: disk full');
  });

  it('serial runs one host after another and stops at the first failure; only the hosts before it are undone', async () => {
    const hosts = ctxs('a', 'b', 'c');
    const order: string[] = [];
    const undone: string[] = [];
    await expect(
      run(
        onEachHost(
          hosts,
          'step',
          async (c) => {
            order.push(c.host.name);
            if (c.host.name === 'b') throw new Error('unhealthy');
          },
          { serial: true, undo: async (c) => void undone.push(c.host.name) },
        ),
      ),
    ).rejects.toThrow('unhealthy');
    expect(order).toEqual(['a', 'b']);
    expect(undone).toEqual(['a']);
  });

  it('an undo that fails does not hide the first failure, and is reported after it with its host', async () => {
    const error = await run(
      onEachHost(ctxs('a', 'b'), 'step', async (c) => {
        if (c.host.name === 'a') throw new Error('first');
      }, { undo: () => Promise.reject(new Error('undo broke\nsecond line')) }),
    ).catch((e: unknown) => e);
    const lines = (error as Error).message.split('\n');
    expect(lines[0]).toBe('a: first');
    expect(lines.slice(1)).toEqual(['  undo failed on b: undo broke; it may not serve what it served before: check it with status']);
    expect((error as HostFailedError).undoFailures.map((f) => f.host)).toEqual(['b']);
  });

  it('never claims every host serves what it served before when one undo failed', async () => {
    const error = await run(
      onEachHost(ctxs('a', 'b', 'c'), 'step', async (c) => {
        if (c.host.name === 'a') throw new Error('first');
      }, { undo: async (c) => { if (c.host.name === 'c') throw new Error('proxy down'); } }),
    ).catch((e: unknown) => e);
    expect((error as Error).message).toBe(
      'a: first\n  undone on b\n  undo failed on c: proxy down; it may not serve what it served before: check it with status',
    );
  });

  it('HostFailedError keeps the exit code of the host error and lists where it was undone', () => {
    const e = new HostFailedError('web2', Object.assign(new Error('x'), {}), ['web1']);
    expect(e.exitCode).toBe(1);
    expect(e.message).toBe('web2: x\n  undone on web1: every host serves the release it served before');
  });
});
