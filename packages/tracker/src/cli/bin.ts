#!/usr/bin/env node
import { main } from './main.js';

// A write to stdout after its reader went away (`| head -1`) fails with EPIPE, also once main() is
// done with it: main() stops on the first one; the later ones change nothing.
process.stdout.on('error', () => {});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`progress: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
