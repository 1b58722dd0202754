import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { isProgressError, redactUrl, type Logger, type ProgressStore } from '@progress/core';
import { safeText } from '../render.js';
import { JsonFileStore } from '@progress/storage-json';
import { RedisStore, type RedisStoreOptions } from '@progress/storage-redis';
import { CliError, ExitCode } from './errors.js';

/** What a `<source>` argument names. A ws source keeps the `#fragment` of its URL: the dashboard puts the selected upgrade id there. */
export type Source = { kind: 'json'; directory: string } | { kind: 'redis'; url: string; keyPrefix?: string } | { kind: 'ws'; url: string; fragment?: string };

/** Reads a `<source>` argument: a ws:// or wss:// URL (or a dashboard's http(s):// URL), a redis:// or rediss:// URL, or a folder. */
export async function parseSource(spec: string | undefined, allowWs: boolean): Promise<Source> {
  if (!spec) throw new CliError('missing <source>: a JSON folder or a redis:// URL' + (allowWs ? ' or a ws:// URL' : ''));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    let url: URL;
    try {
      url = new URL(spec);
    } catch {
      throw new CliError(`not a valid URL: ${redactUrl(spec)}`);
    }
    if (url.protocol === 'redis:' || url.protocol === 'rediss:') return { kind: 'redis', url: spec };
    if (['ws:', 'wss:', 'http:', 'https:'].includes(url.protocol) && allowWs) {
      // A URL copied from the dashboard ends with `#<upgradeId>`. The fragment is never sent to a
      // server, and ws refuses a URL that has one, at connect time (exit 4): it is taken off here.
      const fragment = url.hash.slice(1);
      url.hash = '';
      if (url.protocol === 'http:' || url.protocol === 'https:') {
        // A dashboard URL: its WebSocket endpoint is /ws on the same host (the query, `?token=`, kept).
        url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
        url.pathname = '/ws';
      }
      if (!url.hostname) throw new CliError(`no host in the URL ${redactUrl(spec)}`);
      return { kind: 'ws', url: url.toString(), ...(fragment ? { fragment } : {}) };
    }
    throw new CliError(`unsupported URL scheme ${url.protocol} (use ${allowWs ? 'ws://, http:// (a dashboard), ' : ''}redis:// or a folder)`);
  }
  const directory = resolve(spec);
  const info = await stat(directory).catch(() => undefined);
  if (!info) throw new CliError(`no such folder: ${directory}`, ExitCode.NOT_FOUND);
  if (!info.isDirectory()) throw new CliError(`not a folder: ${directory}`, ExitCode.USAGE);
  return { kind: 'json', directory };
}

/** A RedisStore on `url`; options it refuses (a bad key prefix) are a usage error naming the URL without its password. */
export function redisStore(url: string, options: Omit<RedisStoreOptions, 'url' | 'redis'> = {}): RedisStore {
  try {
    return new RedisStore({ url, ...options });
  } catch (err) {
    throw new CliError(`cannot open Redis at ${redactUrl(url)}: ${isProgressError(err) ? err.message.replace('[@progress/storage-redis] ', '') : String(err)}`);
  }
}

/**
 * A logger for the stores the CLI opens: their warnings and errors go to `err` as `progress: ...`
 * lines (control characters made spaces: they may quote stored text), and `errors` counts the
 * errors. A store that leaves a damaged upgrade out of `list()` says so here, and `ls` exits 4.
 */
export function stderrLogger(err: NodeJS.WritableStream): Logger & { readonly errors: number } {
  let errors = 0;
  const line = (obj: object, msg?: string): void => {
    const { err: cause, upgradeId } = obj as { err?: unknown; upgradeId?: unknown };
    const reason = cause instanceof Error ? cause.message : cause === undefined ? '' : String(cause);
    err.write(`progress: ${safeText(`${msg ?? 'store'}${typeof upgradeId === 'string' ? ` (upgrade "${upgradeId}")` : ''}${reason ? `: ${reason}` : ''}`)}\n`);
  };
  return {
    get errors() {
      return errors;
    },
    debug: () => {},
    info: () => {},
    warn: line,
    error: (obj, msg) => {
      errors++;
      line(obj, msg);
    },
  };
}

/** Opens the store a json or redis source names; `logger` hears what the store logs. */
export async function openStore(source: Source, logger?: Logger): Promise<ProgressStore> {
  if (source.kind === 'json') return new JsonFileStore({ directory: source.directory, ...(logger ? { logger } : {}) });
  if (source.kind === 'redis') {
    // What the store logs during the probe is not passed on: a failure is the error below (it was
    // printed twice, the store's log line and then the CLI's), and on success the command's own
    // reads log what they find (a damaged upgrade the probe saw would be reported twice too).
    let probing = true;
    const quiet = (level: keyof Logger) => (obj: object, msg?: string) => {
      if (!probing) logger?.[level](obj, msg);
    };
    const gated: Logger = { debug: quiet('debug'), info: quiet('info'), warn: quiet('warn'), error: quiet('error') };
    const store = redisStore(source.url, { commandTimeoutMs: 3000, ...(source.keyPrefix !== undefined ? { keyPrefix: source.keyPrefix } : {}), ...(logger ? { logger: gated } : {}) });
    try {
      await store.list({ limit: 1 });
      probing = false;
    } catch (err) {
      await store.close().catch(() => {});
      // INVALID_ARGUMENT: Redis refused the URL's database.
      throw new CliError(`cannot reach Redis at ${redactUrl(source.url)}: ${(err as Error).message}`, isProgressError(err, 'INVALID_ARGUMENT') ? ExitCode.USAGE : ExitCode.UNAVAILABLE);
    }
    return store;
  }
  throw new CliError('a ws:// URL can only be watched');
}

/** The upgrade id a dashboard URL's `#fragment` selects, percent-decoded as the dashboard decodes it. */
export function upgradeIdFromFragment(fragment: string): string {
  try {
    return decodeURIComponent(fragment);
  } catch {
    throw new CliError(`the #fragment of the URL is not an upgrade id: #${fragment}`);
  }
}

/** Maps a store error to a CLI error with the right exit code. */
export function storeError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (isProgressError(err, 'NOT_FOUND')) return new CliError(err.message, ExitCode.NOT_FOUND);
  if (isProgressError(err, 'INVALID_ARGUMENT')) return new CliError(err.message, ExitCode.USAGE);
  return new CliError((err as Error)?.message ?? String(err), ExitCode.UNAVAILABLE);
}
