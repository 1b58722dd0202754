import { Command, type Cluster, type Redis } from 'ioredis';
import { isPipelineAbort } from './errors.js';
import { APPEND_LUA, APPEND_SHA } from './scripts.js';

export { APPEND_SHA };

/**
 * What the append script replies: `1` appended, `[3, epoch]` appended while the cluster-mode `unfed`
 * mark is there, `[2 | 0 | -1, storedSeq]` (retry, conflict, late; a retry also `epoch` while the mark
 * is there), `[-2, error]` (damaged stream);
 * the integers as text from a client with ioredis' `stringNumbers`, the strings as Buffers (a
 * prepared command has no reply encoding).
 */
export type AppendReply = 1 | '1' | [code: number | string, storedSeq?: number | string | Buffer, epoch?: string | Buffer];

/** Anything ioredis can hand a prepared command to (a client, a Cluster or a pipeline). */
interface CommandSink {
  sendCommand(command: Command): unknown;
}

/** An argument list that hands ioredis' `Command` constructor the array itself when it calls `flat()`. */
class FlatArgs {
  constructor(readonly args: string[]) {}
  flat(): string[] {
    return this.args;
  }
}

/**
 * Whether this ioredis takes its arguments with `args.flat()` (so a {@link FlatArgs} works): probed
 * once. ioredis' `Command` constructor copies its arguments with `args.flat()`, which V8 runs slowly
 * (about 2-3 us for an append's arguments, more than the rest of the store's client work on the
 * sequential path); ours are flat strings already. Should a future ioredis read its arguments some
 * other way, the probe fails and plain arrays are passed: nothing changes but the speed.
 */
const takesFlat = ((): boolean => {
  try {
    const probe = ['probe'];
    return new Command('evalsha', new FlatArgs(probe) as unknown as string[]).args === probe;
  } catch {
    return false;
  }
})();

/**
 * An append's command, which the client's own `commandTimeout` (an option of a client passed in)
 * does not time out. ioredis would reject it after that time while the command stays queued and may
 * still run: the append would be reported failed and then be stored. The store bounds the wait
 * itself, with a deadline Redis checks (`commandTimeoutMs`), so that a rejected append never runs.
 */
class AppendCommand extends Command {
  override setTimeout(): void {}
}

/**
 * The client's key prefix (ioredis' `keyPrefix` option), which every command the client builds
 * gets and a prepared command must be given: without it the appends would go to other keys than
 * the reads. ioredis prefixes the keys in place, so it gets a copy: `args` stays as built (the
 * NOSCRIPT retry is made from it).
 */
function prepared(name: string, args: string[], keyPrefix: string | undefined): Command {
  const list = keyPrefix ? args.slice() : args;
  return new AppendCommand(name, takesFlat ? (new FlatArgs(list) as unknown as string[]) : list, keyPrefix ? { keyPrefix } : undefined);
}

/** The client's `keyPrefix` option (a Cluster copies its nodes' into its own), or undefined. */
export const keyPrefixOf = (client: Redis | Cluster): string | undefined => (client as { options?: { keyPrefix?: string } }).options?.keyPrefix || undefined;

/**
 * The append script as one prepared EVALSHA command, sent straight to the client. This skips
 * ioredis' `defineCommand` wrapper, which copies the arguments twice more and adds a closure and a
 * promise per call; on the sequential path that was a measurable part of the client's time.
 *
 * `args` is `[APPEND_SHA, numKeys, ...keys, ...argv]` ({@link APPEND_SHA} first), built once by
 * the caller. The same arguments are sent again on the client:
 * - when Redis does not know the script (NOSCRIPT: a restarted or flushed server), as EVAL: NOSCRIPT
 *   means the script did not run, so this cannot apply an append twice;
 * - when ioredis aborts the command because the connection closed after a part of its pipeline was
 *   answered (it re-sends a lone command or a pipeline answered in none of its parts itself, but not
 *   this). The append may have run: the script recognises a re-sent append (by its first event id)
 *   and refuses one past its deadline, so the append is applied once and answered truly.
 *
 * `keyPrefix` is the client's own ({@link keyPrefixOf}, read once by the store), put in front of
 * the keys as the client does for its other commands.
 */
export function sendAppend(redis: Redis | Cluster, keyPrefix: string | undefined, via: CommandSink, args: string[], settle: (err: unknown, reply?: AppendReply) => void): void {
  send(redis, keyPrefix, via, 'evalsha', args, settle);
}

function send(redis: Redis | Cluster, keyPrefix: string | undefined, via: CommandSink, name: 'evalsha' | 'eval', args: string[], settle: (err: unknown, reply?: AppendReply) => void): void {
  const command = prepared(name, args, keyPrefix);
  via.sendCommand(command);
  // One reaction on the command's own promise (no .catch() in between: every promise hop is time on
  // the sequential path).
  (command.promise as Promise<AppendReply>).then(
    (reply) => settle(undefined, reply),
    (err: unknown) => {
      if (isPipelineAbort(err)) return send(redis, keyPrefix, redis as CommandSink, name, args, settle);
      if (name === 'evalsha' && err instanceof Error && err.message.includes('NOSCRIPT')) return send(redis, keyPrefix, redis as CommandSink, 'eval', [APPEND_LUA, ...args.slice(1)], settle);
      settle(err);
    },
  );
}
