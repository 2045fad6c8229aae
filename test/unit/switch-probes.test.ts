/** The benchmark's websocket client and long request against the benchmark's app (bench/switch-app). */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { clientFrame, holdWebsockets, serverFrames, slowRequest } from '../../bench/switch-probes.ts';
import { ROOT } from '../support/sandbox.ts';

describe('websocket frames', () => {
  it('masks client frames and reads them back with the mask', () => {
    for (const size of [0, 5, 125, 126, 1000, 65535]) {
      const payload = Buffer.alloc(size, 'x');
      const f = clientFrame(1, payload);
      expect(f[0]).toBe(0x81);
      expect((f[1] as number) & 0x80).toBe(0x80);
      const len = ((f[1] as number) & 127) === 126 ? f.readUInt16BE(2) : (f[1] as number) & 127;
      expect(len).toBe(size);
      const at = size < 126 ? 2 : 4;
      const mask = f.subarray(at, at + 4);
      const body = Buffer.from(f.subarray(at + 4));
      for (let i = 0; i < body.length; i++) body[i] = (body[i] as number) ^ (mask[i & 3] as number);
      expect(body.equals(payload)).toBe(true);
    }
    expect(() => clientFrame(1, Buffer.alloc(65536))).toThrow(/too big/);
  });

  it('reads server frames split anywhere, keeping an incomplete one for later', () => {
    const frames = Buffer.concat([Buffer.from([0x81, 2]), Buffer.from('hi'), Buffer.from([0x88, 126, 0, 130]), Buffer.alloc(130, 1)]);
    for (let cut = 0; cut <= frames.length; cut++) {
      const a = serverFrames(frames.subarray(0, cut));
      const b = serverFrames(Buffer.concat([a.rest, frames.subarray(cut)]));
      const all = [...a.frames, ...b.frames];
      expect(all.map((f) => [f.opcode, f.payload.length])).toEqual([
        [1, 2],
        [8, 130],
      ]);
      expect(b.rest.length).toBe(0);
    }
  });
});

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
const up = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });

describe('the benchmark app and its clients', () => {
  let app: ChildProcess | undefined;
  afterEach(() => void app?.kill('SIGKILL'));

  it('echoes on websockets, says goodbye with 1001 on SIGTERM, and lets a long request finish', async () => {
    const port = await freePort();
    app = spawn('node', ['server.js'], { cwd: join(ROOT, 'bench/switch-app'), env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
    for (let i = 0; i < 50 && !(await up(port)); i++) await new Promise((r) => setTimeout(r, 100));
    const ws = holdWebsockets(port, '/ws', { count: 2, everyMs: 50 });
    const slow = slowRequest(`http://127.0.0.1:${port}/slow?ms=800`, 5000);
    await new Promise((r) => setTimeout(r, 400));
    app.kill('SIGTERM');
    const s = await slow;
    expect(s).toMatchObject({ status: 200, port, error: undefined });
    expect(s.ms).toBeGreaterThanOrEqual(790);
    await new Promise((r) => setTimeout(r, 300));
    const r = await ws.stop();
    expect(r.opened).toBe(2);
    expect(r.echoes).toBeGreaterThan(4);
    expect(r.ends.map((e) => [e.by, e.port, e.detail])).toEqual([
      ['app', port, `close 1001 "slot stopping ${port}"`],
      ['app', port, `close 1001 "slot stopping ${port}"`],
    ]);
    // Reconnecting after the goodbye finds nothing listening.
    expect(r.handshakeFailures).toBeGreaterThan(0);
    expect(r.firstErrors[0]).toMatch(/ECONNREFUSED/);
  }, 15_000);

  it('answers 426 to /ws without an upgrade', async () => {
    const port = await freePort();
    app = spawn('node', ['server.js'], { cwd: join(ROOT, 'bench/switch-app'), env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
    for (let i = 0; i < 50 && !(await up(port)); i++) await new Promise((r) => setTimeout(r, 100));
    const res = await fetch(`http://127.0.0.1:${port}/ws`);
    expect(res.status).toBe(426);
  }, 10_000);
});
