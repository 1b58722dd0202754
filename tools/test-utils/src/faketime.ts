import { existsSync } from 'node:fs';

const DEBIAN_ARCH: Partial<Record<string, string>> = { x64: 'x86_64', arm64: 'aarch64' };

/**
 * Debian's libfaketime (package `faketime`, which `.ci/run` installs). Preloaded into a child
 * process (`LD_PRELOAD`), it sets and steps that process' wall clock (`FAKETIME`, or
 * `FAKETIME_TIMESTAMP_FILE` read at every call with `FAKETIME_NO_CACHE=1`), leaving its monotonic
 * clock alone with `FAKETIME_DONT_FAKE_MONOTONIC=1`, as a real NTP step does.
 */
export const LIBFAKETIME = `/usr/lib/${DEBIAN_ARCH[process.arch] ?? process.arch}-linux-gnu/faketime/libfaketime.so.1`;

/** Why the tests that step a process' clock cannot run here, or `undefined` when they can. */
export function missingFaketime(): string | undefined {
  return existsSync(LIBFAKETIME) ? undefined : `libfaketime is not installed at ${LIBFAKETIME} (Debian: apt-get install faketime)`;
}
