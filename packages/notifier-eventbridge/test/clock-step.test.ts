// A host whose wall clock is off, then put right while the notifier runs, against an endpoint that
// refuses a signature more than 5 minutes off its clock (AWS's rule). The notifier runs in a process
// of its own under libfaketime, whose clock the child steps (its monotonic clock left as it is).
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { startEventBridgeEndpoint } from '../../../tools/test-utils/src/eventbridge-endpoint.js';
import { LIBFAKETIME, missingFaketime } from '../../../tools/test-utils/src/faketime.js';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
});

/** A proxy that answers `InvalidSignatureException` to a request signed more than 5 minutes off this clock, as AWS does, and passes the rest on; every answer carries this clock's Date. */
async function signatureClockProxy(target: string): Promise<{ url: string; refused: () => number }> {
  let refused = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const d = String(req.headers['x-amz-date'] ?? '');
      const signedAt = Date.parse(`${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}T${d.slice(9, 11)}:${d.slice(11, 13)}:${d.slice(13, 15)}Z`);
      if (!(Math.abs(signedAt - Date.now()) < 300_000)) {
        refused++;
        res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': 'InvalidSignatureException', date: new Date().toUTCString() });
        res.end(JSON.stringify({ __type: 'InvalidSignatureException', message: `Signature expired: ${d} is now earlier or later than the server's time by more than 5 min.` }));
        return;
      }
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'connection') headers[k] = v;
      fetch(target + (req.url ?? '/'), { method: req.method, headers, body: Buffer.concat(chunks) })
        .then(async (answer) => {
          const text = await answer.text();
          res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/x-amz-json-1.1', date: new Date().toUTCString() });
          res.end(text);
        })
        .catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, refused: () => refused };
}

describe('a host clock that is put right while the notifier runs', () => {
  // Skipped, saying why, without libfaketime (`.ci/run` installs it).
  beforeEach((ctx) => ctx.skip(missingFaketime() !== undefined, missingFaketime()));
  it('retries a request refused for the offset the SDK learnt before the clock was put right, and delivers it', async () => {
    const endpoint = await startEventBridgeEndpoint();
    cleanups.push(() => endpoint.close());
    const proxy = await signatureClockProxy(endpoint.url);
    const dir = await mkdtemp(join(tmpdir(), 'notifier-clock-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const clockFile = join(dir, 'offset');
    await writeFile(clockFile, '-30m\n');
    const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@progress/source', 'test/child/skewed-host.ts', proxy.url], {
      cwd: packageDir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LD_PRELOAD: LIBFAKETIME, FAKETIME_TIMESTAMP_FILE: clockFile, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1', NODE_NO_WARNINGS: '1' },
    });
    cleanups.push(async () => void child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise((resolve) => child.once('exit', resolve));
    const lines = out.split('\n').filter((l) => l.startsWith('phase'));
    // 30 minutes behind: refused once, the SDK corrects its offset (flagging clockSkewCorrected), retried.
    expect(lines[0], out).toBe('phase1 {"complete":true,"undelivered":[]} []');
    // Put right: the SDK's offset now signs 30 minutes ahead; refused, the SDK puts its offset back
    // to about 0 but does not flag it (the new offset is under its 4 min threshold). Before, the
    // notifier gave the entry up as `rejected` (InvalidSignatureException): an event lost because the
    // host's clock was fixed.
    expect(lines[1], out).toBe('phase2 {"complete":true,"undelivered":[]} []');
    expect(code).toBe(0);
    expect(endpoint.entries.map((e) => e.detail!.seq)).toEqual([1, 2]);
    expect(proxy.refused()).toBe(2);
  }, 60_000);
});
