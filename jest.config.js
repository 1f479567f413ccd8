/**
 * Three projects so a developer can run the fast unit suite alone
 * (`npx jest --selectProjects unit`); `npm test` runs them all.
 * ts-jest only transpiles (isolatedModules in tsconfig.json): `npm run typecheck` is the type gate.
 */
// The AWS SDK warns in every worker that its releases after January 2027 need Node 22; the
// README states the supported versions, so keep test output about the tests.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const transform = { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] };
// Default test timeouts sized for a loaded 2-core machine, never jest's 5 s (a test that needs
// longer says so itself): set per project by a setup file, as project configs cannot set testTimeout.
const timeout = (name) => ({ setupFilesAfterEnv: [`<rootDir>/test/helpers/timeout-${name}.ts`] });
const base = { testEnvironment: 'node', transform, moduleFileExtensions: ['ts', 'js', 'json'] };

module.exports = {
  projects: [
    { ...base, ...timeout('unit'), displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts', '<rootDir>/test/security/**/*.unit.test.ts'] },
    { ...base, ...timeout('slow'), displayName: 'infra', testMatch: ['<rootDir>/test/infra/**/*.test.ts'] },
    {
      ...base,
      ...timeout('slow'),
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.test.ts', '<rootDir>/test/e2e/**/*.test.ts', '<rootDir>/test/security/**/*.integration.test.ts'],
    },
  ],
};
