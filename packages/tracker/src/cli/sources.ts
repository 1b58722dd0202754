import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { isProgressError, type ProgressStore } from '@progress/core';
import { JsonFileStore } from '@progress/storage-json';
import { RedisStore } from '@progress/storage-redis';
import { CliError, ExitCode } from './errors.js';

/** What a `<source>` argument names. */
export type Source = { kind: 'json'; directory: string } | { kind: 'redis'; url: string } | { kind: 'ws'; url: string };

/** Reads a `<source>` argument: a ws:// or wss:// URL, a redis:// or rediss:// URL, or a folder. */
export async function parseSource(spec: string | undefined, allowWs: boolean): Promise<Source> {
  if (!spec) throw new CliError('missing <source>: a JSON folder or a redis:// URL' + (allowWs ? ' or a ws:// URL' : ''));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    let url: URL;
    try {
      url = new URL(spec);
    } catch {
      throw new CliError(`not a valid URL: ${spec}`);
    }
    if (url.protocol === 'redis:' || url.protocol === 'rediss:') return { kind: 'redis', url: spec };
    if ((url.protocol === 'ws:' || url.protocol === 'wss:') && allowWs) return { kind: 'ws', url: spec };
    if ((url.protocol === 'http:' || url.protocol === 'https:') && allowWs) {
      // A dashboard URL: its WebSocket endpoint is /ws on the same host.
      url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
      url.pathname = '/ws';
      return { kind: 'ws', url: url.toString() };
    }
    throw new CliError(`unsupported URL scheme ${url.protocol} (use ${allowWs ? 'ws://, ' : ''}redis:// or a folder)`);
  }
  const directory = resolve(spec);
  const info = await stat(directory).catch(() => undefined);
  if (!info) throw new CliError(`no such folder: ${directory}`, ExitCode.NOT_FOUND);
  if (!info.isDirectory()) throw new CliError(`not a folder: ${directory}`, ExitCode.USAGE);
  return { kind: 'json', directory };
}

/** Opens the store a json or redis source names. */
export async function openStore(source: Source): Promise<ProgressStore> {
  if (source.kind === 'json') return new JsonFileStore({ directory: source.directory });
  if (source.kind === 'redis') {
    const store = new RedisStore({ url: source.url, commandTimeoutMs: 3000 });
    try {
      await store.list({ limit: 1 });
    } catch (err) {
      await store.close().catch(() => {});
      throw new CliError(`cannot reach Redis at ${redact(source.url)}: ${(err as Error).message}`, ExitCode.UNAVAILABLE);
    }
    return store;
  }
  throw new CliError('a ws:// URL can only be watched');
}

/** A URL without its password, for messages. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

/** Maps a store error to a CLI error with the right exit code. */
export function storeError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (isProgressError(err, 'NOT_FOUND')) return new CliError(err.message, ExitCode.NOT_FOUND);
  if (isProgressError(err, 'INVALID_ARGUMENT')) return new CliError(err.message, ExitCode.USAGE);
  return new CliError((err as Error)?.message ?? String(err), ExitCode.UNAVAILABLE);
}
