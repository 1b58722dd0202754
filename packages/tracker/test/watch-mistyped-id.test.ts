// `progress watch <source> <id>` of an id that does not exist waits for it (an agent may not have
// started yet), saying `waiting for upgrade "<id>" to appear...`. A mistyped id (`eks-upgarde-1`
// for `eks-upgrade-1`) waited for ever without a hint; `show` of it said only `no upgrade ... in
// this source`. Both now name the nearest id the source lists (as a mistyped option is named),
// once, and `watch` goes on waiting: the id may still appear, and is then followed as before.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressWebSocketServer, createProgressTracker, createReadToken, readTokenAuth } from '../src/index.js';
import { main } from '../src/cli/main.js';
import { Capture, cleanupTempDirs, completedUpgrade, deleteKeys, protocolServer, runCli, tempDir, uniqueId, until } from './helpers.js';

afterAll(() => cleanupTempDirs());

const meant = 'eks-upgrade-1';
const typed = 'eks-upgarde-1';
const hint = `(did you mean ${meant}?)`;

/**
 * `progress watch <args>` of the mistyped id: the output once `said` is in it (the line waited for,
 * not a sleep); then the mistyped id is created and completed by `create`, and the command, which
 * went on waiting, follows it to its end. The exit code and the whole output.
 */
async function watchUntilCreated(args: string[], said: (out: string) => boolean, create: () => Promise<void>): Promise<{ code: number; out: string; err: string }> {
  const out = new Capture();
  const err = new Capture();
  const watching = main(['watch', ...args], out as unknown as NodeJS.WriteStream, err as unknown as NodeJS.WriteStream);
  await until('said it waits', () => said(out.text), () => out.text + err.text);
  await create();
  const code = await watching;
  return { code, out: out.text, err: err.text };
}

const hinted = (out: string) => out.includes(hint);
/** How many times a hint was said. */
const hints = (out: string) => out.split('did you mean').length - 1;

describe('progress watch / show of a mistyped upgrade id', () => {
  it('names the nearest id of a JSON folder, on the waiting line, and goes on waiting', async () => {
    const dir = tempDir('watch-mistyped');
    await completedUpgrade(meant, { json: dir });
    const result = await watchUntilCreated([dir, typed], hinted, () => completedUpgrade(typed, { json: dir }));
    expect(result).toMatchObject({ code: 0, err: '' });
    expect(result.out.startsWith(`waiting for upgrade "${typed}" to appear... ${hint}\n`)).toBe(true);
    expect(hints(result.out)).toBe(1);
    expect(result.out).toContain(`${typed} upgrade.completed`);
    // `show` of it where it does not exist says the same; an id nothing is near gets no hint.
    // Another upgrade there left out of the list as damaged is not named: `show` was not asked about it.
    const other = tempDir('show-mistyped');
    await completedUpgrade(meant, { json: other });
    await completedUpgrade('eks-upgrade-2', { json: other });
    const log = join(other, 'upgrades', 'eks-upgrade-2', 'events.jsonl');
    writeFileSync(log, readFileSync(log, 'utf8').replace('"clusterName":"c"', '"clusterName":"d"'));
    expect((await runCli('ls', other)).err).toContain('damaged (upgrade "eks-upgrade-2")');
    expect(await runCli('show', other, typed)).toEqual({ code: 3, out: '', err: `progress: no upgrade "${typed}" in this source ${hint}\n` });
    expect(await runCli('show', other, 'gke-rollout-7')).toEqual({ code: 3, out: '', err: 'progress: no upgrade "gke-rollout-7" in this source\n' });
  });

  it('names the nearest id of a Redis store (under its --prefix only)', async () => {
    const url = process.env.REDIS_URL!;
    const keyPrefix = `${uniqueId('watch-mistyped')}:`;
    const elsewhere = `${uniqueId('watch-mistyped-other')}:`;
    try {
      await completedUpgrade(meant, { redis: url, keyPrefix });
      // Under another prefix, nearer still: not in the source watched, not named.
      await completedUpgrade(`${typed}0`, { redis: url, keyPrefix: elsewhere });
      expect(await runCli('show', url, typed, '--prefix', keyPrefix)).toEqual({ code: 3, out: '', err: `progress: no upgrade "${typed}" in this source ${hint}\n` });
      const result = await watchUntilCreated([url, typed, '--prefix', keyPrefix], hinted, () => completedUpgrade(typed, { redis: url, keyPrefix }));
      expect(result).toMatchObject({ code: 0, err: '' });
      expect(result.out.startsWith(`waiting for upgrade "${typed}" to appear... ${hint}\n`)).toBe(true);
      expect(hints(result.out)).toBe(1);
      expect(result.out).toContain(`${typed} upgrade.completed`);
    } finally {
      await deleteKeys(url, keyPrefix);
      await deleteKeys(url, elsewhere);
    }
  });

  it("names the nearest id a ws-server lists to the watcher, and none its read token does not show", async () => {
    const secret = 'a-mistyped-id-test-secret-long-enough-0123';
    const auth = readTokenAuth({ secret });
    /** The upgrades the server's `authorize` refused a client: those it left out of a list. */
    const refused: string[] = [];
    const server = new ProgressWebSocketServer({
      port: 0,
      authenticate: auth.authenticate,
      authorize: (principal, upgradeId) => {
        const allowed = auth.authorize(principal, upgradeId);
        if (!allowed) refused.push(upgradeId);
        return allowed;
      },
    });
    const { url } = await server.start();
    const running = await createProgressTracker({ upgradeId: meant, planId: 'p', clusterName: 'c', webSocket: server });
    await running.startUpgrade();
    /** Runs upgrade `id` on the server, start to end. */
    const create = (id: string) => async () => {
      const t = await createProgressTracker({ upgradeId: id, planId: 'p', clusterName: 'c', webSocket: server });
      await t.startUpgrade();
      await t.completeUpgrade();
      await t.close();
    };
    try {
      const allowed = createReadToken({ secret, upgradeIds: [typed, meant] });
      const result = await watchUntilCreated([url, typed, '--token', allowed], hinted, create(typed));
      expect(result).toMatchObject({ code: 0, err: '' });
      expect(result.out).toContain(`waiting for upgrade "${typed}" to appear...\n`);
      expect(hints(result.out)).toBe(1);
      expect(result.out).toContain(`${typed} upgrade.completed`);
      expect(refused).toEqual([]);
      // A token that may read neither eks-upgrade-1 nor eks-upgarde-1 (each near eks-upgrade-2): the
      // server's list leaves them out, and so does the hint. The upgrade is created once the server
      // refused eks-upgrade-1 to the list: the list went out before its events.
      const scoped = createReadToken({ secret, upgradeIds: ['eks-upgrade-2'] });
      const blind = await watchUntilCreated([url, 'eks-upgrade-2', '--token', scoped], (out) => out.includes('waiting for upgrade') && refused.includes(meant), create('eks-upgrade-2'));
      expect(blind).toMatchObject({ code: 0, err: '' });
      expect(blind.out).not.toContain(meant);
      expect(blind.out).not.toContain(typed);
      expect(hints(blind.out)).toBe(0);
    } finally {
      await running.close();
      await server.stop();
    }
  }, 30_000);

  it('goes on waiting without a word when the server cannot list its upgrades for the hint', async () => {
    // The list the command asks for the hint is answered with an `error` without an upgradeId (the
    // server's store failed to list): not the subscribe's failure, which is said and asked again.
    const t = await createProgressTracker({ upgradeId: typed, planId: 'p', clusterName: 'c' });
    await t.startUpgrade();
    await t.completeUpgrade();
    const completed = structuredClone(t.progress);
    await t.close();
    const fake = await protocolServer((msg) =>
      msg.type === 'subscribe'
        ? [{ type: 'subscribed', upgradeId: msg.upgradeId, exists: false }]
        : [
            { type: 'error', code: 'STORE_UNAVAILABLE', message: 'the store could not list its upgrades' },
            // Then the upgrade appears, and the command, still waiting, shows it to its end.
            { type: 'snapshot', upgradeId: typed, seq: completed.lastSeq, data: completed },
          ],
    );
    try {
      const result = await runCli('watch', fake.url, typed);
      expect(result).toMatchObject({ code: 0, err: '' });
      expect(result.out).toMatch(new RegExp(`^waiting for upgrade "${typed}" to appear\\.\\.\\.\n[^\n]* state completed `));
      expect(result.out).not.toContain('server:');
      expect(result.out).not.toContain('could not serve');
      expect(fake.requests.map((r) => r.type)).toEqual(['subscribe', 'list_upgrades']);
    } finally {
      await fake.close();
    }
  });
});
