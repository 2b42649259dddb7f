// A tiny scripted WebSocket server (RFC 6455 by hand, text frames only) standing in for the
// agent in the SDK's unit tests. It tests the SDK, not the agent: each test scripts the answers.
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function frame(opcode, payload) {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  let header;
  if (body.length < 126) {
    header = Buffer.from([0x80 | opcode, body.length]);
  } else if (body.length < 65536) {
    header = Buffer.alloc(4);
    header[0] = 0x80 | opcode;
    header[1] = 126;
    header.writeUInt16BE(body.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(body.length), 2);
  }
  return Buffer.concat([header, body]);
}

class Connection {
  constructor(socket, request) {
    this.socket = socket;
    this.request = request;
    this.received = [];
    this.closed = false;
    this.buffer = Buffer.alloc(0);
    this.fragments = [];
  }

  send(obj) {
    if (!this.closed) this.socket.write(frame(1, typeof obj === 'string' ? obj : JSON.stringify(obj)));
  }

  close(code = 1000) {
    if (this.closed) return;
    this.closed = true;
    const b = Buffer.alloc(2);
    b.writeUInt16BE(code);
    this.socket.end(frame(8, b));
  }

  /** Drops the TCP connection without a close frame (the browser sees 1006). */
  drop() {
    this.closed = true;
    this.socket.destroy();
  }

  feed(chunk, onText) {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      const maskOff = off;
      if (masked) off += 4;
      if (b.length < off + len) return;
      const payload = Buffer.from(b.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] ^= b[maskOff + (i % 4)];
      this.buffer = b.subarray(off + len);
      if (opcode === 8) {
        this.close(payload.length >= 2 ? payload.readUInt16BE(0) : 1000);
        return;
      }
      if (opcode === 9) {
        this.socket.write(frame(10, payload));
        continue;
      }
      if (opcode === 1 || opcode === 0) {
        this.fragments.push(payload);
        if (fin) {
          const text = Buffer.concat(this.fragments).toString('utf8');
          this.fragments = [];
          onText(text);
        }
      }
    }
  }
}

/**
 * Starts a fake agent on 127.0.0.1 (port 0 = any free one).
 * `handler(msg, conn)` is called for every request; it answers with conn.send(...).
 * Default handler: hello answers like a v1 agent, anything else gets NOT_SUPPORTED.
 */
export async function startFakeAgent({ port = 0, handler, refuse = false } = {}) {
  const connections = [];
  const requests = [];
  const server = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ name: 'kyso-agent', version: '0.0.0-fake', protocols: [1], tls: false }));
  });
  server.on('upgrade', (req, socket) => {
    if (refuse) {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const key = req.headers['sec-websocket-key'];
    const accept = createHash('sha1').update(key + GUID).digest('base64');
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    socket.setNoDelay(true);
    const conn = new Connection(socket, req);
    connections.push(conn);
    socket.on('data', (chunk) =>
      conn.feed(chunk, (text) => {
        const msg = JSON.parse(text);
        conn.received.push(msg);
        requests.push(msg);
        (handler ?? defaultHandler)(msg, conn);
      }),
    );
    socket.on('error', () => {});
    socket.on('close', () => {
      conn.closed = true;
    });
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    connections,
    requests,
    async close() {
      for (const c of connections) c.drop();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export const helloResult = {
  agent: 'kyso-agent',
  version: '0.0.0-fake',
  protocol: 1,
  protocols: [1],
  origin: 'http://127.0.0.1:19600',
  paired: false,
  allowListed: false,
  capabilities: {
    itemTypes: ['hash'],
    hashAlgorithms: ['sha256', 'sha384', 'sha512'],
    algorithms: ['rsa-sha256', 'rsa-pss-sha256', 'ecdsa-sha256'],
    roles: ['teacher', 'principal', 'seal'],
    batch: true,
    maxBatchItems: 5000,
    maxInFlight: 8,
    remote: false,
  },
};

export function defaultHandler(msg, conn) {
  if (msg.method === 'hello') {
    conn.send({ id: msg.id, result: helloResult });
    return;
  }
  conn.send({
    id: msg.id,
    error: { code: 'NOT_SUPPORTED', message: { vi: 'Chưa hỗ trợ.', en: 'Not supported.' }, retriable: false },
  });
}

/** A port nothing listens on (bound then released). */
export async function freePort() {
  const s = createServer();
  await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address();
  await new Promise((resolve) => s.close(resolve));
  return port;
}
