import { spawnScript, type Child } from '../../../tools/test-utils/src/spawn.js';

export type { Child };

/** Runs `test/fixtures/<name>.ts` in its own process with `config` (see spawnScript). */
export function spawnFixture(name: string, config: object): Child {
  return spawnScript(new URL(`./fixtures/${name}.ts`, import.meta.url), config);
}
