import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressTracker, isProgressError, type ProgressError, type ProgressEvent } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { JsonFileStore, type Durability, type JsonFileStoreOptions } from '../src/index.js';
import { kill, spawnChild, waitForLine } from './child/spawn.js';
import { fileHandlePrototype, procIdentity, recordingLogger, removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

const open = (store: JsonFileStore, upgradeId = 'u1') => ProgressTracker.open({ upgradeId, planId: 'p', clusterName: 'c', store });
const lockPath = (dir: string, id = 'u1') => join(dir, 'upgrades', id, 'writer.lock');

describe('the writer lock', () => {
  it('gives a second tracker CONFLICT in the same process, and a second store too', async () => {
    const dir = await tempDir('lock');
    const a = new JsonFileStore({ directory: dir });
    const b = new JsonFileStore({ directory: dir });
    const t1 = await open(a);
    await expect(open(a)).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('upgrade "u1" is already open for writing in this store') });
    // Held by this very process: not a writer that may be gone, whose lock file one would delete.
    const here = `upgrade "u1" is held for writing by another store of this process (pid ${process.pid}): close the tracker or store that has it open first`;
    const refused = await open(b).catch((err: unknown) => err);
    expect(refused).toMatchObject({ code: 'CONFLICT', message: expect.stringContaining(here), context: { upgradeId: 'u1', owner: { pid: process.pid } } });
    expect((refused as Error).message).not.toContain('delete');
    const f = new EventFactory('u1');
    f.state = JSON.parse(JSON.stringify(t1.progress));
    await expect(b.append('u1', [f.next('upgrade.started')], 1, f.state!)).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining(here) });
    await expect(b.delete('u1')).rejects.toMatchObject({
      code: 'CONFLICT',
      message: expect.stringContaining(`upgrade "u1" cannot be deleted: it is held for writing by another store of this process (pid ${process.pid}): close the tracker or store that has it open first`),
    });
    await t1.startUpgrade();
    await t1.close();
    const t2 = await open(b);
    expect(t2.progress.status).toBe('in_progress');
    await t2.close();
    await a.close();
    await b.close();
  });

  it('gives CONFLICT while another process holds the upgrade, and takes the lock over once it is killed', async () => {
    const dir = await tempDir('lock-child');
    const child = spawnChild('lock-holder.ts', [dir, 'u1']);
    try {
      const line = await waitForLine(child, /^locked \d+/);
      const store = new JsonFileStore({ directory: dir });
      await expect(open(store)).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining(`pid ${child.pid}`) });
      await kill(child);
      const tracker = await open(store);
      const owner = JSON.parse(await readFile(lockPath(dir), 'utf8'));
      expect([owner.pid, owner.hostname, line]).toEqual([process.pid, hostname(), `locked ${child.pid}`]);
      await tracker.startUpgrade();
      await tracker.close();
      await expect(stat(lockPath(dir))).rejects.toMatchObject({ code: 'ENOENT' });
      await store.close();
    } finally {
      await kill(child);
    }
  });

  it('takes over a lock left by a dead pid, by this pid in an earlier life, or garbled by a power loss', async () => {
    const dir = await tempDir('lock-stale');
    const store = new JsonFileStore({ directory: dir });
    const dead = spawn(process.execPath, ['-e', '']);
    await new Promise((r) => dead.once('exit', r));
    // Locks of this boot and PID namespace: only those can be judged (see writer-lock.test.ts).
    const me = await procIdentity();
    const owners = [
      { pid: dead.pid, hostname: hostname(), token: 'dead', createdAt: 'then', ...me },
      // Our pid, taken by a process that started at another time (a container's pid 1 before a restart).
      { pid: process.pid, hostname: hostname(), token: 'earlier-life', createdAt: 'then', ...me, startTime: (me.startTime ?? 1) - 1 },
      '',
      // JSON, but not a record any writer wrote: no token, or not a string (garbled as well).
      JSON.stringify({ pid: 1, hostname: hostname() }),
      JSON.stringify({ pid: 1, hostname: hostname(), token: 42 }),
    ];
    for (const [i, owner] of owners.entries()) {
      const id = `stale-${i}`;
      await mkdir(join(dir, 'upgrades', id), { recursive: true });
      await writeFile(lockPath(dir, id), typeof owner === 'string' ? owner : JSON.stringify(owner));
      await store.acquire(id);
      expect(JSON.parse(await readFile(lockPath(dir, id), 'utf8')).pid).toBe(process.pid);
      await store.release(id);
    }
    await store.close();
  });

  it('lets exactly one of many racing stores take over a dead lock', async () => {
    const dir = await tempDir('lock-race');
    const stores = Array.from({ length: 8 }, () => new JsonFileStore({ directory: dir }));
    const me = await procIdentity();
    for (let round = 0; round < 60; round++) {
      const id = `race-${round}`;
      await mkdir(join(dir, 'upgrades', id), { recursive: true });
      await writeFile(lockPath(dir, id), JSON.stringify({ pid: process.pid, hostname: hostname(), token: `earlier-life-${round}`, createdAt: 'then', ...me, startTime: (me.startTime ?? 1) - 1 }));
      const results = await Promise.allSettled(stores.map((s) => s.acquire(id)));
      const won = results.filter((r) => r.status === 'fulfilled').length;
      const lost = results.filter((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'CONFLICT').length;
      expect([round, won, lost]).toEqual([round, 1, stores.length - 1]);
    }
    await Promise.all(stores.map((s) => s.close()));
  });

  it('does not take over a lock from another host, and says how to clear it', async () => {
    const dir = await tempDir('lock-host');
    await mkdir(join(dir, 'upgrades', 'u1'), { recursive: true });
    await writeFile(lockPath(dir), JSON.stringify({ pid: 1, hostname: 'some-other-host', token: 't', createdAt: 'then' }));
    const store = new JsonFileStore({ directory: dir });
    await expect(store.acquire('u1')).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('some-other-host') });
    await store.close();
  });

  it('releases every lock on close', async () => {
    const dir = await tempDir('lock-close');
    const a = new JsonFileStore({ directory: dir });
    await a.acquire('u1');
    await open(a, 'u2');
    await a.close();
    const b = new JsonFileStore({ directory: dir });
    await b.acquire('u1');
    await b.acquire('u2');
    await b.close();
    await expect(a.load('u1')).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('takes no lock once close() has resolved: an acquire() still taking one when close() began is CLOSED by then, and holds nothing', async () => {
    // Found on 2026-11-30: close() let go of the locks it knew of, not of one an acquire() was taking
    // meanwhile. That acquire went on after close() resolved, made the folder and the lock file, and
    // gave a store opened next CONFLICT (or got CONFLICT itself), or left the file behind when the
    // process exited right after close().
    const dir = await tempDir('lock-close-acquire');
    const a = new JsonFileStore({ directory: dir });
    let outcome: unknown = 'pending';
    const acquiring = a.acquire('u1').then(
      () => 'acquired',
      (err: { code?: string }) => err.code,
    );
    void acquiring.then((o) => (outcome = o));
    await a.close();
    // Microtasks only (no file system call can finish meanwhile): the acquire settled with close().
    for (let i = 0; i < 5; i++) await Promise.resolve();
    expect(outcome).toBe('CLOSED');
    expect(existsSync(lockPath(dir))).toBe(false);
    const b = new JsonFileStore({ directory: dir });
    await b.acquire('u1');
    await b.close();
  });
});

describe('paths and permissions', () => {
  it('refuses bad ids before they touch a path', async () => {
    const dir = await tempDir('ids');
    const store = new JsonFileStore({ directory: join(dir, 'root') });
    const f = new EventFactory('u1');
    const events = f.batch(1);
    for (const id of ['../escape', 'a/b', '..', '.', '', 'x'.repeat(129), 'a\0b', 'a b']) {
      await expect(store.load(id)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(store.acquire(id)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(store.append(id, events, 0, f.state!)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(store.delete(id)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
    expect(await readdir(dir)).toEqual([]);
    await store.close();
  });

  it('refuses a readEvents limit that is not a whole number >= 0 with INVALID_ARGUMENT, as RedisStore does', async () => {
    const dir = await tempDir('limit');
    const store = new JsonFileStore({ directory: dir });
    const f = new EventFactory('u1');
    await store.append('u1', f.batch(5), 0, f.state!);
    const read = async (limit: number): Promise<number[]> => {
      const seqs: number[] = [];
      for await (const e of store.readEvents('u1', 0, limit)) seqs.push(e.seq);
      return seqs;
    };
    for (const limit of [-1, 2.5, Number.NaN, '3' as unknown as number]) await expect(read(limit)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(await read(0)).toEqual([]);
    expect(await read(2)).toEqual([1, 2]);
    expect(await read(Infinity)).toEqual([1, 2, 3, 4, 5]);
    await store.close();
  });

  it('creates files 0600 and folders 0700', async () => {
    const dir = await tempDir('perms');
    const root = join(dir, 'data');
    const store = new JsonFileStore({ directory: root, snapshotEvery: 2 });
    const tracker = await open(store);
    await tracker.startUpgrade();
    await tracker.addTask('t1', 'T1');
    const mode = async (p: string) => (await stat(p)).mode & 0o777;
    for (const d of [root, join(root, 'upgrades'), join(root, 'upgrades', 'u1')]) expect([d, await mode(d)]).toEqual([d, 0o700]);
    await tracker.flush();
    await store.close();
    for (const f of ['events.jsonl', 'snapshot.json']) expect([f, await mode(join(root, 'upgrades', 'u1', f))]).toEqual([f, 0o600]);
    const s2 = new JsonFileStore({ directory: root });
    await s2.acquire('u1');
    expect(await mode(lockPath(root))).toBe(0o600);
    await s2.close();
  });

  it('checks its options', () => {
    expect(() => new JsonFileStore({ directory: '' })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => new JsonFileStore({ directory: '/tmp/x', durability: 'maybe' as 'none' })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    for (const snapshotEvery of [0, 2.5, Infinity]) {
      expect(() => new JsonFileStore({ directory: '/tmp/x', snapshotEvery }), String(snapshotEvery)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('snapshotEvery') }));
    }
    for (const lockLeaseMs of [999, 1500.5, 2 ** 31, Number.NaN, '30000' as unknown as number]) {
      expect(() => new JsonFileStore({ directory: '/tmp/x', lockLeaseMs }), String(lockLeaseMs)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('lockLeaseMs') }));
    }
    for (const lockLeaseMs of [1000, 2 ** 31 - 1]) expect(() => new JsonFileStore({ directory: '/tmp/x', lockLeaseMs })).not.toThrow();
  });

  it('refuses a URL as its directory (it made a folder named after it, a password included), showing it masked', () => {
    // `directory: process.env.REDIS_URL` wrote the events under ./redis:/:hunter2@h:6379/, and
    // 'file:///data' under ./file:/data/, without a word.
    for (const [directory, hint] of [
      ['redis://:hunter2@127.0.0.1:6379', /RedisStore/],
      ['rediss://:hunter2@127.0.0.1:6380', /RedisStore/],
      ['file:///var/lib/progress', /fileURLToPath/],
      ['https://example.com/progress', /a folder path/],
    ] as const) {
      let refused: unknown;
      try {
        new JsonFileStore({ directory });
      } catch (err) {
        refused = err;
      }
      expect(refused, directory).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(hint) });
      expect((refused as Error).message).not.toContain('hunter2');
    }
    // Folder paths that hold a colon stay folders.
    for (const directory of ['C:/progress', 'C:\\progress', 'C://progress', './a:b', '/tmp/x:y']) expect(() => new JsonFileStore({ directory }), directory).not.toThrow();
  });

  it('refuses a directory starting with "~" (only a shell expands it: it made a folder named "~" here), and takes "./~" and an absolute path holding one', async () => {
    // `directory: '~/progress-data'` from a config or .env file wrote the events under ./~/progress-data.
    const literal = resolve('~');
    const existedBefore = existsSync(literal);
    for (const directory of ['~/progress-data', '~', '~/', '~bob/data', '~\\data']) {
      let refused: unknown;
      try {
        new JsonFileStore({ directory });
      } catch (err) {
        refused = err;
      }
      expect(refused, directory).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(`directory ${JSON.stringify(directory)} starts with "${/^~[^\\/]*/.exec(directory)![0]}", which only a shell expands`) });
      expect((refused as Error).message).toMatch(/os\.homedir\(\)/);
    }
    if (!existedBefore) expect(existsSync(literal)).toBe(false);
    // Not a home folder: a name that only starts with "~" further down, a folder of that name asked for as such.
    const root = await tempDir('tilde');
    for (const directory of [join(root, '~', 'data'), join(root, '~data')]) {
      const store = new JsonFileStore({ directory });
      const tracker = await open(store);
      await tracker.startUpgrade();
      await tracker.close();
      expect((await store.list()).map((u) => u.upgradeId)).toEqual(['u1']);
      await store.close();
    }
    expect(() => new JsonFileStore({ directory: './~/data' })).not.toThrow();
  });

  it('refuses an option name it does not know, naming it and the one meant, and creates nothing', async () => {
    // A misspelt option was left out without a word: `durabilty: 'none'` gave an fsync store.
    const root = join(await tempDir('unknown-option'), 'data');
    const cases: Array<[Record<string, unknown>, string, string | undefined]> = [
      [{ durabilty: 'none' }, 'durabilty', 'durability'],
      [{ snapshotevery: 10 }, 'snapshotevery', 'snapshotEvery'],
      [{ lockLease: 5000 }, 'lockLease', 'lockLeaseMs'],
      [{ loger: recordingLogger() }, 'loger', 'logger'],
      // Another store's name for it: fsync: false is durability: 'none' here.
      [{ fsynch: false }, 'fsynch', 'durability'],
      [{ path: '/elsewhere' }, 'path', 'directory'],
      [{ folder: '/elsewhere' }, 'folder', 'directory'],
      [{ rootDir: '/elsewhere' }, 'rootDir', 'directory'],
      [{ compress: true }, 'compress', undefined],
    ];
    for (const [extra, name, meant] of cases) {
      let error: unknown;
      try {
        new JsonFileStore({ directory: root, ...extra } as JsonFileStoreOptions);
      } catch (err) {
        error = err;
      }
      expect(isProgressError(error, 'INVALID_ARGUMENT'), name).toBe(true);
      const message = (error as Error).message;
      expect(message).toMatch(/^\[@progress\/storage-json\] unknown option /);
      expect(message).toContain(JSON.stringify(name));
      if (meant) expect(message, name).toContain(`did you mean ${JSON.stringify(meant)}?`);
      else expect(message).toContain('known: directory, durability, snapshotEvery, lockLeaseMs, logger');
      expect((error as ProgressError).context.option).toBe(name);
    }
    // An object without prototype is checked too (a misspelling is made there as in a literal).
    const bare = Object.assign(Object.create(null) as object, { directory: root, durabilty: 'none' });
    expect(() => new JsonFileStore(bare as JsonFileStoreOptions)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('"durabilty"') }));
    await expect(stat(root)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('takes every documented option at once, and a settings class by its option names alone', async () => {
    const root = await tempDir('every-option');
    const logger = recordingLogger();
    const store = new JsonFileStore({ directory: root, durability: 'none', snapshotEvery: 7, lockLeaseMs: 5000, logger } satisfies Required<JsonFileStoreOptions>);
    expect(store.info()).toMatchObject({ directory: root, durability: 'none', durable: false, snapshotEvery: 7 });
    await store.close();
    // A class instance keeps its state in its own fields, which are not options (as core's rule).
    class Settings {
      readonly env: Record<string, string>;
      constructor(env: Record<string, string>) {
        this.env = env;
      }
      get directory(): string {
        return this.env.DATA_DIR!;
      }
      get durability(): Durability {
        return this.env.FSYNC === 'off' ? 'none' : 'fsync';
      }
    }
    const fromClass = new JsonFileStore(new Settings({ DATA_DIR: root, FSYNC: 'off' }));
    expect(fromClass.info()).toMatchObject({ directory: root, durability: 'none' });
    await fromClass.close();
  });
});

describe('writing', () => {
  it('leaves no temp file behind when a snapshot write fails (a full disk): only the log is read then', async () => {
    const dir = await tempDir('snapshot-enospc');
    const proto = await fileHandlePrototype(dir);
    const { writeFile: original } = proto;
    proto.writeFile = async function (this: unknown, ...args: unknown[]) {
      if (typeof args[0] === 'string' && args[0].startsWith('{"v":1,')) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      return original.apply(this, args);
    };
    const logger = recordingLogger();
    try {
      const store = new JsonFileStore({ directory: dir, snapshotEvery: 2, logger });
      const f = new EventFactory('u1');
      await store.append('u1', f.batch(3), 0, f.state!);
      await store.close();
    } finally {
      proto.writeFile = original;
    }
    expect(logger.lines.some((l) => l.level === 'warn' && /snapshot write failed/.test(l.msg ?? ''))).toBe(true);
    expect(await readdir(join(dir, 'upgrades', 'u1'))).toEqual(['events.jsonl']);
  });

  it('writes at most one snapshot behind the one being written when appends come faster: the latest, with no failure logged', async () => {
    const dir = await tempDir('snapshot-coalesce');
    const logger = recordingLogger();
    const store = new JsonFileStore({ directory: dir, snapshotEvery: 1, logger });
    const f = new EventFactory('u1');
    const appends = [];
    for (let i = 0; i < 20; i++) appends.push(store.append('u1', f.batch(1), i, structuredClone(f.state!)));
    await Promise.all(appends);
    await store.close();
    expect(logger.lines.filter((l) => l.level !== 'debug' && l.level !== 'info')).toEqual([]);
    expect((JSON.parse(await readFile(join(dir, 'upgrades', 'u1', 'snapshot.json'), 'utf8')) as { lastSeq: number }).lastSeq).toBe(20);
  });

  it('writes the rest of a short write after the part that landed (a write(2) may return fewer bytes than asked)', async () => {
    const dir = await tempDir('short-write');
    const proto = await fileHandlePrototype(dir);
    const { write } = proto;
    // Every write of events lands 100 bytes at most, as a write(2) interrupted by a signal or near a full disk may.
    proto.write = async function (this: unknown, ...args: unknown[]) {
      const [buf, offset, length, position] = args as [Buffer, number, number, number];
      if (Buffer.isBuffer(buf) && buf.includes('eventId')) return write.call(this, buf, offset, Math.min(length, 100), position);
      return write.apply(this, args);
    };
    try {
      const store = new JsonFileStore({ directory: dir });
      const f = new EventFactory('u1');
      await store.append('u1', f.batch(3), 0, f.state!);
      await store.append('u1', f.batch(2), 3, f.state!);
      await store.close();
    } finally {
      proto.write = write;
    }
    const reader = new JsonFileStore({ directory: dir });
    const events: ProgressEvent[] = [];
    for await (const e of reader.readEvents('u1', 0)) events.push(e);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect((await reader.load('u1'))?.lastSeq).toBe(5);
    await reader.close();
  });

  it('deletes no upgrade that holds no event (its folder made by acquire() and release()): false, as for one never seen', async () => {
    const dir = await tempDir('delete-empty');
    const store = new JsonFileStore({ directory: dir });
    await store.acquire('u1');
    await store.release('u1');
    expect(await store.delete('u1')).toBe(false);
    await store.close();
  });

  it('writes no snapshot of a state that is not the one after the events (it would read back as damaged)', async () => {
    const dir = await tempDir('stale-state');
    const logger = recordingLogger();
    const store = new JsonFileStore({ directory: dir, snapshotEvery: 3, logger });
    const f = new EventFactory('u1');
    await store.append('u1', f.batch(2), 0, f.snapshot());
    const stale = f.snapshot(); // the state at seq 2, handed over with seq 3 and 4
    await store.append('u1', f.batch(2), 2, stale);
    await store.close();
    expect(existsSync(join(dir, 'upgrades', 'u1', 'snapshot.json'))).toBe(false);
    const reader = new JsonFileStore({ directory: dir, logger });
    expect(await reader.load('u1')).toEqual(JSON.parse(JSON.stringify(f.state)));
    await reader.close();
    expect(logger.lines.filter((l) => l.level !== 'debug')).toEqual([]);
  });

  it('refuses events that JSON cannot represent, or no state, with INVALID_ARGUMENT, and stores nothing', async () => {
    const store = new JsonFileStore({ directory: await tempDir() });
    const f = new EventFactory('unserializable');
    await store.append(f.upgradeId, f.batch(2), 0, f.snapshot());
    const [event] = f.batch(1);
    const bad = { ...event!, details: { count: 10n } };
    await expect(store.append(f.upgradeId, [bad as never], 2, f.snapshot())).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(store.append(f.upgradeId, [event!], 2, null as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((await store.load(f.upgradeId))?.lastSeq).toBe(2);
    await store.close();
  });

  it('refuses events its own reader would reject (no eventId, a type or details of the wrong kind), so an acknowledged append always reads back', async () => {
    const dir = await tempDir('shape');
    const store = new JsonFileStore({ directory: dir });
    const f = new EventFactory('shape');
    await store.append(f.upgradeId, f.batch(2), 0, f.snapshot());
    const log = join(dir, 'upgrades', 'shape', 'events.jsonl');
    const before = await readFile(log);
    const [event] = f.batch(1);
    const { eventId: _eventId, ...noId } = event!;
    for (const bad of [noId, { ...event!, eventId: 42 }, { ...event!, type: 7 }, { ...event!, details: undefined }, { ...event!, details: 'x' }]) {
      await expect(store.append(f.upgradeId, [bad as never], 2, f.snapshot())).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
    expect(await readFile(log)).toEqual(before);
    await store.append(f.upgradeId, [event!], 2, f.snapshot());
    await store.append(f.upgradeId, f.batch(1), 3, f.snapshot());
    await store.close();
    const reader = new JsonFileStore({ directory: dir });
    expect((await reader.load(f.upgradeId))?.lastSeq).toBe(4);
    await reader.close();
  });

  it('commits appends that arrive during a write together, and keeps concurrent upgrades apart', async () => {
    const dir = await tempDir('group');
    const store = new JsonFileStore({ directory: dir });
    const trackers = await Promise.all(Array.from({ length: 8 }, (_, i) => open(store, `g${i}`)));
    await Promise.all(trackers.map((t) => t.startUpgrade()));
    await Promise.all(trackers.map((t) => t.addTask('t', 'T')));
    await Promise.all(trackers.flatMap((t) => Array.from({ length: 50 }, (_, k) => t.updateTaskProgress('t', k))));
    // Appends straight to the store, not awaited in between: they queue behind the write in flight.
    const f = new EventFactory('direct');
    const pending = [];
    for (let i = 0; i < 20; i++) {
      const expected = f.lastSeq;
      pending.push(store.append('direct', f.batch(3), expected, f.state!));
    }
    await Promise.all(pending);
    const info = store.info();
    // The first append goes out alone (it also opens the file); the 19 that queued behind it share one write.
    expect((info.writers as Array<{ upgradeId: string; commits: number }>).find((w) => w.upgradeId === 'direct')!.commits).toBe(2);
    expect(info.openWriters).toBe(9);
    expect(info.eventsInOpenWriters).toBe(8 * 53 + 60);
    for (const t of trackers) await t.close();
    await store.close();
    const again = new JsonFileStore({ directory: dir });
    for (let i = 0; i < 8; i++) expect((await again.load(`g${i}`))!.lastSeq).toBe(53);
    expect((await again.load('direct'))!.lastSeq).toBe(60);
    expect(again.info()).toMatchObject({ name: 'JsonFileStore', durable: true, durability: 'fsync', snapshotEvery: 1000, upgrades: 9, directory: dir }); // the defaults
    await again.close();
  });

  it('counts in info() the locks held without a writer open, and no upgrade for a folder whose log is empty', async () => {
    const dir = await tempDir('info');
    const store = new JsonFileStore({ directory: dir, durability: 'none' });
    // A writer killed before its first write leaves an empty log: list() shows no upgrade there either.
    await mkdir(join(dir, 'upgrades', 'empty-1'), { recursive: true });
    await writeFile(join(dir, 'upgrades', 'empty-1', 'events.jsonl'), '');
    const f = new EventFactory('u1');
    await store.append('u1', f.batch(3), 0, f.state!);
    await store.acquire('u2');
    expect(await store.list()).toHaveLength(1);
    expect(store.info()).toMatchObject({ upgrades: 1, openWriters: 1, locksHeld: 2 });
    // The writer's bytes are the log's size.
    const log = await stat(join(dir, 'upgrades', 'u1', 'events.jsonl'));
    expect(store.info().writers).toEqual([{ upgradeId: 'u1', lastSeq: 3, bytes: log.size, commits: 1 }]);
    // acquire() of an upgrade whose lock a plain append took keeps that lock: one lock, and the writer goes on.
    await store.acquire('u1');
    expect(store.info()).toMatchObject({ openWriters: 1, locksHeld: 2 });
    await store.append('u1', f.batch(1), 3, f.state!);
    expect((await store.load('u1'))!.lastSeq).toBe(4);
    await store.close();
    expect(store.info()).toMatchObject({ upgrades: 1, openWriters: 0, locksHeld: 0, closed: true });
  });

  it('sums in info() the sizes of every upgrade\'s log and snapshot (logBytes, snapshotBytes)', async () => {
    const dir = await tempDir('info-bytes');
    const store = new JsonFileStore({ directory: dir, durability: 'none', snapshotEvery: 2 });
    for (const [id, n] of [['u1', 5], ['u2', 3]] as const) {
      const f = new EventFactory(id);
      await store.append(id, f.batch(n), 0, f.state!);
    }
    await store.close(); // its snapshots written
    const size = async (id: string, file: string) => (await stat(join(dir, 'upgrades', id, file))).size;
    const logBytes = (await size('u1', 'events.jsonl')) + (await size('u2', 'events.jsonl'));
    const snapshotBytes = (await size('u1', 'snapshot.json')) + (await size('u2', 'snapshot.json'));
    expect(logBytes).toBeGreaterThan(0);
    expect(snapshotBytes).toBeGreaterThan(0);
    expect(store.info()).toMatchObject({ upgrades: 2, logBytes, snapshotBytes });
  });

  it('deletes upgrades that ended before the cutoff, and only those', async () => {
    const dir = await tempDir('retention');
    const store = new JsonFileStore({ directory: dir });
    const day = 86_400_000;
    const now = Date.parse('2026-11-28T12:00:00Z');
    const make = async (id: string, at: number, end: 'complete' | 'fail' | 'run') => {
      const t = await ProgressTracker.open({ upgradeId: id, planId: 'p', clusterName: 'c', store, now: () => at });
      await t.startUpgrade();
      if (end === 'complete') await t.completeUpgrade();
      if (end === 'fail') await t.failUpgrade('boom');
      await t.close();
    };
    await make('old-done', now - 10 * day, 'complete');
    await make('old-failed', now - 8 * day, 'fail');
    await make('old-running', now - 10 * day, 'run');
    await make('new-done', now - day, 'complete');
    const held = await ProgressTracker.open({ upgradeId: 'old-held', planId: 'p', clusterName: 'c', store: new JsonFileStore({ directory: dir }), now: () => now - 9 * day });
    await held.startUpgrade();
    await held.completeUpgrade();
    // Open in this very store (a tracker not closed yet): held too.
    const open = await ProgressTracker.open({ upgradeId: 'old-open', planId: 'p', clusterName: 'c', store, now: () => now - 9 * day });
    await open.startUpgrade();
    await open.failUpgrade('boom');
    expect((await store.deleteCompletedOlderThan(7 * day, now)).sort()).toEqual(['old-done', 'old-failed']);
    expect((await store.list()).map((r) => r.upgradeId).sort()).toEqual(['new-done', 'old-held', 'old-open', 'old-running']);
    await held.close();
    await open.close();
    expect((await store.deleteCompletedOlderThan(7 * day, now)).sort()).toEqual(['old-held', 'old-open']);
    await expect(store.deleteCompletedOlderThan(-1)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    // A `now` that is no time refuses too, and deletes nothing (Infinity would reach every ended upgrade).
    for (const bad of [Infinity, Number.NaN, '1' as never]) await expect(store.deleteCompletedOlderThan(0, bad)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((await store.list()).map((r) => r.upgradeId).sort()).toEqual(['new-done', 'old-running']);
    // Ended exactly ageMs ago is not more than ageMs ago: kept, and deleted a millisecond later.
    expect(await store.deleteCompletedOlderThan(day, now)).toEqual([]);
    expect(await store.deleteCompletedOlderThan(day, now + 1)).toEqual(['new-done']);
    await store.close();
  });
});

describe('retention when the store is closed while it runs', () => {
  it('rejects with CLOSED and deletes nothing more, instead of going on through every upgrade', async () => {
    const dir = await tempDir('retention-closed');
    const now = Date.parse('2026-11-28T12:00:00Z');
    const day = 86_400_000;
    // The store is closed (a shutdown) as retention goes past the first upgrade it skips.
    const logger = { ...recordingLogger(), warn: (_: object, msg?: string) => void (msg?.includes('open for writing in this store') ? store.close() : undefined) };
    const store: JsonFileStore = new JsonFileStore({ directory: dir, durability: 'none', logger });
    const done = await ProgressTracker.open({ upgradeId: 'done', planId: 'p', clusterName: 'c', store, now: () => now - 2 * day });
    await done.startUpgrade();
    await done.completeUpgrade();
    await done.close();
    // Listed first (the newest), and skipped: a tracker still has it open.
    const held = await ProgressTracker.open({ upgradeId: 'held', planId: 'p', clusterName: 'c', store, now: () => now - day });
    await held.startUpgrade();
    await held.completeUpgrade();
    await expect(store.deleteCompletedOlderThan(0, now)).rejects.toMatchObject({ code: 'CLOSED' });
    await held.close().catch(() => {});
    await store.close();
    const again = new JsonFileStore({ directory: dir });
    expect((await again.list()).map((r) => r.upgradeId).sort()).toEqual(['done', 'held']);
    await again.close();
  });
});

describe('retention run by several stores at once (several processes on one folder)', () => {
  it('deletes each ended upgrade once, and none of the runs fails on a folder another one deleted', async () => {
    const dir = await tempDir('retention-race');
    const seed = new JsonFileStore({ directory: dir, durability: 'none' });
    for (let i = 0; i < 40; i++) {
      const t = await ProgressTracker.open({ upgradeId: `u${i}`, planId: 'p', clusterName: 'c', store: seed });
      await t.startUpgrade();
      await t.completeUpgrade();
      await t.close();
    }
    await seed.close();
    for (let round = 0; round < 2; round++) {
      const logger = recordingLogger();
      const stores = [0, 1, 2].map(() => new JsonFileStore({ directory: dir, durability: 'none', logger }));
      const runs = await Promise.all(stores.map((s) => s.deleteCompletedOlderThan(0, Date.now() + 1000)));
      const deleted = runs.flat().sort();
      // Round 0 deletes them all, each once; round 1 finds nothing.
      expect(deleted).toEqual(round === 0 ? Array.from({ length: 40 }, (_, i) => `u${i}`).sort() : []);
      expect(logger.lines.filter((l) => l.level === 'error')).toEqual([]);
      await Promise.all(stores.map((s) => s.close()));
    }
    expect(readdirSync(join(dir, 'upgrades')).filter((name) => !name.startsWith('~'))).toEqual([]);
  });
});

describe('list and retention over a folder that holds more than upgrades', () => {
  it('skip stray files in upgrades/ (a .DS_Store, a note) and folders in progress/, instead of failing for every upgrade', async () => {
    const dir = await tempDir('stray');
    const store = new JsonFileStore({ directory: dir });
    const t = await open(store);
    await t.startUpgrade();
    await t.completeUpgrade();
    await t.close();
    // Names that pass the id check: loaded as upgrades, they failed with ENOTDIR (STORE_UNAVAILABLE).
    await writeFile(join(dir, 'upgrades', '.DS_Store'), 'x');
    await writeFile(join(dir, 'upgrades', 'notes.txt'), 'x');
    await mkdir(join(dir, 'progress', 'upgrade_folder-1.json'), { recursive: true });
    // A link to an upgrade's folder (kept elsewhere) is an upgrade; a link to a file is not.
    const elsewhere = await tempDir('stray-linked');
    const linked = await open(new JsonFileStore({ directory: elsewhere }), 'linked');
    await linked.close();
    await symlink(join(elsewhere, 'upgrades', 'linked'), join(dir, 'upgrades', 'linked'));
    await symlink(join(dir, 'upgrades', 'notes.txt'), join(dir, 'upgrades', 'note-link'));
    expect((await store.list()).map((r) => r.upgradeId).sort()).toEqual(['linked', 'u1']);
    await rm(join(dir, 'upgrades', 'linked'));
    expect((await store.list()).map((r) => r.upgradeId)).toEqual(['u1']);
    expect(await store.deleteCompletedOlderThan(0, Date.now() + 60_000)).toEqual(['u1']);
    expect(await store.list()).toEqual([]);
    await store.close();
  });

  it('leave out an upgrade deleted while list() reads the folder', async () => {
    const dir = await tempDir('list-delete');
    const store = new JsonFileStore({ directory: dir, durability: 'none' });
    const ids = Array.from({ length: 40 }, (_, i) => `d${i}`);
    for (const id of ids) {
      const t = await open(store, id);
      await t.startUpgrade();
      await t.close();
    }
    const other = new JsonFileStore({ directory: dir, durability: 'none' });
    const deleting = (async () => {
      for (const id of ids) await other.delete(id);
    })();
    for (let round = 0; round < 20; round++) {
      const rows = await store.list();
      expect(rows.every((r) => ids.includes(r.upgradeId))).toBe(true);
    }
    await deleting;
    expect(await store.list()).toEqual([]);
    await other.close();
    await store.close();
  });
});

describe('delete against a concurrent writer', () => {
  it('never lets an append and a delete of the same upgrade both succeed (the delete holds the lock)', async () => {
    const dir = await tempDir('delete-race');
    let both = 0;
    for (let round = 0; round < 40; round++) {
      const id = `race-${round}`;
      const f = new EventFactory(id);
      const seed = new JsonFileStore({ directory: dir, durability: 'none' });
      await seed.append(id, f.batch(3), 0, f.state!);
      await seed.close();
      const writer = new JsonFileStore({ directory: dir, durability: 'none' });
      const deleter = new JsonFileStore({ directory: dir, durability: 'none' });
      const next = f.batch(1);
      // The delete starts first; the append joins a varying number of event-loop turns later, so
      // that some rounds land in the delete's window between its lock check and its rename.
      const deleting = deleter.delete(id);
      for (let i = 0; i < round % 10; i++) await new Promise((r) => setImmediate(r));
      const [appended, deleted] = await Promise.allSettled([writer.append(id, next, 3, f.state!), deleting]);
      if (appended.status === 'fulfilled' && deleted.status === 'fulfilled' && deleted.value === true) both++;
      await writer.close();
      await deleter.close();
    }
    // Both succeeding means the writer acknowledged an event into a folder the delete moved away.
    expect(both).toBe(0);
  });
});

describe('an append made while the same store lets the upgrade go', () => {
  it('release(), an append, then delete(): the delete counts the append\'s lock as this store\'s, and closes its writer', async () => {
    const dir = await tempDir('release-append-delete');
    const a = new JsonFileStore({ directory: dir, durability: 'none' });
    const f = new EventFactory('u1');
    await a.append('u1', f.batch(2), 0, f.state!);
    const releasing = a.release('u1');
    const appending = a.append('u1', f.batch(1), 2, f.state!);
    const deleting = a.delete('u1');
    await releasing;
    const [appended, deleted] = await Promise.allSettled([appending, deleting]);
    expect(deleted).toMatchObject({ status: 'fulfilled', value: true });
    // The delete came after the append: the append landed before it, or finds the id gone.
    if (appended.status === 'rejected') expect(appended.reason).toMatchObject({ code: 'CONFLICT' });
    await a.close();
    const b = new JsonFileStore({ directory: dir, durability: 'none' });
    const again = new EventFactory('u1');
    await b.append('u1', again.batch(1), 0, again.state!);
    await b.close();
  });

  it('during release(): waits for it and takes the lock again, never writing on with the lock being let go', async () => {
    const dir = await tempDir('release-race');
    const a = new JsonFileStore({ directory: dir, durability: 'none' });
    const b = new JsonFileStore({ directory: dir, durability: 'none' });
    const f = new EventFactory('u1');
    await a.append('u1', f.batch(2), 0, f.state!);
    const releasing = a.release('u1');
    const during = f.batch(1);
    await a.append('u1', during, 2, f.state!);
    await releasing;
    // A holds the lock again (it wrote seq 3 under it): B cannot write.
    await expect(stat(lockPath(dir))).resolves.toBeTruthy();
    const fb = new EventFactory('u1');
    fb.state = (await b.load('u1'))!;
    await expect(b.append('u1', fb.batch(1), 3, fb.state)).rejects.toMatchObject({ code: 'CONFLICT' });
    const next = f.batch(1);
    await a.append('u1', next, 3, f.state!);
    const lines = (await readFile(join(dir, 'upgrades', 'u1', 'events.jsonl'), 'utf8')).trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { e: { eventId: string } }).e.eventId)).toEqual([...(await collectIds(a, 'u1'))]);
    expect(lines).toHaveLength(4);
    expect((JSON.parse(lines[3]!) as { e: { eventId: string } }).e.eventId).toBe(next[0]!.eventId);
    await a.close();
    await b.close();
  });

  it('during delete(): waits for it, then writes to the upgrade as the delete left it (gone)', async () => {
    const dir = await tempDir('delete-during');
    const a = new JsonFileStore({ directory: dir, durability: 'none' });
    const f = new EventFactory('u1');
    await a.append('u1', f.batch(3), 0, f.state!);
    const deleting = a.delete('u1');
    const appending = a.append('u1', f.batch(1), 3, f.state!);
    expect(await deleting).toBe(true);
    await expect(appending).rejects.toMatchObject({ code: 'CONFLICT' });
    // The id starts again from seq 1, in this store and in any other.
    const again = new EventFactory('u1');
    await a.append('u1', again.batch(1), 0, again.state!);
    const other = new JsonFileStore({ directory: dir, durability: 'none' });
    expect((await other.load('u1'))?.lastSeq).toBe(1);
    await other.close();
    await a.close();
  });
});

async function collectIds(store: JsonFileStore, id: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const e of store.readEvents(id, 0)) ids.push(e.eventId);
  return ids;
}

/** Makes every FileHandle write land and then fail with EIO, and (with `cutFails`) every ftruncate fail, while `failing()` says so (a disk failing under a write and its cut back). */
async function diskFailing(dir: string, failing: () => boolean, cutFails = true): Promise<() => void> {
  const proto = await fileHandlePrototype(dir);
  const { write, truncate } = proto;
  const eio = (what: string) => Object.assign(new Error(`EIO: i/o error, ${what}`), { code: 'EIO' });
  proto.write = async function (this: unknown, ...args: unknown[]) {
    const written = await write.apply(this, args);
    if (failing()) throw eio('write');
    return written;
  };
  proto.truncate = async function (this: unknown, ...args: unknown[]) {
    if (cutFails && failing()) throw eio('ftruncate');
    return truncate.apply(this, args);
  };
  return () => {
    proto.write = write;
    proto.truncate = truncate;
  };
}

/**
 * Runs `test` on a store holding seq 1-3 of u1 after its append of seq 4-5 failed, and the cut back
 * of that write failed too unless `cutFails` is false (the disk failing for that append only); the
 * disk is put back after.
 */
async function withFailedWrite(label: string, test: (t: { dir: string; store: JsonFileStore; f: EventFactory; rejected: ProgressEvent[] }) => Promise<void>, cutFails = true): Promise<void> {
  const dir = await tempDir(label);
  let failing = false;
  const restore = await diskFailing(dir, () => failing, cutFails);
  try {
    const store = new JsonFileStore({ directory: dir });
    const f = new EventFactory('u1');
    await store.append('u1', f.batch(3), 0, f.state!);
    const durable = structuredClone(f.state!);
    failing = true;
    const rejected = f.batch(2);
    await expect(store.append('u1', rejected, 3, f.state!)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    failing = false;
    // The tracker goes back to its durable state (seq 3) and writes on from there.
    f.state = durable;
    await test({ dir, store, f, rejected });
  } finally {
    restore();
  }
}

describe('the first write of a writer still opening as the store lets go of it', () => {
  it.each(['release', 'delete'] as const)("is not read by this store's readers before it is acknowledged, nor after it failed (%s)", async (letGo) => {
    const dir = await tempDir('opening-inflight');
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const proto = await fileHandlePrototype(dir);
    const { write } = proto;
    // The events' write lands on disk, waits for the gate, then fails (and is cut back).
    proto.write = async function (this: unknown, ...args: unknown[]) {
      const events = Buffer.isBuffer(args[0]) && (args[0] as Buffer).includes('eventId');
      const written = await write.apply(this, args);
      if (events) {
        await gate;
        throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
      }
      return written;
    };
    try {
      const store = new JsonFileStore({ directory: dir });
      const f = new EventFactory('u1');
      const appending = store.append('u1', f.batch(2), 0, f.state!).then(() => 'stored', (e: { code?: string }) => `rejected ${e.code}`);
      // Called while the writer is still being opened (its lock, its scan of the log).
      const lettingGo = letGo === 'release' ? store.release('u1') : store.delete('u1').catch((e: unknown) => e);
      await new Promise((r) => setTimeout(r, 100)); // the append's bytes are on disk now, unacknowledged
      expect(await store.load('u1')).toBeUndefined();
      open();
      expect(await appending).toBe('rejected STORE_UNAVAILABLE');
      await lettingGo;
      expect(await store.load('u1')).toBeUndefined();
      await store.close();
    } finally {
      proto.write = write;
    }
  });
});

describe('a full disk when the writer lock is taken', () => {
  it('is STORE_UNAVAILABLE for acquire() and append(), and leaves no temp file of the lock behind', async () => {
    const dir = await tempDir('lock-enospc');
    const proto = await fileHandlePrototype(dir);
    const { writeFile: original } = proto;
    let full = true;
    proto.writeFile = async function (this: unknown, ...args: unknown[]) {
      if (full) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      return original.apply(this, args);
    };
    try {
      const store = new JsonFileStore({ directory: dir });
      const f = new EventFactory('u1');
      const events = f.batch(1);
      await expect(store.acquire('u1')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', cause: { code: 'ENOSPC' } });
      await expect(store.append('u1', events, 0, f.state!)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      expect((await readdir(join(dir, 'upgrades', 'u1'))).filter((name) => name.endsWith('.tmp'))).toEqual([]);
      // Space again: the lock is taken, the append stored.
      full = false;
      await store.append('u1', events, 0, f.state!);
      expect((await store.load('u1'))?.lastSeq).toBe(1);
      await store.close();
    } finally {
      proto.writeFile = original;
    }
  });
});

describe('a write in flight as the store lets go of its writer', () => {
  it.each(['release', 'delete'] as const)("is not read by this store's readers before it is acknowledged (%s)", async (letGo) => {
    const dir = await tempDir('inflight-read');
    // Writes land on disk, then wait for the gate before they are answered.
    let holding = false;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const proto = await fileHandlePrototype(dir);
    const { write } = proto;
    proto.write = async function (this: unknown, ...args: unknown[]) {
      const written = await write.apply(this, args);
      if (holding) await gate;
      return written;
    };
    try {
      const store = new JsonFileStore({ directory: dir });
      const f = new EventFactory('u1');
      await store.append('u1', f.batch(3), 0, f.state!);
      holding = true;
      const appending = store.append('u1', f.batch(2), 3, f.state!);
      await new Promise((resolve) => setTimeout(resolve, 20)); // its bytes are on disk now
      const lettingGo = letGo === 'release' ? store.release('u1') : store.delete('u1').catch((e: unknown) => e);
      expect((await store.load('u1'))?.lastSeq).toBe(3);
      expect((await collectIds(store, 'u1')).length).toBe(3);
      holding = false;
      open();
      await appending;
      await lettingGo;
      if (letGo === 'release') expect((await store.load('u1'))?.lastSeq).toBe(5);
      await store.close();
    } finally {
      proto.write = write;
    }
  });
});

describe('a failed write whose cut back succeeds', () => {
  it('leaves the writer taking the next append at the last stored seq', async () => {
    await withFailedWrite(
      'failed-write',
      async ({ store, f }) => {
        const next = f.batch(1);
        await store.append('u1', next, 3, f.state!);
        const ids = await collectIds(store, 'u1');
        expect(ids).toHaveLength(4);
        expect(ids[3]).toBe(next[0]!.eventId);
        await store.close();
      },
      false,
    );
  });
});

describe('a failed write with appends queued behind it', () => {
  it('rejects them too (they were never written), and the writer takes the next append at the last stored seq', async () => {
    const dir = await tempDir('failed-write-queued');
    let failing = false;
    const restore = await diskFailing(dir, () => failing, false);
    try {
      const store = new JsonFileStore({ directory: dir });
      const f = new EventFactory('u1');
      await store.append('u1', f.batch(3), 0, f.state!);
      const durable = structuredClone(f.state!);
      failing = true;
      // The second is made while the first is in flight: it waits behind it, for the next write.
      const first = store.append('u1', f.batch(2), 3, f.state!);
      const second = store.append('u1', f.batch(1), 5, f.state!);
      await expect(first).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      await expect(second).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      failing = false;
      f.state = durable;
      await store.append('u1', f.batch(1), 3, f.state!);
      expect((await store.load('u1'))?.lastSeq).toBe(4);
      await store.close();
    } finally {
      restore();
    }
  });
});

/** The descriptors of this process open on a file under `dir` (Linux: /proc/self/fd; a deleted file reads as its old path and " (deleted)"). */
async function descriptorsUnder(dir: string): Promise<string[]> {
  const fds = await readdir('/proc/self/fd').catch(() => [] as string[]);
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
  return targets.filter((t) => t.startsWith(`${dir}/`));
}

describe('a delete of an upgrade this store is writing', () => {
  it('closes the log its writer held open: no descriptor of the deleted log is left in the process', async () => {
    const dir = await tempDir('delete-closes-log');
    const store = new JsonFileStore({ directory: dir, durability: 'none' });
    const f = new EventFactory('u1');
    await store.append('u1', f.batch(2), 0, f.state!);
    // The writer keeps the log open between appends (and its lock's lease a descriptor of the lock file).
    expect(await descriptorsUnder(dir)).toContain(join(dir, 'upgrades', 'u1', 'events.jsonl'));
    expect(await store.delete('u1')).toBe(true);
    // Left open, a retention run deleting many upgrades leaks one descriptor (and the disk space of the
    // removed log) per upgrade for the life of the process.
    expect(await descriptorsUnder(dir)).toEqual([]);
    expect(store.info()).toMatchObject({ openWriters: 0, locksHeld: 0 });
    await store.close();
  });
});

describe('a delete of an upgrade that holds no event', () => {
  it('gives back the writer lock it took to look: another store takes it at once', async () => {
    const dir = await tempDir('delete-empty-lock');
    const first = new JsonFileStore({ directory: dir });
    await first.acquire('u1');
    await first.release('u1');
    const deleting = new JsonFileStore({ directory: dir });
    expect(await deleting.delete('u1')).toBe(false);
    expect(deleting.info().locksHeld).toBe(0);
    await first.acquire('u1');
    await Promise.all([first.close(), deleting.close()]);
  });
});

describe('a failed write whose cut back fails too', () => {
  it.each(['release', 'close'] as const)('leaves no rejected event for another store to read once this one lets go (%s)', async (letGo) => {
    await withFailedWrite('failed-cut-release', async ({ dir, store }) => {
      // The tracker rejects the command and closes: release() (or the store closes).
      if (letGo === 'release') await store.release('u1');
      else await store.close();
      const other = new JsonFileStore({ directory: dir });
      expect((await other.load('u1'))?.lastSeq).toBe(3);
      await other.close();
      await store.close();
    });
  });

  it.each(['release', 'close'] as const)('leaves no rejected event when it happens to an append in flight as the store lets go (%s)', async (letGo) => {
    const dir = await tempDir('failed-cut-inflight');
    let failing = false;
    const restore = await diskFailing(dir, () => failing);
    try {
      const store = new JsonFileStore({ directory: dir });
      const f = new EventFactory('u1');
      await store.append('u1', f.batch(3), 0, f.state!);
      failing = true;
      const appending = store.append('u1', f.batch(2), 3, f.state!);
      await new Promise((resolve) => setImmediate(resolve));
      const lettingGo = letGo === 'release' ? store.release('u1') : store.close();
      await expect(appending).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      failing = false;
      await lettingGo;
      const other = new JsonFileStore({ directory: dir });
      expect((await other.load('u1'))?.lastSeq).toBe(3);
      await other.close();
      await store.close();
    } finally {
      restore();
    }
  });

  it('leaves no rejected event when two appends made together find the broken writer', async () => {
    await withFailedWrite('failed-cut-together', async ({ store, f, rejected }) => {
      const next = f.batch(1);
      const results = await Promise.allSettled([store.append('u1', next, 3, f.state!), store.append('u1', next, 3, f.state!)]);
      expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
      const ids = await collectIds(store, 'u1');
      expect(ids).toHaveLength(4);
      expect(ids).not.toContain(rejected[0]!.eventId);
      await store.close();
    });
  });

  it('leaves the id usable from seq 1 after a delete', async () => {
    await withFailedWrite('failed-cut-delete', async ({ store }) => {
      expect(await store.delete('u1')).toBe(true);
      const again = new EventFactory('u1');
      await store.append('u1', again.batch(1), 0, again.state!);
      expect((await store.load('u1'))?.lastSeq).toBe(1);
      await store.close();
    });
  });

  it('never lets the rejected events count as stored: the log is cut back before it is written again', async () => {
    await withFailedWrite('failed-cut', async ({ store, f, rejected }) => {
      const next = f.batch(1);
      await store.append('u1', next, 3, f.state!);
      const ids = await collectIds(store, 'u1');
      expect(ids).toHaveLength(4);
      expect(ids[3]).toBe(next[0]!.eventId);
      expect(ids).not.toContain(rejected[0]!.eventId);
      await store.close();
    });
  });
});
