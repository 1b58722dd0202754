import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { assertValidId } from '@progress/core';
import { CliError, ExitCode } from './errors.js';
import { listUpgrades, showUpgrade } from './inspect.js';
import { openStore, parseSource, storeError } from './sources.js';
import { LiveView } from './terminal.js';
import { exitCodeFor, watchStore, watchWebSocket } from './watch.js';

const USAGE = `progress: track long-running, multi-step operations

Usage:
  progress demo [--dir DIR | --redis URL] [--speed N] [--port N] [--linger SECONDS]
      A simulated EKS upgrade: JSON store in DIR (default ./progress-demo-data), WebSocket server
      and dashboard on 127.0.0.1 (the URL is printed first), live bars in the terminal. Run it again
      on the same DIR to resume an unfinished upgrade.
  progress watch <ws-url | json-dir | redis-url> [upgradeId] [--follow] [--token TOKEN] [--connect-timeout SECONDS]
      Live progress bars for an upgrade running elsewhere (the most recent one when no id is given);
      resumes after a lost connection; gives up when a ws:// server is never reached (default 10 s).
      Plain lines when stdout is not a terminal.
  progress ls <json-dir | redis-url> [--json]
  progress show <json-dir | redis-url> <upgradeId> [--json]

Options:
  -h, --help      this text
  -v, --version   the version
  NO_COLOR=1      no colours

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

function number(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max) throw new CliError(`--${name} must be a number from ${min} to ${max}, got ${value}`);
  return n;
}

/** Runs the `progress` command with `argv` (without node and the script); resolves the exit code. */
export async function main(argv: string[], out: NodeJS.WriteStream = process.stdout, err: NodeJS.WriteStream = process.stderr): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        json: { type: 'boolean' },
        follow: { type: 'boolean' },
        dir: { type: 'string' },
        redis: { type: 'string' },
        speed: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        linger: { type: 'string' },
        token: { type: 'string' },
        'connect-timeout': { type: 'string' },
      },
    });
  } catch (e) {
    err.write(`progress: ${(e as Error).message}\n\n${USAGE}\n`);
    return ExitCode.USAGE;
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.version) {
    out.write(`${version()}\n`);
    return ExitCode.OK;
  }
  if (values.help || !command || command === 'help') {
    out.write(`${USAGE}\n`);
    return command || values.help ? ExitCode.OK : ExitCode.USAGE;
  }

  const controller = new AbortController();
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(ExitCode.INTERRUPTED);
    interrupted = true;
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    switch (command) {
      case 'demo': {
        const { runDemo } = await import('./demo.js');
        if (values.dir && values.redis) throw new CliError('give --dir or --redis, not both');
        if (values.redis) await parseSource(values.redis, false);
        const view = new LiveView({ out });
        const tracker = await runDemo({
          ...(values.dir ? { directory: values.dir } : {}),
          ...(values.redis ? { redisUrl: values.redis } : {}),
          speed: number(values.speed, 'speed', 0.01, 1000) ?? 1,
          ...(values.port !== undefined ? { port: number(values.port, 'port', 0, 65535)! } : {}),
          ...(values.host ? { host: values.host } : {}),
          lingerSeconds: number(values.linger, 'linger', 0, 1e9) ?? (out.isTTY ? Infinity : 0),
          view,
          signal: controller.signal,
          print: (line) => view.say(line),
        });
        await tracker.close();
        return interrupted ? ExitCode.INTERRUPTED : ExitCode.OK;
      }
      case 'watch': {
        const source = await parseSource(rest[0], true);
        // Checked here for every source: a ws:// server would only answer INVALID_MESSAGE.
        if (rest[1] !== undefined) assertValidId(rest[1], 'upgradeId');
        const view = new LiveView({ out });
        const connectTimeout = number(values['connect-timeout'], 'connect-timeout', 0, 86_400);
        const options = {
          view,
          signal: controller.signal,
          follow: values.follow === true,
          ...(values.token ? { token: values.token } : {}),
          ...(connectTimeout !== undefined ? { firstConnectTimeoutMs: connectTimeout * 1000 } : {}),
        };
        let state;
        if (source.kind === 'ws') state = await watchWebSocket(source.url, rest[1], options);
        else {
          const store = await openStore(source);
          try {
            state = await watchStore(store, rest[1], options);
          } finally {
            await store.close();
          }
        }
        view.finish();
        return interrupted ? ExitCode.INTERRUPTED : exitCodeFor(state);
      }
      case 'ls':
      case 'show': {
        const source = await parseSource(rest[0], false);
        const store = await openStore(source);
        try {
          const text = command === 'ls' ? await listUpgrades(store, values.json === true) : await showUpgrade(store, rest[1], values.json === true);
          out.write(`${text}\n`);
        } finally {
          await store.close();
        }
        return ExitCode.OK;
      }
      default:
        throw new CliError(`unknown command "${command}"\n\n${USAGE}`);
    }
  } catch (e) {
    const error = e instanceof CliError ? e : storeError(e);
    err.write(`progress: ${error.message}\n`);
    return error.exitCode;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

