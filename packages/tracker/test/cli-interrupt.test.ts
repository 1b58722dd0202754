import type { ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { silentServer, spawnCli } from './helpers.js';

// Ctrl-C (or SIGTERM) stops every command and exits 130, as the README's exit codes say. `ls` and
// `show` (and `watch` of a redis:// URL, which first checks that Redis answers) installed the CLI's
// signal handler but never looked at it: the first Ctrl-C was swallowed, the command went on until
// the store's own timeout (3 s for Redis; for ever for a folder on a hung network file system), and
// then exited 4 "cannot reach Redis" as if nobody had asked it to stop.

const children: ChildProcess[] = [];
const closers: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.all(closers.map((close) => close()));
});

/** A "Redis" that takes connections and never answers: each command waits for its timeout. */
async function silentRedis(): Promise<{ url: string; connected: Promise<number> }> {
  const server = await silentServer();
  closers.push(server.close);
  return { url: `redis://127.0.0.1:${server.port}`, connected: server.connected };
}

/** `progress <args>` in a process of its own, killed after the file's tests. */
function cli(args: string[]): ReturnType<typeof spawnCli> {
  const run = spawnCli(args);
  children.push(run.child);
  return run;
}

describe('Ctrl-C while a command waits for its source', () => {
  for (const [signal, args] of [
    ['SIGINT', ['ls']],
    ['SIGTERM', ['show', '{url}', 'u1']],
    ['SIGINT', ['watch', '{url}', 'u1']],
    ['SIGINT', ['demo', '--redis', '{url}', '--port', '0']],
  ] as const) {
    it(`${args[0]} stops on ${signal} and exits 130 (interrupted), not 4 once Redis' timeout has passed`, async () => {
      const redis = await silentRedis();
      const argv = args.length === 1 ? [args[0], redis.url] : args.map((a) => (a === '{url}' ? redis.url : a));
      const run = cli(argv);
      // It has connected: main() is running, its signal handler is in place, the store's read is out.
      await redis.connected;
      run.child.kill(signal);
      expect({ code: await run.exited, output: run.output() }).toEqual({ code: 130, output: '' });
    }, 20_000);
  }
});
