// The app that bench/switch-clients.ts deploys (not an example to copy: see example/ for that).
// Plain Node, no dependencies:
//   GET /api/health    200, JSON with the port and version
//   GET /slow?ms=N     answers after N ms (default SLOW_MS, 20000): "slow done <port> <version>"
//   GET /ws            a websocket (RFC 6455, just enough): says "hello <port> <version>" at once,
//                      echoes text frames, answers pings; closes with 1001 "slot stopping <port>"
//                      when the process is told to stop.
// On SIGTERM it stops listening, closes idle connections, answers busy ones with `connection:
// close`, says goodbye to every websocket, and exits once the last request has finished (or after
// SHUTDOWN_TIMEOUT_MS).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

const PORT = Number(process.env.PORT || 3000);
const HOST = process.env.HOST || '127.0.0.1';
const VERSION = process.env.APP_VERSION || JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')).version;
const SLOW_MS = Number(process.env.SLOW_MS || 20000);
const SHUTDOWN_TIMEOUT_MS = Number(process.env.SHUTDOWN_TIMEOUT_MS || 30000);
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

let stopping = false;
const sockets = new Set();

const frame = (opcode, payload) => {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x80 | opcode, n]) : n < 65536 ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 255]) : null;
  if (!head) throw new Error('frame too big for this server');
  return Buffer.concat([head, payload]);
};
const closeFrame = (code, reason) => frame(8, Buffer.concat([Buffer.from([code >> 8, code & 255]), Buffer.from(reason)]));

// Client frames are masked (RFC 6455, 5.3). Returns the frames found and what is left over.
const readFrames = (buf) => {
  const frames = [];
  let at = 0;
  for (;;) {
    if (buf.length - at < 2) break;
    const opcode = buf[at] & 15;
    const masked = (buf[at + 1] & 128) !== 0;
    let len = buf[at + 1] & 127;
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
    const mask = masked ? buf.subarray(p, p + 4) : null;
    if (masked) p += 4;
    if (buf.length - p < len) break;
    const payload = Buffer.from(buf.subarray(p, p + len));
    if (mask) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
    frames.push({ opcode, payload });
    at = p + len;
  }
  return { frames, rest: buf.subarray(at) };
};

const send = (res, code, body) => {
  res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', 'x-slot-port': String(PORT), ...(stopping ? { connection: 'close' } : {}) });
  res.end(body);
};

const server = createServer((req, res) => {
  const [path, query = ''] = (req.url ?? '/').split('?');
  if (req.method === 'GET' && path === '/api/health') return send(res, 200, JSON.stringify({ status: 'ok', port: PORT, version: VERSION }));
  if (req.method === 'GET' && path === '/slow') {
    const ms = Number(new URLSearchParams(query).get('ms') ?? SLOW_MS);
    const timer = setTimeout(() => send(res, 200, `slow done ${PORT} ${VERSION}\n`), Number.isFinite(ms) ? ms : SLOW_MS);
    res.on('close', () => clearTimeout(timer));
    return undefined;
  }
  if (req.method === 'GET' && path === '/ws') return send(res, 426, 'this is a websocket endpoint: send Upgrade: websocket\n');
  if (req.method === 'GET' && path === '/') return send(res, 200, `switch-app ${VERSION} on ${PORT}\n`);
  return send(res, 404, 'not found\n');
});

server.on('upgrade', (req, socket, head) => {
  const key = req.headers['sec-websocket-key'];
  if (req.url !== '/ws' || String(req.headers.upgrade).toLowerCase() !== 'websocket' || typeof key !== 'string' || stopping) {
    socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    return;
  }
  const accept = createHash('sha1').update(key + GUID).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  socket.setNoDelay(true);
  sockets.add(socket);
  socket.write(frame(1, Buffer.from(`hello ${PORT} ${VERSION}`)));
  let buf = Buffer.from(head);
  socket.on('data', (chunk) => {
    const { frames, rest } = readFrames(Buffer.concat([buf, chunk]));
    buf = rest;
    for (const f of frames) {
      if (f.opcode === 1) socket.write(frame(1, f.payload));
      else if (f.opcode === 9) socket.write(frame(10, f.payload));
      else if (f.opcode === 8) {
        if (!socket.closeSent) socket.write(frame(8, f.payload.subarray(0, 2)));
        socket.end();
      }
    }
  });
  socket.on('error', () => socket.destroy());
  socket.on('close', () => sockets.delete(socket));
});

server.on('error', (error) => {
  console.error(error.code === 'EADDRINUSE' ? `port ${PORT} is already in use` : error.message);
  process.exit(1);
});
server.listen(PORT, HOST, () => console.log(`listening on http://${HOST}:${PORT} (version ${VERSION})`));

const stop = (signal) => {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: draining (${sockets.size} websockets)`);
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  for (const s of sockets) {
    s.closeSent = true;
    s.write(closeFrame(1001, `slot stopping ${PORT}`));
    s.end();
    setTimeout(() => s.destroy(), 1000).unref();
  }
  setTimeout(() => {
    console.error(`still busy after ${SHUTDOWN_TIMEOUT_MS} ms: exiting`);
    process.exit(1);
  }, SHUTDOWN_TIMEOUT_MS).unref();
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
