/**
 * Pools are membership, on a real Mosquitto with the rendered ACL and certificates from the local
 * CA: only a pool's members receive its offers (plain or shared subscriptions), only members that
 * may see a sensitive root receive its pool offers there, and only members can hand in claims.
 */
import type { MqttClient } from 'mqtt';
import { ORCHESTRATOR_IDENTITY } from '../../../local/broker';
import { connectMqtt, nextMessage, startTestBroker, type TestBroker } from '../../helpers/local-stack';

/** Resolves true when `client` receives anything on `topic` within `ms`, false otherwise. */
function receivesWithin(client: MqttClient, topic: string, ms: number): Promise<boolean> {
  return nextMessage(client, topic, ms).then(() => true, () => false);
}

async function subscribe(client: MqttClient, filter: string): Promise<void> {
  await client.subscribeAsync(filter, { qos: 1 });
}

describe('pool topics on the local broker', () => {
  let broker: TestBroker;
  let orchestrator: MqttClient;

  beforeAll(async () => {
    broker = await startTestBroker();
    orchestrator = await connectMqtt(broker, ORCHESTRATOR_IDENTITY, { kind: 'orchestrator' });
  }, 60_000);

  afterAll(async () => {
    await broker.cleanup();
  }, 30_000);

  it('delivers a pool offer to a member and nothing to a non-member, shared or plain', async () => {
    const member = await connectMqtt(broker, 'pool-member', { pools: ['render'] });
    const outsider = await connectMqtt(broker, 'pool-outsider', { accreditations: ['gdpr'] });
    await subscribe(member, '$share/render/tasks/+/pool/render');
    await subscribe(outsider, '$share/render/tasks/+/pool/render');
    await subscribe(outsider, 'tasks/+/pool/render');
    await subscribe(outsider, 'tasks/#');

    const toMember = nextMessage(member, 'tasks/t1/pool/render', 10_000);
    const toOutsider = receivesWithin(outsider, 'tasks/t1/pool/render', 2_000);
    await orchestrator.publishAsync('tasks/t1/pool/render', JSON.stringify({ v: 1, taskId: 't1' }), { qos: 1 });
    expect(JSON.parse(String((await toMember).payload))).toEqual({ v: 1, taskId: 't1' });
    expect(await toOutsider).toBe(false);
  }, 30_000);

  it('delivers a sensitive pool offer only to members holding the accreditation', async () => {
    const cleared = await connectMqtt(broker, 'pool-cleared', { pools: ['render'], accreditations: ['gdpr'] });
    const uncleared = await connectMqtt(broker, 'pool-uncleared', { pools: ['render'] });
    await subscribe(cleared, 'patient-data/+/pool/render');
    await subscribe(uncleared, 'patient-data/+/pool/render');

    const toCleared = nextMessage(cleared, 'patient-data/t2/pool/render', 10_000);
    const toUncleared = receivesWithin(uncleared, 'patient-data/t2/pool/render', 2_000);
    await orchestrator.publishAsync('patient-data/t2/pool/render', JSON.stringify({ v: 1, taskId: 't2' }), { qos: 1 });
    await expect(toCleared).resolves.toBeDefined();
    expect(await toUncleared).toBe(false);
  }, 30_000);

  it('passes a member\'s claim to the orchestrator and drops a non-member\'s', async () => {
    const member = await connectMqtt(broker, 'claim-member', { pools: ['render'] });
    const outsider = await connectMqtt(broker, 'claim-outsider');
    await subscribe(orchestrator, 'tasks/+/claim/+/+');

    const fromOutsider = receivesWithin(orchestrator, 'tasks/t3/claim/s1/claim-outsider', 2_000);
    await outsider.publishAsync('tasks/t3/claim/s1/claim-outsider', JSON.stringify({ v: 1 }), { qos: 1 }).catch(() => undefined);
    expect(await fromOutsider).toBe(false);

    const fromMember = nextMessage(orchestrator, 'tasks/t3/claim/s1/claim-member', 10_000);
    await member.publishAsync('tasks/t3/claim/s1/claim-member', JSON.stringify({ v: 1 }), { qos: 1 });
    await expect(fromMember).resolves.toBeDefined();
  }, 30_000);
});
