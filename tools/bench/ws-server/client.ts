// The receiving side of the fan-out bench, run in its own process (forked by index.ts).
// argv: <impl: progress|ws|socketio> <url> <clients> <messages>
// IPC: -> { ready } once every client is connected (and subscribed), then
//      -> { done: [index, time] } each time a message reached every client, and { finished } at the end.
import { WebSocket } from 'ws';
import { io, type Socket } from 'socket.io-client';

const [impl, url, clientsArg, messagesArg] = process.argv.slice(2) as [string, string, string, string];
const clients = Number(clientsArg);
const messages = Number(messagesArg);
const counts = new Uint32Array(messages + 16);
let finished = 0;
const sockets: Array<WebSocket | Socket> = [];
const seqRe = /"seq":(\d+)/;

function deliver(text: string): void {
  const m = seqRe.exec(text);
  if (!m) return;
  const i = Number(m[1]);
  if (++counts[i]! === clients) {
    process.send!({ done: [i, Date.now()] });
    if (++finished === messages) process.send!({ finished: true });
  }
}

async function connect(): Promise<void> {
  if (impl === 'socketio') {
    const s = io(url, { transports: ['websocket'], forceNew: true, reconnection: false });
    sockets.push(s);
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('connect_error', reject);
    });
    s.on('m', (text: string) => deliver(text));
    return;
  }
  const ws = new WebSocket(url, { perMessageDeflate: false });
  sockets.push(ws);
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject);
    if (impl === 'progress') {
      ws.on('message', function first(data) {
        const text = String(data);
        if (text.includes('"type":"snapshot"')) {
          ws.off('message', first);
          ws.on('message', (d) => deliver(String(d)));
          resolve();
        } else if (text.includes('"type":"welcome"')) {
          ws.send(JSON.stringify({ type: 'subscribe', upgradeId: 'bench' }));
        }
      });
    } else {
      ws.once('open', () => {
        ws.on('message', (d) => deliver(String(d)));
        resolve();
      });
    }
  });
}

for (let i = 0; i < clients; i += 50) {
  await Promise.all(Array.from({ length: Math.min(50, clients - i) }, () => connect()));
}
process.send!({ ready: true });
process.on('message', (msg: { reset?: number; stop?: boolean }) => {
  if (msg.reset !== undefined) {
    counts.fill(0);
    finished = 0;
  }
  if (msg.stop) {
    for (const s of sockets) {
      if (s instanceof WebSocket) s.terminate();
      else s.disconnect();
    }
    process.exit(0);
  }
});
