import { readFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt';
import { issueCertificate } from '../../../local/ca';
import { awaitConnack, connectWithCertificate, MqttConnectError } from '../../../local/mqtt-connect';
import { MAX_PAYLOAD_BYTES } from '../../../core/schemas';
import { waitUntil } from '../../../local/processes';
import { connectMqtt, nextMessage, startTestBroker, type TestBroker } from '../../helpers/local-stack';

/** Resolves true when `client` receives anything on `topic` within `ms`, false otherwise. */
function receivesWithin(client: MqttClient, topic: string, ms: number): Promise<boolean> {
  return nextMessage(client, topic, ms).then(() => true, () => false);
}

describe('local broker (Mosquitto with the local CA)', () => {
  let broker: TestBroker;

  beforeAll(async () => {
    broker = await startTestBroker();
  }, 30_000);

  afterAll(async () => {
    await broker.cleanup();
  });

  describe('authentication', () => {
    it('refuses a TLS client that presents no certificate', async () => {
      const ca = await readFile(broker.broker.caPath);
      const client = connect({ protocol: 'mqtts', host: '127.0.0.1', port: broker.mqttPort, protocolVersion: 5, ca, servername: 'localhost', reconnectPeriod: 0 });
      await expect(awaitConnack(client, 5000, 'broker')).rejects.toBeInstanceOf(MqttConnectError);
    });

    it('refuses a certificate issued by another CA', async () => {
      const otherDir = await mkdtemp(join(tmpdir(), 'porchlight-other-ca-'));
      try {
        const foreign = await issueCertificate(otherDir, 'agent-impostor', { kind: 'agent' });
        await expect(
          connectWithCertificate({ host: '127.0.0.1', port: broker.mqttPort, certPath: foreign.certPath, keyPath: foreign.keyPath, caPath: broker.broker.caPath, connectTimeoutMs: 5000 }),
        ).rejects.toBeInstanceOf(MqttConnectError);
      } finally {
        await rm(otherDir, { recursive: true, force: true });
      }
    });

    it('accepts a certificate from the local CA and forces the client id to the certificate CN', async () => {
      const orchestrator = await connectMqtt(broker, 'porchlight-orchestrator');
      await orchestrator.subscribeAsync('agents/+/status', { qos: 1 });
      const status = nextMessage(orchestrator, 'agents/agent-cn/status');
      // The agent asks for another id; Mosquitto replaces it with its CN, so the ACL's %u and the
      // client id always agree.
      const agent = await connectMqtt(broker, 'agent-cn', { mqtt: { clientId: 'agent-someone-else' } });
      await agent.publishAsync('agents/agent-cn/status', JSON.stringify({ v: 1, state: 'online' }), { qos: 1 });
      await expect(status).resolves.toMatchObject({ topic: 'agents/agent-cn/status' });
      const log = await readFile(broker.broker.mosquitto.paths.logPath, 'utf8');
      expect(log).toMatch(/connected from 127\.0\.0\.1:\d+ as agent-cn /);
    });
  });

  describe('authorisation from the policy model', () => {
    it("rejects an agent's proposal published under another agent's name with PUBACK 135", async () => {
      await broker.issue('agent-b', 'agent');
      const agentA = await connectMqtt(broker, 'agent-a');
      await expect(agentA.publishAsync('tasks/t1/proposal/agent-b', '{}', { qos: 1 })).rejects.toMatchObject({ code: 135 });
      await expect(agentA.publishAsync('tasks/t1/proposal/agent-a', '{}', { qos: 1 })).resolves.toBeDefined();
    });

    it("does not deliver another agent's assignment even to a matching subscription", async () => {
      const agentA = await connectMqtt(broker, 'agent-a2');
      const agentB = await connectMqtt(broker, 'agent-b2');
      const orchestrator = await connectMqtt(broker, 'porchlight-orchestrator');
      await agentA.subscribeAsync('tasks/+/assign/agent-b2', { qos: 1 });
      await agentB.subscribeAsync('tasks/+/assign/agent-b2', { qos: 1 });
      const snooped = receivesWithin(agentA, 'tasks/t2/assign/agent-b2', 1000);
      const delivered = nextMessage(agentB, 'tasks/t2/assign/agent-b2');
      await orchestrator.publishAsync('tasks/t2/assign/agent-b2', '{"v":1}', { qos: 1 });
      await expect(delivered).resolves.toMatchObject({ topic: 'tasks/t2/assign/agent-b2' });
      await expect(snooped).resolves.toBe(false);
    });

    it('lets only an accredited agent receive patient-data calls for bids, and no client publish one', async () => {
      const accredited = await connectMqtt(broker, 'agent-gdpr', { accreditations: ['gdpr'] });
      const plain = await connectMqtt(broker, 'agent-plain');
      const client = await connectMqtt(broker, 'client-1', { accreditations: ['gdpr'] });
      await expect(client.publishAsync('patient-data/t3/request', '{"v":1}', { qos: 1 })).rejects.toMatchObject({ code: 135 });
      const orchestrator = await connectMqtt(broker, 'porchlight-orchestrator');
      await accredited.subscribeAsync('patient-data/+/request', { qos: 1 });
      await plain.subscribeAsync('patient-data/+/request', { qos: 1 });
      const seenByPlain = receivesWithin(plain, 'patient-data/t3/request', 1000);
      const seenByAccredited = nextMessage(accredited, 'patient-data/t3/request');
      await orchestrator.publishAsync('patient-data/t3/request', '{"v":1}', { qos: 1 });
      await expect(seenByAccredited).resolves.toMatchObject({ topic: 'patient-data/t3/request' });
      await expect(seenByPlain).resolves.toBe(false);
    });

    it('refuses a client publishing task status, which only the orchestrator may', async () => {
      const client = await connectMqtt(broker, 'client-2');
      await expect(client.publishAsync('tasks/t4/status', '{}', { qos: 1, retain: true })).rejects.toMatchObject({ code: 135 });
    });
  });

  describe('limits', () => {
    it('accepts a 128 KB payload and refuses one byte more', async () => {
      const agent = await connectMqtt(broker, 'agent-big');
      await expect(agent.publishAsync('agents/agent-big/telemetry', Buffer.alloc(MAX_PAYLOAD_BYTES, 'a'), { qos: 1 })).resolves.toBeDefined();
      // Mosquitto 2.0 answers PUBACK 0x95, which MQTT 5 does not allow on PUBACK; mqtt.js reports it
      // as a protocol error and the connection closes. Either way the message is not delivered.
      const errored = new Promise<Error>((resolve) => agent.once('error', resolve));
      void agent.publishAsync('agents/agent-big/telemetry', Buffer.alloc(MAX_PAYLOAD_BYTES + 1, 'a'), { qos: 1 }).catch(() => undefined);
      await expect(errored).resolves.toBeInstanceOf(Error);
    });
  });

  describe('WebSocket observer listener', () => {
    function connectObserver(password: string, extra: Partial<IClientOptions> = {}): Promise<MqttClient> {
      const client = connect(`ws://127.0.0.1:${broker.broker.wsPort}`, {
        protocolVersion: 5, username: broker.broker.mosquitto.observer.username, password, reconnectPeriod: 0, connectTimeout: 10_000, ...extra,
      });
      return awaitConnack(client, 10_000, 'ws listener');
    }

    it('refuses a wrong password', async () => {
      await expect(connectObserver('not-the-password')).rejects.toBeInstanceOf(MqttConnectError);
    });

    it('lets the observer read every task status but not publish', async () => {
      const observer = await connectObserver(broker.broker.mosquitto.observer.password);
      try {
        await observer.subscribeAsync('clients/+/tasks/+/status', { qos: 1 });
        const status = nextMessage(observer, 'clients/client-5/tasks/t5/status');
        const orchestrator = await connectMqtt(broker, 'porchlight-orchestrator');
        await orchestrator.publishAsync('clients/client-5/tasks/t5/status', '{"v":1}', { qos: 1 });
        await expect(status).resolves.toMatchObject({ topic: 'clients/client-5/tasks/t5/status' });
        await expect(observer.publishAsync('tasks/t5/request', '{}', { qos: 1 })).rejects.toMatchObject({ code: 135 });
      } finally {
        await observer.endAsync(true);
      }
    });

    it("cannot take over an agent's connection by asking for its client id", async () => {
      const agentId = 'agent-ws-victim';
      const orchestrator = await connectMqtt(broker, 'porchlight-orchestrator');
      await orchestrator.subscribeAsync(`agents/${agentId}/status`, { qos: 1 });
      const wills: string[] = [];
      orchestrator.on('message', (topic, payload) => {
        if (topic === `agents/${agentId}/status`) wills.push(payload.toString());
      });
      const agent = await connectMqtt(broker, agentId, {
        mqtt: { will: { topic: `agents/${agentId}/status`, payload: Buffer.from('{"v":1,"state":"offline"}'), qos: 1, retain: true } },
      });
      let agentClosed = false;
      agent.on('close', () => {
        agentClosed = true;
      });

      const observer = await connectObserver(broker.broker.mosquitto.observer.password, { clientId: agentId, clean: true });
      try {
        // A takeover is immediate on the broker's side; give it ample time on a loaded machine.
        await new Promise((r) => setTimeout(r, 1500));
        expect(agentClosed).toBe(false);
        expect(wills).toEqual([]);
        // The agent's connection still works end to end.
        await agent.subscribeAsync(`agents/${agentId}/errors`, { qos: 1 });
        const error = nextMessage(agent, `agents/${agentId}/errors`, 10_000);
        await orchestrator.publishAsync(`agents/${agentId}/errors`, '{"v":1}', { qos: 1 });
        await expect(error).resolves.toMatchObject({ topic: `agents/${agentId}/errors` });
        // The broker replaced the requested client id with the observer's own name.
        const log = await readFile(broker.broker.mosquitto.paths.logPath, 'utf8');
        expect(log).toMatch(new RegExp(`connected from 127\\.0\\.0\\.1:\\d+ as ${broker.broker.mosquitto.observer.username} `));
        expect(log).not.toMatch(new RegExp(`Client ${agentId} .*already connected`));
      } finally {
        await observer.endAsync(true);
      }
    }, 30_000);

    it("cannot wipe the orchestrator's persistent session with a clean start under its client id", async () => {
      const cert = await broker.issue('porchlight-orchestrator', 'orchestrator');
      const [certPem, keyPem, caPem] = await Promise.all([readFile(cert.certPath), readFile(cert.keyPath), readFile(cert.caPath)]);
      // Connects with the orchestrator certificate; the listener is attached before CONNECT, so
      // queued messages that arrive right behind CONNACK are seen.
      const connectOrchestrator = (seen: string[]): Promise<{ client: MqttClient; connack: IConnackPacket }> => {
        const client = connect({
          protocol: 'mqtts', host: '127.0.0.1', port: broker.mqttPort, protocolVersion: 5, cert: certPem, key: keyPem, ca: caPem,
          servername: 'localhost', clientId: 'porchlight-orchestrator', clean: false, reconnectPeriod: 0, connectTimeout: 10_000,
          properties: { sessionExpiryInterval: 600 },
        });
        client.on('message', (topic) => seen.push(topic));
        const connack = new Promise<IConnackPacket>((resolve) => client.once('connect', resolve));
        return awaitConnack(client, 10_000, 'tls listener').then(async () => ({ client, connack: await connack }));
      };

      // Connected first: issuing its certificate reloads the ACL, and Mosquitto 2.0.11 drops an
      // offline session's subscriptions on a reload, which would hide what this test looks for.
      const client = await connectMqtt(broker, 'client-ws-1');
      const first = await connectOrchestrator([]);
      await first.client.subscribeAsync('clients/+/tasks/+/request', { qos: 1 });
      await first.client.endAsync();

      const observer = await connectObserver(broker.broker.mosquitto.observer.password, { clientId: 'porchlight-orchestrator', clean: true });
      await observer.endAsync();

      await client.publishAsync('clients/client-ws-1/tasks/t-ws-1/request', '{"v":1}', { qos: 1 });

      const seen: string[] = [];
      const again = await connectOrchestrator(seen);
      try {
        expect(again.connack.sessionPresent).toBe(true);
        await waitUntil('the request queued for the orchestrator', () => Promise.resolve(seen.includes('clients/client-ws-1/tasks/t-ws-1/request')), { timeoutMs: 10_000, intervalMs: 50 });
      } finally {
        await again.client.endAsync(true);
      }
    }, 30_000);
  });
});
