import { defineConfig } from 'vitest/config';

// `npm test` runs every package's suite in one vitest run, with one summary.
export default defineConfig({
  test: {
    projects: ['packages/*/vitest.config.ts', 'tools/readme-examples/vitest.config.ts'],
    globalSetup: ['./tools/test-utils/src/global-setup.ts'],
    reporters: ['default', './tools/test-utils/src/summary-reporter.ts'],
    // Two test files at a time. Vitest's default is one less than the CPUs, one on the 2-core CI
    // machine, where most of a file's time is waiting (on Redis, Chromium, child processes, timers):
    // the suite took 15.5 min that way.
    maxWorkers: 2,
  },
});
