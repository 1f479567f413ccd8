/**
 * Keeping DynamoDB Local off the network. It has no bind-address option and always listens on
 * every interface, so it runs in a network namespace of its own, where the only interface is
 * loopback, and this process forwards 127.0.0.1:<port> on the host to it through a Unix socket.
 *
 * Why this shape:
 * - A new network namespace can be created without root through a user namespace
 *   (`unshare --user --map-root-user --net`), so it works for a developer's own account. A veth
 *   pair would need root on the host side; a Unix socket does not, and pathname Unix sockets are
 *   reachable across network namespaces while TCP ports are not.
 * - Inside, a small relay (local/dynamodb-relay.ts) starts DynamoDB Local and serves the
 *   Unix socket; the socket's directory is private to the user (0700), as loopback is not.
 * - Nothing inside the namespace can reach the network either, so DynamoDB Local cannot send
 *   telemetry anywhere.
 *
 * Linux only. Where it is unavailable (macOS; a kernel or AppArmor policy that forbids
 * unprivileged user namespaces, as Ubuntu 24.04 does by default; no `unshare` or `ip`),
 * {@link probeLoopbackNamespace} says why, and local/dynamodb.ts runs DynamoDB Local unconfined
 * with a warning.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PortInUseError } from './free-port';
import { ExternalCommandError, findExecutable, runCommand, stopChild } from './processes';

/** How to enter a loopback-only network namespace on this machine. */
export interface NamespaceLauncher {
  readonly unshare: string;
  /** `ip` (iproute2): brings the namespace's loopback interface up, which starts down. */
  readonly ip: string;
  /** unshare's flags: `--net` as root, `--user --map-root-user --net` otherwise. */
  readonly flags: readonly string[];
}

/** Whether a loopback-only namespace can be made here, and if not, why. */
export type NamespaceProbe =
  | { readonly available: true; readonly launcher: NamespaceLauncher }
  | { readonly available: false; readonly reason: string };

let probed: Promise<NamespaceProbe> | undefined;

/**
 * Finds out (once per process) whether this machine can run a program in a network namespace of
 * its own with loopback up: it tries `unshare <flags> -- ip link set lo up`.
 */
export function probeLoopbackNamespace(): Promise<NamespaceProbe> {
  probed ??= probe();
  return probed;
}

async function probe(): Promise<NamespaceProbe> {
  if (process.platform !== 'linux') return { available: false, reason: `network namespaces exist only on Linux, not on ${process.platform}` };
  const unshare = await findExecutable('unshare', ['/usr/bin', '/bin']);
  if (unshare === undefined) return { available: false, reason: 'unshare (util-linux) is not installed' };
  const ip = await findExecutable('ip', ['/usr/sbin', '/sbin', '/usr/bin', '/bin']);
  if (ip === undefined) return { available: false, reason: 'ip (iproute2) is not installed; install it with: sudo apt-get install -y iproute2' };
  const root = typeof process.geteuid === 'function' && process.geteuid() === 0;
  // Root can make a plain network namespace; anyone else needs a user namespace around it. Root
  // in a container without CAP_SYS_ADMIN may still be allowed the user-namespace way.
  const candidates: string[][] = [...(root ? [['--net']] : []), ['--user', '--map-root-user', '--net']];
  const failures: string[] = [];
  for (const flags of candidates) {
    try {
      await runCommand(unshare, [...flags, '--', ip, 'link', 'set', 'lo', 'up']);
      return { available: true, launcher: { unshare, ip, flags } };
    } catch (err) {
      if (!(err instanceof ExternalCommandError)) throw err;
      failures.push(`unshare ${flags.join(' ')}: ${err.stderr.trim() || `exit ${String(err.exitCode)}`}`);
    }
  }
  return {
    available: false,
    reason: `this system does not allow a network namespace for this user (${failures.join('; ')}); unprivileged user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone or, on Ubuntu 24.04+, kernel.apparmor_restrict_unprivileged_userns)`,
  };
}

/** What the relay inside the namespace is told, through its environment. */
export interface RelayConfig {
  /** DynamoDB Local's port inside the namespace (the same number as on the host, for readable logs). */
  readonly port: number;
  /** The Unix socket the relay serves, forwarding each connection to 127.0.0.1:port inside. */
  readonly socketPath: string;
  /** DynamoDB Local's database directory, or null for in memory. */
  readonly dbPath: string | null;
}

/** Environment variable carrying the JSON {@link RelayConfig} to the relay. */
export const RELAY_CONFIG_ENV = 'PORCHLIGHT_DYNAMODB_RELAY';

/** DynamoDB Local running in its own namespace, reachable on 127.0.0.1:port of the host. */
export interface ConfinedDynamoDbLocal {
  /** The relay process; DynamoDB Local is its child, inside the same namespace. */
  readonly child: ChildProcess;
  /** Closes the forwarder, stops the relay (which stops DynamoDB Local) and removes the socket. */
  stop(): Promise<void>;
}

/**
 * Starts the relay, and DynamoDB Local under it, in a new loopback-only network namespace and
 * forwards 127.0.0.1:`port` on the host to it. Throws PortInUseError when the host port is
 * taken. The caller watches `child` for output and exit, and decides when it is ready.
 */
export async function startConfinedDynamoDbLocal(
  launcher: NamespaceLauncher,
  options: { readonly port: number; readonly dbPath: string | null },
): Promise<ConfinedDynamoDbLocal> {
  // A fresh 0700 directory in the temp dir: short enough for a Unix socket path (108 bytes),
  // and only this user may connect, as on loopback only this machine may.
  const dir = await mkdtemp(join(tmpdir(), 'porchlight-ns-'));
  const socketPath = join(dir, 'relay.sock');
  const sockets = new Set<Socket>();
  const forwarder: Server = createServer((client) => {
    const upstream = netConnect(socketPath);
    sockets.add(client);
    sockets.add(upstream);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(upstream).pipe(client);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      forwarder.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? new PortInUseError(options.port, { cause: err }) : err));
      forwarder.listen(options.port, '127.0.0.1', () => resolve());
    });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  const config: RelayConfig = { port: options.port, socketPath, dbPath: options.dbPath };
  const tsx = require.resolve('tsx/cjs/api');
  const relayModule = join(__dirname, 'dynamodb-relay.ts');
  // Plain Node registering tsx first, so the relay loads whether this process runs under tsx or jest.
  const bootstrap = `require(${JSON.stringify(tsx)}).register();require(${JSON.stringify(relayModule)});`;
  // sh brings loopback up inside the new namespace, then becomes the relay ($0 is ip, "$@" node).
  const child = spawn(launcher.unshare, [...launcher.flags, '--', '/bin/sh', '-c', '"$0" link set lo up && exec "$@"', launcher.ip, process.execPath, '-e', bootstrap], {
    env: { ...process.env, [RELAY_CONFIG_ENV]: JSON.stringify(config) },
    // stdin stays open: the relay stops the server when it closes, i.e. when this process dies.
    stdio: ['pipe', 'pipe', 'pipe'],
  });

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await new Promise<void>((resolve) => {
        forwarder.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      await stopChild(child);
      await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };
  return { child, stop };
}
