import { Command, type Cluster, type Redis } from 'ioredis';
import { APPEND_LUA, APPEND_SHA } from './scripts.js';

export { APPEND_SHA };

/** What the append script replies: `[1]` appended, `[2 | 0 | -1, storedSeq]` (retry, conflict, late), `[-2, error]` (damaged stream). */
export type AppendReply = [code: number, storedSeq?: number | string];

/** Anything ioredis can hand a prepared command to (a client, a Cluster or a pipeline). */
interface CommandSink {
  sendCommand(command: Command): unknown;
}

const self = function (this: unknown): unknown {
  return this;
};

/**
 * Marks an argument list as flat. ioredis' `Command` constructor copies its arguments with
 * `args.flat()`, which V8 runs slowly: about 3 us for the append's 20 strings, more than the rest of
 * the store's client work on the sequential path together. Ours are flat strings already, so the
 * array answers `flat()` with itself (an own property; `Array.prototype` is untouched). Should a
 * future ioredis stop calling `flat()`, nothing changes but the speed.
 */
function alreadyFlat(args: string[]): string[] {
  if (!Object.hasOwn(args, 'flat')) Object.defineProperty(args, 'flat', { value: self, enumerable: false });
  return args;
}

/**
 * The append script as one prepared EVALSHA command, sent straight to the client. This skips
 * ioredis' `defineCommand` wrapper, which copies the arguments twice more and adds a closure and a
 * promise per call; on the sequential path that was a measurable part of the client's time.
 *
 * `args` is `[APPEND_SHA, numKeys, ...keys, ...argv]` ({@link APPEND_SHA} first), built once by
 * the caller. When Redis does not know the script (NOSCRIPT: a restarted or flushed server), the same
 * arguments are re-sent as EVAL on the client: NOSCRIPT means the script did not run, so this cannot
 * apply an append twice.
 */
export function sendAppend(redis: Redis | Cluster, via: CommandSink, args: string[], settle: (err: unknown, reply?: AppendReply) => void): void {
  const command = new Command('evalsha', alreadyFlat(args));
  via.sendCommand(command);
  // One reaction on the command's own promise (no .catch() in between: every promise hop is time on
  // the sequential path).
  (command.promise as Promise<AppendReply>).then(
    (reply) => settle(undefined, reply),
    (err: unknown) => {
      if (!(err instanceof Error) || !err.message.includes('NOSCRIPT')) return settle(err);
      const retry = new Command('eval', [APPEND_LUA, ...args.slice(1)]);
      (redis as CommandSink).sendCommand(retry);
      (retry.promise as Promise<AppendReply>).then(
        (reply) => settle(undefined, reply),
        (e: unknown) => settle(e),
      );
    },
  );
}
