import { Redis } from 'ioredis';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { throwingLogger } from '../../../tools/test-utils/src/logger.js';
import { KeyLayout, RedisStore } from '../src/index.js';
import { withoutSecrets } from '../src/errors.js';
import { resolveOptions } from '../src/options.js';

describe('RedisStore.info()', () => {
  it("reports the prefix the keys carry in Redis: a client passed in puts its own keyPrefix in front of the store's", async () => {
    const client = new Redis({ lazyConnect: true, keyPrefix: 'app:' });
    const store = new RedisStore({ redis: client, keyPrefix: 'acme:' });
    expect(store.info().keyPrefix).toBe('app:acme:');
    // The key names stay the ones given to the client, which adds its prefix itself.
    expect(store.keys.prefix).toBe('acme:');
    await store.close();
    const plain = new RedisStore({ redis: new Redis({ lazyConnect: true }), keyPrefix: 'acme:' });
    expect(plain.info().keyPrefix).toBe('acme:');
    await plain.close();
    const owned = new RedisStore({ url: 'redis://127.0.0.1:1', keyPrefix: 'acme:' });
    expect(owned.info().keyPrefix).toBe('acme:');
    await owned.close();
  });

  it('never shows credentials, not even those ioredis takes from the query string', async () => {
    const store = new RedisStore({ url: 'redis://user:secret1@127.0.0.1:1/2?password=secret2&username=admin', commandTimeoutMs: 100 });
    const text = JSON.stringify(store.info());
    expect(text).not.toContain('secret1');
    expect(text).not.toContain('secret2');
    expect(store.info().url).toBe('redis://user:***@127.0.0.1:1/2?password=***&username=admin');
    await store.close();
  });

  it.each([
    'redis://:Pw/S3cret@127.0.0.1:1/2',
    'redis://:Pw#S3cret@127.0.0.1:1/2',
    'redis://:Pw?S3cret@127.0.0.1:1/2',
    'redis://u:Pw@S3c/r?et@127.0.0.1:1/2',
    'redis://127.0.0.1:1/2?password=Pw@S3c',
    'redis://default:#Pw@S3c@127.0.0.1:1/2',
    'redis://default:/Pw@S3c@127.0.0.1:1/2',
    'redis://default:8080/Pw@127.0.0.1:1/2',
    // ioredis decodes parameter names: this is a password, and its value's tail was once shown as the host.
    'redis://:x@127.0.0.1:1/2?pass%77ord=Pw@S3c',
  ])(
    'never shows a password written with a character URLs reserve (%s), in info() or in the error',
    async (url) => {
      let shown: string;
      try {
        const store = new RedisStore({ url, commandTimeoutMs: 100 });
        shown = JSON.stringify(store.info());
        expect(store.info().url).toMatch(/^redis:\/\/([a-z]*:\*\*\*@)?127\.0\.0\.1:1\/2(\?[a-z%0-9]+=\*\*\*)?$/);
        await store.close();
      } catch (err) {
        expect(err).toMatchObject({ code: 'INVALID_ARGUMENT' });
        shown = (err as Error).message;
      }
      expect(shown).not.toMatch(/Pw|S3c/);
    },
  );
});

describe('RedisStore with a logger that throws (a closed transport)', () => {
  it('still answers: the connection errors it logs cannot escape as uncaught exceptions', async () => {
    const { logger, calls } = throwingLogger();
    const store = new RedisStore({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 300, logger });
    await expect(store.list()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await store.close();
    expect(calls.length).toBeGreaterThan(0);
  });
});

describe('withoutSecrets', () => {
  it("masks a refused AUTH's arguments through causes and previousErrors, also when they link in a circle", () => {
    const auth = Object.assign(new Error('WRONGPASS'), { command: { name: 'auth', args: ['user', 'pw-1'] } });
    const hello = Object.assign(new Error('WRONGPASS'), { command: { name: 'HELLO', args: ['3', 'AUTH', 'user', 'pw-2'] } });
    const outer = Object.assign(new Error('failed', { cause: auth }), { previousErrors: [hello] });
    // A circle: what ioredis' errors can form (an error among its own previousErrors, a cause back).
    (hello as { cause?: unknown }).cause = outer;
    (outer as unknown as { previousErrors: unknown[] }).previousErrors.push(outer);
    expect(withoutSecrets(outer)).toBe(outer);
    expect(auth.command).toEqual({ name: 'auth', args: ['***', '***'] });
    expect(hello.command).toEqual({ name: 'HELLO', args: ['***', '***', '***', '***'] });
    // A Cluster's ClusterAllFailedError keeps the node's error as `lastNodeError`.
    const nodeAuth = Object.assign(new Error('WRONGPASS'), { command: { name: 'auth', args: ['pw-3'] } });
    const allFailed = Object.assign(new Error('Failed to refresh slots cache.'), { lastNodeError: nodeAuth });
    withoutSecrets(allFailed);
    expect(nodeAuth.command).toEqual({ name: 'auth', args: ['***'] });
    const other = Object.assign(new Error('x'), { command: { name: 'get', args: ['key'] } });
    expect(withoutSecrets(other).command).toEqual({ name: 'get', args: ['key'] });
  });
});

describe('RedisStore options: unknown names', () => {
  it('refuses a misspelt option with INVALID_ARGUMENT instead of leaving it out (keyprefix would write under the default prefix)', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ url: 'redis://127.0.0.1:1', keyprefix: 'acme:' }, /unknown option "keyprefix" \(did you mean "keyPrefix"\?\)/],
      [{ url: 'redis://127.0.0.1:1', retention: { ttl: 60 } }, /unknown option "retention\.ttl"/],
      [{ url: 'redis://127.0.0.1:1', retention: { maxevents: 10 } }, /unknown option "retention\.maxevents" \(did you mean "retention\.maxEvents"\?\)/],
      [{ url: 'redis://127.0.0.1:1', commandTimeout: 100 }, /unknown option "commandTimeout" \(did you mean "commandTimeoutMs"\?\)/],
    ];
    for (const [options, message] of cases) {
      expect(() => new RedisStore(options as never), JSON.stringify(options)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(message) }));
    }
  });

  it('reads an instance of a settings class by the option names alone (its own fields are its state)', async () => {
    class Settings {
      constructor(private readonly env: Record<string, string>) {}
      get url(): string {
        return this.env.URL!;
      }
    }
    const store = new RedisStore(new Settings({ URL: 'redis://127.0.0.1:1' }) as never);
    expect(store.info().url).toBe('redis://127.0.0.1:1');
    await store.close();
  });
});

describe('RedisStore.info() of a client passed in', () => {
  it('names the Sentinels and the master of a client made with sentinels, not the localhost:6379 it never connects to', async () => {
    // Was "redis://localhost:6379/2" (ioredis' default host and port, unused with sentinels), in
    // info() and in the errors and logs that name the store's Redis.
    const client = new Redis({ lazyConnect: true, sentinels: [{ host: 's1.example', port: 26379 }, { host: 's2.example' }], name: 'mymaster', db: 2 });
    const store = new RedisStore({ redis: client });
    expect(store.info().url).toBe('redis+sentinel://s1.example:26379,s2.example:26379/mymaster/2');
    await store.close();
    const tls = new Redis({ lazyConnect: true, sentinels: [{ host: '10.0.0.1', port: 5000 }], name: 'm', tls: {}, enableTLSForSentinelMode: true });
    const other = new RedisStore({ redis: tls });
    expect(other.info().url).toBe('rediss+sentinel://10.0.0.1:5000/m/0');
    await other.close();
    // With sentinels, ioredis connects to the master with TLS only under enableTLSForSentinelMode:
    // `tls` alone leaves that connection in the clear, and rediss+sentinel:// said it was encrypted.
    const clear = new Redis({ lazyConnect: true, sentinels: [{ host: '10.0.0.1', port: 5000 }], name: 'm', tls: {} });
    const plain = new RedisStore({ redis: clear });
    expect(plain.info().url).toBe('redis+sentinel://10.0.0.1:5000/m/0');
    await plain.close();
  });
});

describe('RedisStore options: values JSON cannot show', () => {
  it('names a url it refuses (its password masked), and the URL meant for a host:port without a scheme', () => {
    const message = (url: unknown): string => {
      try {
        new RedisStore({ url } as never);
      } catch (err) {
        expect(err).toMatchObject({ code: 'INVALID_ARGUMENT' });
        return (err as Error).message;
      }
      throw new Error(`accepted ${String(url)}`);
    };
    expect(message('127.0.0.1:6430')).toMatch(/got "127\.0\.0\.1:6430" \(did you mean "redis:\/\/127\.0\.0\.1:6430"\?\)$/);
    const secret = message('admin:S3cret@10.0.0.5:6379');
    expect(secret).toMatch(/did you mean "redis:\/\/admin:\*\*\*@10\.0\.0\.5:6379"/);
    expect(secret).not.toMatch(/S3cret/);
    expect(message('http://127.0.0.1:6379')).toMatch(/got "http:\/\/127\.0\.0\.1:6379\/?"$/);
    expect(message(6379)).toMatch(/got 6379$/);
  });

  it('takes a scheme in capitals as the same URL (REDISS:// is TLS too), rather than refuse it with a message that shows it in lower case', async () => {
    // Refused before, as "url must be a valid redis:// or rediss:// URL, got "rediss://127.0.0.1:1"":
    // the value shown (normalised by the URL parser) was one the store takes.
    for (const [given, tls] of [
      ['REDIS://127.0.0.1:1/2', false],
      ['Rediss://127.0.0.1:1', true],
    ] as const) {
      const store = new RedisStore({ url: given, commandTimeoutMs: 100 });
      try {
        store.client.on('error', () => {});
        expect(store.info().url).toBe(given.toLowerCase());
        // ioredis turns TLS on only for a url that starts with "rediss://" as written.
        expect(Boolean((store.client as Redis).options.tls)).toBe(tls);
        expect((store.client as Redis).options.db).toBe(given.endsWith('/2') ? 2 : 0);
      } finally {
        await store.close();
      }
    }
  });

  it('does not suggest a URL it refuses itself: a Unix socket path, or redis:/ with one slash', () => {
    const message = (url: string): string => {
      try {
        new RedisStore({ url });
      } catch (err) {
        expect(err).toMatchObject({ code: 'INVALID_ARGUMENT' });
        return (err as Error).message;
      }
      throw new Error(`accepted ${url}`);
    };
    // Was: (did you mean "redis:///tmp/redis.sock"?), a URL whose database "tmp/redis.sock" the store refuses.
    for (const socket of ['/tmp/redis.sock', 'unix:///tmp/redis.sock', 'redis+unix:///tmp/redis.sock']) {
      const text = message(socket);
      expect(text).not.toMatch(/did you mean/);
      expect(text).toMatch(/Unix socket.*new Redis\(\{ path/);
    }
    // Was: (did you mean "redis://redis/127.0.0.1:6379"?).
    expect(message('redis:/127.0.0.1:6379')).toMatch(/\(did you mean "redis:\/\/127\.0\.0\.1:6379"\?\)$/);
    // A host named redis (a Compose service) keeps its hint.
    expect(message('redis:6379')).toMatch(/\(did you mean "redis:\/\/redis:6379"\?\)$/);
    expect(message('rediss:127.0.0.1:6379')).toMatch(/\(did you mean "rediss:\/\/127\.0\.0\.1:6379"\?\)$/);
  });

  it("refuses a url query parameter that ioredis would take as one of its options, over the store's own", () => {
    // ioredis copies every query parameter into its options, as text, ahead of those the store
    // gives it: `?retryStrategy=1` made every reconnect throw "retryStrategy is not a function",
    // `?maxRetriesPerRequest=0` took the place of the store's bound on the commands queued through an
    // outage, `?enableOfflineQueue=false` (the text "false", which is true) and `?connectionName=`
    // went by without a word. Of ioredis' options, only those a redis:// url means itself are taken.
    for (const [query, name] of [
      ['retryStrategy=1', 'retryStrategy'],
      ['maxRetriesPerRequest=0', 'maxRetriesPerRequest'],
      ['db=2&enableOfflineQueue=false', 'enableOfflineQueue'],
      ['connectionName=x', 'connectionName'],
      ['keyPrefix=tenant:', 'keyPrefix'],
      ['tls=true', 'tls'],
      ['host=10.0.0.9', 'host'],
    ] as const) {
      let refused: unknown;
      try {
        new RedisStore({ url: `redis://127.0.0.1:1/?${query}` });
      } catch (err) {
        refused = err;
      }
      expect(refused, query).toMatchObject({ code: 'INVALID_ARGUMENT' });
      expect((refused as Error).message).toContain(`"${name}"`);
    }
  });

  it('takes a query parameter ioredis has no option of (a provider\'s own), as ioredis ignores it', async () => {
    const store = new RedisStore({ url: 'redis://127.0.0.1:1/2?ssl_cert_reqs=none&token=abc', commandTimeoutMs: 100 });
    try {
      store.client.on('error', () => {});
      expect((store.client as Redis).options.db).toBe(2);
      expect(store.info().url).not.toContain('abc');
    } finally {
      await store.close();
    }
  });

  it('takes the query parameters a redis:// url means: db, username, password, family', async () => {
    const store = new RedisStore({ url: 'redis://127.0.0.1:1?db=3&username=u&password=p&family=4', commandTimeoutMs: 100 });
    try {
      store.client.on('error', () => {});
      const o = (store.client as Redis).options;
      expect([o.db, o.username, o.password, o.family]).toEqual([3, 'u', 'p', 4]);
    } finally {
      await store.close();
    }
  });

  it('refuses a BigInt, a symbol or a function with INVALID_ARGUMENT that names it, not a TypeError from the message', () => {
    const cases: unknown[] = [
      { snapshotEvery: 10n },
      { retention: { ttlSeconds: 60n } },
      { mode: 1n },
      { keyPrefix: 5n },
      { pageSize: Symbol('x') },
      { feedMaxLen: () => 1 },
    ];
    for (const options of cases) {
      let thrown: unknown;
      try {
        new RedisStore({ url: 'redis://127.0.0.1:1', ...(options as object) } as never);
      } catch (err) {
        thrown = err;
      }
      expect(thrown, String(Object.keys(options as object))).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.not.stringMatching(/got undefined/) });
    }
  });
});

// Found on 2026-11-30 (review): `keyPrefix: null` (a setting read from JSON or an environment
// lookup that found nothing) was taken for "not given": the store wrote under the default prefix,
// beside every other store that kept it, as a misspelt `keyprefix` once did. `connectionName: null`
// was left out the same way, and `retention: []` kept everything; every other option refused them.
describe('RedisStore options: null and other wrong types', () => {
  it.each([
    [{ keyPrefix: null }, /keyPrefix/],
    [{ connectionName: null }, /connectionName/],
    [{ retention: [] }, /retention/],
    [{ retention: [60] }, /retention/],
  ])('refuses %j with INVALID_ARGUMENT naming the option, rather than use its default', (options, name) => {
    expect(() => new RedisStore({ url: 'redis://127.0.0.1:1', ...options } as never)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(name) }));
  });
});

// Found on 2026-12-02 (mutation testing): no test failed when a 0 was taken for these (a ttlSeconds
// of 0 meant "kept forever", a pageSize of 0 read nothing), nor a connectionName with a space
// (CLIENT SETNAME refuses it: every connection the store made would fail to set up).
describe('RedisStore options: values out of range', () => {
  it.each([
    [{ retention: { ttlSeconds: 0 } }, /retention\.ttlSeconds/],
    [{ retention: { maxEvents: 0 } }, /retention\.maxEvents/],
    [{ feedMaxLen: 0 }, /feedMaxLen/],
    [{ pageSize: 0 }, /pageSize/],
    [{ watchBlockMs: 0 }, /watchBlockMs/],
    [{ commandTimeoutMs: 0 }, /commandTimeoutMs/],
    [{ connectionName: 'my store' }, /connectionName/],
    [{ connectionName: '' }, /connectionName/],
    [{ connectionName: 'x'.repeat(101) }, /connectionName/],
    [{ replicas: { count: 10_001 } }, /replicas\.count/],
    [{ keyPrefix: 'tenant a:' }, /keyPrefix/],
    [{ keyPrefix: 'x'.repeat(257) }, /keyPrefix/],
    [{ keyPrefix: 'tenant{a}:' }, /keyPrefix/],
    [{ keyPrefix: 'tenant}a:' }, /keyPrefix/],
  ])('refuses %j with INVALID_ARGUMENT naming the option', (options, name) => {
    expect(() => new RedisStore({ url: 'redis://127.0.0.1:1', ...options } as never)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(name) }));
  });

  // README, Options: a keyPrefix of "at most 256 characters", a connectionName of "1 to 100". Found
  // on 2026-12-02 (mutation testing): only the value one past each bound was tried, and no test
  // failed when the bound itself was refused.
  it('takes a keyPrefix of 256 characters and a connectionName of 100', () => {
    expect(resolveOptions({ keyPrefix: 'x'.repeat(256), connectionName: 'n'.repeat(100) })).toMatchObject({ keyPrefix: 'x'.repeat(256), connectionName: 'n'.repeat(100) });
    expect(new KeyLayout('x'.repeat(256)).prefix).toBe('x'.repeat(256));
  });

  it('refuses both a url and a client: which Redis it would use is not clear', () => {
    const client = new Redis({ lazyConnect: true });
    expect(() => new RedisStore({ url: 'redis://127.0.0.1:1', redis: client })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/either url or redis/) }));
    client.disconnect();
  });

  it('refuses replicas with a Cluster passed in, whose mode is cluster by default (WAIT would go to any node)', () => {
    const cluster = Object.assign(new Redis({ lazyConnect: true }), { isCluster: true });
    expect(() => new RedisStore({ redis: cluster as never, replicas: { count: 1 } })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/cluster mode/) }));
    cluster.disconnect();
  });

  it('cuts a long url short in the message that refuses it, and the URL it suggests too', () => {
    expect(() => new RedisStore({ url: `http://${'x'.repeat(10_000)}` })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^.{0,400}$/s) }));
    // A host:port without a scheme gets a suggestion; it was the whole 10,000 characters again.
    for (const url of [`${'x'.repeat(10_000)}:6379`, `redis:/${'x'.repeat(10_000)}:6379`]) {
      expect(() => new RedisStore({ url })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^.{0,700}$/s) }));
      expect(() => new RedisStore({ url })).toThrow(/\(did you mean "redis:\/\/x{10,}\.\.\."\?\)$/);
    }
  });
});

describe("the url query check's list of ioredis options", () => {
  it('holds every option the installed ioredis has a default for (a new one would pass unchecked)', () => {
    // Read at runtime: the type keeps defaultOptions private.
    const defaults = Object.keys((Redis as unknown as { defaultOptions: Record<string, unknown> }).defaultOptions);
    const refused = defaults.filter((name) => !['db', 'username', 'password', 'family'].includes(name));
    const accepted = refused.filter((name) => {
      try {
        new RedisStore({ url: `redis://127.0.0.1:1/?${name}=1`, commandTimeoutMs: 100 }).close().catch(() => {});
        return true;
      } catch {
        return false;
      }
    });
    expect(accepted).toEqual([]);
  });
});

// README, Options: the default of each option. Found on 2026-12-02 (documentation audit): a mutant
// defaulting pageSize to 100 instead of 500 passed this file and store.integration.test.ts; no test
// compared the store's defaults with the table (replicas' are checked in replicas.integration.test.ts).
describe('RedisStore: the defaults the README gives', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const options = readme.slice(readme.indexOf('## Options'), readme.indexOf('## Key layout'));
  const defaults = new Map([...options.matchAll(/^\| `([A-Za-z.]+)` \| ([^|]*) \|/gm)].map((m) => [m[1]!, m[2]!.trim()]));
  const given = (name: string): string => {
    expect(defaults.get(name), name).toBeDefined();
    return defaults.get(name)!;
  };

  it('uses them for an option not given', () => {
    const resolved = resolveOptions({});
    expect(`\`'${resolved.keyPrefix}'\``).toBe(given('keyPrefix'));
    expect(`\`'${resolved.connectionName}'\``).toBe(given('connectionName'));
    for (const name of ['snapshotEvery', 'feedMaxLen', 'commandTimeoutMs', 'pageSize', 'watchBlockMs'] as const) {
      expect(`\`${resolved[name]}\``, name).toBe(given(name));
    }
    // "none": kept for ever, every event kept.
    expect(given('retention.ttlSeconds')).toBe('none');
    expect(given('retention.maxEvents')).toBe('none');
    expect([resolved.ttlSeconds, resolved.maxEvents]).toEqual([0, 0]);
  });

  // README, Options: commandTimeoutMs and watchBlockMs are "At most 2,000,000,000" (MAX_WAIT_MS):
  // the store arms timers for them, and Node fires a timer past 2^31 - 1 ms at once. Found on
  // 2026-12-02 (documentation audit): no test gave either option the bound, or one more.
  it.each(['commandTimeoutMs', 'watchBlockMs'] as const)('takes %s up to the most it gives, below a timer\'s limit, and refuses one more', (name) => {
    const row = options.split('\n').find((line) => line.startsWith(`| \`${name}\` |`)) ?? '';
    const most = Number(/At most ([\d,]+)/.exec(row)?.[1]?.replaceAll(',', ''));
    expect(most, name).toBeGreaterThan(0);
    expect(most, name).toBeLessThan(2 ** 31 - 1);
    expect(resolveOptions({ [name]: most })[name]).toBe(most);
    expect(() => resolveOptions({ [name]: most + 1 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(`${name} must be a whole number from 1 to ${most},`) }));
  });

  it('connects to the url it gives, single mode, named by the default connectionName', async () => {
    const store = new RedisStore({});
    try {
      const client = store.client as Redis;
      expect(given('url')).toBe(`\`${store.info().url}\``);
      expect(`redis://${client.options.host}:${client.options.port}`).toBe(store.info().url);
      expect(`\`'${client.options.connectionName}'\``).toBe(given('connectionName'));
      expect(store.info().mode).toBe('single');
    } finally {
      await store.close();
    }
  });
});

describe('RedisStore: the connection it creates', () => {
  // Found on 2026-12-01 (mutation testing): no test failed when the reconnect backoff's cap was
  // 20 s instead of the 2 s the README gives: after an outage of a few seconds, the store would
  // have waited up to 20 s to connect again to a Redis that was back, failing every append meanwhile.
  it('connects again with the backoff the README gives: from about 40 ms, doubling, never more than about 2 s apart', async () => {
    const store = new RedisStore({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 100 });
    const retry = (store.client as Redis).options.retryStrategy!;
    const waits = Array.from({ length: 60 }, (_, i) => Number(retry(i + 1)));
    expect(waits[0]).toBeGreaterThanOrEqual(40);
    expect(waits[0]).toBeLessThan(100);
    for (const wait of waits) expect(wait).toBeLessThanOrEqual(2100);
    // Doubling (jitter aside) until it reaches the cap, and at the cap from then on.
    for (let i = 1; i < 6; i++) expect(waits[i]).toBeGreaterThan(1.5 * waits[i - 1]! - 40);
    for (const wait of waits.slice(7)) expect(wait).toBeGreaterThanOrEqual(2000);
    await store.close();
  });
});

describe('watch() and watchAll() arguments no message can print', () => {
  it('are refused with INVALID_ARGUMENT, not with the TypeError of building the message, and a long string is cut short', async () => {
    const store = new RedisStore({ redis: new Redis({ lazyConnect: true }) });
    // String() of an object without prototype threw "Cannot convert object to primitive value".
    const bare = Object.create(null) as object;
    const refused = expect.objectContaining({ name: 'ProgressError', code: 'INVALID_ARGUMENT' });
    expect(() => store.watch('u1', bare as never)).toThrow(refused);
    expect(() => store.watch('u1', 0, { signal: bare } as never)).toThrow(refused);
    expect(() => store.watchAll({ signal: bare } as never)).toThrow(refused);
    // A 100,000-character string was printed whole.
    let message = '';
    try {
      store.watch('u1', 'x'.repeat(100_000) as never);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/afterSeq must be/);
    expect(message.length).toBeLessThan(200);
    expect(store.info().watchers).toBe(0);
    await store.close();
  });
});

describe('watch() and watchAll() options', () => {
  it('refuse a misspelt signal, which was left out without a word: the watch then never ended on abort', async () => {
    const store = new RedisStore({ redis: new Redis({ lazyConnect: true }) });
    const stop = new AbortController();
    for (const options of [{ signl: stop.signal }, { abortSignal: stop.signal }, { signal: stop.signal, timeout: 5 }]) {
      expect(() => store.watch('u1', 0, options as never)).toThrow(expect.objectContaining({ name: 'ProgressError', code: 'INVALID_ARGUMENT', message: expect.stringContaining('unknown option') }));
      expect(() => store.watchAll(options as never)).toThrow(expect.objectContaining({ name: 'ProgressError', code: 'INVALID_ARGUMENT', message: expect.stringContaining('unknown option') }));
    }
    expect(() => store.watch('u1', 0, { signl: stop.signal } as never)).toThrow(/did you mean "signal"/);
    expect(store.info().watchers).toBe(0);
    await store.close();
  });
});

describe('KeyLayout with an upgrade id that is not one', () => {
  // Exported for tooling: `keys.upgrade(' u1')` named a key no store ever writes, `keys.upgrade(42)`
  // one of "{42}", and the tool then read nothing, as if the upgrade had no events.
  const keys = new KeyLayout('progress:');
  it.each([null, undefined, 42, '', 'u 1', '../u1', '.', { toString: () => 'u1' }])('refuses %s in upgrade(), deleteMarker() and deletedRuns() with INVALID_ARGUMENT', (id) => {
    for (const call of [() => keys.upgrade(id as never), () => keys.deleteMarker(id as never, 'token'), () => keys.deletedRuns(id as never)]) {
      expect(call).toThrow(expect.objectContaining({ name: 'ProgressError', code: 'INVALID_ARGUMENT', message: expect.stringContaining('upgradeId') }));
    }
  });
  it.each([null, 42, '', 'a b', 'a}b'])('refuses the delete token %s with INVALID_ARGUMENT', (token) => {
    expect(() => keys.deleteMarker('u1', token as never)).toThrow(expect.objectContaining({ name: 'ProgressError', code: 'INVALID_ARGUMENT', message: expect.stringContaining('token') }));
  });
  it('names the keys of a valid id as before', () => {
    expect(keys.upgrade('u1')).toEqual({ events: 'progress:{u1}:events', meta: 'progress:{u1}:meta', snapshot: 'progress:{u1}:snapshot' });
    expect(keys.deleteMarker('u1', 'abc-1')).toBe('progress:{u1}:delete:abc-1');
    expect(keys.deletedRuns('u1')).toBe('progress:{u1}:deleted');
  });
});
