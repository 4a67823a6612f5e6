import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Installs QEMU and the RISC-V cross compiler when missing (once per run).
    globalSetup: ['./test/global-setup.ts'],
    // Each test file in its own process: a native addon and userfaultfd-registered
    // memory must never share an address space with another suite.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
