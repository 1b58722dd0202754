import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * Answers an HTTP upgrade request with a plain error response and closes the socket. The socket is
 * destroyed once the response is written (as ws does): an HTTP server's sockets allow half-open
 * connections, so after `end()` alone a peer that never closes its side would hold the socket, and
 * the server's `close()`, for ever.
 */
export function rejectUpgrade(socket: Duplex, status: number, message = STATUS_CODES[status] ?? 'Error'): void {
  if (socket.destroyed || socket.writableEnded) return;
  const body = `${message}\n`;
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      'Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
