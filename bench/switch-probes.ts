/**
 * Clients for bench/switch-clients.ts that test/support/probe.ts does not have: websockets held
 * open (a minimal RFC 6455 client over node:net: the upgrade, masked text frames, close frames;
 * Node 20 has no WebSocket global) and one long request at a time.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** A client frame: FIN, the opcode, masked (RFC 6455, 5.3: every client frame is). */
export const clientFrame = (opcode: number, payload: Buffer): Buffer => {
  const n = payload.length;
  if (n >= 65536) throw new Error('frame too big for this client');
  const head = n < 126 ? Buffer.from([0x80 | opcode, 0x80 | n]) : Buffer.from([0x80 | opcode, 0x80 | 126, n >> 8, n & 255]);
  const mask = randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] = (body[i] as number) ^ (mask[i & 3] as number);
  return Buffer.concat([head, mask, body]);
};

interface Frame {
  readonly opcode: number;
  readonly payload: Buffer;
}

/** Server frames (unmasked) found in `buf`, and the bytes of a frame not complete yet. */
export const serverFrames = (buf: Buffer): { frames: Frame[]; rest: Buffer } => {
  const frames: Frame[] = [];
  let at = 0;
  for (;;) {
    if (buf.length - at < 2) break;
    const opcode = (buf[at] as number) & 15;
    let len = (buf[at + 1] as number) & 127;
    let p = at + 2;
    if (len === 126) {
      if (buf.length - p < 2) break;
      len = buf.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      if (buf.length - p < 8) break;
      len = Number(buf.readBigUInt64BE(p));
      p += 8;
    }
    if (buf.length - p < len) break;
    frames.push({ opcode, payload: Buffer.from(buf.subarray(p, p + len)) });
    at = p + len;
  }
  return { frames, rest: buf.subarray(at) };
};

/** How one websocket ended. */
export interface WsEnd {
  readonly at: number;
  /** The slot port that said hello on it. */
  readonly port: number | undefined;
  /** `app`: the app's goodbye as its slot stops (close 1001 "slot stopping <port>"); `proxy`: a close frame the app did not send; `cut`: the connection ended with no close frame. */
  readonly by: 'app' | 'proxy' | 'cut';
  readonly detail: string;
  /** Echoes still awaited when it ended. */
  readonly lost: number;
  readonly openMs: number;
}

export interface WsResult {
  readonly held: number;
  readonly opened: number;
  readonly handshakeFailures: number;
  readonly echoes: number;
  readonly ends: readonly WsEnd[];
  readonly firstErrors: readonly string[];
}

type Opened = { socket: net.Socket; rest: Buffer };

/** The upgrade on a new connection; rejects with the status line or the error. */
const handshake = (port: number, path: string, timeoutMs: number): Promise<Opened> =>
  new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64');
    const socket = net.connect(port, '127.0.0.1');
    let head = Buffer.alloc(0);
    const fail = (why: string) => {
      socket.destroy();
      reject(new Error(why));
    };
    socket.setTimeout(timeoutMs, () => fail('handshake timed out'));
    socket.on('error', (e: NodeJS.ErrnoException) => fail(`${e.code ?? ''} ${e.message}`.trim()));
    socket.on('connect', () =>
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`),
    );
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.setTimeout(0);
      socket.removeAllListeners('error');
      const lines = head.subarray(0, end).toString('latin1').split('\r\n');
      const accept = createHash('sha1').update(key + GUID).digest('base64');
      if (!/^HTTP\/1\.1 101 /.test(lines[0] ?? '')) return fail(lines[0] ?? 'no status line');
      if (!lines.some((l) => l.toLowerCase() === `sec-websocket-accept: ${accept.toLowerCase()}`)) return fail('wrong Sec-WebSocket-Accept');
      resolve({ socket, rest: head.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.on('close', () => reject(new Error('closed during the handshake')));
  });

/**
 * `count` websockets to ws://127.0.0.1:<port><path>, each sending a text frame every `everyMs` and
 * expecting it back. One that ends is recorded (by whom, when, on which slot) and opened again at once,
 * so `count` are held open all along; a failed upgrade is counted and tried again after 200 ms.
 */
export const holdWebsockets = (port: number, path: string, opts: { count?: number; everyMs?: number; timeoutMs?: number } = {}) => {
  let running = true;
  let opened = 0;
  let handshakeFailures = 0;
  let echoes = 0;
  const ends: WsEnd[] = [];
  const errors: string[] = [];
  const live = new Set<net.Socket>();
  const one = async (): Promise<void> => {
    while (running) {
      let o: Opened;
      try {
        o = await handshake(port, path, opts.timeoutMs ?? 5000);
      } catch (e) {
        handshakeFailures++;
        if (errors.length < 5) errors.push(`upgrade: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      opened++;
      await new Promise<void>((done) => {
        const { socket } = o;
        const t0 = Date.now();
        let buf = o.rest;
        let slot: number | undefined;
        let closeFrame: { code: number; reason: string } | undefined;
        let n = 0;
        const pending = new Set<string>();
        live.add(socket);
        socket.setNoDelay(true);
        const timer = setInterval(() => {
          if (socket.destroyed) return;
          const text = `m${++n}`;
          pending.add(text);
          socket.write(clientFrame(1, Buffer.from(text)));
        }, opts.everyMs ?? 250);
        const onData = (chunk: Buffer) => {
          const { frames, rest } = serverFrames(Buffer.concat([buf, chunk]));
          buf = rest;
          for (const f of frames) {
            if (f.opcode === 1) {
              const text = f.payload.toString();
              const hello = /^hello (\d+) /.exec(text);
              if (hello) slot = Number(hello[1]);
              else if (pending.delete(text)) echoes++;
            } else if (f.opcode === 8) {
              closeFrame = { code: f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005, reason: f.payload.subarray(2).toString() };
              if (!socket.destroyed) socket.end(clientFrame(8, f.payload.subarray(0, 2)));
            } else if (f.opcode === 9) socket.write(clientFrame(10, f.payload));
          }
        };
        socket.on('data', onData);
        socket.on('error', () => undefined); // the end is recorded on 'close'
        socket.on('close', () => {
          clearInterval(timer);
          live.delete(socket);
          if (running || closeFrame) {
            const fromApp = closeFrame !== undefined && closeFrame.code === 1001 && closeFrame.reason.startsWith('slot stopping');
            ends.push({
              at: Date.now(),
              port: slot,
              by: closeFrame === undefined ? 'cut' : fromApp ? 'app' : 'proxy',
              detail: closeFrame === undefined ? 'no close frame' : `close ${closeFrame.code}${closeFrame.reason ? ` "${closeFrame.reason}"` : ''}`,
              lost: pending.size,
              openMs: Date.now() - t0,
            });
          }
          done();
        });
      });
    }
  };
  const loops = Array.from({ length: opts.count ?? 3 }, () => one());
  return {
    stop: async (): Promise<WsResult> => {
      running = false;
      for (const s of live) s.end(clientFrame(8, Buffer.from([0x03, 0xe8]))); // 1000, normal closure
      const hard = setTimeout(() => {
        for (const s of live) s.destroy();
      }, 2000);
      await Promise.all(loops);
      clearTimeout(hard);
      // The bench's own closes (answered by a close frame) are not ends to count.
      const counted = ends.filter((e) => !(e.by !== 'cut' && e.detail.startsWith('close 1000')));
      return { held: opts.count ?? 3, opened, handshakeFailures, echoes, ends: counted, firstErrors: errors };
    },
  };
};

/** How one long request ended. */
export interface SlowResult {
  readonly startedAt: number;
  readonly ms: number;
  readonly status: number;
  /** The slot port that answered (`slow done <port> <version>`, or the health check's `"port"`). */
  readonly port: number | undefined;
  readonly error: string | undefined;
}

/** One GET of `url` on a new connection, given `timeoutMs` to end; which slot answered. */
export const slowRequest = (url: string, timeoutMs: number): Promise<SlowResult> =>
  new Promise((resolve) => {
    const t0 = Date.now();
    const done = (status: number, body: string, error?: string) => {
      const port = /^slow done (\d+)|"port":(\d+)/.exec(body);
      resolve({ startedAt: t0, ms: Date.now() - t0, status, port: port ? Number(port[1] ?? port[2]) : undefined, error });
    };
    const req = http.get(url, { agent: false, timeout: timeoutMs, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => done(res.statusCode ?? 0, body, res.statusCode === 200 ? undefined : `HTTP ${res.statusCode}`));
      res.on('error', (e) => done(res.statusCode ?? 0, body, e.message));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e: NodeJS.ErrnoException) => done(0, '', `${e.code ?? ''} ${e.message}`.trim()));
  });
