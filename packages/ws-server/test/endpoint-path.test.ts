import { describe, expect, it } from 'vitest';
import { ProgressWebSocketServer } from '../src/index.js';
import { closedAfterEach } from './helpers.js';

// A client (a browser, ws) sends the endpoint's path as URL parsing writes it: non-ASCII characters
// and some others percent-encoded, dot segments resolved. The server compared that with `path` as
// given, so a path not in that form (`/fortschritt/über`, `/progress/./ws`) matched no request; nor
// did `//ws`, whose requests the server read as naming a host `ws`. Every connection, the dashboard's
// included, was answered 404. (Found by a review on 2026-11-30; the test failed before the fix.)

const opened = closedAfterEach();

describe('the endpoint path', () => {
  it.each(['/fortschritt/über', '/progress/./ws', '/a/{b}', '//ws'])('takes connections on %s, as clients send it', async (path) => {
    opened.server = new ProgressWebSocketServer({ port: 0, path });
    const { url } = await opened.server.start();
    const c = await opened.connect(url);
    await c.answered();
    expect(c.ofType('welcome')).toHaveLength(1);
    // The dashboard it serves connects there too.
    const { port } = opened.server.address!;
    const page = await (await fetch(`http://127.0.0.1:${port}/`)).text();
    const wsPath = /name="progress-ws-path" content="([^"]*)"/.exec(page)![1]!;
    const fromPage = await opened.connect(`ws://127.0.0.1:${port}${wsPath}`);
    await fromPage.answered();
  });
});
