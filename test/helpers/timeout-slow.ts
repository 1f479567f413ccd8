/** Infra and integration tests: CDK synthesis, brokers, DynamoDB Local and processes on a loaded 2-core machine. */
jest.setTimeout(120_000);
