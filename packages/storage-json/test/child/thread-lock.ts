// Takes the writer lock of an upgrade in this process's main thread, then lets a worker thread (its
// own copy of the store's modules) try to take it too: prints "worker: locked" or
// "worker: refused <code>", then "main: appended" or "main: refused <code>", and exits.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { isProgressError } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { JsonFileStore } from '../../src/index.js';

const outcome = (err: unknown): string => `refused ${isProgressError(err) ? err.code : `error ${String(err)}`}`;

if (isMainThread) {
  const directory = process.argv[2]!;
  const store = new JsonFileStore({ directory });
  const f = new EventFactory('u1');
  await store.acquire('u1');
  await store.append('u1', f.batch(1), 0, f.snapshot());
  // The worker loads this file through tsx, as this process did (a worker does not run --import).
  const boot = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}); })`;
  const worker = new Worker(boot, { eval: true, workerData: directory });
  worker.on('error', (err) => process.stdout.write(`worker: error ${String(err)}\n`));
  const said = await new Promise<string>((resolve) => worker.once('message', resolve));
  process.stdout.write(`worker: ${said}\n`);
  await store.append('u1', f.batch(1), 1, f.snapshot()).then(
    () => process.stdout.write('main: appended\n'),
    (err: unknown) => process.stdout.write(`main: ${outcome(err)}\n`),
  );
  await worker.terminate();
  await store.close();
} else {
  const store = new JsonFileStore({ directory: workerData as string });
  const said = await store.acquire('u1').then(
    () => 'locked',
    (err: unknown) => outcome(err),
  );
  await store.close();
  parentPort!.postMessage(said);
}
