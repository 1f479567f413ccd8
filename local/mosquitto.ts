/**
 * Mosquitto 2 as the local stand-in for AWS IoT Core: a mutual-TLS listener where the
 * certificate CN is both the username and (forced) the client id, ACLs rendered from the one
 * policy model in core/policy.ts, IoT Core's 128 KB payload cap, persistence, and a
 * password-protected, read-only WebSocket listener for the browser view.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, pbkdf2Sync } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { MAX_PAYLOAD_BYTES } from '../core/schemas';
import { renderMosquittoAcl, type AclIdentity } from '../core/policy';
import { readIdentities, WEBSOCKET_IDENTITY_PREFIX, type IdentityEntry } from './ca';
import { assertPortFree } from './free-port';
import { silentLog, type StackLog } from './log';
import { removePidFile, requireExecutable, stopChild, stopLeftoverProcess, waitForExit, waitUntil, writePidFile } from './processes';

/**
 * The WebSocket listener's only user: the read-only browser view (policy role `observer`). The
 * listener forces the client id to this name, and the CA issues no certificate under its prefix,
 * so it is an identity no agent, client or orchestrator can have.
 */
export const OBSERVER_USERNAME = `${WEBSOCKET_IDENTITY_PREFIX}observer`;

/**
 * Largest MQTT packet the broker accepts: the 128 KB payload plus room for the fixed header,
 * topic (IoT Core allows 256 bytes) and MQTT 5 properties. Payloads between the payload cap and
 * this ceiling get a PUBACK with reason 0x83 from message_size_limit rather than a disconnect.
 */
export const MAX_PACKET_BYTES = MAX_PAYLOAD_BYTES + 16 * 1024;

/** Files of one broker instance. */
export interface MosquittoPaths {
  readonly configPath: string;
  /** ACL of the TLS listener (every issued identity). */
  readonly aclPath: string;
  /** ACL of the WebSocket listener (the observer only). */
  readonly observerAclPath: string;
  readonly passwordPath: string;
  /** The observer's generated password (mode 0600). */
  readonly observerPasswordPath: string;
  /** Persistence directory (mosquitto.db), with a trailing slash as Mosquitto requires. */
  readonly persistenceDir: string;
  readonly logPath: string;
  /** The running broker's pid, so a start after its parent died can stop it first. */
  readonly pidPath: string;
}

/** Everything {@link renderMosquittoConfig} needs. */
export interface MosquittoConfigInput {
  readonly port: number;
  readonly wsPort: number;
  readonly caPath: string;
  readonly certPath: string;
  readonly keyPath: string;
  readonly paths: MosquittoPaths;
  /** Whether the broker will be started as root (then it is told to stay root, see below). */
  readonly runAsRoot: boolean;
}

/** The file layout under `<stateDir>/mosquitto` and `<stateDir>/logs`. */
export function mosquittoPaths(stateDir: string): MosquittoPaths {
  const dir = join(stateDir, 'mosquitto');
  return {
    configPath: join(dir, 'mosquitto.conf'),
    aclPath: join(dir, 'acl.conf'),
    observerAclPath: join(dir, 'observer.acl'),
    passwordPath: join(dir, 'passwords'),
    observerPasswordPath: join(dir, 'observer-password'),
    persistenceDir: `${join(dir, 'data')}/`,
    logPath: join(stateDir, 'logs', 'mosquitto.log'),
    pidPath: join(dir, 'mosquitto.pid'),
  };
}

function assertSafePath(path: string): string {
  // Mosquitto config values run to the end of the line; a newline would inject directives.
  if (/[\r\n]/.test(path)) throw new Error(`path ${JSON.stringify(path)} contains a line break and cannot go into mosquitto.conf`);
  return path;
}

/** Renders mosquitto.conf for the local stack. Pure: the same input gives the same text. */
export function renderMosquittoConfig(input: MosquittoConfigInput): string {
  const p = input.paths;
  for (const path of [input.caPath, input.certPath, input.keyPath, p.aclPath, p.observerAclPath, p.passwordPath, p.persistenceDir, p.logPath]) assertSafePath(path);
  for (const port of [input.port, input.wsPort]) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`port ${port} is not a TCP port`);
  }
  const lines = [
    '# Porchlight local broker, rendered by local/mosquitto.ts. Do not edit: it is rewritten on start.',
    'per_listener_settings true',
  ];
  if (input.runAsRoot) {
    lines.push(
      '# Started as root, Mosquitto would switch to the "mosquitto" user and then fail to read the',
      '# 0600 keys of the local CA. Keys stay private to their owner; the broker stays root, bound',
      '# to 127.0.0.1 only.',
      'user root',
    );
  }
  lines.push(
    '',
    '# Retained messages, persistent sessions (subscriptions, queued QoS 1 messages) survive an',
    '# orderly restart (SIGTERM writes the file); autosave bounds what a crash can lose.',
    'persistence true',
    `persistence_location ${p.persistenceDir}`,
    'autosave_interval 30',
    '# The orchestrator\'s persistent session collects every rule topic while it reconnects; the',
    '# default of 1000 queued messages per client would drop some under load.',
    'max_queued_messages 100000',
    '',
    `log_dest file ${p.logPath}`,
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    'connection_messages true',
    'log_timestamp true',
    'log_timestamp_format %Y-%m-%dT%H:%M:%S',
    '',
    '# AWS IoT Core caps payloads at 128 KB: a larger publish is refused (MQTT 5: PUBACK 0x83),',
    '# and a packet beyond the payload cap plus header room disconnects the sender.',
    `message_size_limit ${MAX_PAYLOAD_BYTES}`,
    `max_packet_size ${MAX_PACKET_BYTES}`,
    '',
    '# Agents, clients and the orchestrator: mutual TLS, identity = certificate CN. Loopback only:',
    '# IPv4, so the address above is the only one bound.',
    `listener ${input.port} 127.0.0.1`,
    'socket_domain ipv4',
    'protocol mqtt',
    `cafile ${input.caPath}`,
    `certfile ${input.certPath}`,
    `keyfile ${input.keyPath}`,
    'tls_version tlsv1.2',
    'require_certificate true',
    'use_identity_as_username true',
    '# IoT Core requires client id = thing name; this makes it so (a client cannot take over',
    "# another identity's session by reusing its client id).",
    'use_username_as_clientid true',
    'allow_anonymous false',
    `acl_file ${p.aclPath}`,
    '',
    '# The browser view: WebSocket, password, read-only ACL, loopback only.',
    `listener ${input.wsPort} 127.0.0.1`,
    '# Without this, libwebsockets opens an IPv6 socket, cannot apply the IPv4 address to it, and',
    '# listens on every interface (verified with Mosquitto 2.0.11).',
    'socket_domain ipv4',
    'protocol websockets',
    'allow_anonymous false',
    `password_file ${p.passwordPath}`,
    `acl_file ${p.observerAclPath}`,
    `# Client ids are global across listeners: the client id is forced to the username, and every`,
    `# username here starts with "${WEBSOCKET_IDENTITY_PREFIX}", under which the CA issues no certificate. An`,
    "# observer cannot take over an agent's, a client's or the orchestrator's session.",
    'use_username_as_clientid true',
    '',
  );
  return lines.join('\n');
}

/**
 * One password_file line in Mosquitto 2's `$7$` format: PBKDF2-HMAC-SHA512, 101 iterations,
 * 12-byte salt, 64-byte hash, as `mosquitto_passwd` writes it. The file serves the WebSocket
 * listener only, so the username must carry {@link WEBSOCKET_IDENTITY_PREFIX}.
 */
export function passwordFileLine(username: string, password: string, salt: Buffer = randomBytes(12)): string {
  if (!/^[A-Za-z0-9_-]+$/.test(username)) throw new Error(`username ${JSON.stringify(username)} must be letters, digits, '_' or '-'`);
  if (!username.startsWith(WEBSOCKET_IDENTITY_PREFIX)) {
    throw new Error(`username ${JSON.stringify(username)} must start with "${WEBSOCKET_IDENTITY_PREFIX}": it becomes a WebSocket client id, which must never equal a certificate identity's`);
  }
  const iterations = 101;
  const hash = pbkdf2Sync(password, salt, iterations, 64, 'sha512');
  return `${username}:$7$${iterations}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** The policy roles of the CA's identities, for the TLS listener's ACL (the broker is no MQTT user). */
export function aclIdentities(registry: Readonly<Record<string, IdentityEntry>>): AclIdentity[] {
  return Object.entries(registry)
    .filter(([, entry]) => entry.kind !== 'broker')
    .map(([id, entry]) => ({ id, role: entry.kind as AclIdentity['role'], accreditations: [...entry.accreditations], pools: [...entry.pools] }));
}

async function writeFileAtomically(path: string, content: string, mode: number): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, content, { mode });
  await chmod(temp, mode);
  await rename(temp, path);
}

/** Writes both ACL files from the CA's identity registry. */
export async function writeAcls(paths: MosquittoPaths, caDir: string): Promise<void> {
  const identities = aclIdentities(await readIdentities(caDir));
  await writeFileAtomically(paths.aclPath, renderMosquittoAcl({ identities }), 0o600);
  await writeFileAtomically(paths.observerAclPath, renderMosquittoAcl({ identities: [{ id: OBSERVER_USERNAME, role: 'observer', accreditations: [] }] }), 0o600);
}

/** The observer's password: generated once, kept under the state dir, reused afterwards. */
async function observerPassword(paths: MosquittoPaths): Promise<string> {
  try {
    const existing = (await readFile(paths.observerPasswordPath, 'utf8')).trim();
    if (existing.length >= 16) return existing;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const password = randomBytes(18).toString('base64url');
  await writeFileAtomically(paths.observerPasswordPath, `${password}\n`, 0o600);
  return password;
}

async function countReloads(logPath: string): Promise<number> {
  const text = await readFile(logPath, 'utf8').catch(() => '');
  return text.split('Reloading config.').length - 1;
}

/** Options for {@link startMosquitto}. */
export interface MosquittoOptions {
  /** State directory; the broker's files go under `<stateDir>/mosquitto`, its log under `<stateDir>/logs`. */
  readonly stateDir: string;
  /** The local CA directory (local/ca.ts): its identities become ACL users. */
  readonly caDir: string;
  readonly port: number;
  readonly wsPort: number;
  /** The broker's server certificate, key and the CA (from issueCertificate(…, {kind: 'broker'})). */
  readonly tls: { readonly caPath: string; readonly certPath: string; readonly keyPath: string };
  /** @default 15000 */
  readonly startTimeoutMs?: number;
  readonly log?: StackLog;
}

/** A running broker. */
export interface MosquittoBroker {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly wsPort: number;
  readonly paths: MosquittoPaths;
  /** Credentials of the WebSocket observer user. */
  readonly observer: { readonly username: string; readonly password: string };
  /** The current Mosquitto process (a restart changes it). */
  readonly pid: number;
  /** How many times {@link MosquittoBroker.restart} has restarted the broker. */
  readonly restarts: number;
  /** Re-renders the ACLs from the CA registry and has Mosquitto reload them (SIGHUP). */
  reloadAcl(): Promise<void>;
  /**
   * Stops the broker in order (SIGTERM: it saves retained messages, persistent sessions and their
   * queued QoS 1 messages), waits `downtimeMs`, and starts it again on the same ports and config.
   * Resolves once the TLS listener answers again. Clients see a dropped connection and reconnect.
   */
  restart(downtimeMs?: number): Promise<void>;
  /** SIGTERM (Mosquitto saves its persistence file), SIGKILL after a grace period; resolves on exit. */
  stop(): Promise<void>;
}

/** Where Debian installs the broker, which is not on a non-root PATH. */
const MOSQUITTO_DIRS = ['/usr/sbin', '/usr/local/sbin'];

/** True once the listener completes a TLS handshake presenting a certificate the CA signed. */
function tlsAnswers(port: number, caPem: Buffer): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost', timeout: 2000 });
    socket.once('secureConnect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', reject);
  });
}

/**
 * Renders the config and ACLs, starts /usr/sbin/mosquitto, and resolves once the TLS listener
 * completes a handshake. Throws MissingDependencyError (with the apt-get command) when Mosquitto
 * is not installed, PortInUseError when a port is taken, and an error with the broker's own
 * output when it exits during start-up.
 */
export async function startMosquitto(options: MosquittoOptions): Promise<MosquittoBroker> {
  const log = options.log ?? silentLog;
  const binary = await requireExecutable('mosquitto', 'to run the local MQTT broker', MOSQUITTO_DIRS);
  const paths = mosquittoPaths(options.stateDir);
  await mkdir(join(options.stateDir, 'mosquitto'), { recursive: true, mode: 0o700 });
  await mkdir(paths.persistenceDir, { recursive: true, mode: 0o700 });
  await mkdir(join(options.stateDir, 'logs'), { recursive: true });
  // A broker whose parent was killed (SIGKILL) keeps running, holding the sessions and their
  // unacknowledged messages in memory. SIGTERM makes it write them to the persistence file,
  // which the broker started next loads: nothing it held is lost, and its ports are free again.
  const leftover = await stopLeftoverProcess(paths.pidPath, paths.configPath);
  if (leftover !== undefined) log.warn('stopped a broker left running on this state directory', { pid: leftover });
  await assertPortFree(options.port);
  await assertPortFree(options.wsPort);

  const password = await observerPassword(paths);
  await writeFileAtomically(paths.passwordPath, `${passwordFileLine(OBSERVER_USERNAME, password)}\n`, 0o600);
  await writeAcls(paths, options.caDir);
  const runAsRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  await writeFileAtomically(paths.configPath, renderMosquittoConfig({ port: options.port, wsPort: options.wsPort, ...options.tls, paths, runAsRoot }), 0o600);

  const caPem = await readFile(options.tls.caPath);
  // Start-up errors (bad config, unreadable key) go to stderr before the log file is opened.
  const stderrLog = createWriteStream(join(options.stateDir, 'logs', 'mosquitto.stderr.log'), { flags: 'a' });
  const closeStderrLog = (): Promise<void> => new Promise((resolve) => stderrLog.end(resolve));
  let current: RunningProcess = await launchMosquitto({ binary, paths, port: options.port, caPem, stderrLog, startTimeoutMs: options.startTimeoutMs ?? 15_000, log }).catch(async (err: unknown) => {
    await closeStderrLog();
    throw err;
  });
  await writePidFile(paths.pidPath, current.child.pid);
  log.info('Mosquitto ready', { port: options.port, wsPort: options.wsPort, pid: current.child.pid, log: paths.logPath });

  let stopped = false;
  let restarts = 0;
  return {
    host: '127.0.0.1',
    port: options.port,
    wsPort: options.wsPort,
    paths,
    observer: { username: OBSERVER_USERNAME, password },
    get pid() {
      return current.child.pid ?? -1;
    },
    get restarts() {
      return restarts;
    },
    reloadAcl: async () => {
      await writeAcls(paths, options.caDir);
      const { child } = current;
      if (current.exited()) return;
      // SIGHUP is handled on the broker's next loop turn; a client connecting before then would
      // still get the old ACL, so wait for the broker to log that it reloaded.
      const before = await countReloads(paths.logPath);
      child.kill('SIGHUP');
      await waitUntil('Mosquitto to reload its ACL', async () => (await countReloads(paths.logPath)) > before, {
        timeoutMs: 5000,
        intervalMs: 20,
        fatal: () => (current.exited() ? new Error('mosquitto exited while reloading its ACL') : undefined),
      });
    },
    restart: async (downtimeMs = 0) => {
      if (stopped) throw new Error('the broker has been stopped; it cannot be restarted');
      // SIGTERM, not SIGKILL: Mosquitto writes its persistence file (retained messages, sessions,
      // queued QoS 1 messages) on an orderly exit, which is what a restart must keep.
      current.stopping = true;
      await stopChild(current.child, 10_000);
      await waitForExit(current.child);
      if (downtimeMs > 0) await new Promise((r) => setTimeout(r, downtimeMs));
      current = await launchMosquitto({ binary, paths, port: options.port, caPem, stderrLog, startTimeoutMs: options.startTimeoutMs ?? 15_000, log });
      await writePidFile(paths.pidPath, current.child.pid);
      restarts += 1;
      log.info('Mosquitto restarted', { port: options.port, pid: current.child.pid, restarts });
    },
    stop: async () => {
      stopped = true;
      current.stopping = true;
      await stopChild(current.child);
      await waitForExit(current.child);
      await removePidFile(paths.pidPath);
      if (stderrLog.writable) await closeStderrLog();
    },
  };
}

/** One Mosquitto process of a broker that may be restarted. */
interface RunningProcess {
  readonly child: ChildProcess;
  exited(): boolean;
  /** Set before an intended stop, so the exit is not reported as a crash. */
  stopping: boolean;
}

/**
 * Spawns Mosquitto on an already rendered config and resolves once the TLS listener completes a
 * handshake; on failure the process is stopped and the error carries the broker's own output.
 */
async function launchMosquitto(input: {
  binary: string;
  paths: MosquittoPaths;
  port: number;
  caPem: Buffer;
  stderrLog: NodeJS.WritableStream;
  startTimeoutMs: number;
  log: StackLog;
}): Promise<RunningProcess> {
  const child: ChildProcess = spawn(input.binary, ['-c', input.paths.configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const capture = (chunk: Buffer): void => {
    if (output.length < 16_384) output += chunk.toString();
  };
  child.stdout?.on('data', capture);
  child.stderr?.on('data', (chunk: Buffer) => {
    capture(chunk);
    input.stderrLog.write(chunk);
  });
  let exited = false;
  let spawnError: Error | undefined;
  const running: RunningProcess = { child, exited: () => exited, stopping: false };
  child.once('exit', (code, signal) => {
    exited = true;
    if (!running.stopping) input.log.error('Mosquitto exited unexpectedly', { code, signal, log: input.paths.logPath });
  });
  child.once('error', (err) => {
    spawnError = err;
    exited = true;
  });

  try {
    await waitUntil(`Mosquitto's TLS listener on 127.0.0.1:${input.port}`, () => tlsAnswers(input.port, input.caPem), {
      timeoutMs: input.startTimeoutMs,
      intervalMs: 50,
      fatal: () => (exited ? new Error(`mosquitto exited during start-up${spawnError ? ` (${spawnError.message})` : ''}`) : undefined),
    });
  } catch (err) {
    running.stopping = true;
    await stopChild(child);
    const fileText = await readFile(input.paths.logPath, 'utf8').catch(() => '');
    const tail = `${output}${fileText}`.trim().split('\n').slice(-20).join('\n') || '(no output)';
    throw new Error(`${(err as Error).message}; broker output:\n${tail}`, { cause: err });
  }
  return running;
}
