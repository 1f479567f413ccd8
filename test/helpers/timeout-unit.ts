/** Unit tests: pure code, but fast-check properties and module loading slow down on a loaded machine. */
jest.setTimeout(30_000);
