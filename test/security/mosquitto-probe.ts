/**
 * Decides probe-matrix rows for real on the local broker: Mosquitto 2 with the ACL rendered
 * from core/policy.ts and certificates from the local CA, every identity connected over MQTT 5.
 *
 * A witness outside the policy model (`probe-witness`, given `topic readwrite #` in a block
 * appended to the generated ACL) observes publishes and produces the messages receive rows wait
 * for. Negative results are decided by ordering, not by sleeping: Mosquitto handles packets one
 * at a time and writes each connection's packets in order, so
 * - a publish the witness has not seen by the time its own later barrier message comes back was
 *   dropped, and
 * - a probe message an identity has not received by the time the UNSUBACK of a request sent after
 *   the witness's PUBACK comes back was not delivered to it.
 * Subscriptions for receive rows use QoS 0, so deliveries never wait behind the in-flight window.
 *
 * Phases: connect rows first (each opens and closes its own connections, since a takeover
 * disconnects sessions), then one connection per identity for publish rows (batched per identity),
 * subscribe rows, and receive rows in rounds of one row per identity, so that two filters of the
 * same identity never share a round. Last, function rows: each function publishes through the
 * local IoT data-plane shim (started here over the orchestrator's connection, checking every
 * publish against the calling function's grant as the local stack does), signed with that
 * function's own credentials; allowed means HTTP 200 and the witness receives the message.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { ForbiddenException, IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { connect, type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { renderMosquittoAcl } from '../../core/policy';
import { ORCHESTRATOR_IDENTITY } from '../../local/broker';
import { certificatePaths, readIdentities } from '../../local/ca';
import { startDataPlaneShim, type DataPlaneShim } from '../../local/data-plane-shim';
import { functionPublishGrant, localFunctionCredentials } from '../../local/function-credentials';
import { aclIdentities } from '../../local/mosquitto';
import { awaitConnack, connectWithCertificate } from '../../local/mqtt-connect';
import { waitUntil } from '../../local/processes';
import { freePort } from '../helpers/free-port';
import type { TestBroker } from '../helpers/local-stack';
import { FUNCTION_ROWS, IDENTITIES, ROWS, functionRowKey, rowKey, type FunctionProbeRow, type ProbeIdentity, type ProbeRow } from './probe-matrix';
import type { Observed } from './verdicts';

/** The witness's identity; not a role of the model. */
export const WITNESS = 'probe-witness';

/** Bound on any single broker round trip: generous for a loaded 2-core machine. */
const STEP_TIMEOUT_MS = 20_000;

/** What the probe found, by row key. */
export interface MosquittoProbe {
  /** By {@link rowKey} for matrix rows and {@link functionRowKey} for function rows. */
  readonly verdicts: ReadonlyMap<string, Observed>;
  /** The ACL Mosquitto ran with, without the witness block. */
  readonly generatedAcl: string;
  /** renderMosquittoAcl over the CA's registry, for comparison. */
  readonly renderedAcl: string;
}

interface Seen {
  readonly topic: string;
  readonly retain: boolean;
  readonly nonce: string | undefined;
}

/** A connection that records what it receives and fails loudly if it drops mid-run. */
interface Probe {
  readonly client: MqttClient;
  readonly seen: Seen[];
  readonly name: string;
}

function within<T>(promise: Promise<T>, what: string, ms = STEP_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function nonceOf(packet: IPublishPacket): string | undefined {
  const value = packet.properties?.userProperties?.probe;
  return Array.isArray(value) ? value[0] : value;
}

/** Opens a connection as `identity` asking for `clientId`. Rejects when the broker refuses it. */
async function open(target: TestBroker, identity: ProbeIdentity | { id: string; transport?: 'tls' }, clientId: string, extra: Partial<IClientOptions> = {}): Promise<MqttClient> {
  let client: MqttClient;
  if (identity.transport === 'websocket') {
    const { username, password } = target.broker.mosquitto.observer;
    if (identity.id !== username) throw new Error(`the WebSocket listener has one login, ${username}; ${identity.id} cannot use it`);
    client = connect(`ws://127.0.0.1:${target.broker.wsPort}`, { protocolVersion: 5, username, password, clientId, reconnectPeriod: 0, connectTimeout: STEP_TIMEOUT_MS, ...extra });
    client = await awaitConnack(client, STEP_TIMEOUT_MS, 'the WebSocket listener');
  } else {
    // Issued before the witness was added: issuing now would rewrite the ACL without it.
    const cert = certificatePaths(target.broker.caDir, identity.id);
    client = await connectWithCertificate({ host: target.mqttHost, port: target.mqttPort, ...cert, clientId, connectTimeoutMs: STEP_TIMEOUT_MS, extra });
  }
  // A kicked or refused client emits 'error'; without a listener that would crash the run.
  client.on('error', () => undefined);
  return client;
}

function track(client: MqttClient, name: string): Probe {
  const seen: Seen[] = [];
  client.on('message', (topic: string, _payload: Buffer, packet: IPublishPacket) => {
    seen.push({ topic, retain: packet.retain, nonce: nonceOf(packet) });
  });
  return { client, seen, name };
}

/** Ends clients without waiting for the broker. */
async function closeAll(clients: readonly (MqttClient | undefined)[]): Promise<void> {
  const live = clients.filter((c): c is MqttClient => c !== undefined);
  await Promise.all(live.map((c) => c.endAsync(true).catch(() => undefined)));
}

/**
 * Adds the witness to the ACL Mosquitto runs with and has it reload. The generated part of the
 * file is kept as it is; the witness block only grants the witness.
 */
async function addWitness(target: TestBroker): Promise<string> {
  await target.issue(WITNESS, 'observer');
  const { aclPath, logPath } = target.broker.mosquitto.paths;
  const generated = await readFile(aclPath, 'utf8');
  await writeFile(aclPath, `${generated}\n# Probe witness (test only): observes and produces every message.\nuser ${WITNESS}\ntopic readwrite #\n`);
  const reloads = async (): Promise<number> => (await readFile(logPath, 'utf8')).split('Reloading config.').length - 1;
  const before = await reloads();
  process.kill(target.broker.mosquitto.pid, 'SIGHUP');
  await waitUntil('Mosquitto to reload the ACL with the witness', async () => (await reloads()) > before, { timeoutMs: STEP_TIMEOUT_MS, intervalMs: 20 });
  return generated;
}

/** `connect` row: does the identity end up holding the client id (taking over its session)? */
async function probeConnect(target: TestBroker, row: ProbeRow): Promise<Observed> {
  const identity = IDENTITIES[row.identity] as ProbeIdentity;
  const victimIdentity = IDENTITIES[row.target] as ProbeIdentity;
  let victim: MqttClient | undefined;
  let attacker: MqttClient | undefined;
  try {
    victim = await open(target, victimIdentity, victimIdentity.id);
    let victimClosed = false;
    victim.once('close', () => {
      victimClosed = true;
    });
    try {
      attacker = await open(target, identity, row.target);
    } catch (err) {
      return { verdict: 'deny', detail: `connection refused: ${(err as Error).message}` };
    }
    // The broker handled the attacker's CONNECT (and any takeover) before its CONNACK; a request
    // the victim sends now is answered only if its session survived.
    const survived = await within(
      new Promise<boolean>((resolve) => {
        if (victimClosed) return resolve(false);
        (victim as MqttClient).once('close', () => resolve(false));
        (victim as MqttClient).unsubscribeAsync(`probe/barrier/${randomBytes(4).toString('hex')}`).then(() => resolve(!victimClosed), () => resolve(false));
      }),
      `${rowKey(row)}: victim round trip`,
    );
    return survived
      ? { verdict: 'deny', detail: `connected, but the session of ${row.target} was not taken over (the broker kept the client ids apart)` }
      : { verdict: 'allow', detail: `the session of ${row.target} was disconnected when ${row.identity} connected with its client id` };
  } finally {
    await closeAll([attacker, victim]);
  }
}

/**
 * Publishes each function row through a data-plane shim that checks every publish against the
 * signing function's grant (as the local stack's shim does), signed with the function's own local
 * credentials. Returns each row's nonce and the HTTP outcome; throws on anything but 200 or 403.
 */
async function publishAsFunctions(orchestrator: MqttClient, rows: readonly FunctionProbeRow[]): Promise<Map<FunctionProbeRow, { nonce: string; status: string }>> {
  const shim: DataPlaneShim = await startDataPlaneShim({ port: await freePort(), mqtt: orchestrator, grants: functionPublishGrant, publishTimeoutMs: STEP_TIMEOUT_MS });
  const clients = new Map<FunctionProbeRow['fn'], IoTDataPlaneClient>();
  const sent = new Map<FunctionProbeRow, { nonce: string; status: string }>();
  try {
    for (const row of rows) {
      const client = clients.get(row.fn) ?? new IoTDataPlaneClient({ endpoint: shim.endpoint, region: 'eu-west-1', credentials: localFunctionCredentials(row.fn), maxAttempts: 1 });
      clients.set(row.fn, client);
      const nonce = `${functionRowKey(row)} ${randomBytes(4).toString('hex')}`;
      const command = new PublishCommand({
        topic: row.topic,
        qos: 1,
        retain: row.action === 'publish-retained',
        payload: row.empty ? new Uint8Array(0) : Buffer.from(JSON.stringify({ probe: nonce })),
        userProperties: JSON.stringify([{ probe: nonce }]),
      });
      const status = await within(
        client.send(command).then(
          () => 'HTTP 200',
          (err: Error) => {
            if (err instanceof ForbiddenException) return `HTTP 403 ForbiddenException: ${err.message}`;
            throw err;
          },
        ),
        `${functionRowKey(row)}: data-plane Publish`,
      );
      sent.set(row, { nonce, status });
    }
    return sent;
  } finally {
    for (const client of clients.values()) client.destroy();
    await shim.stop();
  }
}

/**
 * Runs every row of `rows` and `functionRows` (default: the whole matrix) on the broker of
 * `target` and returns the verdicts by row key. `target` should be a fresh broker: the run adds
 * identities and the witness.
 */
export async function probeMosquitto(target: TestBroker, rows: readonly ProbeRow[] = ROWS, functionRows: readonly FunctionProbeRow[] = FUNCTION_ROWS): Promise<MosquittoProbe> {
  const verdicts = new Map<string, Observed>();
  const tls = Object.values(IDENTITIES).filter((i) => (i.transport ?? 'tls') === 'tls');
  for (const identity of tls) await target.issue(identity.id, identity.role, identity.accreditations, identity.pools ?? []);
  const generatedAcl = await addWitness(target);
  const renderedAcl = renderMosquittoAcl({ identities: aclIdentities(await readIdentities(target.broker.caDir)) });

  for (const row of rows.filter((r) => r.action === 'connect')) verdicts.set(rowKey(row), await probeConnect(target, row));

  // The shim publishes over the orchestrator's connection.
  const used = [...new Set([...rows.filter((r) => r.action !== 'connect').map((r) => r.identity), ...(functionRows.length > 0 ? [ORCHESTRATOR_IDENTITY] : [])])];
  const probes = new Map<string, Probe>();
  const dropped: string[] = [];
  let witnessClient: MqttClient | undefined;
  try {
    witnessClient = await open(target, { id: WITNESS }, WITNESS);
    const witness = track(witnessClient, WITNESS);
    // Retain-as-published, so the witness can tell a retained publish from a plain one.
    await within(witness.client.subscribeAsync('#', { qos: 1, rap: true }), 'witness subscription');
    for (const id of used) {
      const probe = track(await open(target, IDENTITIES[id] as ProbeIdentity, id), id);
      probe.client.once('close', () => dropped.push(id));
      probes.set(id, probe);
    }
    witness.client.once('close', () => dropped.push(WITNESS));
    let barrier = 0;
    const witnessBarrier = async (): Promise<void> => {
      const topic = `probe/barrier/${(barrier += 1)}`;
      const arrived = new Promise<void>((resolve) => {
        const onMessage = (t: string): void => {
          if (t !== topic) return;
          witness.client.off('message', onMessage);
          resolve();
        };
        witness.client.on('message', onMessage);
      });
      await within(witness.client.publishAsync(topic, '', { qos: 1 }), 'witness barrier publish');
      await within(arrived, 'witness barrier');
    };
    const assertConnected = (): void => {
      if (dropped.length > 0) throw new Error(`connections of ${dropped.join(', ')} dropped during the probe; its verdicts cannot be trusted`);
    };

    // ---- publish rows: per identity in order, identities in parallel ---------------------------
    const publishRows = rows.filter((r) => r.action === 'publish' || r.action === 'publish-retained');
    const acks = new Map<ProbeRow, { nonce: string; ack: string }>();
    await Promise.all(
      used.map(async (id) => {
        const { client } = probes.get(id) as Probe;
        for (const row of publishRows.filter((r) => r.identity === id)) {
          const nonce = `${rowKey(row)} ${randomBytes(4).toString('hex')}`;
          const retain = row.action === 'publish-retained';
          const payload = row.empty ? '' : JSON.stringify({ probe: nonce });
          const ack = await within(
            client.publishAsync(row.target, payload, { qos: 1, retain, properties: { userProperties: { probe: nonce } } }).then(
              () => 'PUBACK success',
              (err: Error & { code?: number }) => {
                if (err.code === undefined) throw err;
                return `PUBACK ${err.code}`;
              },
            ),
            `${rowKey(row)}: PUBACK`,
          );
          acks.set(row, { nonce, ack });
        }
      }),
    );
    await witnessBarrier();
    assertConnected();
    for (const [row, { nonce, ack }] of acks) {
      const seen = witness.seen.find((s) => s.nonce === nonce && s.topic === row.target);
      const retained = row.action === 'publish-retained';
      const delivered = seen !== undefined && (!retained || seen.retain);
      if (delivered !== (ack === 'PUBACK success')) throw new Error(`${rowKey(row)}: ${ack} but the witness ${seen ? 'received it' : 'did not receive it'}`);
      verdicts.set(rowKey(row), {
        verdict: delivered ? 'allow' : 'deny',
        detail: `${ack}; the witness ${seen === undefined ? 'did not receive it' : `received it${retained ? ` with retain=${seen.retain}` : ''}`}`,
      });
    }

    // ---- subscribe rows --------------------------------------------------------------------------
    await Promise.all(
      used.map(async (id) => {
        const { client } = probes.get(id) as Probe;
        for (const row of rows.filter((r) => r.action === 'subscribe' && r.identity === id)) {
          const granted = await within(
            client.subscribeAsync(row.target, { qos: 1 }).then(
              (g) => g[0]?.qos ?? 128,
              (err: Error & { code?: number }) => err.code ?? 128,
            ),
            `${rowKey(row)}: SUBACK`,
          );
          if (granted < 128) await within(client.unsubscribeAsync(row.target), `${rowKey(row)}: UNSUBACK`);
          verdicts.set(rowKey(row), { verdict: granted < 128 ? 'allow' : 'deny', detail: `SUBACK ${granted}` });
        }
      }),
    );

    // ---- receive rows, one per identity per round -------------------------------------------------
    const queues = new Map(used.map((id) => [id, rows.filter((r) => r.action === 'receive' && r.identity === id)]));
    for (let round = 0; [...queues.values()].some((q) => q.length > round); round += 1) {
      const batch = [...queues.values()].map((q) => q[round]).filter((r): r is ProbeRow => r !== undefined);
      const subacks = new Map<ProbeRow, number>();
      await Promise.all(
        batch.map(async (row) => {
          const { client } = probes.get(row.identity) as Probe;
          const filter = row.via ?? row.target;
          subacks.set(row, await within(client.subscribeAsync(filter, { qos: 0 }).then((g) => g[0]?.qos ?? 128, (err: Error & { code?: number }) => err.code ?? 128), `${rowKey(row)}: SUBACK`));
        }),
      );
      const nonces = new Map<ProbeRow, string>();
      for (const row of batch) {
        const nonce = `${rowKey(row)} ${randomBytes(4).toString('hex')}`;
        nonces.set(row, nonce);
        await within(witness.client.publishAsync(row.target, JSON.stringify({ probe: nonce }), { qos: 1, properties: { userProperties: { probe: nonce } } }), `${rowKey(row)}: witness publish`);
      }
      // Each UNSUBACK comes after every delivery the broker made before it, and removes the filter.
      await Promise.all(batch.map((row) => within((probes.get(row.identity) as Probe).client.unsubscribeAsync(row.via ?? row.target), `${rowKey(row)}: UNSUBACK`)));
      assertConnected();
      for (const row of batch) {
        const got = (probes.get(row.identity) as Probe).seen.some((s) => s.nonce === nonces.get(row) && s.topic === row.target);
        verdicts.set(rowKey(row), { verdict: got ? 'allow' : 'deny', detail: `SUBACK ${subacks.get(row)}; the message ${got ? 'was' : 'was not'} delivered` });
      }
    }

    // ---- function rows, through the data-plane shim ---------------------------------------------
    if (functionRows.length > 0) {
      const sent = await publishAsFunctions((probes.get(ORCHESTRATOR_IDENTITY) as Probe).client, functionRows);
      await witnessBarrier();
      assertConnected();
      for (const [row, { nonce, status }] of sent) {
        const seen = witness.seen.find((s) => s.nonce === nonce && s.topic === row.topic);
        const retained = row.action === 'publish-retained';
        const delivered = seen !== undefined && (!retained || seen.retain);
        if (delivered !== (status === 'HTTP 200')) throw new Error(`${functionRowKey(row)}: ${status} but the witness ${seen ? 'received it' : 'did not receive it'}`);
        verdicts.set(functionRowKey(row), {
          verdict: delivered ? 'allow' : 'deny',
          detail: `${status}; the witness ${seen === undefined ? 'did not receive it' : `received it${retained ? ` with retain=${seen.retain}` : ''}`}`,
        });
      }
    }
    return { verdicts, generatedAcl, renderedAcl };
  } finally {
    await closeAll([witnessClient, ...[...probes.values()].map((p) => p.client)]);
  }
}
