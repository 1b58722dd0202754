// Shared by the tests and by the closing fixture (test/fixtures/closing.ts), which runs it in its own process.
import { connect, createServer, type Socket } from 'node:net';

/** A TCP proxy in front of Redis whose open connections can go silent both ways, without a reset (a host gone, a network that drops everything); new connections pass. */
export async function silencingProxy(target: string): Promise<{ url: string; silence(): void; close(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  const pairs: Array<{ silent: boolean; client: Socket; upstream: Socket }> = [];
  const server = createServer((client) => {
    const upstream = connect({ host: hostname, port: Number(port) || 6379 });
    const pair = { silent: false, client, upstream };
    pairs.push(pair);
    client.on('data', (chunk) => void (pair.silent || upstream.write(chunk)));
    upstream.on('data', (chunk) => void (pair.silent || client.write(chunk)));
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) socket.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `redis://127.0.0.1:${(server.address() as { port: number }).port}`,
    silence: () => {
      for (const pair of pairs) pair.silent = true;
    },
    /** Resolves once its server and every socket of it have closed. */
    close: async () => {
      const closed = pairs.flatMap(({ client, upstream }) => [client, upstream]).map((socket) => (socket.closed ? undefined : new Promise((resolve) => socket.once('close', resolve))));
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      await Promise.all([...closed, new Promise((resolve) => server.close(resolve))]);
    },
  };
}
