import { defineConfig } from 'vitest/config';

// Three tiers (CONVENTIONS.md): `*.test.ts` units; `*.int.test.ts` on the real databases, run
// once on PGlite and once on PostgreSQL (CUSTOS_TEST_DATABASE_URL); `test/` suites.
const integration = ['src/**/*.int.test.ts', 'test/**/*.int.test.ts'];
// Timing comparisons run alone, after everything else (sequence.groupOrder), one engine at a time.
const timing = ['test/**/*.timing.int.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: [...integration, ...timing],
        },
      },
      {
        extends: true,
        test: {
          name: 'pglite',
          include: integration,
          exclude: timing,
          globalSetup: ['test/support/global-setup.ts'],
          env: { CUSTOS_TEST_ENGINE: 'pglite' },
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          name: 'postgres',
          include: integration,
          exclude: timing,
          globalSetup: ['test/support/global-setup.ts'],
          env: { CUSTOS_TEST_ENGINE: 'postgres' },
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          name: 'timing-pglite',
          include: timing,
          globalSetup: ['test/support/global-setup.ts'],
          env: { CUSTOS_TEST_ENGINE: 'pglite' },
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        test: {
          name: 'timing-postgres',
          include: timing,
          globalSetup: ['test/support/global-setup.ts'],
          env: { CUSTOS_TEST_ENGINE: 'postgres' },
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
