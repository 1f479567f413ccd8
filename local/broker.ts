/**
 * The broker half of the local stack: the CA plus Mosquitto, with identity issuance that keeps
 * the broker's ACL in step with the CA's registry. startLocalStack builds on it; tests that only
 * need MQTT (the agent runtime's) start just this.
 */
import { join } from 'node:path';
import { ensureCa, issueCertificate, type IdentityKind, type IssuedCertificate } from './ca';
import { freePorts } from './free-port';
import { silentLog, type StackLog } from './log';
import { startMosquitto, type MosquittoBroker } from './mosquitto';

/** The broker's certificate identity (CN); SANs make it valid for `localhost` and 127.0.0.1. */
export const BROKER_IDENTITY = 'porchlight-broker';

/** The identity the rules engine and the data-plane shim connect as. */
export const ORCHESTRATOR_IDENTITY = 'porchlight-orchestrator';

/** Options for {@link startLocalBroker}. */
export interface LocalBrokerOptions {
  /** State directory: CA under `<stateDir>/pki`, broker files under `<stateDir>/mosquitto`. */
  readonly stateDir: string;
  /** Free ports are chosen when absent. */
  readonly ports?: Partial<{ readonly mqtt: number; readonly ws: number }>;
  readonly log?: StackLog;
}

/** A running CA + Mosquitto pair. */
export interface LocalBroker {
  readonly mqttHost: '127.0.0.1';
  readonly mqttPort: number;
  readonly wsPort: number;
  /** The local CA's directory (identities.json, accreditations.json, certs/). */
  readonly caDir: string;
  /** The CA certificate every client must trust. */
  readonly caPath: string;
  /** ACCREDITATION_FILE for handlers: `{identity: [accreditation]}` written by the CA. */
  readonly accreditationFile: string;
  readonly mosquitto: MosquittoBroker;
  /**
   * Issues (or reuses) a certificate for `identity` with a policy role and accreditations, and
   * reloads the broker's ACL so the identity's rights apply to its next connection.
   */
  issue(identity: string, kind: Exclude<IdentityKind, 'broker'>, accreditations?: readonly string[], pools?: readonly string[]): Promise<IssuedCertificate>;
  stop(): Promise<void>;
}

/** Starts the CA (idempotent) and Mosquitto; resolves once the TLS listener answers. */
export async function startLocalBroker(options: LocalBrokerOptions): Promise<LocalBroker> {
  const log = options.log ?? silentLog;
  const caDir = join(options.stateDir, 'pki');
  const { caPath } = await ensureCa(caDir);
  const tls = await issueCertificate(caDir, BROKER_IDENTITY, { kind: 'broker' });
  await issueCertificate(caDir, ORCHESTRATOR_IDENTITY, { kind: 'orchestrator' });
  const [mqtt, ws] = await resolvePorts(options.ports?.mqtt, options.ports?.ws);
  const mosquitto = await startMosquitto({ stateDir: options.stateDir, caDir, port: mqtt, wsPort: ws, tls, log });

  // Issuance and ACL reloads are serialised so two concurrent issues cannot reload a stale ACL last.
  let chain: Promise<unknown> = Promise.resolve();
  const issue: LocalBroker['issue'] = (identity, kind, accreditations = [], pools = []) => {
    const run = chain.then(async () => {
      const paths = await issueCertificate(caDir, identity, { kind, accreditations, pools });
      await mosquitto.reloadAcl();
      return paths;
    });
    chain = run.catch(() => undefined);
    return run;
  };

  return {
    mqttHost: '127.0.0.1',
    mqttPort: mqtt,
    wsPort: ws,
    caDir,
    caPath,
    accreditationFile: join(caDir, 'accreditations.json'),
    mosquitto,
    issue,
    stop: () => mosquitto.stop(),
  };
}

async function resolvePorts(mqtt: number | undefined, ws: number | undefined): Promise<[number, number]> {
  const needed = [mqtt, ws].filter((p) => p === undefined).length;
  const fresh = (await freePorts(needed + 2)).filter((p) => p !== mqtt && p !== ws);
  return [mqtt ?? (fresh.shift() as number), ws ?? (fresh.shift() as number)];
}
