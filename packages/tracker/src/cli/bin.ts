#!/usr/bin/env node
import { ExitCode } from './errors.js';
import { main } from './main.js';

// A write to stdout after its reader went away (`| head -1`) fails with EPIPE, also once main() is
// done with it: main() stops on the first one; the later ones change nothing.
process.stdout.on('error', () => {});
// A message that cannot be written to stderr (a full disk, its reader gone) has nowhere else to go:
// the exit code still says what happened, where the unhandled error crashed the command with exit 1.
process.stderr.on('error', () => {});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Stopped (Ctrl-C, SIGTERM) while output still waits for a reader that takes none (a pager left
    // open): the pending write would keep the process alive until the reader goes. Not waited for,
    // as the signal's default action would not have.
    if (code === ExitCode.INTERRUPTED && process.stdout.writableLength > 0) process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`progress: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
