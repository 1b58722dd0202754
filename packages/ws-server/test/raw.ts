import { connect, type Socket } from 'node:net';

/** Sends raw bytes to host:port and collects what comes back until the server closes or `ms` pass. */
export function rawExchange(port: number, request: string | Buffer, ms = 3000): Promise<{ response: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ response: Buffer.concat(chunks).toString('latin1'), closed });
    };
    const timer = setTimeout(() => finish(false), ms);
    socket.on('data', (d) => chunks.push(d));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.on('connect', () => socket.write(request));
  });
}

/** A valid upgrade request for `path`, with extra header lines. */
export function upgradeRequest(path: string, extra: string[] = []): string {
  return [
    `GET ${path} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    ...extra,
    '',
    '',
  ].join('\r\n');
}

/** Opens a raw WebSocket (handshake done by hand), for sending frames no client library would. */
export function rawWebSocket(port: number, path: string): Promise<{ socket: Socket; received: () => Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    let open = false;
    socket.on('error', () => undefined);
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!open) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(head));
        open = true;
        buf = buf.subarray(end + 4);
        resolve({ socket, received: () => buf });
      }
    });
    socket.on('connect', () => socket.write(upgradeRequest(path)));
  });
}

/** A masked client frame (mask key 0, so the payload goes as is). */
export function clientFrame(opcode: number, payload: Buffer, fin: boolean): Buffer {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | len]) : Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 126, len >> 8, len & 0xff]);
  return Buffer.concat([head, Buffer.alloc(4), payload]);
}

/** The close code in a server close frame found in `data`, if any. */
export function closeCodeIn(data: Buffer): number | undefined {
  let i = 0;
  while (i + 2 <= data.length) {
    const opcode = data[i]! & 0x0f;
    let len = data[i + 1]! & 0x7f;
    let off = i + 2;
    if (len === 126) {
      len = data.readUInt16BE(off);
      off += 2;
    } else if (len === 127) {
      len = Number(data.readBigUInt64BE(off));
      off += 8;
    }
    if (opcode === 0x8 && len >= 2) return data.readUInt16BE(off);
    i = off + len;
  }
  return undefined;
}

/**
 * Sends `request` from a peer that never closes its side (allowHalfOpen): `response` resolves with
 * what came back once the server ended its side.
 */
export function halfOpenExchange(port: number, request: string): { response: Promise<string>; destroy: () => void } {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  socket.on('error', () => undefined);
  socket.on('data', (d) => chunks.push(d));
  socket.on('connect', () => socket.write(request));
  const response = new Promise<string>((resolve) => socket.once('end', () => resolve(Buffer.concat(chunks).toString('latin1'))));
  return { response, destroy: () => socket.destroy() };
}
