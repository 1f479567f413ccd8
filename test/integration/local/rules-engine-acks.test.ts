/**
 * When the rules engine acknowledges a message: only after its invocations finished (retries,
 * an injected duplicate and the error destination included), so the broker keeps it in the
 * orchestrator's persistent session until then and sends it again after a reconnect.
 */
import type { IPublishPacket, MqttClient, Packet } from 'mqtt';
import { memoryDeadLetterSink } from '../../../local/dead-letters';
import { createInProcessInvoker } from '../../../local/function-invoker';
import { connectWithCertificate } from '../../../local/mqtt-connect';
import { waitUntil } from '../../../local/processes';
import { startRulesEngine, type RulesEngine } from '../../../local/rules-engine';
import { connectMqtt, startTestBroker, type TestBroker } from '../../helpers/local-stack';

jest.setTimeout(60_000);

/** A promise with its resolve function, for a handler the test lets finish. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

describe('rules engine acknowledgements', () => {
  let broker: TestBroker;
  const engines: RulesEngine[] = [];

  beforeAll(async () => {
    broker = await startTestBroker();
  }, 60_000);

  afterAll(async () => {
    await broker.cleanup();
  });

  afterEach(async () => {
    await Promise.all(engines.splice(0).map((e) => e.stop().catch(() => undefined)));
  });

  /** The orchestrator's persistent session and a record of the PUBACKs it sends. */
  async function orchestrator(): Promise<{ mqtt: MqttClient; pubacks: number[]; publishes: IPublishPacket[] }> {
    const mqtt = await connectMqtt(broker, 'porchlight-orchestrator', { mqtt: { clean: false, properties: { sessionExpiryInterval: 600 } } });
    const pubacks: number[] = [];
    const publishes: IPublishPacket[] = [];
    mqtt.on('packetsend', (packet: Packet) => {
      if (packet.cmd === 'puback' && packet.messageId !== undefined) pubacks.push(packet.messageId);
    });
    mqtt.on('packetreceive', (packet: Packet) => {
      if (packet.cmd === 'publish') publishes.push(packet);
    });
    return { mqtt, pubacks, publishes };
  }

  it('sends the PUBACK only after the invocation finished', async () => {
    const { mqtt, pubacks, publishes } = await orchestrator();
    const handler = gate();
    let invoked = 0;
    const invoker = createInProcessInvoker({ progress: async () => {
      invoked += 1;
      await handler.promise;
    } });
    const engine = await startRulesEngine({ mqtt, invoker, deadLetters: memoryDeadLetterSink(), sweeper: false, shareGroup: false });
    engines.push(engine);
    const agent = await connectMqtt(broker, 'agent-acks');
    await agent.publishAsync('tasks/t-ack-1/output/s1/agent-acks', '{}', { qos: 1 });
    await waitUntil('the handler to run', () => Promise.resolve(invoked === 1), { timeoutMs: 10_000, intervalMs: 10 });
    const messageId = publishes.find((p) => p.topic === 'tasks/t-ack-1/output/s1/agent-acks')?.messageId;
    expect(messageId).toBeDefined();
    await new Promise((r) => setTimeout(r, 500));
    expect(pubacks).not.toContain(messageId);
    expect(engine.unacknowledged).toBe(1);

    handler.open();
    await engine.idle();
    await waitUntil('the PUBACK', () => Promise.resolve(pubacks.includes(messageId as number)), { timeoutMs: 10_000, intervalMs: 10 });
    expect(engine.unacknowledged).toBe(0);
    await mqtt.endAsync();
  });

  it('acknowledges a failing message only once it is in the error destination, and an injected duplicate only after both runs', async () => {
    const { mqtt, pubacks, publishes } = await orchestrator();
    const deadLetters = memoryDeadLetterSink();
    const events: string[] = [];
    const invoker = createInProcessInvoker({
      progress: (event) => {
        const topic = (event as { topic: string }).topic;
        events.push(`invoke ${topic} (acked: ${pubacks.length})`);
        if (topic.includes('fail')) throw new Error('deliberate');
        return new Promise((r) => setTimeout(r, 200));
      },
    });
    const write = deadLetters.write.bind(deadLetters);
    deadLetters.write = async (entry) => {
      events.push(`dead letter (acked: ${pubacks.length})`);
      await write(entry);
    };
    const engine = await startRulesEngine({ mqtt, invoker, deadLetters, sweeper: false, shareGroup: false, retryDelaysMs: [100, 100], duplicateRate: 1 });
    engines.push(engine);
    const agent = await connectMqtt(broker, 'agent-acks');
    await agent.publishAsync('tasks/t-ack-fail/output/s1/agent-acks', '{}', { qos: 1 });
    await waitUntil('the PUBACK', () => Promise.resolve(pubacks.length === 1), { timeoutMs: 20_000, intervalMs: 10 });
    // Duplicate injection: two deliveries of three attempts each, each ending in the error destination.
    expect(events).toEqual([
      ...Array.from({ length: 3 }, () => 'invoke tasks/t-ack-fail/output/s1/agent-acks (acked: 0)'),
      'dead letter (acked: 0)',
      ...Array.from({ length: 3 }, () => 'invoke tasks/t-ack-fail/output/s1/agent-acks (acked: 0)'),
      'dead letter (acked: 0)',
    ]);
    expect(pubacks).toEqual([publishes.find((p) => p.topic === 'tasks/t-ack-fail/output/s1/agent-acks')?.messageId]);
    await mqtt.endAsync();
  });

  it('gets an unacknowledged message again when the session reconnects', async () => {
    const first = await orchestrator();
    const never = new Promise<void>(() => undefined);
    const seen: string[] = [];
    const engine = await startRulesEngine({
      mqtt: first.mqtt, deadLetters: memoryDeadLetterSink(), sweeper: false, shareGroup: false,
      invoker: createInProcessInvoker({ progress: (event) => {
        seen.push((event as { topic: string }).topic);
        return never;
      } }),
    });
    const agent = await connectMqtt(broker, 'agent-acks');
    await agent.publishAsync('tasks/t-ack-again/output/s1/agent-acks', '{}', { qos: 1 });
    await waitUntil('the first delivery', () => Promise.resolve(seen.length === 1), { timeoutMs: 10_000, intervalMs: 10 });
    // The connection drops with the handler still running (the engine is abandoned, not stopped).
    await first.mqtt.endAsync(true);
    expect(engine.unacknowledged).toBe(0);

    // Listening from creation: the redelivery comes right after CONNACK.
    const again: IPublishPacket[] = [];
    const second = await connectWithCertificate({
      host: broker.mqttHost, port: broker.mqttPort, ...(await broker.issue('porchlight-orchestrator', 'orchestrator')), clientId: 'porchlight-orchestrator', clean: false,
      extra: { properties: { sessionExpiryInterval: 600 } },
      onCreated: (client) => client.on('message', (_topic: string, _payload: Buffer, packet: IPublishPacket) => again.push(packet)),
    });
    await waitUntil('the redelivery', () => Promise.resolve(again.length === 1), { timeoutMs: 10_000, intervalMs: 10 });
    expect(again[0]).toMatchObject({ topic: 'tasks/t-ack-again/output/s1/agent-acks', dup: true });
    await second.endAsync();
  });
});
