import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One registry for the run, for builds on the Debian base (test/support/buildRegistry.ts).
    globalSetup: ['test/globalSetup.ts'],
    // e2e files start a real hub each, on their own ports; one file at a time
    // keeps the 2-core CI machine from starving them.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 90_000,
    reporters: ['default'],
  },
});
