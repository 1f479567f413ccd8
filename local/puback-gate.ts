/**
 * Holding back the PUBACK of a received QoS 1 message until it has been dealt with, so the
 * broker keeps it in the subscriber's persistent session (and sends it again after a reconnect)
 * until then. mqtt.js acknowledges a QoS 1 PUBLISH as soon as its 'message' listeners have run.
 *
 * Why not mqtt.js's `customHandleAcks`: mqtt.js handles incoming packets one at a time and takes
 * the next one only after the callback given to `customHandleAcks` (or `handleMessage`) has been
 * called and the PUBACK written (mqtt 5.16, `handlers/publish.js` and the packet pump in
 * `client.js`). Holding that callback for the length of a handler would stall the whole
 * connection: no further messages, and no PUBACKs for the connection's own publishes, which the
 * data-plane shim waits for while a handler waits for the shim. So the gate lets mqtt.js go on,
 * drops the PUBACK it writes for a held message, and writes it itself when the holder releases.
 */
import type { IPublishPacket, MqttClient, Packet } from 'mqtt';

/** A held PUBACK: call once the message has been dealt with. Safe to call twice. */
export type PubackRelease = () => void;

/** Defers PUBACKs on one connection. */
export interface PubackGate {
  /**
   * Holds the PUBACK of `packet`. Call it from a 'message' listener (mqtt.js writes the PUBACK
   * right after the listeners ran); QoS 0 messages have no PUBACK and get a no-op release.
   */
  hold(packet: IPublishPacket): PubackRelease;
  /** PUBACKs held on the current connection and not released yet. */
  readonly held: number;
  /**
   * Restores mqtt.js's own acknowledgement. Call it once everything held has been released: a
   * release after this writes its PUBACK only while the connection it arrived on is still up.
   */
  detach(): void;
}

type SendPacket = (packet: Packet, cb?: (err?: Error) => void, cbStorePut?: () => void, noStore?: boolean) => void;

interface Held {
  /** mqtt.js tried to write the PUBACK and the gate dropped it. */
  suppressed: boolean;
  released: boolean;
}

const gates = new WeakMap<MqttClient, PubackGate>();

/**
 * The gate of `client`, installed on first use. A PUBACK held across a reconnect is never
 * written: the packet id belongs to the old connection, and the broker sends the message again
 * (with DUP set) on the new one, where it is held and acknowledged anew.
 */
export function pubackGate(client: MqttClient): PubackGate {
  const existing = gates.get(client);
  if (existing !== undefined) return existing;
  const target = client as unknown as { _sendPacket?: SendPacket };
  const original = target._sendPacket;
  if (typeof original !== 'function') throw new Error('this mqtt.js version has no _sendPacket; PUBACKs cannot be deferred');
  const send: SendPacket = original.bind(client);

  let connection = 0;
  let held = new Map<number, Held>();
  const onClose = (): void => {
    connection += 1;
    held = new Map();
  };
  client.on('close', onClose);

  const gated: SendPacket = (packet, cb, cbStorePut, noStore) => {
    if (packet.cmd === 'puback' && packet.messageId !== undefined) {
      const entry = held.get(packet.messageId);
      if (entry !== undefined && !entry.released) {
        // mqtt.js waits for this callback before it reads the next packet.
        entry.suppressed = true;
        cb?.();
        return;
      }
      if (entry !== undefined) held.delete(packet.messageId);
    }
    send(packet, cb, cbStorePut, noStore);
  };
  target._sendPacket = gated;

  const gate: PubackGate = {
    hold: (packet) => {
      if (packet.qos !== 1 || packet.messageId === undefined) return () => undefined;
      const messageId = packet.messageId;
      const entry: Held = { suppressed: false, released: false };
      const map = held;
      const heldOn = connection;
      map.set(messageId, entry);
      return () => {
        if (entry.released) return;
        entry.released = true;
        // Not yet written by mqtt.js: it writes it when it gets there.
        if (!entry.suppressed) return;
        if (map.get(messageId) === entry) map.delete(messageId);
        if (heldOn !== connection || !client.connected) return;
        send({ cmd: 'puback', messageId, reasonCode: 0 });
      };
    },
    get held() {
      let count = 0;
      for (const entry of held.values()) if (!entry.released) count += 1;
      return count;
    },
    detach: () => {
      if (target._sendPacket === gated) target._sendPacket = original;
      gates.delete(client);
      client.once('close', () => client.off('close', onClose));
    },
  };
  gates.set(client, gate);
  return gate;
}

/** A message that arrived before its consumer was ready, with its PUBACK held. */
export interface EarlyMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly packet: IPublishPacket;
  /** Writes the held PUBACK; call once the message has been dealt with. */
  readonly release: PubackRelease;
}

/** Messages collected since a connection was created, for the consumer that starts later. */
export interface MessageBacklog {
  /** Stops collecting and returns what arrived so far, oldest first. Call it once. */
  take(): EarlyMessage[];
}

/**
 * Collects the messages `client` receives, holding their PUBACKs, until {@link MessageBacklog.take}.
 * A persistent session sends what the broker kept for it (messages queued while away, and the
 * ones it sent before without getting a PUBACK) right after CONNACK, before a consumer started
 * later could listen: without this, mqtt.js would acknowledge them with nobody having seen them.
 * Install it synchronously after creating the client, before it can receive anything.
 */
export function collectEarlyMessages(client: MqttClient): MessageBacklog {
  const gate = pubackGate(client);
  const early: EarlyMessage[] = [];
  const onMessage = (topic: string, payload: Buffer, packet: IPublishPacket): void => {
    early.push({ topic, payload, packet, release: gate.hold(packet) });
  };
  client.on('message', onMessage);
  return {
    take: () => {
      client.off('message', onMessage);
      return early.splice(0);
    },
  };
}
