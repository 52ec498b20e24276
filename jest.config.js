// Tests are compiled by tsc (npm test builds first) and run as native ES modules.
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/dist/test'],
  testMatch: ['**/*.test.js'],
  transform: {},
  testTimeout: 60000,
  verbose: true,
};
