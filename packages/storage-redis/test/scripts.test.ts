import { describe, expect, it } from 'vitest';
import { isReadOnlyEvalRefusal } from '../src/scripts.js';

// load() sends EVALSHA_RO (Redis 7), and EVALSHA where Redis refuses that command itself.
describe('isReadOnlyEvalRefusal', () => {
  it('is Redis refusing EVALSHA_RO / EVAL_RO: unknown before Redis 7, or not granted by the ACL', () => {
    for (const message of [
      "ERR unknown command `evalsha_ro`, with args beginning with: `abc`, `3`, ",
      "ERR unknown command 'EVAL_RO'",
      "NOPERM this user has no permissions to run the 'evalsha_ro' command",
      "NOPERM User reader has no permissions to run the 'eval_ro' command",
    ]) expect(isReadOnlyEvalRefusal(new Error(message)), message).toBe(true);
  });

  it('is not a refusal of its keys, of a command the script runs, or any other error', () => {
    for (const message of [
      'NOPERM this user has no permissions to access one of the keys used as arguments',
      "NOPERM this user has no permissions to run the 'evalsha' command",
      "ERR The user executing the script can't run this command or subcommand script: abc, on @user_script:2.",
      'NOPERM progress load: this Redis user may not run HMGET on p{u}:meta (see the README, Permissions)',
      'NOSCRIPT No matching script. Please use EVAL.',
      'Connection is closed.',
    ]) expect(isReadOnlyEvalRefusal(new Error(message)), message).toBe(false);
  });
});
