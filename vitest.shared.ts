import { defineConfig } from 'vitest/config';

/** The settings every package's vitest config starts from. */
export const sharedTestConfig = defineConfig({
  resolve: { conditions: ['@progress/source'] },
  ssr: { resolve: { conditions: ['@progress/source'] } },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
