/**
 * Free loopback ports for tests that start their own servers. Re-exported from the local stack
 * so tests and `npm start` choose ports the same way.
 */
export { freePort, freePorts, assertPortFree, PortInUseError } from '../../local/free-port';
