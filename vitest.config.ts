import { defineConfig } from 'vitest/config';

// `npm test` runs every package's suite in one vitest run, with one summary.
export default defineConfig({
  test: {
    projects: ['packages/*/vitest.config.ts', 'tools/readme-examples/vitest.config.ts'],
    globalSetup: ['./tools/test-utils/src/global-setup.ts'],
    reporters: ['default', './tools/test-utils/src/summary-reporter.ts'],
  },
});
