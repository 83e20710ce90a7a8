import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks', // a native crash kills one child, not the runner
    testTimeout: 30000,
  },
});
