// Found on 2026-11-29: a legacy file whose upgrade id is not a valid id (the old module took any
// string: `progress/upgrade_prod upgrade 42.json`) was left out of list() without a word, while
// info().legacyFiles counted it. Such a file cannot be loaded (ids are file and folder names, and every
// call refuses such an id); list() now says so, once per file and store.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { JsonFileStore } from '../src/index.js';
import { recordingLogger, removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

const doc = (id: string) => ({ upgrade_id: id, plan_id: 'p', cluster_name: 'c', status: 'in_progress', started_at: '2025-10-20 05:25:00+00:00', tasks: {} });

it('warns once per store about a legacy file whose upgrade id is not a valid id, naming the file, and lists the others', async () => {
  const dir = await tempDir('legacy-ids');
  await mkdir(join(dir, 'progress'));
  const bad = join(dir, 'progress', 'upgrade_prod upgrade 42.json');
  await writeFile(bad, JSON.stringify(doc('prod upgrade 42')));
  await writeFile(join(dir, 'progress', 'upgrade_good-1.json'), JSON.stringify(doc('good-1')));
  // Not legacy file names at all (a note, a backup copy, a copy under another prefix, no id): nothing to say about them, nor to count.
  for (const name of ['notes.txt', 'upgrade_good-1.json.bak', 'old_upgrade_good-2.json', 'upgrade_.json']) await writeFile(join(dir, 'progress', name), JSON.stringify(doc('good-1')));
  const logger = recordingLogger();
  const store = new JsonFileStore({ directory: dir, logger });
  expect((await store.list()).map((r) => r.upgradeId)).toEqual(['good-1']);
  expect(store.info().legacyFiles).toBe(2);
  const warnings = () => logger.lines.filter((l) => l.level === 'warn');
  expect(warnings()).toEqual([
    {
      level: 'warn',
      obj: { file: bad, upgradeId: 'prod upgrade 42' },
      msg: expect.stringMatching(/^legacy file .*upgrade_prod upgrade 42\.json is not loaded: its upgrade id "prod upgrade 42" is not a valid id .*rename it/),
    },
  ]);
  // Not again on the next list() (retention, a CLI's refresh).
  await store.list();
  expect(warnings()).toHaveLength(1);
  await store.close();

  // Renamed to a valid id, it loads under that id (the id is the file name's, not the upgrade_id inside).
  await rename(bad, join(dir, 'progress', 'upgrade_prod-upgrade-42.json'));
  const again = new JsonFileStore({ directory: dir, logger });
  expect((await again.list()).map((r) => r.upgradeId).sort()).toEqual(['good-1', 'prod-upgrade-42']);
  expect(warnings()).toHaveLength(1);
  await again.close();
});
