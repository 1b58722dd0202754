// Runs every benchmark (or the ones named: `npm run bench -- core storage-json`), one after the
// other so that they do not compete for the 2 cores, each in its own process.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const all = ['core', 'storage-json', 'storage-redis', 'notifier-eventbridge', 'ws-server'];
const chosen = process.argv.slice(2).length ? process.argv.slice(2) : all;
let failed = 0;
for (const name of chosen) {
  const entry = join(here, name, 'index.ts');
  if (!existsSync(entry)) {
    console.error(`no benchmark "${name}" (have: ${all.join(', ')})`);
    failed++;
    continue;
  }
  console.log(`\n=== ${name} ===`);
  const run = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--conditions=@progress/source', entry], { stdio: 'inherit', cwd: join(here, '..', '..') });
  if (run.status !== 0) failed++;
}
process.exitCode = failed ? 1 : 0;
