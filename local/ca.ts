/**
 * The local certificate authority: the laptop's stand-in for AWS IoT's certificate registry
 * and thing groups. It issues the broker's server certificate and one client certificate per
 * identity (agent, client, orchestrator, observer), all EC P-256 through the `openssl` CLI,
 * and keeps a registry of identities with their role and accreditations.
 *
 * Layout under `dir`:
 *   ca/ca.crt, ca/ca.key               the CA (10 years)
 *   certs/<identity>.crt, .key         issued certificates (2 years), keys mode 0600
 *   identities.json                    {id: {kind, accreditations, pools}}: the local thing groups
 *   accreditations.json                {id: string[]}: what ACCREDITATION_FILE readers consume
 *   pools.json                         {id: string[]}: pool memberships, read next to ACCREDITATION_FILE
 *
 * Key files stay 0600 (owner only). When the stack runs as root, Mosquitto would drop to the
 * `mosquitto` user and then fail to read them, so the broker config says `user root` instead
 * (see local/mosquitto.ts): making every identity's private key world-readable would hand any
 * local account the right to impersonate any agent, while a root-owned broker bound to
 * 127.0.0.1 gives nothing away that root did not already have.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidIdError } from '../core/errors';
import { validateAccreditation } from '../core/policy';
import { validateId } from '../core/topics';
import { ExternalCommandError, requireExecutable, runCommand } from './processes';

/** What an identity is for; decides its certificate's extended key usage and its policy role. */
export type IdentityKind = 'broker' | 'orchestrator' | 'agent' | 'client' | 'observer';

/** The identity kinds, for validation of untyped input (CLI flags, registry files). */
export const IDENTITY_KINDS: readonly IdentityKind[] = ['broker', 'orchestrator', 'agent', 'client', 'observer'];

/** One entry of `identities.json`. */
export interface IdentityEntry {
  readonly kind: IdentityKind;
  readonly accreditations: readonly string[];
  /** Pools the identity is a member of (agents only; the local `pool-<name>` thing groups). */
  readonly pools: readonly string[];
}

/** Paths of an issued certificate, its key, and the CA that signed it. */
export interface IssuedCertificate {
  readonly certPath: string;
  readonly keyPath: string;
  readonly caPath: string;
}

/** Paths of the CA itself. */
export interface CaPaths {
  readonly caPath: string;
  readonly caKeyPath: string;
}

/** Options for {@link issueCertificate}. */
export interface IssueOptions {
  readonly kind: IdentityKind;
  /** Accreditation labels (e.g. `gdpr`); the local equivalent of `accredit-<label>` thing groups. @default [] */
  readonly accreditations?: readonly string[];
  /** Pools the agent is a member of; the local equivalent of `pool-<name>` thing groups. @default [] */
  readonly pools?: readonly string[];
}

/** The identity registry file name inside the CA directory. */
export const IDENTITIES_FILE = 'identities.json';
/** The accreditations file (ACCREDITATION_FILE) inside the CA directory. */
export const ACCREDITATIONS_FILE = 'accreditations.json';
/** The pools file inside the CA directory, next to {@link ACCREDITATIONS_FILE} (functions/adapters/accreditation-verifiers.ts reads it there). */
export const POOLS_FILE = 'pools.json';

/** Validity of issued certificates, days. */
const LEAF_DAYS = 730;
/** Validity of the CA, days. */
const CA_DAYS = 3650;
/** Re-issue a certificate that expires within this many seconds. */
const RENEW_BEFORE_SECONDS = 30 * 24 * 3600;

/** Where the CA's files live under `dir`. */
export function caPaths(dir: string): CaPaths {
  return { caPath: join(dir, 'ca', 'ca.crt'), caKeyPath: join(dir, 'ca', 'ca.key') };
}

/** Where `identity`'s certificate and key live under `dir` (whether or not issued yet). */
export function certificatePaths(dir: string, identity: string): IssuedCertificate {
  validateIdentity(identity);
  return {
    certPath: join(dir, 'certs', `${identity}.crt`),
    keyPath: join(dir, 'certs', `${identity}.key`),
    caPath: caPaths(dir).caPath,
  };
}

/**
 * Prefix of every user (and so every client id) of the broker's WebSocket listener, which forces
 * the client id to the username (local/mosquitto.ts). The CA refuses to issue a certificate
 * under it, so the client id of a TLS identity (forced to its certificate CN) can never equal an
 * observer's, and an observer can never take over an agent's, a client's or the orchestrator's
 * session.
 */
export const WEBSOCKET_IDENTITY_PREFIX = 'ws-';

/**
 * Throws InvalidIdError unless `identity` can be a certificate CN, an MQTT username and a topic
 * level, and lies outside the WebSocket listener's names ({@link WEBSOCKET_IDENTITY_PREFIX}).
 */
export function validateIdentity(identity: string): string {
  validateId('clientId', identity);
  // Case-insensitively, so that no certificate name can even look like an observer's.
  if (identity.toLowerCase().startsWith(WEBSOCKET_IDENTITY_PREFIX)) {
    throw new InvalidIdError(`identity "${identity}" starts with "${WEBSOCKET_IDENTITY_PREFIX}", which is reserved for the WebSocket listener's users; choose another name`);
  }
  return identity;
}

/**
 * Validates accreditation labels (they become thing-group names and ACL entries, see
 * core/policy.ts) and returns them deduplicated and sorted; throws InvalidIdError otherwise.
 */
export function validateAccreditations(labels: readonly string[]): string[] {
  for (const label of labels) validateAccreditation(label);
  return [...new Set(labels)].sort();
}

/** Validates pool names (they become thing-group names and ACL entries) and returns them deduplicated and sorted. */
export function validatePools(pools: readonly string[]): string[] {
  for (const pool of pools) validateId('pool', pool);
  return [...new Set(pools)].sort();
}

let openssl: Promise<string> | undefined;
function opensslPath(): Promise<string> {
  if (openssl === undefined) {
    const lookup = requireExecutable('openssl', 'to run the local certificate authority');
    openssl = lookup;
    // A failed lookup is not remembered: installing openssl fixes the next call.
    lookup.catch(() => {
      if (openssl === lookup) openssl = undefined;
    });
  }
  return openssl;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Serialises CA work per directory inside this process; the lock file covers other processes. */
const chains = new Map<string, Promise<unknown>>();
function serialised<T>(dir: string, work: () => Promise<T>): Promise<T> {
  const previous = chains.get(dir) ?? Promise.resolve();
  const next = previous.then(work, work);
  chains.set(dir, next.catch(() => undefined));
  return next;
}

/** An exclusive lock file, so `porchlight certs issue` and a running stack do not interleave writes. */
async function withLockFile<T>(dir: string, work: () => Promise<T>): Promise<T> {
  const lockPath = join(dir, '.ca.lock');
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx', 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = await stat(lockPath).then((s) => Date.now() - s.mtimeMs, () => 0);
      // A lock older than a minute belongs to a process that died mid-issue; no issue takes that long.
      if (age > 60_000) await rm(lockPath, { force: true });
      else if (Date.now() > deadline) throw new Error(`the local CA at ${dir} is locked by another process (${lockPath})`);
      else await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    return await work();
  } finally {
    await rm(lockPath, { force: true });
  }
}

async function writeAtomically(path: string, content: string, mode: number): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temp, content, { mode });
  await rename(temp, path);
}

async function openssl_(args: readonly string[], cwd?: string): Promise<string> {
  return runCommand(await opensslPath(), args, cwd === undefined ? {} : { cwd });
}

async function newEcKey(keyPath: string): Promise<void> {
  await openssl_(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyPath]);
  await chmod(keyPath, 0o600);
}

/** True when the certificate exists, chains to the CA, and does not expire within the renewal window. */
async function isCurrent(certPath: string, caPath: string): Promise<boolean> {
  if (!(await exists(certPath))) return false;
  try {
    await openssl_(['x509', '-in', certPath, '-noout', '-checkend', String(RENEW_BEFORE_SECONDS)]);
    await openssl_(['verify', '-CAfile', caPath, certPath]);
    return true;
  } catch (err) {
    if (err instanceof ExternalCommandError) return false;
    throw err;
  }
}

/**
 * Creates the CA under `dir` unless a valid one is there (idempotent). A CA close to expiry is
 * replaced, which invalidates every certificate it issued; they are re-issued on next request.
 */
export function ensureCa(dir: string): Promise<CaPaths> {
  return serialised(dir, async () => {
    await mkdir(join(dir, 'ca'), { recursive: true, mode: 0o700 });
    await mkdir(join(dir, 'certs'), { recursive: true, mode: 0o700 });
    return withLockFile(dir, () => ensureCaLocked(dir));
  });
}

async function ensureCaLocked(dir: string): Promise<CaPaths> {
  const paths = caPaths(dir);
  if ((await exists(paths.caKeyPath)) && (await exists(paths.caPath))) {
    try {
      await openssl_(['x509', '-in', paths.caPath, '-noout', '-checkend', String(RENEW_BEFORE_SECONDS)]);
      return paths;
    } catch (err) {
      if (!(err instanceof ExternalCommandError)) throw err;
    }
  }
  const config = join(dir, 'ca', 'ca.cnf');
  await writeFile(
    config,
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      'x509_extensions = v3_ca',
      '[dn]',
      'CN = Porchlight Local CA',
      'O = Porchlight',
      '[v3_ca]',
      'basicConstraints = critical, CA:TRUE, pathlen:0',
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      '',
    ].join('\n'),
  );
  await newEcKey(paths.caKeyPath);
  await openssl_(['req', '-x509', '-new', '-config', config, '-key', paths.caKeyPath, '-sha256', '-days', String(CA_DAYS), '-out', paths.caPath]);
  return paths;
}

function extensionsFor(kind: IdentityKind): string[] {
  const lines = ['[leaf]', 'basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature', 'subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid'];
  if (kind === 'broker') {
    lines.push('extendedKeyUsage = serverAuth', 'subjectAltName = DNS:localhost, IP:127.0.0.1');
  } else {
    lines.push('extendedKeyUsage = clientAuth');
  }
  return lines;
}

/**
 * Issues (or returns the still-valid) certificate for `identity` and records it in the
 * identity registry with its kind and accreditations. The certificate's subject CN is the
 * identity, which Mosquitto uses as the MQTT username (`use_identity_as_username`).
 * A certificate is re-issued only when missing, not signed by the current CA, or expiring
 * within 30 days; the registry entry is always brought up to date.
 */
export async function issueCertificate(dir: string, identity: string, options: IssueOptions): Promise<IssuedCertificate> {
  validateIdentity(identity);
  if (!IDENTITY_KINDS.includes(options.kind)) throw new InvalidIdError(`identity kind ${JSON.stringify(options.kind)} is not one of ${IDENTITY_KINDS.join(', ')}`);
  const accreditations = validateAccreditations(options.accreditations ?? []);
  if (options.kind === 'broker' && accreditations.length > 0) throw new InvalidIdError('the broker certificate cannot carry accreditations');
  const pools = validatePools(options.pools ?? []);
  if (options.kind !== 'agent' && pools.length > 0) throw new InvalidIdError(`identity ${identity} is a ${options.kind}; only agents can be pool members`);
  await ensureCa(dir);
  return serialised(dir, () =>
    withLockFile(dir, async () => {
      const paths = certificatePaths(dir, identity);
      const registry = await readIdentities(dir);
      const previous = registry[identity];
      if (previous !== undefined && previous.kind !== options.kind) {
        throw new InvalidIdError(`identity ${identity} is already registered as ${previous.kind}; it cannot also be ${options.kind}`);
      }
      if (!(await isCurrent(paths.certPath, paths.caPath)) || !(await exists(paths.keyPath))) {
        await issueLeaf(dir, identity, options.kind, paths);
      }
      if (options.kind !== 'broker') {
        await writeRegistry(dir, { ...registry, [identity]: { kind: options.kind, accreditations, pools } });
      }
      return paths;
    }),
  );
}

async function issueLeaf(dir: string, identity: string, kind: IdentityKind, paths: IssuedCertificate): Promise<void> {
  const { caKeyPath } = caPaths(dir);
  const work = join(dir, 'certs', `.${identity}.${randomBytes(4).toString('hex')}`);
  await mkdir(work, { mode: 0o700 });
  try {
    const key = join(work, 'key.pem');
    const csr = join(work, 'req.csr');
    const cert = join(work, 'cert.pem');
    const ext = join(work, 'ext.cnf');
    await newEcKey(key);
    await openssl_(['req', '-new', '-key', key, '-subj', `/CN=${identity}/O=Porchlight`, '-out', csr]);
    await writeFile(ext, `${extensionsFor(kind).join('\n')}\n`);
    // A random 128-bit serial avoids a shared serial file that concurrent issuers would race on.
    const serial = `0x${randomBytes(16).toString('hex').replace(/^[89a-f]/, '1')}`;
    await openssl_([
      'x509', '-req', '-in', csr, '-CA', paths.caPath, '-CAkey', caKeyPath, '-set_serial', serial,
      '-days', String(LEAF_DAYS), '-sha256', '-extfile', ext, '-extensions', 'leaf', '-out', cert,
    ]);
    await rename(key, paths.keyPath);
    await rename(cert, paths.certPath);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The identity registry (`identities.json`), or an empty one when nothing has been issued.
 * Throws with the file path when the file is not a valid registry.
 */
export async function readIdentities(dir: string): Promise<Record<string, IdentityEntry>> {
  const path = join(dir, IDENTITIES_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error(`${path} must hold an object {identity: {kind, accreditations, pools}}`);
  const registry: Record<string, IdentityEntry> = {};
  for (const [id, value] of Object.entries(parsed as Record<string, unknown>)) {
    const entry = value as Partial<IdentityEntry> | null;
    if (
      entry === null || typeof entry !== 'object' || !IDENTITY_KINDS.includes(entry.kind as IdentityKind) || !Array.isArray(entry.accreditations)
      || (entry.pools !== undefined && !Array.isArray(entry.pools))
    ) {
      throw new Error(`${path}: entry ${JSON.stringify(id)} must be {kind: ${IDENTITY_KINDS.join('|')}, accreditations: string[], pools?: string[]}`);
    }
    registry[validateIdentity(id)] = {
      kind: entry.kind as IdentityKind,
      accreditations: validateAccreditations(entry.accreditations as string[]),
      // Registries written before pools existed have none.
      pools: validatePools((entry.pools ?? []) as string[]),
    };
  }
  return registry;
}

async function writeRegistry(dir: string, registry: Record<string, IdentityEntry>): Promise<void> {
  const sorted = Object.fromEntries(Object.entries(registry).sort(([a], [b]) => a.localeCompare(b)));
  const accreditations = Object.fromEntries(Object.entries(sorted).map(([id, e]) => [id, [...e.accreditations]]));
  const pools = Object.fromEntries(Object.entries(sorted).filter(([, e]) => e.pools.length > 0).map(([id, e]) => [id, [...e.pools]]));
  await writeAtomically(join(dir, IDENTITIES_FILE), `${JSON.stringify(sorted, null, 2)}\n`, 0o644);
  await writeAtomically(join(dir, ACCREDITATIONS_FILE), `${JSON.stringify(accreditations, null, 2)}\n`, 0o644);
  await writeAtomically(join(dir, POOLS_FILE), `${JSON.stringify(pools, null, 2)}\n`, 0o644);
}
