import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import {
  JsonFileStore,
  MemoryStore,
  ProgressError,
  ProgressWebSocketServer,
  createProgressTracker,
  createReadToken,
  readTokenAuth,
  type ProgressEvent,
  type UpgradeProgress,
  type UpgradeSummaryRow,
} from '../src/index.js';
import { withCertificateHint } from '../src/cli/errors.js';
import { main } from '../src/cli/main.js';
import { Capture, cleanupTempDirs, completedUpgrade, deleteKeys, freePort, legacyDir, protocolServer, runCli, tempDir, uniqueId } from './helpers.js';

afterAll(() => cleanupTempDirs());

const run = runCli;

async function seed(storage: { json: string } | { redis: string; keyPrefix?: string } | JsonFileStore, upgradeId: string, finish: 'complete' | 'fail' | 'cancel' | 'none' = 'complete') {
  const t = await createProgressTracker({ upgradeId, planId: 'plan-7', clusterName: 'prod-eu', storage });
  await t.startUpgrade('Nodes');
  await t.addTasks([{ taskId: 'cp', taskName: 'Control plane' }, { taskId: 'ng', taskName: 'Node groups', totalSteps: 2 }]);
  await t.completeTask('cp');
  await t.advanceTask('ng');
  if (finish === 'complete') {
    await t.completeTask('ng');
    await t.completeUpgrade();
  } else if (finish === 'fail') await t.failUpgrade('drain timeout');
  else if (finish === 'cancel') await t.cancelUpgrade('called off');
  await t.close();
}

describe('progress ls / show', () => {
  it('lists and shows the upgrades of a JSON folder, as text and as JSON', async () => {
    const dir = tempDir('cli');
    await seed({ json: dir }, 'up-one');
    await seed({ json: dir }, 'up-two', 'fail');
    const ls = await run('ls', dir);
    expect(ls.code).toBe(0);
    expect(ls.out).toMatch(/up-one\s+prod-eu\s+completed\s+100\.0%/);
    expect(ls.out).toMatch(/up-two\s+prod-eu\s+failed/);
    const rows = JSON.parse((await run('ls', dir, '--json')).out) as Array<{ upgradeId: string }>;
    expect(rows.map((r) => r.upgradeId).sort()).toEqual(['up-one', 'up-two']);
    const show = await run('show', dir, 'up-two');
    expect(show.code).toBe(0);
    expect(show.out).toContain('FAILED');
    expect(show.out).toMatch(/ng\s+Node groups\s+upgrade_step\s+in_progress\s+50\.0%/);
    expect(show.out).toContain('error: drain timeout');
    const state = JSON.parse((await run('show', dir, 'up-one', '--json')).out) as { status: string; lastSeq: number };
    expect(state).toMatchObject({ status: 'completed', lastSeq: 8 });
  });

  it('reads a Redis URL, under the key prefix --prefix names', async () => {
    const url = process.env.REDIS_URL!;
    const id = uniqueId('cli-redis');
    const prefix = `${uniqueId('cli')}:`;
    await seed({ redis: url, keyPrefix: prefix }, id);
    try {
      const ls = await run('ls', url, '--json', '--prefix', prefix);
      expect(ls.code).toBe(0);
      expect((JSON.parse(ls.out) as Array<{ upgradeId: string }>).map((r) => r.upgradeId)).toEqual([id]);
      const show = await run('show', url, id, '--prefix', prefix);
      expect(show.out).toContain('COMPLETED');
      // Without it, the default prefix (progress:), which does not hold this upgrade.
      expect((JSON.parse((await run('ls', url, '--json')).out) as Array<{ upgradeId: string }>).some((r) => r.upgradeId === id)).toBe(false);
      // It says which prefix holds it.
      expect(await run('show', url, id)).toEqual({
        code: 3,
        out: '',
        err: `progress: upgrade "${id}" is not under the key prefix "progress:" but under the key prefix "${prefix}" of this Redis: give --prefix ${prefix}\nprogress: no upgrade "${id}" in this source\n`,
      });
      // The prefix without its ":" finds nothing, and says which prefix was meant.
      const bare = prefix.slice(0, -1);
      expect(await run('ls', url, '--prefix', bare)).toMatchObject({ code: 0, out: 'no upgrades\n', err: expect.stringContaining(`did you mean --prefix ${prefix}?`) });
      // With --json too: a script's empty list under a mistyped prefix is as silent.
      expect(await run('ls', url, '--prefix', bare, '--json')).toMatchObject({ code: 0, out: '[]\n', err: expect.stringContaining(`did you mean --prefix ${prefix}?`) });
      // A prefix that ends in ":" and holds nothing: no "did you mean", but the prefixes that hold
      // upgrades in this Redis (the other tests', on the test Redis: see the next test for them exactly).
      const empty = `${uniqueId('cli-empty')}:`;
      expect(await run('ls', url, '--prefix', empty)).toEqual({
        code: 0,
        out: 'no upgrades\n',
        err: expect.stringMatching(new RegExp(`^progress: no upgrades under the key prefix "${empty}"; this Redis holds upgrades under the key prefix(es)? "[^"]+".*: give --prefix \\S+\\n$`)),
      });
    } finally {
      await deleteKeys(url, prefix);
    }
  });

  it("names the key prefix that holds what ls, show and watch find nothing of under theirs (a writer's own keyPrefix, --prefix left out)", async () => {
    // A database of its own: the prefixes in it are this test's alone.
    const at = new URL(process.env.REDIS_URL!);
    at.pathname = '/12';
    const url = at.toString();
    const [id, other] = [uniqueId('cli-elsewhere'), uniqueId('cli-elsewhere-2')];
    const [prefix, second] = [`${uniqueId('team')}:`, `${uniqueId('team-2')}:`];
    await seed({ redis: url, keyPrefix: prefix }, id);
    try {
      const hint = `progress: upgrade "${id}" is not under the key prefix "progress:" but under the key prefix "${prefix}" of this Redis: give --prefix ${prefix}\n`;
      expect(await run('ls', url)).toEqual({ code: 0, out: 'no upgrades\n', err: `progress: no upgrades under the key prefix "progress:"; this Redis holds upgrades under the key prefix "${prefix}": give --prefix ${prefix}\n` });
      expect(await run('ls', url, '--json')).toMatchObject({ code: 0, out: '[]\n', err: expect.stringContaining(`give --prefix ${prefix}`) });
      expect(await run('show', url, id)).toEqual({ code: 3, out: '', err: `${hint}progress: no upgrade "${id}" in this source\n` });
      // watch: without an id, nothing to pick; with one, said before it waits for the upgrade to appear
      // under its prefix (which it then follows to its end, once written there too).
      expect(await run('watch', url)).toMatchObject({ code: 3, err: expect.stringContaining(`this Redis holds upgrades under the key prefix "${prefix}": give --prefix ${prefix}\nprogress: no upgrades in this source yet`) });
      const err = new Capture();
      const watching = main(['watch', url, id], new Capture() as unknown as NodeJS.WriteStream, err as unknown as NodeJS.WriteStream);
      for (let i = 0; i < 400 && err.text !== hint; i++) await new Promise((r) => setTimeout(r, 25));
      expect(err.text).toBe(hint);
      await seed({ redis: url }, id);
      expect(await watching).toBe(0);
      await deleteKeys(url, 'progress:');
      // Two prefixes, both named; with the upgrade id, only the one holding it.
      await seed({ redis: url, keyPrefix: second }, other);
      expect((await run('ls', url)).err).toBe(`progress: no upgrades under the key prefix "progress:"; this Redis holds upgrades under the key prefixes ${JSON.stringify([prefix, second].sort()).slice(1, -1).replace(',', ', ')}: give --prefix ${[prefix, second].sort()[0]}\n`);
      expect((await run('show', url, other)).err).toContain(`under the key prefix "${second}" of this Redis: give --prefix ${second}\n`);
      // The prefix that holds them finds them, and says nothing more.
      expect(await run('ls', url, '--prefix', prefix)).toMatchObject({ code: 0, err: '', out: expect.stringContaining(id) });
      // A folder source has no prefixes.
      expect(await run('ls', tempDir('cli-elsewhere'))).toEqual({ code: 0, out: 'no upgrades\n', err: '' });
    } finally {
      await deleteKeys(url, prefix);
      await deleteKeys(url, second);
    }
  });

  it('takes --prefix with a redis:// source only, and a prefix RedisStore can use', async () => {
    const dir = tempDir('cli-prefix');
    expect(await run('ls', dir, '--prefix', 'acme:')).toMatchObject({ code: 2, err: expect.stringContaining('--prefix is the key prefix of a Redis store: it goes with a redis:// source, not a folder') });
    expect(await run('watch', 'ws://127.0.0.1:1/ws', '--prefix', 'acme:')).toMatchObject({ code: 2, err: expect.stringContaining('not a ws:// URL') });
    expect(await run('ls', process.env.REDIS_URL!, '--prefix', 'has space')).toMatchObject({ code: 2, err: expect.stringContaining('keyPrefix must be a string of at most 256 characters without braces or spaces') });
    expect(await run('ls', process.env.REDIS_URL!, '--prefix', '')).toMatchObject({ code: 2, err: expect.stringContaining('--prefix needs a value') });
    expect(await run('demo', '--prefix', 'acme:')).toMatchObject({ code: 2, err: expect.stringContaining('--prefix goes with --redis') });
    const refused = await run('demo', '--redis', process.env.REDIS_URL!, '--prefix', 'has space');
    expect(refused).toMatchObject({ code: 2, err: expect.stringContaining('cannot open Redis at') });
    expect(refused.err).toContain('keyPrefix must be a string of at most 256 characters without braces or spaces');
    // A URL the parser refuses is named without its password.
    for (const argv of [['ls', 'redis://default:TOPSECRET@127.0.0.1:99999', '--prefix', 'acme:'], ['demo', '--redis', 'redis://127.0.0.1:99999?password=TOPSECRET']]) {
      const bad = await run(...argv);
      expect(bad).toMatchObject({ code: 2, err: expect.stringContaining('not a valid URL: redis://') });
      expect(bad.err).not.toContain('TOPSECRET');
    }
  });

  it("reads the old module's files", async () => {
    const dir = legacyDir();
    const ls = await run('ls', dir);
    expect(ls.out).toMatch(/test-upgrade-123\s+test-cluster\s+failed/);
    const show = await run('show', dir, 'test-upgrade-123', '--json');
    expect(JSON.parse(show.out)).toMatchObject({ status: 'failed', currentPhase: 'Test Phase', planId: 'test-plan-123' });
  });

  it("says where the old module's files go when the folder given holds them itself, not in its progress/ folder", async () => {
    // The old module wrote <dir>/progress/upgrade_<id>.json: pointed at that progress/ folder, the
    // store looks in progress/progress/ and finds nothing; it says which folder to give.
    const parent = legacyDir();
    const inside = join(parent, 'progress');
    const hint = `progress: ${inside} holds files of the old Python module (upgrade_<id>.json), which are read from the progress/ folder of the folder given: give its parent folder, ${parent}\n`;
    expect(await run('ls', inside)).toMatchObject({ code: 0, out: 'no upgrades\n', err: hint });
    expect(await run('show', inside, 'test-upgrade-123')).toMatchObject({ code: 3, err: `${hint}progress: no upgrade "test-upgrade-123" in this source\n` });
    // So does watch, first: with an id, it would wait for the upgrade to appear.
    expect(await run('watch', inside)).toMatchObject({ code: 3, err: `${hint}progress: no upgrades in this source yet; name one to wait for it\n` });
    expect((await run('ls', inside, '--json')).err).toBe(hint);
    // A folder of another name holding them: they belong in a progress/ folder inside the folder given.
    const loose = tempDir('cli-loose-legacy');
    writeFileSync(join(loose, 'upgrade_loose-1.json'), readFileSync(join(inside, 'upgrade_test-upgrade-123.json')));
    expect(await run('ls', loose)).toMatchObject({
      code: 0,
      out: 'no upgrades\n',
      err: `progress: ${loose} holds files of the old Python module (upgrade_<id>.json), which are read from the progress/ folder of the folder given: move them into ${join(loose, 'progress')}\n`,
    });
    // An empty folder is just empty, and the parent lists the upgrade without a word.
    expect(await run('ls', tempDir('cli-empty'))).toMatchObject({ code: 0, out: 'no upgrades\n', err: '' });
    expect(await run('ls', parent)).toMatchObject({ code: 0, err: '', out: expect.stringMatching(/test-upgrade-123/) });
  });

  it("says which folder to give when the folder given is inside a store: its upgrades/ folder, or one upgrade's", async () => {
    // The folders a user sees when looking into the store's folder: `ls` of either said "no upgrades",
    // exit 0, without a word of the upgrades one level down. (Found by a review on 2026-12-02; the test
    // failed before the fix.)
    const dir = tempDir('cli-inside-store');
    await completedUpgrade('u1', { json: dir });
    const upgrades = join(dir, 'upgrades');
    const one = join(upgrades, 'u1');
    const hint = `progress: ${upgrades} is the upgrades/ folder of a store: give the store's folder, ${dir}\n`;
    expect(await run('ls', upgrades)).toEqual({ code: 0, out: 'no upgrades\n', err: hint });
    expect(await run('show', upgrades, 'u1')).toMatchObject({ code: 3, err: `${hint}progress: no upgrade "u1" in this source\n` });
    expect(await run('watch', upgrades)).toMatchObject({ code: 3, err: `${hint}progress: no upgrades in this source yet; name one to wait for it\n` });
    const oneHint = `progress: ${one} is the folder of upgrade "u1" in a store: give the store's folder, ${dir}\n`;
    expect(await run('ls', one)).toEqual({ code: 0, out: 'no upgrades\n', err: oneHint });
    expect(await run('show', one, 'u1')).toMatchObject({ code: 3, err: `${oneHint}progress: no upgrade "u1" in this source\n` });
    // The store's folder itself lists it without a word.
    expect(await run('ls', dir)).toMatchObject({ code: 0, err: '', out: expect.stringMatching(/^u1 /m) });
  });

  it('says clearly what is wrong, with exit codes scripts can use', async () => {
    const dir = tempDir('cli-errors');
    expect(await run('show', dir, 'nope')).toMatchObject({ code: 3, err: expect.stringContaining('no upgrade "nope"') });
    expect(await run('ls', `${dir}/missing`)).toMatchObject({ code: 3, err: expect.stringContaining('no such folder') });
    expect(await run('ls', 'ftp://example/x')).toMatchObject({ code: 2, err: expect.stringContaining('unsupported URL scheme') });
    expect(await run('ls', 'redis://127.0.0.1:1')).toMatchObject({ code: 4, err: expect.stringContaining('cannot reach Redis') });
    expect(await run('show', dir, '../etc')).toMatchObject({ code: 2 });
    expect(await run('frobnicate')).toMatchObject({ code: 2, err: expect.stringMatching(/^progress: unknown command "frobnicate"\n/) });
    // A misspelt command is named, as a misspelt option is.
    expect(await run('shwo', dir, 'u1')).toMatchObject({ code: 2, err: expect.stringMatching(/^progress: unknown command "shwo" \(did you mean show\?\)\n/) });
    expect(await run('wach', dir)).toMatchObject({ code: 2, err: expect.stringMatching(/^progress: unknown command "wach" \(did you mean watch\?\)\n/) });
    expect(await run('ls', dir, '--bogus')).toMatchObject({ code: 2 });
    expect(await run('demo', '--speed', 'fast')).toMatchObject({ code: 2, err: expect.stringContaining('--speed') });
    // Both stores named: refused, not one of them used and the other left out without a word.
    expect(await run('demo', '--dir', dir, '--redis', 'redis://127.0.0.1:1')).toMatchObject({ code: 2, err: 'progress: give --dir or --redis, not both\n' });
    expect((await run('--help')).out).toContain('progress watch');
    expect((await run('--version')).out).toMatch(/^\d+\.\d+\.\d+/);
    // No command at all is a usage error (exit 2, the usage on stderr); asked for, the usage is on stdout, exit 0.
    expect(await run()).toMatchObject({ code: 2, out: '', err: expect.stringContaining('Usage:') });
    expect(await run('help')).toMatchObject({ code: 0, out: expect.stringContaining('Usage:'), err: '' });
    const closed = await freePort();
    expect(await run('watch', `ws://127.0.0.1:${closed}/ws`, 'x', '--connect-timeout', '0.5')).toMatchObject({ code: 4, err: expect.stringContaining('cannot connect') });
  });

  it('ls lists what it can read, names on stderr the upgrade it left out as damaged, and exits 4', async () => {
    const dir = tempDir('cli-damaged');
    await seed({ json: dir }, 'up-good');
    await seed({ json: dir }, 'up-bad');
    // One byte of a stored line changed: its checksum no longer matches.
    const log = join(dir, 'upgrades', 'up-bad', 'events.jsonl');
    writeFileSync(log, readFileSync(log, 'utf8').replace('Nodes', 'Nodez'));
    const ls = await run('ls', dir);
    expect(ls.out).toMatch(/up-good\s+prod-eu\s+completed/);
    expect(ls.out).not.toContain('up-bad');
    expect(ls.err).toMatch(/progress: upgrade left out of list\(\): its data is damaged \(upgrade "up-bad"\): .*damaged/);
    expect(ls.code).toBe(4);
    expect(await run('show', dir, 'up-bad')).toMatchObject({ code: 4, err: expect.stringContaining('damaged') });
  });

  it('watch without an id names the upgrades it left out as ls does, and a folder of none it can read is not "no upgrades"', async () => {
    // It said "no upgrades in this source yet; name one to wait for it" (exit 3) of a folder whose every
    // upgrade was left out (damaged, or another user's it may not read), and followed an older one
    // without a word of a newer one left out. (Found by a review on 2026-12-02; the test failed before the fix.)
    const dir = tempDir('cli-watch-damaged');
    await seed({ json: dir }, 'up-bad');
    const log = join(dir, 'upgrades', 'up-bad', 'events.jsonl');
    writeFileSync(log, readFileSync(log, 'utf8').replace('Nodes', 'Nodez'));
    const leftOut = /^progress: upgrade left out of list\(\): its data is damaged \(upgrade "up-bad"\): .*damaged.*\n/;
    const none = await run('watch', dir);
    expect(none).toMatchObject({ code: 4, out: '', err: expect.stringMatching(leftOut) });
    expect(none.err).toMatch(/\nprogress: no upgrade in this source could be read \(those left out are named above\)\n$/);
    await seed({ json: dir }, 'up-good');
    const other = await run('watch', dir);
    expect(other).toMatchObject({ code: 0, err: expect.stringMatching(leftOut), out: expect.stringContaining('up-good') });
    // What the store logs once the upgrade is picked is not said: a damaged snapshot is logged at every
    // load (every poll of an upgrade in progress); the list's read of it is said, once. A mutant that
    // passed the store's log on after the pick said it twice here, and passed the test above.
    const store = new JsonFileStore({ directory: dir, snapshotEvery: 1 });
    await seed(store, 'up-snap');
    await store.close();
    writeFileSync(join(dir, 'upgrades', 'up-snap', 'snapshot.json'), '{');
    const snapshotDamaged = await run('watch', dir);
    expect(snapshotDamaged).toMatchObject({ code: 0, out: expect.stringContaining('up-snap') });
    // Each once, in either order (the list reads the upgrades concurrently).
    const said = snapshotDamaged.err.split('\n');
    expect(said).toHaveLength(3);
    expect(said).toEqual(
      expect.arrayContaining([
        'progress: snapshot is damaged; replaying the whole log instead (upgrade "up-snap")',
        expect.stringMatching(/^progress: upgrade left out of list\(\): its data is damaged \(upgrade "up-bad"\): /),
        '',
      ]),
    );
  });
});

const seqsOf = (text: string, id: string): number[] =>
  [...text.matchAll(new RegExp(`#(\\d+) ${id} `, 'g'))].map((m) => Number(m[1]));

describe('progress watch', () => {
  it('follows a JSON folder written by another tracker, line by line when not a terminal, and exits 0 on completion', async () => {
    const dir = tempDir('watch-json');
    const t = await createProgressTracker({ upgradeId: 'watched', planId: 'p', clusterName: 'c', storagePath: dir });
    const watching = run('watch', dir, 'watched');
    await new Promise((r) => setTimeout(r, 300));
    await t.startUpgrade();
    await t.addTask('a', 'A');
    for (let p = 10; p <= 90; p += 20) {
      await t.updateTaskProgress('a', p);
      await new Promise((r) => setTimeout(r, 30));
    }
    await t.completeTask('a');
    await t.completeUpgrade();
    const { code, out } = await watching;
    await t.close();
    expect(code).toBe(0);
    // Every event after the state the watcher loaded, once, in order, up to the end.
    const seen = seqsOf(out, 'watched');
    expect(seen.length).toBeGreaterThan(0);
    expect(seen).toEqual(Array.from({ length: seen.length }, (_, i) => 11 - seen.length + i));
    expect(out).toContain('upgrade.completed');
    expect(out).toContain('COMPLETED');
    // The state it loaded first is a line of its own, before the events: an idle upgrade shows something.
    expect(out.split('\n')[0]).toMatch(/^\S+ watched state \w+ at seq \d+ overall=[\d.]+% tasks=\d+\/\d+$/);
  });

  it('exits 1 when the watched upgrade fails', async () => {
    const dir = tempDir('watch-fail');
    await seed({ json: dir }, 'doomed', 'fail');
    expect((await run('watch', dir, 'doomed')).code).toBe(1);
  });

  it('exits 1 when the watched upgrade is cancelled, as the README says: a script must not take it for done', async () => {
    const dir = tempDir('watch-cancel');
    await seed({ json: dir }, 'called-off', 'cancel');
    const { code, out } = await run('watch', dir, 'called-off');
    expect(out).toContain('CANCELLED');
    expect(code).toBe(1);
  });

  it('follows a Redis URL through watch()', async () => {
    const url = process.env.REDIS_URL!;
    const id = uniqueId('watch-redis');
    const keyPrefix = `${uniqueId('cli-watch')}:`;
    const t = await createProgressTracker({ upgradeId: id, planId: 'p', clusterName: 'c', storage: { redis: url, keyPrefix } });
    const watching = run('watch', url, id, '--prefix', keyPrefix);
    await new Promise((r) => setTimeout(r, 100));
    await t.startUpgrade();
    await t.addTask('a', 'A');
    await t.completeTask('a');
    await t.completeUpgrade();
    const { code, out } = await watching;
    expect(code).toBe(0);
    const seen = seqsOf(out, id);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen).toEqual(Array.from({ length: seen.length }, (_, i) => 6 - seen.length + i));
    await t.close();
    await deleteKeys(url, keyPrefix);
  });

  it('follows a ws:// URL and resumes after the server restarts, without gaps or repeats', async () => {
    const port = await freePort();
    const dir = tempDir('watch-ws');
    const t = await createProgressTracker({ upgradeId: 'live', planId: 'p', clusterName: 'c', storagePath: dir, webSocket: { port } });
    const { url } = await t.startWebSocketServer();
    await t.startUpgrade();
    await t.addTask('a', 'A');
    const watching = run('watch', url, 'live');
    const events: ProgressEvent[] = [];
    t.subscribe((e) => events.push(e));
    await new Promise((r) => setTimeout(r, 300));
    await t.updateTaskProgress('a', 10);
    await new Promise((r) => setTimeout(r, 200));
    await t.stopWebSocketServer();
    // Written while nobody can see them.
    await t.updateTaskProgress('a', 20);
    await t.updateTaskProgress('a', 30);
    await t.startWebSocketServer();
    await t.updateTaskProgress('a', 40);
    await t.completeTask('a');
    await t.completeUpgrade();
    const { code, out } = await watching;
    await t.close();
    expect(code).toBe(0);
    expect(out).toContain('reconnected');
    // After the snapshot, every event exactly once, in order, including 6 and 7, written while the
    // server was down and delivered by the resume.
    const seen = seqsOf(out, 'live');
    expect(seen).toEqual(Array.from({ length: seen.length }, (_, i) => 10 - seen.length + i));
    expect(seen).toEqual(expect.arrayContaining([6, 7, 8, 9]));
  });

  it('retries for ever once connected: --connect-timeout, long past, does not end it while the server is away', async () => {
    const port = await freePort();
    const t = await createProgressTracker({ upgradeId: 'patient', planId: 'p', clusterName: 'c', webSocket: { port } });
    const { url } = await t.startWebSocketServer();
    await t.startUpgrade();
    const out = new Capture();
    const err = new Capture();
    const watching = main(['watch', url, 'patient', '--connect-timeout', '0.2'], out as unknown as NodeJS.WriteStream, err as unknown as NodeJS.WriteStream);
    const deadline = Date.now() + 10_000;
    while (!out.text.includes('patient state in_progress at seq 2') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(out.text).toContain('patient state in_progress at seq 2');
    // Well past the connect timeout, the server goes away for a few of the command's retries.
    await new Promise((r) => setTimeout(r, 400));
    await t.stopWebSocketServer();
    await new Promise((r) => setTimeout(r, 1500));
    await t.startWebSocketServer();
    await t.completeUpgrade();
    expect(await watching).toBe(0);
    await t.close();
    expect(err.text).toBe('');
    expect(out.text).toContain('reconnected');
  });

  it('shows the new run, not its events on the old one, when the id was started again while the server was away', async () => {
    const port = await freePort();
    const dir = tempDir('watch-ws-run');
    const first = await createProgressTracker({ upgradeId: 'again', planId: 'p', clusterName: 'c', storagePath: dir, webSocket: { port } });
    const { url } = await first.startWebSocketServer();
    await first.startUpgrade();
    await first.addTask('a', 'A');
    const out = new Capture();
    const err = new Capture();
    const watching = main(['watch', url, 'again'], out as unknown as NodeJS.WriteStream, err as unknown as NodeJS.WriteStream);
    // Its first snapshot drawn, then one live event.
    for (let i = 0; i < 200 && !out.text.includes('again'); i++) await new Promise((r) => setTimeout(r, 25));
    await first.updateTaskProgress('a', 10);
    // The watcher holds the old run at seq 4 before the server goes away.
    for (let i = 0; i < 200 && !seqsOf(out.text, 'again').includes(4); i++) await new Promise((r) => setTimeout(r, 25));
    expect(seqsOf(out.text, 'again')).toContain(4);
    await first.close();
    // A new run under the same id, with the same task, written past the seq the watcher holds (4).
    const store = new JsonFileStore({ directory: dir });
    await store.delete('again');
    await store.close();
    const second = await createProgressTracker({ upgradeId: 'again', planId: 'p', clusterName: 'c', storagePath: dir, webSocket: { port } });
    await second.startUpgrade();
    await second.addTask('a', 'A');
    for (const p of [20, 30, 40, 50]) await second.updateTaskProgress('a', p);
    await second.startWebSocketServer();
    await second.completeTask('a');
    await second.completeUpgrade();
    const code = await watching;
    await second.close();
    expect(code).toBe(0);
    // The server told the stale resume apart by its createdAt and sent the new run's snapshot.
    expect(out.text).toContain('resync');
    // Said as watching a folder says it.
    expect(out.text).toContain('upgrade "again" was created again; following the new run from its start');
  });
});

describe('progress watch: an upgrade that does not exist yet', () => {
  it('says it waits for it from a ws:// server too, as from a folder, then follows it once it appears', async () => {
    const server = new ProgressWebSocketServer({ port: 0 });
    const { url } = await server.start();
    const out = new Capture();
    const err = new Capture();
    const watching = main(['watch', url, 'later'], out as unknown as NodeJS.WriteStream, err as unknown as NodeJS.WriteStream);
    try {
      // The server answers `subscribed` with exists: false and nothing more: a mistyped id was an empty screen.
      for (let i = 0; i < 200 && !out.text.includes('waiting'); i++) await new Promise((r) => setTimeout(r, 25));
      expect(out.text).toBe('waiting for upgrade "later" to appear...\n');
      const t = await createProgressTracker({ upgradeId: 'later', planId: 'p', clusterName: 'c', webSocket: server });
      await t.startUpgrade();
      await t.completeUpgrade();
      expect(await watching).toBe(0);
      await t.close();
      expect(out.text).toContain('#3 later upgrade.completed');
      // Said once: not again for the events that follow.
      expect(out.text.split('waiting for upgrade').length).toBe(2);
    } finally {
      await server.stop();
    }
  });

  it('says so, once, when no id is given and the ws:// server serves no upgrade yet, then follows the first one', async () => {
    const server = new ProgressWebSocketServer({ port: 0 });
    const { url } = await server.start();
    const out = new Capture();
    const err = new Capture();
    const watching = main(['watch', url], out as unknown as NodeJS.WriteStream, err as unknown as NodeJS.WriteStream);
    try {
      // An empty list was asked for again every 0.5 s without a word.
      for (let i = 0; i < 200 && !out.text.includes('waiting'); i++) await new Promise((r) => setTimeout(r, 25));
      expect(out.text).toBe('no upgrades on this server yet; waiting for one to appear...\n');
      // Asked again at least once more before the upgrade appears: still said once.
      await new Promise((r) => setTimeout(r, 700));
      expect(out.text).toBe('no upgrades on this server yet; waiting for one to appear...\n');
      const t = await createProgressTracker({ upgradeId: 'first', planId: 'p', clusterName: 'c', webSocket: server });
      await t.startUpgrade();
      await t.completeUpgrade();
      expect(await watching).toBe(0);
      await t.close();
      expect(out.text).toContain('first');
    } finally {
      await server.stop();
    }
  });
});

describe('progress watch: an upgrade deleted while the ws:// server was away', () => {
  it('says it was deleted and waits for it, as from a folder, rather than that a snapshot is coming', async () => {
    const port = await freePort();
    const dir = tempDir('watch-ws-deleted');
    const first = await createProgressTracker({ upgradeId: 'gone', planId: 'p', clusterName: 'c', storagePath: dir, webSocket: { port } });
    const { url } = await first.startWebSocketServer();
    await first.startUpgrade();
    await first.addTask('a', 'A');
    const out = new Capture();
    const err = new Capture();
    const watching = main(['watch', url, 'gone'], out as unknown as NodeJS.WriteStream, err as unknown as NodeJS.WriteStream);
    for (let i = 0; i < 200 && !out.text.includes('gone'); i++) await new Promise((r) => setTimeout(r, 25));
    await first.close();
    const store = new JsonFileStore({ directory: dir });
    await store.delete('gone');
    await store.close();
    // The server back, without the upgrade: the resume is answered `subscribed` (exists: false), then
    // `resync` without a snapshot (none comes while the upgrade does not exist).
    const server = new ProgressWebSocketServer({ port, store: new JsonFileStore({ directory: dir }) });
    await server.start();
    try {
      for (let i = 0; i < 400 && !out.text.includes('was deleted'); i++) await new Promise((r) => setTimeout(r, 25));
      expect(out.text).toContain('upgrade "gone" was deleted; waiting for it to be created again...');
      // It said "reloading the snapshot", and then nothing came.
      expect(out.text).not.toContain('reloading the snapshot');
      const second = await createProgressTracker({ upgradeId: 'gone', planId: 'p', clusterName: 'c', storagePath: dir, webSocket: server });
      await second.startUpgrade();
      await second.completeUpgrade();
      expect(await watching).toBe(0);
      await second.close();
      expect(out.text).toContain('upgrade "gone" was created again; following the new run from its start');
    } finally {
      await server.stop();
    }
  });
});

/** An upgrade started and completed in memory: its three events, and its state once started. */
async function startedAndCompleted(upgradeId: string): Promise<{ events: ProgressEvent[]; started: UpgradeProgress }> {
  const t = await createProgressTracker({ upgradeId, planId: 'p', clusterName: 'c' });
  await t.startUpgrade();
  const started: UpgradeProgress = structuredClone(t.progress);
  await t.completeUpgrade();
  const events: ProgressEvent[] = [];
  for await (const event of t.readEvents(0)) events.push(event);
  await t.close();
  return { events, started };
}

describe('progress watch: a resync after the upgrade appeared on the same connection', () => {
  it('says a resync, not that the upgrade was deleted: `subscribed` said exists: false only before it appeared', async () => {
    const { events, started } = await startedAndCompleted('appears');
    const [created, start, completed] = events;
    // The server subscribes the client to an upgrade that does not exist yet, the upgrade appears
    // (its first events), and then the server resyncs it (a reload of the same run, a gap it could
    // not fill from its store) and sends its snapshot: no `subscribed` comes in between.
    // (The `list_upgrades` the command sends after `subscribed` says exists: false, for a hint on a
    // mistyped id, gets no answer: the hint is not waited for.)
    const fake = await protocolServer((msg) =>
      msg.type !== 'subscribe'
        ? []
        : [
            { type: 'subscribed', upgradeId: msg.upgradeId, exists: false },
            { type: 'progress_event', upgradeId: msg.upgradeId, data: created },
            { type: 'resync', upgradeId: msg.upgradeId, reason: 'gap' },
            { type: 'snapshot', upgradeId: msg.upgradeId, seq: started.lastSeq, data: started },
            { type: 'progress_event', upgradeId: msg.upgradeId, data: completed },
          ],
    );
    try {
      expect(start?.type).toBe('upgrade.started');
      const result = await run('watch', fake.url, 'appears');
      expect(result).toMatchObject({ code: 0, err: '' });
      expect(result.out).toContain('waiting for upgrade "appears" to appear...');
      // It said the upgrade was deleted and waited for it to be created again, then showed its snapshot.
      expect(result.out).not.toContain('was deleted');
      expect(result.out).toContain('resync: gap; reloading the snapshot');
      // The snapshot after the resync is of the run held: not a run created again.
      expect(result.out).not.toContain('was created again');
      expect(result.out).toContain('COMPLETED');
      expect(fake.requests.filter((r) => r.type === 'subscribe')).toHaveLength(1);
    } finally {
      await fake.close();
    }
  });
});

describe('progress watch: an event the server sends again', () => {
  it('prints it once: an event at or below the seq held is not shown again', async () => {
    const [created, start, completed] = (await startedAndCompleted('twice')).events;
    const fake = await protocolServer((msg) => [
      { type: 'subscribed', upgradeId: msg.upgradeId, exists: true },
      ...[created, start, start, completed].map((data) => ({ type: 'progress_event', upgradeId: msg.upgradeId, data })),
    ]);
    try {
      const result = await run('watch', fake.url, 'twice');
      expect(result).toMatchObject({ code: 0, err: '' });
      expect(result.out.match(/ upgrade\.started /g)).toHaveLength(1);
    } finally {
      await fake.close();
    }
  });
});

describe('progress watch: a bad upgrade id', () => {
  it('is refused before connecting, with exit code 2, as for a JSON folder', async () => {
    const server = new ProgressWebSocketServer({ port: 0 });
    const { url } = await server.start();
    try {
      const result = await run('watch', url, 'bad id!');
      expect(result).toMatchObject({ code: 2, err: expect.stringContaining('upgradeId "bad id!" is not valid') });
      expect(await run('watch', tempDir('watch-bad-id'), 'bad id!')).toMatchObject({ code: 2, err: result.err });
    } finally {
      await server.stop();
    }
  });

  it('ends with exit code 2 when the server answers INVALID_MESSAGE', async () => {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve) => server.once('listening', resolve));
    server.on('connection', (ws) => {
      ws.send(JSON.stringify({ type: 'welcome', protocol: 1, serverId: 'fake' }));
      ws.on('message', () => ws.send(JSON.stringify({ type: 'error', code: 'INVALID_MESSAGE', message: 'upgradeId is not valid here' })));
    });
    try {
      const result = await run('watch', `ws://127.0.0.1:${(server.address() as AddressInfo).port}`, 'fine-here');
      expect(result).toMatchObject({ code: 2, err: expect.stringContaining('upgradeId is not valid here') });
    } finally {
      for (const ws of server.clients) ws.terminate();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('progress watch: a server that breaks the protocol', () => {
  it('ends with exit code 4 and a message, not a crash, on a frame that is not a message or an event that does not apply', async () => {
    const frames = ['null', JSON.stringify({ type: 'progress_event', upgradeId: 'odd', data: { seq: 1, upgradeId: 'odd', type: 'task.progress', taskId: 'a', status: 'in_progress', details: {} } })];
    for (const frame of frames) {
      const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
      await new Promise((resolve) => server.once('listening', resolve));
      server.on('connection', (ws) => {
        ws.send(JSON.stringify({ type: 'welcome', protocol: 1, serverId: 'fake' }));
        ws.on('message', () => ws.send(frame));
      });
      try {
        const result = await run('watch', `ws://127.0.0.1:${(server.address() as AddressInfo).port}`, 'odd');
        expect(result, frame).toMatchObject({ code: 4, err: expect.stringContaining('the server sent a message this client cannot use') });
      } finally {
        for (const ws of server.clients) ws.terminate();
        await new Promise((resolve) => server.close(resolve));
      }
    }
  });
});

describe('progress watch --token', () => {
  it('is accepted by a server that uses readTokenAuth (token in the subprotocol, as a browser sends it)', async () => {
    const secret = 'a-watch-test-secret-long-enough-0123456789';
    const server = new ProgressWebSocketServer({ port: 0, ...readTokenAuth({ secret }) });
    const { url } = await server.start();
    const t = await createProgressTracker({ upgradeId: 'guarded', planId: 'p', clusterName: 'c', webSocket: server });
    try {
      await t.startUpgrade();
      await t.addTask('a', 'A');
      await t.completeTask('a');
      await t.completeUpgrade();
      const token = createReadToken({ secret, upgradeIds: ['guarded'] });
      const result = await run('watch', url, 'guarded', '--token', token);
      expect(result.err).toBe('');
      expect(result.code).toBe(0);
      expect(result.out).toContain('COMPLETED');
    } finally {
      await t.close();
      await server.stop();
    }
  });
});

describe('progress watch <dashboard URL>#<upgradeId>', () => {
  it('watches the upgrade the #fragment selects unless an id is given, and refuses a bad URL or fragment with exit code 2', async () => {
    const server = new ProgressWebSocketServer({ port: 0 });
    const { port } = await server.start();
    const selected = await createProgressTracker({ upgradeId: 'from-hash', planId: 'p', clusterName: 'c', webSocket: server });
    const given = await createProgressTracker({ upgradeId: 'given-id', planId: 'p', clusterName: 'c', webSocket: server });
    try {
      await selected.startUpgrade();
      await selected.completeUpgrade();
      await given.startUpgrade();
      await given.failUpgrade('drain timeout');
      // As the browser shows it, with a token in the query that must reach the server.
      const fromHash = await run('watch', `http://127.0.0.1:${port}/?token=x#from-hash`);
      expect(fromHash).toMatchObject({ code: 0, err: '' });
      expect(fromHash.out).toMatch(/from-hash .*COMPLETED/);
      // Percent-decoded as the dashboard decodes it, on a ws:// URL too.
      expect(await run('watch', `ws://127.0.0.1:${port}/ws#from%2Dhash`)).toMatchObject({ code: 0, err: '' });
      const explicit = await run('watch', `http://127.0.0.1:${port}/#from-hash`, 'given-id');
      expect(explicit).toMatchObject({ code: 1, err: '' });
      expect(explicit.out).toMatch(/given-id .*FAILED/);
      expect(await run('watch', `http://127.0.0.1:${port}/#bad id!`)).toMatchObject({ code: 2, err: expect.stringContaining('upgradeId "bad id!" is not valid') });
      expect(await run('watch', `http://127.0.0.1:${port}/#%E0`)).toMatchObject({ code: 2, err: expect.stringContaining('#fragment') });
      expect(await run('watch', 'ws://[::1/ws')).toMatchObject({ code: 2, err: expect.stringContaining('not a valid URL') });
    } finally {
      await selected.close();
      await given.close();
      await server.stop();
    }
  });
});

describe('progress watch --token that is not a subprotocol name', () => {
  it('is sent as a bearer header only, and a server that checks the header lets it in', async () => {
    const token = 'c2VjcmV0/dG9rZW4+Zm9vYmFy==';
    const offered: Array<string | undefined> = [];
    const server = new ProgressWebSocketServer({
      port: 0,
      authenticate: (req) => {
        offered.push(req.headers['sec-websocket-protocol']);
        return req.headers.authorization === `Bearer ${token}` ? { user: 'ops' } : undefined;
      },
    });
    const { url } = await server.start();
    const t = await createProgressTracker({ upgradeId: 'bearer', planId: 'p', clusterName: 'c', webSocket: server });
    try {
      await t.startUpgrade();
      await t.completeUpgrade();
      const result = await run('watch', url, 'bearer', '--token', token);
      expect(result).toMatchObject({ code: 0, err: '' });
      expect(result.out).toContain('COMPLETED');
      expect(offered).toEqual([undefined]);
      // A token a header cannot carry is a usage error, not a failed connection.
      expect(await run('watch', url, 'bearer', '--token', 'two words')).toMatchObject({ code: 2, err: expect.stringContaining('--token') });
      expect(offered).toHaveLength(1);
    } finally {
      await t.close();
      await server.stop();
    }
  });
});

describe('progress: what a command does not take', () => {
  it('refuses extra arguments and options of another command, naming them, with exit code 2', async () => {
    const dir = tempDir('cli-extra');
    const ls = await run('ls', dir, 'extra', 'args', '--follow', '--speed', '3');
    expect(ls.code).toBe(2);
    expect(ls.err).toContain('unexpected arguments "extra" "args"');
    expect(ls.err).toContain('--follow, --speed do not apply to ls');
    expect(ls.out).toBe('');
    expect(await run('show', dir, 'a', 'b')).toMatchObject({ code: 2, err: expect.stringContaining('unexpected argument "b"') });
    expect(await run('watch', dir, 'a', 'b', '--json')).toMatchObject({ code: 2, err: expect.stringContaining('--json does not apply to watch') });
    expect(await run('demo', 'now', '--dir', dir, '--speed', '1000', '--linger', '0', '--port', '0')).toMatchObject({ code: 2, err: expect.stringContaining('unexpected argument "now"') });
    expect(await run('ls', dir, '--token', 't')).toMatchObject({ code: 2, err: expect.stringContaining('--token does not apply to ls') });
    expect((await run('ls', dir, '--json')).code).toBe(0);
  });

  it('refuses a number that is not plain decimal digits, and an empty value', async () => {
    const dir = tempDir('cli-numbers');
    // Each would start a demo if accepted: a temp folder, fast, not lingering, on a free port.
    const demo = (...args: string[]) => run('demo', '--dir', dir, '--linger', '0', ...args);
    for (const [name, value] of [
      ['port', ''],
      ['port', '0x0'],
      ['port', ' 0'],
      ['port', '0e0'],
      ['port', '0.0'],
      ['speed', '1e3'],
      ['speed', '+1000'],
      ['speed', '.5'],
      ['speed', ''],
    ] as const) {
      const args = name === 'port' ? ['--speed', '1000', '--port', value] : ['--port', '0', '--speed', value];
      expect(await demo(...args), `--${name} ${JSON.stringify(value)}`).toMatchObject({ code: 2, err: expect.stringContaining(`--${name}`) });
    }
    expect(await run('demo', '--dir', dir, '--host', '')).toMatchObject({ code: 2, err: expect.stringContaining('--host needs a value') });
    expect(await run('watch', dir, '--token', '')).toMatchObject({ code: 2, err: expect.stringContaining('--token needs a value') });
    expect(await run('watch', dir, '--connect-timeout', '0x1')).toMatchObject({ code: 2, err: expect.stringContaining('--connect-timeout') });
  });

  it('refuses a demo --speed or --port outside its range, naming the range', async () => {
    const dir = tempDir('cli-ranges');
    // Each would start a demo if accepted (`--speed 0` ran it at full speed, with a TimeoutOverflowWarning).
    for (const [name, value, range] of [
      ['speed', '0', 'a number from 0.01 to 1000'],
      ['speed', '0.001', 'a number from 0.01 to 1000'],
      ['speed', '1001', 'a number from 0.01 to 1000'],
      ['port', '65536', 'a whole number from 0 to 65535'],
    ] as const) {
      const args = name === 'port' ? ['--speed', '1000', '--port', value] : ['--port', '0', '--speed', value];
      expect(await run('demo', '--dir', dir, '--linger', '0', ...args), `--${name} ${value}`).toMatchObject({ code: 2, out: '', err: expect.stringContaining(`--${name} must be ${range}`) });
    }
  });

  it('refuses an option that takes a value given twice, rather than use the last one without a word', async () => {
    const dir = tempDir('cli-twice');
    const other = tempDir('cli-twice-other');
    await seed({ json: dir }, 'u1');
    // Each would run if accepted (the demo fast, not lingering, on a free port, in the second folder).
    for (const args of [
      ['demo', '--dir', dir, '--dir', other, '--speed', '1000', '--linger', '0', '--port', '0'],
      ['demo', '--dir', other, '--speed', '1000', '--speed', '0.01', '--linger', '0', '--port', '0'],
      ['demo', '--dir', other, '--speed=1000', '--linger', '0', '--port', '0', '--port=0'],
      ['ls', 'redis://127.0.0.1:1', '--prefix', 'a:', '--prefix', 'b:'],
    ]) {
      const name = args.find((a, i) => a.startsWith('--') && args.slice(i + 1).some((b) => b.split('=')[0] === a.split('=')[0]))!.split('=')[0];
      const result = await run(...args);
      expect(result, args.join(' ')).toMatchObject({ code: 2, out: '', err: expect.stringContaining(`${name} is given more than once`) });
    }
    // A switch given twice says the same thing twice: still taken.
    expect((await run('ls', dir, '--json', '--json')).code).toBe(0);
  });
});

describe('progress --help and the README', () => {
  it('document the same commands and options, --host included', async () => {
    const help = (await run('--help')).out;
    expect(help).toContain('[--host HOST]');
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const synopsis = help.split('\n').filter((line) => /^ {2}progress \w/.test(line));
    expect(synopsis.length).toBe(4);
    for (const line of synopsis) expect(readme).toContain(line.trim());
  });

  it('explain every option the synopsis names, each on a line of its own', async () => {
    const help = (await run('--help')).out;
    const named = new Set([...help.matchAll(/\[--([a-z-]+)/g)].map((m) => m[1]));
    expect(named.size).toBeGreaterThan(8);
    // --dir, --redis and --host are explained in the demo's paragraph (its store and its address).
    for (const name of named) {
      if (['dir', 'redis', 'host'].includes(name)) continue;
      expect(help, `--${name} is not explained`).toMatch(new RegExp(`^ +--${name}\\b[^\\n]* {2,}\\S|^ +--${name}:`, 'm'));
    }
  });
});

describe('progress: the Redis password in messages', () => {
  // The masking itself is core's redactUrl (tested there); these check that the CLI uses it.
  it('is redacted when written unescaped with a character URLs reserve, where the URL parser fails or misreads it', async () => {
    for (const url of ['redis://:Ab/Cd+eF=@127.0.0.1:6379', 'redis://:Ab#Cd@127.0.0.1:6379', 'redis://:Ab?Cd@127.0.0.1:6379', 'redis://u:Ab@Cd@127.0.0.1:6379/0']) {
      for (const argv of [['ls', url], ['demo', '--redis', url]]) {
        const result = await run(...argv);
        expect(result.code).not.toBe(0);
        expect(result.err).not.toMatch(/Ab|Cd/);
      }
    }
  });

  it('is redacted where a message quotes the URL as JSON (a password with a quote or a backslash)', async () => {
    const dir = tempDir('cli-json-quoted-url');
    for (const url of ['redis://:Ab"Cd@127.0.0.1:6379', 'redis://:Ab\\Cd@127.0.0.1:6379']) {
      const result = await run('ls', dir, url);
      expect(result).toMatchObject({ code: 2, err: expect.stringContaining('unexpected argument "redis://') });
      expect(result.err).not.toMatch(/Ab|Cd/);
    }
  });

  it('is redacted, with the token, in what watch prints about a server it cannot reach', async () => {
    const closed = await freePort();
    const result = await run('watch', `http://user:pw1@127.0.0.1:${closed}/?token=s3cretTOK#u1`, '--connect-timeout', '0.5');
    expect(result).toMatchObject({ code: 4, err: expect.stringContaining('cannot connect to ws://user:***@127.0.0.1:') });
    expect(result.out + result.err).not.toMatch(/pw1|s3cretTOK/);
  });
});

describe('progress watch: what a server says when it refuses', () => {
  it.each(['FORBIDDEN', 'INVALID_MESSAGE'])('a %s message is printed without its control characters', async (code) => {
    const fake = await protocolServer(() => [{ type: 'error', code, upgradeId: 'u1', message: 'nope\u001b[2J\u001b]0;OWNED\u0007' }]);
    try {
      const result = await run('watch', fake.url, 'u1');
      // As the README says: FORBIDDEN ends it with exit 3, INVALID_MESSAGE with exit 2.
      expect(result.code).toBe(code === 'FORBIDDEN' ? 3 : 2);
      expect(result.err).toContain('nope [2J ]0;OWNED ');
      expect(result.err + result.out).not.toContain('\u001b');
    } finally {
      await fake.close();
    }
  });
});

describe('progress watch wss:// to a server that does not speak TLS', () => {
  // The same server answers the next try the same way: given up at once, as a refused certificate
  // is (tls-refused.test.ts), saying which scheme to use rather than OpenSSL's line of codes and file
  // names. The bound is the test's timeout (30 s) against --connect-timeout 60: a CLI that retried
  // until then would time the test out.
  it('gives up at once with a one-line error naming ws://, exit code 4', async () => {
    const server = new ProgressWebSocketServer({ port: 0 });
    const { url } = await server.start();
    try {
      const endpoint = url.replace('ws://', 'wss://');
      const result = await run('watch', endpoint, 'u1', '--connect-timeout', '60');
      expect(result.code).toBe(4);
      expect(result.err).toBe(
        `progress: cannot connect to ${endpoint} (the server does not speak TLS: its answer to the TLS handshake was not TLS, OpenSSL says "wrong version number"; use ws://, or http:// for a dashboard page)\n`,
      );
      // No "retrying": nothing is tried again.
      expect(result.out).toBe('');
      // So too from its dashboard URL as https://.
      const page = await run('watch', `${endpoint.replace('wss://', 'https://').replace(/\/ws$/, '/')}#u1`, '--connect-timeout', '60');
      expect(page).toMatchObject({ code: 4, out: '', err: expect.stringContaining('the server does not speak TLS') });
    } finally {
      await server.stop();
    }
  }, 30_000);
});

describe('progress: a Redis database the URL names', () => {
  it('is a usage error when it is not a number, or when Redis refuses it; never database 0 instead', async () => {
    const url = new URL(process.env.REDIS_URL!);
    url.pathname = '/abc';
    expect(await run('ls', url.toString())).toMatchObject({ code: 2, err: expect.stringContaining('must be a whole number') });
    url.pathname = '/9999';
    const refused = await run('ls', url.toString());
    expect(refused).toMatchObject({ code: 2, err: expect.stringContaining('refused to select its database') });
    // Said once: the store's log line during the CLI's probe was printed before the same error.
    expect(refused.err.trim().split('\n')).toHaveLength(1);
  });
});

describe('progress ls / show: text a writer stored', () => {
  it('is printed without its control characters (terminal escapes)', async () => {
    const dir = tempDir('cli-escapes');
    const t = await createProgressTracker({ upgradeId: 'u-esc', planId: 'p', clusterName: 'prod\u001b[2J\u001b]0;OWNED\u0007', storage: { json: dir } });
    await t.startUpgrade('phase\u001b[31mRED');
    await t.addTask('a', 'task\u001b[1A\u001b[2Kfake line');
    await t.close();
    const ls = await run('ls', dir);
    const show = await run('show', dir, 'u-esc');
    for (const out of [ls.out, show.out]) {
      // eslint-disable-next-line no-control-regex
      expect(out).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
    }
    expect(ls.out).toContain('prod [2J ]0;OWNED');
    expect(show.out).toContain('task [1A [2Kfake line');
  });
});

describe('progress ls / show: names in CJK or with emoji', () => {
  /** Cells a terminal draws `text` in: a CJK character or an emoji takes two. */
  const cells = (text: string): number => [...text].reduce((n, ch) => n + (/[\u3040-\u30ff\u4e00-\u9fff]|\p{Emoji_Presentation}/u.test(ch) ? 2 : 1), 0);

  it('line up the columns in cells, and cut a long name between characters, never inside an emoji', async () => {
    const dir = tempDir('cli-wide');
    const t = await createProgressTracker({ upgradeId: 'u-wide', planId: 'p', clusterName: '東京本番クラスタ', storage: { json: dir } });
    await t.startUpgrade('ノード');
    await t.addTasks([
      { taskId: 'a', taskName: 'Control plane' },
      { taskId: 'b', taskName: 'ノードグループ更新' },
      { taskId: 'c', taskName: `xy${'🎉'.repeat(20)}` },
    ]);
    await t.close();
    const ls = await run('ls', dir);
    const show = await run('show', dir, 'u-wide');
    expect([ls.code, show.code]).toEqual([0, 0]);
    // Every row's STATUS column (ls) and TYPE column (show) starts at the cell its header's does.
    const at = (line: string, word: string) => cells(line.slice(0, line.indexOf(word)));
    const [header, row] = ls.out.trim().split('\n') as [string, string];
    expect(at(row, 'in_progress'), ls.out).toBe(at(header, 'STATUS'));
    const table = show.out.trim().split('\n').slice(-4);
    expect(table.map((line) => at(line, line === table[0] ? 'TYPE' : 'upgrade_step')), show.out).toEqual([56, 56, 56, 56]);
    // The bars above the table line up too.
    const bars = show.out.split('\n').filter((line) => line.includes('░') && !line.startsWith('overall'));
    expect(new Set(bars.map((line) => at(line, '░'))).size, show.out).toBe(1);
    // A cut inside a surrogate pair is printed as U+FFFD.
    expect(show.out).not.toContain('\ufffd');
    expect(show.out).toContain('ノードグループ更新');
  });
});

/**
 * A store whose next `failLists` lists and `failLoads` loads fail with `code`, as a store that is down
 * does (or one that says NOT_FOUND), and then work again.
 */
class FailingStore extends MemoryStore {
  failLists = 0;
  failLoads = 0;
  constructor(readonly code: 'STORE_UNAVAILABLE' | 'NOT_FOUND') {
    super();
  }
  override list(filter?: Parameters<MemoryStore['list']>[0]): Promise<UpgradeSummaryRow[]> {
    if (this.failLists <= 0) return super.list(filter);
    this.failLists--;
    return Promise.reject(new ProgressError(this.code, 'redis is down'));
  }
  override load(upgradeId: string): Promise<UpgradeProgress | undefined> {
    if (this.failLoads <= 0) return super.load(upgradeId);
    this.failLoads--;
    return Promise.reject(new ProgressError(this.code, 'redis is down'));
  }
}

/** A FailingStore holding upgrade `upgradeId`, completed. */
async function failingStoreWith(code: 'STORE_UNAVAILABLE' | 'NOT_FOUND', upgradeId: string): Promise<FailingStore> {
  const store = new FailingStore(code);
  await completedUpgrade(upgradeId, store);
  return store;
}

describe('progress watch: a server that cannot serve the request', () => {
  it('says so and lists again when a ws-server cannot list its store (it answers STORE_UNAVAILABLE, or NOT_FOUND), until it can', async () => {
    for (const code of ['STORE_UNAVAILABLE', 'NOT_FOUND'] as const) {
      const store = await failingStoreWith(code, 'listed');
      store.failLists = 2;
      const server = new ProgressWebSocketServer({ port: 0, store });
      const { url } = await server.start();
      try {
        const list = await run('watch', url);
        expect(list, code).toMatchObject({ code: 0, err: '' });
        expect(list.out, code).toContain(`server: ${code}:`);
        expect(list.out.match(/the server could not serve the upgrade list; asking again in \S+ s/g), code).toHaveLength(2);
        expect(list.out, code).toContain('COMPLETED');
        expect(store.failLists, code).toBe(0);
      } finally {
        await server.stop();
      }
    }
  });

  it('says so and subscribes again when a ws-server cannot load the upgrade asked for, until it can, rather than exit', async () => {
    for (const code of ['STORE_UNAVAILABLE', 'NOT_FOUND'] as const) {
      const store = await failingStoreWith(code, 'u1');
      store.failLoads = 2;
      const server = new ProgressWebSocketServer({ port: 0, store });
      const { url } = await server.start();
      try {
        const watched = await run('watch', url, 'u1');
        expect(watched, code).toMatchObject({ code: 0, err: '' });
        expect(watched.out, code).toContain(`server: ${code}:`);
        expect(watched.out, code).toContain('the server could not serve "u1"; asking again in 0.5 s');
        expect(watched.out, code).toContain('the server could not serve "u1"; asking again in 1 s');
        expect(watched.out, code).toContain('COMPLETED');
        expect(store.failLoads, code).toBe(0);
      } finally {
        await server.stop();
      }
    }
  });

  it('asks again, one request at a time, after any other error a failing store gives (DATA_CORRUPTED)', async () => {
    const t = await createProgressTracker({ upgradeId: 'damaged', planId: 'p', clusterName: 'c' });
    await t.startUpgrade();
    await t.completeUpgrade();
    const state: UpgradeProgress = structuredClone(t.progress);
    await t.close();
    // (A control character in the message, as a hostile server could send: it is printed as a space.)
    const corrupted = { type: 'error', code: 'DATA_CORRUPTED', upgradeId: 'damaged', message: 'could not read upgrade "damaged" from the store;\u001b[2J try again later' };
    const served = (id: string | undefined) => [{ type: 'subscribed', upgradeId: id, exists: true }, { type: 'snapshot', upgradeId: id, seq: state.lastSeq, data: state }];
    const fake = await protocolServer((msg, { request: n }) => (n < 3 ? [corrupted] : served(msg.upgradeId)));
    try {
      const result = await run('watch', fake.url, 'damaged');
      expect(result).toMatchObject({ code: 0, err: '' });
      expect(result.out).toContain('server: DATA_CORRUPTED: could not read upgrade "damaged" from the store; [2J try again later');
      expect(result.out).not.toContain('\u001b');
      expect(result.out).toContain('COMPLETED');
      expect(fake.requests.map((r) => r.type)).toEqual(['subscribe', 'subscribe', 'subscribe']);
    } finally {
      await fake.close();
    }
  });

  it('asks again after RATE_LIMITED a few times, then gives up with exit code 4', async () => {
    const t = await createProgressTracker({ upgradeId: 'limited', planId: 'p', clusterName: 'c' });
    await t.startUpgrade();
    await t.completeUpgrade();
    const state: UpgradeProgress = structuredClone(t.progress);
    await t.close();
    const limited = { type: 'error', code: 'RATE_LIMITED', message: 'too many messages; slow down' };
    const served = (id: string | undefined) => [{ type: 'subscribed', upgradeId: id, exists: true }, { type: 'snapshot', upgradeId: id, seq: state.lastSeq, data: state }];
    const passing = await protocolServer((msg, { request: n }) => (n < 3 ? [limited] : served(msg.upgradeId)));
    const never = await protocolServer(() => [limited]);
    try {
      const result = await run('watch', passing.url, 'limited');
      expect(result).toMatchObject({ code: 0, err: '' });
      expect(result.out).toContain('COMPLETED');
      expect(passing.requests.map((r) => r.type)).toEqual(['subscribe', 'subscribe', 'subscribe']);
      expect(await run('watch', never.url, 'limited')).toMatchObject({ code: 4, err: expect.stringContaining('RATE_LIMITED 4 times') });
      expect(never.requests.map((r) => r.type)).toEqual(['subscribe', 'subscribe', 'subscribe', 'subscribe']);
    } finally {
      await passing.close();
      await never.close();
    }
  });
});

describe('a certificate Node does not trust', () => {
  // OpenSSL's words as the CLI met them: a wss:// dashboard and a rediss:// Redis of a private CA
  // (the whole path over wss:// is in tls.chromium.test.ts).
  it('is said with how to trust a private CA; other failures are said as they are', () => {
    const hint = '; to trust a private CA, run with NODE_EXTRA_CA_CERTS=<its PEM file>';
    for (const reason of ['unable to verify the first certificate', 'the connection is down: self-signed certificate in certificate chain', 'unable to get local issuer certificate']) {
      expect(withCertificateHint(reason)).toBe(reason + hint);
    }
    for (const reason of ['connect ECONNREFUSED 127.0.0.1:6379', 'certificate has expired', "Hostname/IP does not match certificate's altnames"]) {
      expect(withCertificateHint(reason)).toBe(reason);
    }
  });
});
