import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { parseArgs } from 'node:util';
import { assertValidId, nearestName, redactUrl, type ProgressStore } from '@progress/core';
import { CliError, ExitCode, Interrupted, outputError, untilInterrupted } from './errors.js';
import { listUpgrades, showUpgrade } from './inspect.js';
import { HOME_LIKE, folderHint, loggerWhile, openStore, parseSource, prefixHint, sayRedisOutages, shellArg, socketUrls, stderrLogger, storeError, tildeHint, upgradeIdFromFragment, type Source } from './sources.js';
import { safeText } from '../render.js';
import { LiveView } from './terminal.js';
import { didYouMean, didYouMeanIn, exitCodeFor, pickUpgrade, watchStore, watchWebSocket } from './watch.js';

const USAGE = `progress: track long-running, multi-step operations

Usage:
  progress demo [--dir DIR | --redis URL [--prefix PREFIX]] [--speed N] [--port N] [--host HOST] [--linger SECONDS]
      A simulated EKS upgrade: JSON store in DIR (default ./progress-demo-data), WebSocket server
      and dashboard on HOST (default 127.0.0.1; 0.0.0.0 or :: to be reached from other machines,
      which then need the read token the printed URLs carry; the URL is printed first), live bars
      in the terminal. Run it again on the same DIR to resume an unfinished upgrade.
        --speed N         run the simulation N times faster (0.01 to 1000, default 1)
        --port N          the port to serve on (default 8765, moving on to a free one when taken)
        --linger SECONDS  keep the dashboard up after the upgrade ends (default: until Ctrl-C on a
                          terminal, not at all otherwise)
  progress watch <ws-url | dashboard-url | json-dir | redis-url> [upgradeId] [--follow] [--token TOKEN] [--connect-timeout SECONDS] [--prefix PREFIX]
      Live progress bars for an upgrade running elsewhere (the id given, else the one after # in a
      dashboard URL, else the most recent one); resumes after a lost connection; gives up when a
      ws:// server is never reached (default 10 s). A ws:// URL without a path tries /ws after a
      404; a dashboard URL watches the endpoint its page names. Plain lines when stdout is not a terminal.
        --follow                   go on after the upgrade ends (a new run under its id included)
                                   until interrupted
        --token TOKEN              the ws-server's access token (ws:// and dashboard URLs only);
                                   default: $PROGRESS_TOKEN, which keeps it out of the process list
        --connect-timeout SECONDS  how long to try a ws:// server never reached (default 10)
  progress ls <json-dir | redis-url> [--json] [--prefix PREFIX]
  progress show <json-dir | redis-url> <upgradeId> [--json] [--prefix PREFIX]
      A table of upgrades (ls), of one upgrade's tasks (show).
        --json            the same as JSON, for machines
      --prefix: the key prefix of a Redis store (its keyPrefix; default progress:).

Options:
  -h, --help      this text
  -v, --version   the version
  NO_COLOR=1      no colours

Environment (secrets kept off the command line, where any local user sees them in ps):
  PROGRESS_TOKEN  watch: the ws-server's token when --token is not given (ignored with a folder or
                  a redis:// source, and with a URL that carries its own ?token= or user:password@)
  REDISCLI_AUTH   the Redis password (as redis-cli reads it) for a redis:// or rediss:// URL (and
                  demo --redis) that carries none: redis://host:6379, redis://user@host:6379

Exit codes: 0 ok (watch: the upgrade completed), 1 the watched upgrade failed or was cancelled,
2 bad usage, 3 not found, 4 source unavailable, 130 interrupted.`;

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return 'unknown';
  }
}

/**
 * Reads a numeric option. Plain decimal digits only (a fraction only where `fraction`): Number()
 * also reads '' (an unset variable) as 0, and '0x10', ' 8 ', '1e3', which no one means for a port.
 */
function number(value: string | undefined, name: string, min: number, max: number, fraction = false): number | undefined {
  if (value === undefined) return undefined;
  const n = (fraction ? /^\d+(\.\d+)?$/ : /^\d+$/).test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) throw new CliError(`--${name} must be a ${fraction ? 'number' : 'whole number'} from ${min} to ${max} in decimal digits, got ${JSON.stringify(value)}`);
  return n;
}

/** What each command takes: its options and how many positionals after the command. Anything else is refused, not ignored. */
const COMMANDS: Record<string, { options: readonly string[]; positionals: number }> = {
  demo: { options: ['dir', 'redis', 'prefix', 'speed', 'port', 'host', 'linger'], positionals: 0 },
  watch: { options: ['follow', 'token', 'connect-timeout', 'prefix'], positionals: 2 },
  ls: { options: ['json', 'prefix'], positionals: 1 },
  show: { options: ['json', 'prefix'], positionals: 2 },
};

/** What `command` takes; `undefined` for a command there is none of (a name of Object.prototype's, `constructor`, included). */
const commandSpec = (command: string | undefined): (typeof COMMANDS)[string] | undefined => (command !== undefined && Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined);

/** Refuses what `command` does not take, naming it: an argument that is silently ignored looks like one that worked. */
function checkArguments(command: string, values: Record<string, string | boolean | undefined>, rest: readonly string[]): void {
  const spec = commandSpec(command);
  if (!spec) return;
  const problems: string[] = [];
  const extra = rest.slice(spec.positionals);
  if (extra.length) problems.push(`unexpected argument${extra.length > 1 ? 's' : ''} ${extra.map((a) => JSON.stringify(a)).join(' ')}`);
  const foreign = Object.keys(values).filter((name) => !spec.options.includes(name));
  if (foreign.length) problems.push(`${foreign.map((name) => `--${name}`).join(', ')} ${foreign.length > 1 ? 'do' : 'does'} not apply to ${command}`);
  if (problems.length) throw new CliError(`${command}: ${problems.join('; ')}\n\n${USAGE}`);
  for (const [name, value] of Object.entries(values)) if (value === '') throw new CliError(`--${name} needs a value, got an empty string`);
}

/**
 * Refuses an option that takes a value given more than once (`--dir a --dir b`): parseArgs keeps the
 * last one, and the command ran on one of the two values without a word about the other. A switch
 * (`--json --json`) says the same thing twice and is taken.
 */
function checkRepeats(tokens: ReadonlyArray<{ kind: string; name?: string; value?: string | undefined }>): void {
  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind !== 'option' || token.name === undefined || token.value === undefined) continue;
    if (seen.has(token.name)) throw new CliError(`--${token.name} is given more than once: give it once`);
    seen.add(token.name);
  }
}

/** The source with the Redis key prefix `--prefix` gave, which only a redis:// source takes. */
function withPrefix(source: Source, prefix: string | undefined): Source {
  if (prefix === undefined) return source;
  if (source.kind !== 'redis') throw new CliError(`--prefix is the key prefix of a Redis store: it goes with a redis:// source, not ${source.kind === 'json' ? 'a folder' : 'a ws:// URL'}`);
  return { ...source, keyPrefix: prefix };
}

/**
 * How to run this CLI again from another shell, for the demo's hints: `npx progress` when it runs
 * from an installed package (its bin is linked), else `node <its script>` (in this repository,
 * `npm run demo` runs `packages/tracker/dist/cli/bin.js`, whose bin npm did not link: the build
 * comes after the install, and `npx progress` there would fetch another package of that name).
 */
export function selfCommand(script: string | undefined = process.argv[1], cwd: string = process.cwd()): string {
  if (!script || /[\\/]node_modules[\\/]/.test(script) || !/[\\/]cli[\\/]bin\.js$/.test(script)) return 'npx progress';
  const path = relative(cwd, script);
  return `node ${shellArg(path.startsWith('..') ? script : path)}`;
}

/**
 * Writes `text` to `out`, resolved once it is written. A write that fails (a full disk, stdout closed
 * by its reader) rejects with the command's error for it ({@link outputError}): the output is the
 * result a script reads, and a command that lost it exited 0. A write after a failed one fails as
 * "destroyed": the first failure is the one said. `signal` (Ctrl-C, SIGTERM, or a failed write)
 * stops the wait: a reader that takes nothing (a pager left open) would hold the command for ever.
 */
function write(out: NodeJS.WriteStream, text: string, signal?: AbortSignal, failure: () => unknown = () => out.errored): Promise<void> {
  return new Promise((resolve, reject) => {
    // A failed write aborts the signal too (main's onOutputError): its error, not an interruption.
    const stop = () => {
      const failed = failure();
      reject(failed ? outputError(failed) : new Interrupted());
    };
    if (signal?.aborted) return stop();
    signal?.addEventListener('abort', stop, { once: true });
    out.write(text, (e) => {
      signal?.removeEventListener('abort', stop);
      if (e) reject(outputError(out.errored ?? e));
      else resolve();
    });
  });
}

/**
 * Says why the command failed, on `err`; returns its exit code. `args` are the command line's
 * arguments and option values: one that is a URL is never quoted with its password or token.
 */
function failed(e: unknown, err: NodeJS.WriteStream, args: readonly string[] = []): number {
  // Stopped while it waited for its source: nothing to say, as a `watch` stopped by Ctrl-C.
  if (e instanceof Interrupted) return e.exitCode;
  const error = e instanceof CliError ? e : storeError(e);
  // A message may quote a server or a store: their control characters become spaces (its own line breaks stay).
  err.write(`progress: ${withoutSecrets(error.message, args).split('\n').map(safeText).join('\n')}\n`);
  return error.exitCode;
}

/**
 * `message` with each of `args` that is a URL holding a password or token masked (as redactUrl
 * does), as it is and as JSON quotes it. A URL put where the command takes an id or nothing
 * (`progress demo redis://:pw@host`, which needs `--redis`; a folder and a URL in the wrong order) is
 * quoted whole by the error that refuses it.
 */
function withoutSecrets(message: string, args: readonly string[]): string {
  for (const arg of args) {
    const masked = redactUrl(arg);
    // Only one it masked something in: redactUrl also normalizes a URL (`ws://host:8765` -> `ws://host:8765/`).
    if (masked.split('***').length === arg.split('***').length) continue;
    // Replaced by functions: a replacement string's `$&` is the text it replaces (the URL, whole).
    const quoted = JSON.stringify(masked).slice(1, -1);
    message = message.replaceAll(arg, () => masked).replaceAll(JSON.stringify(arg).slice(1, -1), () => quoted);
  }
  return message;
}

/** Characters a header value may hold, without spaces: the token travels as `Authorization: Bearer <token>`. */
const HEADER_TOKEN = /^[\x21-\x7e]+$/;

/** The environment variable `watch` takes the ws-server's token from when `--token` is not given. */
export const TOKEN_ENV = 'PROGRESS_TOKEN';

/**
 * The token from {@link TOKEN_ENV} for `source`: a command-line argument is seen by every local user
 * (`ps`, /proc/<pid>/cmdline), the environment only by the user's own processes. Empty is unset. The
 * variable is ambient (exported once, for every command of a shell): a source it does not go with (a
 * folder, a Redis URL) ignores it rather than being refused as `--token` is, and so does a URL that
 * carries credentials of its own (`?token=`, `user:password@`), which were given for this command.
 */
function tokenFromEnv(source: Source): string | undefined {
  const token = process.env[TOKEN_ENV];
  if (!token || source.kind !== 'ws') return undefined;
  const url = new URL(source.page ?? source.url);
  if (url.searchParams.has('token') || url.username || url.password) return undefined;
  // The value is not quoted: it is a secret.
  if (!HEADER_TOKEN.test(token)) throw new CliError(`${TOKEN_ENV} must be printable ASCII without spaces`);
  return token;
}

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
  json: { type: 'boolean' },
  follow: { type: 'boolean' },
  dir: { type: 'string' },
  redis: { type: 'string' },
  prefix: { type: 'string' },
  speed: { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  linger: { type: 'string' },
  token: { type: 'string' },
  'connect-timeout': { type: 'string' },
} as const satisfies NonNullable<Parameters<typeof parseArgs>[0]>['options'];

/**
 * The first option of `argv` the command does not take, said plainly, with the one it is nearest to
 * among the command's own (`--jsn`: did you mean --json?; another command's, which that command
 * refuses next, is no answer); `undefined` when there is none (parseArgs refused something else: a
 * value missing). parseArgs' own message left a quote open and guessed nothing.
 */
function unknownOption(argv: string[]): string | undefined {
  const { tokens } = parseArgs({ args: argv, allowPositionals: true, strict: false, tokens: true, options: OPTIONS });
  const token = tokens.find((t) => t.kind === 'option' && !Object.hasOwn(OPTIONS, t.name));
  if (token?.kind !== 'option') return undefined;
  const spec = commandSpec(tokens.find((t) => t.kind === 'positional')?.value);
  const known = spec ? [...spec.options, 'help', 'version'] : Object.keys(OPTIONS);
  const guess = token.name.length > 1 ? nearestName(token.name, known) : undefined;
  return `unknown option '${token.rawName}'${guess === undefined ? '' : ` (did you mean --${guess}?)`}; an argument that starts with '-' goes after '--' (progress show DIR -- -id)`;
}

/** Runs the `progress` command with `argv` (without node and the script); resolves the exit code. */
export async function main(argv: string[], out: NodeJS.WriteStream = process.stdout, err: NodeJS.WriteStream = process.stderr): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, tokens: true, options: OPTIONS });
  } catch (e) {
    // An option quoted as given: an id from elsewhere that starts with `--` may hold terminal escapes (failed() makes them spaces).
    return failed(new CliError(`${unknownOption(argv) ?? (e as Error).message}\n\n${USAGE}`), err, argv);
  }
  const { values, positionals, tokens } = parsed;
  const [command, ...rest] = positionals;
  const args = [...positionals, ...Object.values(values).filter((value) => typeof value === 'string')];
  if (values.version) return write(out, `${version()}\n`).then(() => ExitCode.OK, (e: unknown) => failed(e, err));
  if (values.help || !command || command === 'help') {
    // Asked for: on stdout. No command at all is a usage error: on stderr, as every other one.
    if (command || values.help) return write(out, `${USAGE}\n`).then(() => ExitCode.OK, (e: unknown) => failed(e, err));
    err.write(`${USAGE}\n`);
    return ExitCode.USAGE;
  }

  try {
    checkArguments(command, values, rest);
    checkRepeats(tokens);
    if (values.token !== undefined && !HEADER_TOKEN.test(values.token)) throw new CliError('--token must be printable ASCII without spaces');
  } catch (e) {
    return failed(e, err, args);
  }

  /** parseSource, the URL with a password from REDISCLI_AUTH added to `args`: masked in any message that quotes it, as the URL given is. */
  const parse = async (spec: string | undefined, allowWs: boolean): Promise<Source> => {
    const parsed = await parseSource(spec, allowWs);
    if (parsed.kind === 'redis' && parsed.passwordFromEnv) args.push(parsed.url);
    return parsed;
  };

  /** A folder source that is not a store's folder (it holds the old module's files itself, or is inside a store): said on stderr, naming the folder to give (see folderHint). */
  const sayFolderHint = async (source: Source): Promise<void> => {
    const hint = source.kind === 'json' ? await folderHint(source.directory) : undefined;
    if (hint) err.write(`progress: ${hint}\n`);
  };
  /** A Redis store that found nothing under its prefix, where this Redis keeps upgrades under others: said on stderr, naming the --prefix to give (see prefixHint). */
  const sayPrefixHint = async (store: ProgressStore, upgradeId?: string): Promise<void> => {
    const hint = await prefixHint(store, upgradeId);
    if (hint) err.write(`progress: ${hint}\n`);
  };
  const controller = new AbortController();
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(ExitCode.INTERRUPTED);
    interrupted = true;
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // The reader of stdout went away (`| head -1`: EPIPE): stop as on Ctrl-C, so that the tracker and
  // store close as they should (the demo's writer lock goes), rather than die of an unhandled error.
  // The error is kept: Node's stdout forgets it once reported (its `errored` is cleared as it
  // "undestroys" itself), and a command that ended after that took the stop for an interruption.
  let outputFailure: unknown;
  const onOutputError = (e: unknown) => {
    outputFailure ??= e;
    interrupted = true;
    controller.abort();
  };
  /** Why stdout failed, if it did: the first error, as said by {@link write}. */
  const outputFailed = (): unknown => outputFailure ?? out.errored;
  out.on('error', onOutputError);
  try {
    switch (command) {
      case 'demo': {
        const { runDemo } = await import('./demo.js');
        if (values.dir && values.redis) throw new CliError('give --dir or --redis, not both');
        // `--dir=~/progress`: the shell leaves that "~" as it is, and the demo made a folder named "~" here.
        if (values.dir && HOME_LIKE.test(values.dir)) throw new CliError(`--dir ${JSON.stringify(values.dir)}: ${tildeHint(values.dir, '--dir')}`);
        if (values.prefix !== undefined && !values.redis) throw new CliError('--prefix goes with --redis (a Redis store\'s key prefix)');
        if (values.redis !== undefined && !/^rediss?:\/\//i.test(values.redis)) throw new CliError(`--redis takes a redis:// or rediss:// URL, got ${JSON.stringify(redactUrl(values.redis))}`);
        const redis = values.redis ? await parse(values.redis, false) : undefined;
        const view = new LiveView({ out });
        const tracker = await runDemo({
          ...(values.dir ? { directory: values.dir } : {}),
          ...(redis?.kind === 'redis' ? { redisUrl: redis.url, ...(redis.passwordFromEnv ? { redisPasswordFromEnv: true } : {}) } : {}),
          ...(values.prefix !== undefined ? { keyPrefix: values.prefix } : {}),
          speed: number(values.speed, 'speed', 0.01, 1000, true) ?? 1,
          ...(values.port !== undefined ? { port: number(values.port, 'port', 0, 65535)! } : {}),
          ...(values.host ? { host: values.host } : {}),
          lingerSeconds: number(values.linger, 'linger', 0, 1e9, true) ?? (out.isTTY ? Infinity : 0),
          view,
          signal: controller.signal,
          print: (line) => view.say(line),
          command: selfCommand(),
        });
        await tracker.close();
        // What it printed reached stdout (or the command says why not).
        await write(out, '', controller.signal, outputFailed);
        return ExitCode.OK;
      }
      case 'watch': {
        const source = withPrefix(await parse(rest[0], true), values.prefix);
        const wsOnly = (['token', 'connect-timeout'] as const).filter((name) => values[name] !== undefined);
        if (source.kind !== 'ws' && wsOnly.length > 0) {
          throw new CliError(`${wsOnly.map((name) => `--${name}`).join(' and ')} ${wsOnly.length > 1 ? 'go' : 'goes'} with a ws:// source, not ${source.kind === 'json' ? 'a folder' : 'a redis:// URL'}`);
        }
        // An id on the command line wins over the one a dashboard URL selects after its #.
        const upgradeId = rest[1] ?? (source.kind === 'ws' && source.fragment ? upgradeIdFromFragment(source.fragment) : undefined);
        // Checked here for every source: a ws:// server would only answer INVALID_MESSAGE.
        if (upgradeId !== undefined) assertValidId(upgradeId, 'upgradeId');
        // --token wins over PROGRESS_TOKEN.
        const token = values.token ?? tokenFromEnv(source);
        const view = new LiveView({ out });
        const connectTimeout = number(values['connect-timeout'], 'connect-timeout', 0, 86_400, true);
        const options = {
          view,
          signal: controller.signal,
          follow: values.follow === true,
          ...(token ? { token } : {}),
          ...(connectTimeout !== undefined ? { firstConnectTimeoutMs: connectTimeout * 1000 } : {}),
        };
        let state;
        if (source.kind === 'ws') {
          // A dashboard URL: the endpoint its page names, read within the connect timeout (5 s at most).
          const urls = await socketUrls(source, {
            ...(token ? { token } : {}),
            signal: controller.signal,
            ...(connectTimeout !== undefined ? { timeoutMs: Math.max(100, connectTimeout * 1000) } : {}),
          });
          state = await watchWebSocket(urls, upgradeId, options);
        }
        else {
          // The old module's files in the folder given itself are never read from there, nor the upgrades
          // of a store whose upgrades/ folder is given: said first, as `watch` of an upgrade that is not
          // there waits for it (or, without an id, finds none).
          await sayFolderHint(source);
          // Without an id, the most recent upgrade of the store's list: one the store leaves out of it
          // (damaged, or another user's this process may not read) is said on stderr as `ls` says it,
          // and a list that left out every one is not "no upgrades". What the store logs after the pick
          // is not said: a damaged snapshot is logged at every load.
          const logger = stderrLogger(err);
          let picking = upgradeId === undefined;
          const store = await openStore(source, loggerWhile(logger, () => picking), controller.signal);
          try {
            const id = await pickUpgrade(store, upgradeId).catch(async (e: unknown) => {
              const none = e instanceof CliError && e.exitCode === ExitCode.NOT_FOUND && logger.errors > 0;
              if (e instanceof CliError && e.exitCode === ExitCode.NOT_FOUND && !none) await sayPrefixHint(store);
              throw none ? new CliError('no upgrade in this source could be read (those left out are named above)', ExitCode.UNAVAILABLE) : e;
            });
            picking = false;
            // An upgrade this prefix does not hold, which this Redis keeps under another: said before
            // waiting for it to appear here, which it may never do.
            if (upgradeId !== undefined && source.kind === 'redis' && !(await store.load(id).catch(() => true))) await sayPrefixHint(store, id);
            const quiet = source.kind === 'redis' ? sayRedisOutages(store, source.url, (line) => view.say(line)) : () => {};
            try {
              state = await watchStore(store, id, options);
            } finally {
              quiet();
            }
          } finally {
            await store.close();
          }
        }
        view.finish();
        // What it printed reached stdout (or the command says why not).
        await write(out, '', controller.signal, outputFailed);
        return exitCodeFor(state);
      }
      case 'ls':
      case 'show': {
        const source = withPrefix(await parse(rest[0], false), values.prefix);
        const logger = stderrLogger(err);
        // What the store logs while `show` lists its upgrades for the id nearest one it does not hold
        // (another upgrade left out as damaged) is not said: `show` was not asked about those.
        let hinting = false;
        const store = await openStore(source, loggerWhile(logger, () => !hinting), controller.signal);
        const quietHint = async (id: string): Promise<string> => {
          hinting = true;
          try {
            return await didYouMeanIn(store, id);
          } finally {
            hinting = false;
          }
        };
        try {
          let text;
          try {
            text = await untilInterrupted(command === 'ls' ? listUpgrades(store, values.json === true) : showUpgrade(store, rest[1], values.json === true, quietHint), controller.signal);
          } catch (e) {
            // An upgrade `show` does not find in a folder that holds the old module's files itself, or is inside a store: the folder to give.
            if (e instanceof CliError && e.exitCode === ExitCode.NOT_FOUND) {
              await sayFolderHint(source);
              if (rest[1] !== undefined) await sayPrefixHint(store, rest[1]);
            }
            throw e;
          }
          await write(out, `${text}\n`, controller.signal, outputFailed);
          const none = command === 'ls' && (text === 'no upgrades' || text === '[]');
          // A folder that holds the old module's files itself (the progress/ folder they are read from), or is inside a store: nothing found, and no word why.
          if (none) await sayFolderHint(source);
          // A prefix without its separator (`--prefix demo` for `demo:`) names other keys: nothing found, and no word why
          // (with --json too: the hint is on stderr, the JSON on stdout stays as it is).
          if (none && source.kind === 'redis' && source.keyPrefix && !source.keyPrefix.endsWith(':')) {
            err.write(`progress: no upgrades under the key prefix "${safeText(source.keyPrefix)}"; a prefix usually ends in ":" (did you mean --prefix ${safeText(source.keyPrefix)}:?)\n`);
          } else if (none) await sayPrefixHint(store);
        } finally {
          await store.close();
        }
        // What the store reported as an error (an upgrade left out of the list as damaged) is on
        // stderr; the list printed is not the whole source.
        return logger.errors > 0 ? ExitCode.UNAVAILABLE : ExitCode.OK;
      }
      default: {
        // A misspelt command (`shwo`) named, as a misspelt option is.
        throw new CliError(`unknown command "${command}"${command.length > 1 ? didYouMean(command, Object.keys(COMMANDS)) : ''}\n\n${USAGE}`);
      }
    }
  } catch (e) {
    // Stopped by a failed write to stdout (not a Ctrl-C): that failure is what is said.
    const failure = e instanceof Interrupted ? outputFailed() : undefined;
    return failed(failure ? outputError(failure) : e, err, args);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    out.off('error', onOutputError);
  }
}

