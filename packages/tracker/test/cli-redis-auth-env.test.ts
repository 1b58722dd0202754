import type { ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type TestRedis } from '../../../tools/test-utils/src/redis.js';
import { cleanupTempDirs, completedUpgrade, spawnCli } from './helpers.js';

// A Redis password in the redis:// URL is on the command line, which every local user sees (`ps`,
// /proc/<pid>/cmdline): the CLI takes it from REDISCLI_AUTH (as redis-cli does) when the URL carries
// none. The password is never printed, in any message.
//
// On a redis-server of this file's own that needs a password (`requirepass`) and has an ACL user.

const PASSWORD = 'S3cret@pw:/%zz#x';
const ALICE = 'Al1ceS3cretPw';
const children: ChildProcess[] = [];
let redis: TestRedis;
let host: string;

beforeAll(async () => {
  redis = await startRedisServer();
  host = new URL(redis.url).host;
  await completedUpgrade('u1', { redis: redis.url });
  const admin = new Redis(redis.url);
  try {
    await admin.call('ACL', 'SETUSER', 'alice', 'on', `>${ALICE}`, '~*', '+@all');
    await admin.config('SET', 'requirepass', PASSWORD);
  } finally {
    admin.disconnect();
  }
}, 30_000);

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await redis?.stop();
  cleanupTempDirs();
});

/** `progress <args>` with `env`; its output holds none of the passwords, as given or percent-encoded. */
async function progress(args: string[], env: Record<string, string | undefined>): Promise<{ code: number | null; output: string; stdout: string }> {
  const run = spawnCli(args, { env: { REDISCLI_AUTH: undefined, ...env } });
  children.push(run.child);
  const code = await run.exited;
  for (const secret of [PASSWORD, encodeURIComponent(PASSWORD), ALICE, 'Wr0ngPassw0rd']) expect(run.output()).not.toContain(secret);
  return { code, output: run.output(), stdout: run.stdout() };
}

describe('progress: the Redis password from REDISCLI_AUTH', () => {
  it('is used by ls, show and watch when the URL carries none', async () => {
    const url = `redis://${host}`;
    expect(await progress(['ls', url], { REDISCLI_AUTH: PASSWORD })).toMatchObject({ code: 0, stdout: expect.stringMatching(/u1 .*completed/) });
    expect(await progress(['show', url, 'u1'], { REDISCLI_AUTH: PASSWORD })).toMatchObject({ code: 0, stdout: expect.stringContaining('u1') });
    expect(await progress(['watch', url, 'u1'], { REDISCLI_AUTH: PASSWORD })).toMatchObject({ code: 0, stdout: expect.stringMatching(/u1 .*COMPLETED/) });
    expect(await progress(['ls', `rediss://${host}`], { REDISCLI_AUTH: PASSWORD })).toMatchObject({ code: 4, output: expect.stringMatching(/^progress: cannot reach Redis at rediss:\/\/:\*\*\*@127\.0\.0\.1:\d+ \(password from REDISCLI_AUTH\): /) });
  }, 60_000);

  it("is the password of the URL's ACL user (user@host, or ?username=)", async () => {
    expect(await progress(['ls', `redis://alice@${host}`], { REDISCLI_AUTH: ALICE })).toMatchObject({ code: 0, stdout: expect.stringMatching(/u1 /) });
    expect(await progress(['ls', `redis://${host}/0?username=alice`], { REDISCLI_AUTH: ALICE })).toMatchObject({ code: 0, stdout: expect.stringMatching(/u1 /) });
    const wrong = await progress(['ls', `redis://alice@${host}`], { REDISCLI_AUTH: PASSWORD });
    expect(wrong).toMatchObject({ code: 4, output: expect.stringMatching(/^progress: cannot reach Redis at redis:\/\/alice:\*\*\*@127\.0\.0\.1:\d+ \(password from REDISCLI_AUTH\): .*WRONGPASS/) });
  }, 60_000);

  it("loses to the URL's own password (user info or ?password=)", async () => {
    const own = `redis://:${encodeURIComponent(PASSWORD)}@${host}`;
    expect(await progress(['ls', own], { REDISCLI_AUTH: 'Wr0ngPassw0rd' })).toMatchObject({ code: 0, stdout: expect.stringMatching(/u1 /) });
    expect(await progress(['ls', `redis://${host}/0?password=${encodeURIComponent(PASSWORD)}`], { REDISCLI_AUTH: 'Wr0ngPassw0rd' })).toMatchObject({ code: 0 });
    const wrongInUrl = await progress(['ls', `redis://:Wr0ngPassw0rd@${host}`], { REDISCLI_AUTH: PASSWORD });
    expect(wrongInUrl).toMatchObject({ code: 4, output: expect.stringContaining('WRONGPASS') });
    expect(wrongInUrl.output).not.toContain('REDISCLI_AUTH');
  }, 60_000);

  it('wrong, is refused with exit 4 saying where it came from, masked (WRONGPASS)', async () => {
    for (const command of [['ls'], ['watch'], ['show', 'u1']]) {
      const result = await progress([command[0]!, `redis://${host}`, ...command.slice(1)], { REDISCLI_AUTH: 'Wr0ngPassw0rd' });
      expect(result).toMatchObject({ code: 4, output: expect.stringMatching(/^progress: cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ \(password from REDISCLI_AUTH\): .*WRONGPASS/) });
    }
  }, 60_000);

  it('empty, is unset: NOAUTH, with where to give the password', async () => {
    const result = await progress(['ls', `redis://${host}`], { REDISCLI_AUTH: '' });
    expect(result).toMatchObject({ code: 4, output: expect.stringMatching(/^progress: cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+: .*NOAUTH.*; give the password in REDISCLI_AUTH \(or the URL\)\n$/) });
  }, 60_000);

  it('is masked in a connection error', async () => {
    const result = await progress(['ls', 'redis://127.0.0.1:1'], { REDISCLI_AUTH: PASSWORD });
    expect(result).toMatchObject({ code: 4, output: expect.stringMatching(/^progress: cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1 \(password from REDISCLI_AUTH\): /) });
  }, 60_000);

  it('is used by demo --redis, shown as ***; wrong, the demo exits 4 without it', async () => {
    const args = ['demo', '--redis', `redis://${host}`, '--prefix', 'demo-env:', '--speed', '1000', '--port', '0', '--linger', '0'];
    const ran = await progress(args, { REDISCLI_AUTH: PASSWORD });
    expect(ran).toMatchObject({ code: 0, stdout: expect.stringMatching(/Storage: +Redis redis:\/\/:\*\*\*@127\.0\.0\.1:\d+, key prefix demo-env:/) });
    expect(ran.stdout).toContain('Upgrade completed');
    const refused = await progress(args, { REDISCLI_AUTH: 'Wr0ngPassw0rd' });
    expect(refused).toMatchObject({ code: 4, output: expect.stringMatching(/^progress: cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ \(password from REDISCLI_AUTH\): .*WRONGPASS/) });
  }, 60_000);

  it('is named by --help', async () => {
    expect((await progress(['--help'], {})).stdout).toContain('REDISCLI_AUTH');
  }, 30_000);
});
