/** Jest in ESM mode (libp2p is ESM-only); TypeScript through @swc/jest. */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  setupFiles: ['<rootDir>/common/polyfill.ts'],
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  // the `kith` bundle (bin/build.mjs) is not part of the tests' module graph
  modulePathIgnorePatterns: ['<rootDir>/.build/'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
        module: { type: 'es6' },
      },
    ],
  },
  reporters: ['default', '<rootDir>/test/helpers/summary-reporter.cjs'],
  // A hang detector, not a speed check (docs/architecture.md, "How the suite stays deterministic").
  testTimeout: 300_000,
  maxWorkers: 2,
};
