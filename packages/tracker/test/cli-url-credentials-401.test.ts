import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProgressWebSocketServer, createProgressTracker, createReadToken, readTokenAuth, type ComposedProgressTracker } from '../src/index.js';
import { spawnCli } from './helpers.js';

// A URL that carries its own credentials (a dashboard link's `?token=`, which expires; `user:password@`)
// sends them, not PROGRESS_TOKEN, and a read-token server reads `?token=` before --token: a 401 then
// said "check --token or PROGRESS_TOKEN", and a user who set either, right, got the same 401 again.
// (Found by a review on 2026-12-03; the test failed before the fix.)

const children: ChildProcess[] = [];
const secret = 'a-url-credentials-test-secret-long-enough-0123';
let server: ProgressWebSocketServer;
let tracker: ComposedProgressTracker;
let url: string;
let port: number;
let token: string;

beforeAll(async () => {
  server = new ProgressWebSocketServer({ port: 0, ...readTokenAuth({ secret }) });
  ({ url, port } = await server.start());
  tracker = await createProgressTracker({ upgradeId: 'guarded', planId: 'p', clusterName: 'c', webSocket: server });
  await tracker.startUpgrade();
  await tracker.completeUpgrade();
  token = createReadToken({ secret, upgradeIds: ['guarded'] });
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await tracker?.close();
  await server?.stop();
});

async function watch(args: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number | null; output: string }> {
  const run = spawnCli(['watch', ...args], { env: { PROGRESS_TOKEN: undefined, ...env } });
  children.push(run.child);
  const code = await run.exited;
  return { code, output: run.output() };
}

const urlToken = 'HTTP 401 Unauthorized (check the ?token= in the URL: a read-token server takes it before --token, and PROGRESS_TOKEN is not sent with it)';

describe('progress watch: a 401 for a URL that carries its own credentials', () => {
  it("names the URL's ?token= (an expired dashboard link), not PROGRESS_TOKEN, which is not sent with it", async () => {
    const result = await watch([`${url}?token=Exp1redTok`, 'guarded'], { PROGRESS_TOKEN: token });
    expect(result).toMatchObject({ code: 4, output: `progress: the server refused the connection: ${urlToken}\n` });
    const dashboard = await watch([`http://127.0.0.1:${port}/?token=Exp1redTok#guarded`], { PROGRESS_TOKEN: token });
    expect(dashboard).toMatchObject({ code: 4, output: `progress: the server refused the connection: ${urlToken}\n` });
    expect(dashboard.output).not.toContain(token);
  }, 30_000);

  it("names the URL's ?token= when a right --token was given beside it: the server read the URL's", async () => {
    const result = await watch([`${url}?token=Exp1redTok`, 'guarded', '--token', token]);
    expect(result).toMatchObject({ code: 4, output: `progress: the server refused the connection: ${urlToken}\n` });
    expect(result.output).not.toContain(token);
  }, 30_000);

  it("names the URL's user and password when they were what was sent", async () => {
    const result = await watch([url.replace('ws://', 'ws://reader:S3cretPw@'), 'guarded'], { PROGRESS_TOKEN: token });
    expect(result).toMatchObject({ code: 4, output: 'progress: the server refused the connection: HTTP 401 Unauthorized (check the user and password in the URL; PROGRESS_TOKEN is not sent with them)\n' });
  }, 30_000);

  it('still names --token and PROGRESS_TOKEN for a URL without credentials', async () => {
    const result = await watch([url, 'guarded'], { PROGRESS_TOKEN: 'Wr0ngT0kenValue' });
    expect(result).toMatchObject({ code: 4, output: 'progress: the server refused the connection: HTTP 401 Unauthorized (check --token or PROGRESS_TOKEN)\n' });
  }, 30_000);
});
