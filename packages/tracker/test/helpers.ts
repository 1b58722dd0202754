import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { main } from '../src/cli/main.js';
import { createProgressTracker, type StorageOption } from '../src/index.js';

export { freePort } from '../../../tools/test-utils/src/net.js';
export { deleteKeys } from '../../../tools/test-utils/src/redis.js';

/** A fresh temp folder; `cleanup()` removes every one made. */
const made: string[] = [];
export function tempDir(label = 'tracker'): string {
  const dir = mkdtempSync(join(tmpdir(), `progress-${label}-`));
  made.push(dir);
  return dir;
}
export function cleanupTempDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** A folder holding the old module's real file, as the Python module laid it out. */
export function legacyDir(): string {
  const dir = tempDir('legacy');
  mkdirSync(join(dir, 'progress'));
  copyFileSync(new URL('../../storage-json/test/fixtures/upgrade_test-upgrade-123.json', import.meta.url), join(dir, 'progress', 'upgrade_test-upgrade-123.json'));
  return dir;
}

export const uniqueId = (label: string): string => `${label}-${randomUUID().slice(0, 8)}`;

/** A stream that keeps what is written, for the CLI's output. */
export class Capture extends Writable {
  text = '';
  isTTY = false;
  columns = 120;
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

/** A WebSocket client that keeps every message it gets. */
export async function wsClient(url: string): Promise<{ ws: WebSocket; messages: Array<Record<string, unknown>>; next(type: string, pred?: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> }> {
  const ws = new WebSocket(url);
  const messages: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (raw) => {
    messages.push(JSON.parse(raw.toString()) as Record<string, unknown>);
    for (const w of waiters.splice(0)) w();
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const next = async (type: string, pred: (m: Record<string, unknown>) => boolean = () => true) => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const found = messages.find((m) => m.type === type && pred(m));
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no ${type} message within 10 s; got ${messages.map((m) => m.type).join(', ')}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 100);
      });
    }
  };
  return { ws, messages, next };
}

/** Runs the `progress` command with `argv`, its output captured: the exit code and what it wrote. */
export async function runCli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new Capture();
  const err = new Capture();
  const code = await main(argv, out as unknown as NodeJS.WriteStream, err as unknown as NodeJS.WriteStream);
  return { code, out: out.text, err: err.text };
}

/** Records upgrade `upgradeId` in `storage`, started and completed, and closes its tracker. */
export async function completedUpgrade(upgradeId: string, storage: StorageOption): Promise<void> {
  const t = await createProgressTracker({ upgradeId, planId: 'p', clusterName: 'c', storage });
  await t.startUpgrade();
  await t.completeUpgrade();
  await t.close();
}
