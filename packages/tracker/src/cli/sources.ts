import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { isProgressError, redactUrl, type Logger, type ProgressStore } from '@progress/core';
import { safeText } from '../render.js';
import { JsonFileStore } from '@progress/storage-json';
import { RedisStore, type RedisStoreOptions } from '@progress/storage-redis';
import { Cluster, type Redis } from 'ioredis';
import { CliError, ExitCode, Interrupted, isCertificateError, untilInterrupted, withCertificateHint } from './errors.js';

/** What a `<source>` argument names. A ws source keeps the `#fragment` of its URL: the dashboard puts the selected upgrade id there. */
export type Source =
  | { kind: 'json'; directory: string }
  | {
      kind: 'redis';
      /** The URL the store connects with: the one given, with the password from {@link REDIS_PASSWORD_ENV} when it has none. */
      url: string;
      keyPrefix?: string;
      /** The password came from {@link REDIS_PASSWORD_ENV}, not from the URL given. */
      passwordFromEnv?: boolean;
    }
  | {
      kind: 'ws';
      /** The endpoint tried first. */
      url: string;
      fragment?: string;
      /** Endpoints tried in turn when the one before is answered 404 before a first connection (see {@link socketUrls}). */
      alternatives?: string[];
      /** The dashboard page the URL named (http(s)://, without its `#fragment`): its meta tag names the endpoint. */
      page?: string;
    };

/** The ws-server's endpoint unless its `path` option says otherwise (`ProgressWebSocketServerOptions.path`). */
export const DEFAULT_WS_PATH = '/ws';

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
    if (url.protocol === 'redis:' || url.protocol === 'rediss:') {
      const withPassword = withEnvPassword(spec, url);
      return { kind: 'redis', url: withPassword ?? spec, ...(withPassword !== undefined ? { passwordFromEnv: true } : {}) };
    }
    if (['ws:', 'wss:', 'http:', 'https:'].includes(url.protocol) && allowWs) {
      // A URL copied from the dashboard ends with `#<upgradeId>`. The fragment is never sent to a
      // server, and ws refuses a URL that has one, at connect time (exit 4): it is taken off here.
      const fragment = url.hash.slice(1);
      url.hash = '';
      if (!url.hostname) throw new CliError(`no host in the URL ${redactUrl(spec)}`);
      if (url.protocol === 'http:' || url.protocol === 'https:') {
        // A dashboard URL: the page names its endpoint (see socketUrls); until it is read, the guess is
        // `ws` beside the page, where a dashboard mounted under a prefix has it (/progress/ ->
        // /progress/ws, / -> /ws), on the same host (the query, `?token=`, kept).
        // After a 404 there, the ws-server's default path (`/ws`), which `/progress/` served by an app
        // whose ws-server kept its default path has.
        const page = url.toString();
        url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
        url.pathname = besidePage(url.pathname);
        const alternatives = url.pathname === DEFAULT_WS_PATH ? [] : [withPath(url, DEFAULT_WS_PATH)];
        return { kind: 'ws', url: url.toString(), page, ...(alternatives.length ? { alternatives } : {}), ...(fragment ? { fragment } : {}) };
      }
      // A URL without a path (`ws://host:8765`, the server's address as a user copies it): the
      // server's root is tried as given, then its default endpoint.
      const alternatives = url.pathname === '/' ? [withPath(url, DEFAULT_WS_PATH)] : [];
      return { kind: 'ws', url: url.toString(), ...(alternatives.length ? { alternatives } : {}), ...(fragment ? { fragment } : {}) };
    }
    throw new CliError(`unsupported URL scheme ${url.protocol} (use ${allowWs ? 'ws://, http:// (a dashboard), ' : ''}redis:// or a folder)`);
  }
  const directory = resolve(spec);
  // Only a path that is not there is "no such folder" (exit 3). One this user may not reach (EACCES
  // inside another user's 0700 folder, a service's data folder) is there: said as a folder that
  // cannot be read, as `ls` says one it may not look into (exit 4), not sent looking for a typo.
  const info = await stat(directory).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
    throw new CliError(`cannot read the folder ${directory} (${err.message})`, ExitCode.UNAVAILABLE);
  });
  if (!info) throw new CliError(`no such folder: ${directory}${HOME_LIKE.test(spec) ? ` (${tildeHint(spec)})` : ''}`, ExitCode.NOT_FOUND);
  if (!info.isDirectory()) throw new CliError(`not a folder: ${directory}`, ExitCode.USAGE);
  return { kind: 'json', directory };
}

/** A folder a shell would have expanded (`~`, `~/data`, `~bob/data`): Node takes it as a folder named `~...`. */
export const HOME_LIKE = /^~[^\\/]*(?:[\\/]|$)/;

/**
 * What to write instead of `spec`, a {@link HOME_LIKE} folder the shell left as it was: the value of
 * `option` (`--dir=~/data`), else an argument (quoted).
 */
export function tildeHint(spec: string, option?: string): string {
  return option
    ? `the shell does not expand "~" after "${option}=" (nor inside quotes): write ${option} ~/... with a space, or the full path; "./${spec}" for a folder named "~"`
    : 'the shell does not expand "~" inside quotes: write ~/... unquoted, or the full path';
}

/** The environment variable redis-cli reads the password from, for a password kept off the command line (`ps`). */
export const REDIS_PASSWORD_ENV = 'REDISCLI_AUTH';

/**
 * `spec` (a redis:// URL, `url` as parsed) with the password from {@link REDIS_PASSWORD_ENV}, when the
 * variable is set (not empty) and the URL carries no password of its own (in its user info or as
 * `?password=`, which win); else undefined. As redis-cli takes it: with the URL's user name (an ACL
 * user), else for the default user. The password goes where ioredis reads it with the user name the
 * URL gives: in the user info (`redis://alice:<pw>@host`, `redis://:<pw>@host`), or as `?password=`
 * beside a `?username=` (a user info password would come with an empty user name, which wins over
 * the query's). Percent-encoded: ioredis decodes it. Everything that shows a URL masks it (`***`).
 */
function withEnvPassword(spec: string, url: URL): string | undefined {
  const password = process.env[REDIS_PASSWORD_ENV];
  if (!password || url.password || url.searchParams.has('password')) return undefined;
  const copy = new URL(spec);
  if (!copy.username && copy.searchParams.has('username')) copy.search = `${copy.search}&password=${encodeURIComponent(password)}`;
  else copy.password = encodeURIComponent(password);
  return copy.toString();
}

/** `url` with its path replaced (its query kept). */
function withPath(url: URL, pathname: string): string {
  const copy = new URL(url);
  copy.pathname = pathname;
  return copy.toString();
}

/**
 * The endpoint a dashboard page at `pathname` has beside it: `ws` in the page's folder (the page is
 * served for a path ending in `/` or `/index.html`); a last segment without a slash after it is taken
 * as a folder (`/progress` -> `/progress/ws`), as a user who left the slash off meant it.
 */
function besidePage(pathname: string): string {
  const folder = pathname.endsWith('/') ? pathname : pathname.endsWith('/index.html') ? pathname.slice(0, -'index.html'.length) : `${pathname}/`;
  return `${folder}ws`;
}

/** The endpoint path a dashboard page names in its `progress-ws-path` meta tag, unescaped; `undefined` when it names none that can be one. */
export function wsPathOfPage(html: string): string | undefined {
  const tag = /<meta\s[^>]*name=["']progress-ws-path["'][^>]*>/i.exec(html)?.[0];
  const raw = tag && /\scontent=(?:"([^"]*)"|'([^']*)')/i.exec(tag);
  if (!raw) return undefined;
  const path = (raw[1] ?? raw[2] ?? '').replace(/&#(\d+);|&#x([0-9a-f]+);|&(amp|lt|gt|quot|apos);/gi, (_m, dec: string | undefined, hex: string | undefined, name: string | undefined) =>
    dec !== undefined ? String.fromCodePoint(Number(dec)) : hex !== undefined ? String.fromCodePoint(parseInt(hex, 16)) : ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[name!.toLowerCase()]!,
  );
  // What the ws-server accepts as its path (options.ts): one that starts with "/", without a query, fragment or space.
  return /^\/[^?#\s]*$/.test(path) ? path : undefined;
}

/** How long the dashboard page is waited for, ms, at most: as long as a WebSocket handshake. */
const PAGE_TIMEOUT_MS = 5000;

/**
 * The endpoints to try, in turn, for a ws source: for a dashboard URL, first the one its page names
 * (the `progress-ws-path` meta tag the dashboard's script connects to, on the page's host), then the
 * one beside the page; for a ws:// URL, as parsed. The page is read once (with `token` as a bearer
 * header, as the WebSocket request sends it), waited for `timeoutMs` at most (5 s); a page that
 * cannot be read (the server not up yet, a proxy refusing it) or names none leaves the guess beside
 * the page.
 */
export async function socketUrls(source: Extract<Source, { kind: 'ws' }>, options: { token?: string; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<string[]> {
  const guessed = [source.url, ...(source.alternatives ?? [])];
  if (!source.page) return guessed;
  const page = new URL(source.page);
  const headers: Record<string, string> = {};
  // fetch() refuses a URL with credentials: they go as the header ws sends for them (a token wins, as there).
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  else if (page.username || page.password) headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(page.username)}:${decodeURIComponent(page.password)}`).toString('base64')}`;
  page.username = '';
  page.password = '';
  let socket: string | undefined;
  try {
    const signals = [AbortSignal.timeout(Math.min(PAGE_TIMEOUT_MS, options.timeoutMs ?? PAGE_TIMEOUT_MS)), ...(options.signal ? [options.signal] : [])];
    const res = await fetch(page, { headers, signal: AbortSignal.any(signals) });
    const served = new URL(res.url || page);
    // The endpoint goes where the token goes (`--token`, `?token=`): a page a redirect took to another
    // host (or from https:// down to http://) names none; the guess stays on the host the user named.
    const sameHost = served.origin === page.origin || (served.hostname === page.hostname && served.protocol === 'https:');
    const named = res.ok && sameHost ? wsPathOfPage(await headOf(res)) : (await res.body?.cancel().catch(() => {}), undefined);
    if (named !== undefined) {
      // On the host the page came from, as the page's script connects (`location.host`): after a
      // redirect from http:// to https:// on that host, the port it ended on, without the credentials given for the other.
      const url = new URL(source.url);
      if (served.origin !== page.origin) {
        url.protocol = served.protocol === 'https:' ? 'wss:' : 'ws:';
        url.host = served.host;
        url.username = '';
        url.password = '';
      }
      url.pathname = named;
      socket = url.toString();
    }
  } catch {
    // Not reached, or not a page: the guess.
  }
  return socket === undefined ? guessed : [socket, ...guessed.filter((url) => url !== socket)];
}

/** How much of the dashboard page is read, at most: its `<head>` holds the meta tag, a few hundred bytes in. */
const PAGE_MAX_BYTES = 64 * 1024;

/**
 * The start of a page's body: read until the `progress-ws-path` meta tag has come, the body ends or
 * {@link PAGE_MAX_BYTES} have been read, and the rest of it cancelled (a page that is large or never
 * ends was read whole, held in memory, until the read timed out).
 */
async function headOf(res: Response): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let read = 0;
  try {
    while (read < PAGE_MAX_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      const chunk = value.subarray(0, PAGE_MAX_BYTES - read);
      read += chunk.length;
      text += decoder.decode(chunk, { stream: true });
      if (wsPathOfPage(text) !== undefined) break;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return text;
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

/** `logger`, saying what it is given only while `open()` holds (a store's logs the command was not asked about are not said). */
export function loggerWhile(logger: Logger, open: () => boolean): Logger {
  const pass = (level: keyof Logger) => (obj: object, msg?: string) => void (open() && logger[level](obj, msg));
  return { debug: pass('debug'), info: pass('info'), warn: pass('warn'), error: pass('error') };
}

/** Opens the store a json or redis source names; `logger` hears what the store logs. */
export async function openStore(source: Source, logger?: Logger, signal?: AbortSignal): Promise<ProgressStore> {
  if (source.kind === 'json') return new JsonFileStore({ directory: source.directory, ...(logger ? { logger } : {}) });
  if (source.kind === 'redis') {
    const options = { commandTimeoutMs: 3000, ...(source.keyPrefix !== undefined ? { keyPrefix: source.keyPrefix } : {}) };
    const single = await probeRedis(source, (gated) => redisStore(source.url, { ...options, logger: gated }), logger, signal, false);
    // A node of a Redis Cluster: the URL's node answers for its own slots only (MOVED for the others,
    // which the index or an upgrade may be in), so the store goes through a Cluster client instead,
    // which finds the other nodes from this one (as redis-cli -c does).
    if (single !== 'cluster' && !(await isClusterNode(single, signal))) return single;
    if (single !== 'cluster') await single.close();
    return probeRedis(source, (gated) => clusterStore(source.url, { ...options, logger: gated }), logger, signal, true);
  }
  throw new CliError('a ws:// URL can only be watched');
}

/**
 * The store `make` gives, once a first read of it (`list({ limit: 1 })`, bounded by its 3 s command
 * timeout) has answered: Redis reached, the password and the database taken. Otherwise the store is
 * closed and the failure said as a {@link CliError}; but when a store on one node (`cluster` false)
 * was answered MOVED (a node of a Redis Cluster, the keys read being on another), `'cluster'`.
 */
async function probeRedis(source: Extract<Source, { kind: 'redis' }>, make: (logger: Logger) => RedisStore, logger: Logger | undefined, signal: AbortSignal | undefined, cluster: true): Promise<RedisStore>;
async function probeRedis(source: Extract<Source, { kind: 'redis' }>, make: (logger: Logger) => RedisStore, logger: Logger | undefined, signal: AbortSignal | undefined, cluster: false): Promise<RedisStore | 'cluster'>;
async function probeRedis(
  source: Extract<Source, { kind: 'redis' }>,
  make: (logger: Logger) => RedisStore,
  logger: Logger | undefined,
  signal: AbortSignal | undefined,
  cluster: boolean,
): Promise<RedisStore | 'cluster'> {
  // What the store logs during the probe is not passed on: a failure is the error below (it was
  // printed twice, the store's log line and then the CLI's), and on success the command's own
  // reads log what they find (a damaged upgrade the probe saw would be reported twice too).
  let probing = true;
  /**
   * A certificate Node refuses, as the store's connection met it during the probe: the probe ends
   * with it at once (ioredis would connect again, and meet it again, until the probe's 3 s timeout).
   */
  let refuseCertificate: (err: Error) => void = () => {};
  const refused = new Promise<never>((_resolve, reject) => (refuseCertificate = reject));
  const quiet = (level: keyof Logger) => (obj: object, msg?: string) => {
    const cause = (obj as { err?: unknown } | null)?.err;
    if (probing && isCertificateError(cause)) refuseCertificate(cause);
    if (!probing) logger?.[level](obj, msg);
  };
  const gated: Logger = { debug: quiet('debug'), info: quiet('info'), warn: quiet('warn'), error: quiet('error') };
  const store = make(gated);
  const probe = store.list({ limit: 1 });
  try {
    // Stopped (Ctrl-C) while Redis does not answer: interrupted now, not "cannot reach Redis" at the timeout.
    await untilInterrupted(Promise.race([probe, refused]), signal);
    probing = false;
  } catch (err) {
    probing = false;
    // The probe left behind (a refused certificate) ends with the store's close: not an unhandled rejection.
    probe.catch(() => {});
    // Where the Cluster's nodes say they are, taken before the close empties its pool.
    const announced = cluster ? nodeAddresses(store.client as Cluster) : [];
    await store.close().catch(() => {});
    if (err instanceof Interrupted) throw err;
    const reason = (err as Error).message;
    if (!cluster && MOVED.test(reason)) return 'cluster';
    // INVALID_ARGUMENT: Redis refused the URL's database.
    // Where the password came from, when from the environment: a WRONGPASS is about that one.
    const from = source.passwordFromEnv ? ` (password from ${REDIS_PASSWORD_ENV})` : '';
    // A server that wants a password the URL did not give: where to give it, off the command line.
    const noAuth = /\bNOAUTH\b/.test(reason) ? `; give the password in ${REDIS_PASSWORD_ENV} (or the URL)` : '';
    const what = cluster ? `the Redis Cluster of ${redactUrl(source.url)} (through its nodes)` : `Redis at ${redactUrl(source.url)}`;
    // The node named answered (it said it is a Cluster node): a read through the Cluster that nothing
    // answers went to the addresses its nodes announce, which may not be theirs from here (a Cluster
    // in containers or behind NAT: cluster-announce-ip).
    const unanswered = announced.length > 0 && /\bno answer\b/.test(reason) ? `; its nodes announce themselves at ${announced.join(', ')}: are those reachable from here?` : '';
    throw new CliError(`cannot reach ${what}${from}: ${withCertificateHint(reason)}${noAuth}${unanswered}`, isProgressError(err, 'INVALID_ARGUMENT') ? ExitCode.USAGE : ExitCode.UNAVAILABLE);
  }
  return store;
}

/** The `host:port` of each node in `cluster`'s pool (an IPv6 address in brackets), as the nodes announce themselves. */
function nodeAddresses(cluster: Cluster): string[] {
  return cluster.nodes('all').map(({ options: { host = '', port } }) => `${host.includes(':') ? `[${host}]` : host}:${port}`);
}

/** A Redis Cluster node's redirection of a key on another node, in an error's message (the store quotes Redis' reply). */
const MOVED = /\b(MOVED|ASK) \d+ \S+:\d+/;

/**
 * Whether the Redis `store` reached is a node of a Redis Cluster: a store on it alone reads its slots
 * only. `CLUSTER INFO` answers on a Cluster node, and is refused elsewhere ("cluster support
 * disabled"). Not `INFO cluster`, which ACLs that leave out `@dangerous` commands refuse: a user
 * that can use a Cluster at all may run `CLUSTER` `SLOTS` and `INFO` (`@slow`). Not known (refused,
 * no answer within 3 s): no, and a MOVED on a later read is said as it comes.
 */
async function isClusterNode(store: RedisStore, signal: AbortSignal | undefined): Promise<boolean> {
  const info = (store.client as Redis).call('CLUSTER', 'INFO') as Promise<unknown>;
  info.catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(new Error('no answer to CLUSTER INFO')), 3000)));
  try {
    return /^cluster_state:/m.test(String(await untilInterrupted(Promise.race([info, timeout]), signal)));
  } catch (err) {
    if (err instanceof Interrupted) {
      await store.close().catch(() => {});
      throw err;
    }
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A RedisStore that owns the Redis Cluster client it goes through: one the CLI made, from one node's
 * URL, which ends with the store (a store leaves a client passed in open).
 */
class ClusterStore extends RedisStore {
  readonly #cluster: Cluster;
  constructor(cluster: Cluster, options: Omit<RedisStoreOptions, 'url' | 'redis'>) {
    super({ ...options, redis: cluster });
    this.#cluster = cluster;
  }
  override async close(): Promise<void> {
    try {
      await super.close();
    } finally {
      // After the store's close, which waited for its writes: nothing is left to send.
      endCluster(this.#cluster);
    }
  }
}

/**
 * Ends `cluster` and its node connections at once. ioredis' `disconnect()` alone only half-closes a
 * node's socket (`end()`), and arms a timer (`disconnectTimeout`, 2 s) that destroys it should the
 * server not close its side: a node that took the connection and does not answer (an address the
 * Cluster announces that is not the node's from here) kept the command's process alive 2 s after it
 * was done. Nothing once ended: a second close() left the Cluster `disconnecting`.
 */
function endCluster(cluster: Cluster): void {
  if (cluster.status === 'end') return;
  // Taken before disconnect() empties the pool.
  const streams = cluster.nodes('all').map((node) => node.stream as (NonNullable<Redis['stream']> & { destroyed?: boolean }) | undefined);
  cluster.disconnect();
  // Closed, not left to the server's FIN: their `close` clears ioredis' timer.
  for (const stream of streams) if (stream && stream.destroyed === false) stream.destroy();
}

/**
 * Says when the Redis that `store` reads stops answering and when it answers again, through `say`:
 * a `watch` of Redis rides out an outage (the store reconnects and its watch reads on), but said
 * nothing meanwhile, where a ws-server's says `reconnecting` and a folder's `read failed`. Said once
 * an attempt to connect again failed (a restart quicker than that is not an outage), and again only
 * when it answers. A store on one Redis only: a Cluster's nodes come and go on their own. Returns the
 * function that stops listening.
 */
export function sayRedisOutages(store: ProgressStore, url: string, say: (line: string) => void): () => void {
  if (!(store instanceof RedisStore) || isClusterStore(store)) return () => {};
  const client = store.client as Redis;
  let down = false;
  const onError = (err: unknown): void => {
    if (down || client.status === 'ready') return;
    down = true;
    say(`Redis at ${redactUrl(url)} does not answer (${safeText(err instanceof Error ? err.message : String(err))}); following on once it does`);
  };
  const onReady = (): void => {
    if (!down) return;
    down = false;
    say(`Redis at ${redactUrl(url)} answers again; following on`);
  };
  client.on('error', onError);
  client.on('ready', onReady);
  return () => {
    client.off('error', onError);
    client.off('ready', onReady);
  };
}

/** Whether `store` is one {@link openStore} made through a Redis Cluster's nodes (it ends its Cluster client when it closes). */
export const isClusterStore = (store: ProgressStore): boolean => store instanceof ClusterStore;

/**
 * A store through a Cluster client whose first node is the one `url` names, with its user, password
 * and TLS for every node (the Cluster finds the others from it). With TLS, nodes keep the host names
 * the Cluster announces (ElastiCache's): a certificate names those, not their addresses.
 */
export function clusterStore(url: string, options: Omit<RedisStoreOptions, 'url' | 'redis'>): RedisStore {
  const parsed = new URL(url);
  const tls = parsed.protocol.toLowerCase() === 'rediss:';
  // As ioredis reads the URL for the one node: the user info, else `?username=` and `?password=`
  // (where withEnvPassword puts REDISCLI_AUTH's beside a `?username=`). Dropped, the Cluster logged in
  // on every node as the default user.
  const inUserInfo = parsed.username !== '' || parsed.password !== '';
  const username = inUserInfo ? decodeURIComponent(parsed.username) : (parsed.searchParams.get('username') ?? '');
  const password = inUserInfo ? decodeURIComponent(parsed.password) : (parsed.searchParams.get('password') ?? '');
  const cluster = new Cluster([{ host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(parsed.port) || 6379 }], {
    // As the store's README asks of a client passed in: its own deadlines bound the appends.
    redisOptions: {
      maxRetriesPerRequest: null,
      connectionName: 'progress-cli',
      ...(username ? { username } : {}),
      ...(password ? { password } : {}),
      ...(tls ? { tls: {} } : {}),
    },
    ...(tls ? { dnsLookup: (address: string, callback: (err: null, address: string) => void) => callback(null, address) } : {}),
  });
  // Its owner's to listen to (the store leaves a client passed in alone): without a listener ioredis
  // prints "[ioredis] Unhandled error event" for each failed slots refresh while the nodes are away.
  // What fails reaches the command as the failure of its reads, said once.
  cluster.on('error', () => {});
  try {
    return new ClusterStore(cluster, options);
  } catch (err) {
    endCluster(cluster);
    throw new CliError(`cannot open Redis at ${redactUrl(url)}: ${isProgressError(err) ? err.message.replace('[@progress/storage-redis] ', '') : String(err)}`);
  }
}

/**
 * What to say when a folder given as a source is not a store's folder but one the user meant it for,
 * where the store finds nothing and the command said only "no upgrades" about a folder full of them:
 *
 * - it holds the old Python module's files itself: the store reads them from
 *   `<folder>/progress/upgrade_<id>.json`, where the old module wrote them, so a user who names that
 *   `progress/` folder (or a folder the files were copied into) is told to give its parent folder
 *   (the parent of a folder called `progress`), or, for a folder of another name, where the files go;
 * - it is inside a store (`<store>/upgrades/<id>/events.jsonl`): its `upgrades/` folder, or the folder
 *   of one upgrade, which a user looking into the store's folder sees first; the hint names the
 *   store's folder.
 *
 * `undefined` when it is none of these (or cannot be read: the command says what it finds).
 */
export async function folderHint(directory: string): Promise<string | undefined> {
  const names = await readdir(directory).catch(() => [] as string[]);
  // The file names the store reads (storage-json's legacyIdOf): upgrade_<id>.json.
  if (names.some((name) => /^upgrade_.+\.json$/.test(name))) {
    const where = basename(directory) === 'progress' ? `give its parent folder, ${dirname(directory)}` : `move them into ${join(directory, 'progress')}`;
    return `${safeText(directory)} holds files of the old Python module (upgrade_<id>.json), which are read from the progress/ folder of the folder given: ${safeText(where)}`;
  }
  if (basename(dirname(directory)) === 'upgrades' && holdsUpgrade(names)) {
    return `${safeText(directory)} is the folder of upgrade "${safeText(basename(directory))}" in a store: give the store's folder, ${safeText(dirname(dirname(directory)))}`;
  }
  if (basename(directory) === 'upgrades') {
    for (const name of names) {
      if (holdsUpgrade(await readdir(join(directory, name)).catch(() => [] as string[]))) {
        return `${safeText(directory)} is the upgrades/ folder of a store: give the store's folder, ${safeText(dirname(directory))}`;
      }
    }
  }
  return undefined;
}

/**
 * What to say when a command on a Redis store found nothing under its key prefix (no upgrades, or
 * not `upgradeId`) that this Redis keeps under other prefixes (a writer's own `keyPrefix`, the
 * `--prefix` left out): those prefixes, and the `--prefix` to give. `undefined` when there are none,
 * or for another store. Best effort: a Redis that does not answer the search (or refuses SCAN) says
 * nothing more than the command did.
 */
export async function prefixHint(store: ProgressStore, upgradeId?: string): Promise<string | undefined> {
  if (!(store instanceof RedisStore)) return undefined;
  const own = store.keys.prefix;
  const found = await store.findKeyPrefixes(upgradeId === undefined ? {} : { upgradeId }).catch(() => [] as string[]);
  const others = found.filter((prefix) => prefix !== own);
  if (others.length === 0) return undefined;
  const listed = others.slice(0, 5).map((prefix) => JSON.stringify(safeText(prefix)));
  const names = `${others.length === 1 ? 'prefix' : 'prefixes'} ${listed.join(', ')}${others.length > 5 ? `, ... (${others.length} in all)` : ''}`;
  const give = `give --prefix ${shellArg(safeText(others[0]!))}`;
  return upgradeId === undefined
    ? `no upgrades under the key prefix ${JSON.stringify(safeText(own))}; this Redis holds upgrades under the key ${names}: ${give}`
    : `upgrade "${safeText(upgradeId)}" is not under the key prefix ${JSON.stringify(safeText(own))} but under the key ${names} of this Redis: ${give}`;
}

/** Whether a folder holding `names` is one upgrade's folder of a store: its log or its snapshot. */
const holdsUpgrade = (names: readonly string[]): boolean => names.includes('events.jsonl') || names.includes('snapshot.json');

/** The upgrade id a dashboard URL's `#fragment` selects, percent-decoded as the dashboard decodes it. */
export function upgradeIdFromFragment(fragment: string): string {
  try {
    return decodeURIComponent(fragment);
  } catch {
    throw new CliError(`the #fragment of the URL is not an upgrade id: #${fragment}`);
  }
}

/**
 * `arg` as a POSIX shell reads it back as one argument: as it is when it holds only characters no
 * shell treats specially, else in single quotes. For the commands the demo prints to be pasted: a
 * path with a space (`/Users/me/My Projects`) was split in two, and refused as an extra argument.
 */
export function shellArg(arg: string): string {
  return /^[\w./:@%+=,-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`;
}

/** Maps a store error to a CLI error with the right exit code. */
export function storeError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (isProgressError(err, 'NOT_FOUND')) return new CliError(err.message, ExitCode.NOT_FOUND);
  if (isProgressError(err, 'INVALID_ARGUMENT')) return new CliError(err.message, ExitCode.USAGE);
  return new CliError((err as Error)?.message ?? String(err), ExitCode.UNAVAILABLE);
}
