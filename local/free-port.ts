/**
 * Free TCP ports on the loopback interface, for processes the local stack starts.
 */
import { createServer } from 'node:net';

/**
 * Asks the kernel for an unused port on 127.0.0.1 and releases it. Another process may still
 * take it before the caller binds it; callers that spawn a server treat "address in use" as
 * retryable.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('the kernel returned no TCP port for 127.0.0.1'));
        return;
      }
      const { port } = address;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/** `count` distinct free ports (distinct even if the kernel would hand the same one out twice). */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/** Port-in-use, reported before a server is spawned so its own bind failure cannot be confused with a peer. */
export class PortInUseError extends Error {
  constructor(readonly port: number, options?: { cause?: unknown }) {
    super(`port ${port} is already in use; choose another or stop whatever is listening on it`, options);
    this.name = 'PortInUseError';
  }
}

/**
 * Throws PortInUseError when anything listens on `port` on any local address. Binding the
 * wildcard address fails when 127.0.0.1:<port> or 0.0.0.0:<port> is taken.
 */
export function assertPortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? new PortInUseError(port, { cause: err }) : err));
    server.listen({ port, host: '0.0.0.0', exclusive: true }, () => server.close((err) => (err ? reject(err) : resolve())));
  });
}
