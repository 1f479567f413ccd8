import { RegistryService } from '../../../core/registry-service';
import { RejectNotice } from '../../../core/schemas';
import { InMemoryRegistry, ManualClock, RecordingPublisher, StaticVerifier, inbound } from '../../helpers/in-memory-ports';

/** The seed article's résumé, byte for byte. */
const SEED_RESUME = '{"skills":["sql-optimiser","nl2chart"],"cost":{"usd":0.02,"p95_ms":350},"region":"eu-central-1","accredit":["ISO27001","gdpr"]}';

function harness(held: Record<string, string[]> = { 'sql-agent': ['ISO27001', 'gdpr'] }) {
  const registry = new InMemoryRegistry();
  const publisher = new RecordingPublisher();
  const clock = new ManualClock();
  const gone: { agentId: string; reason: string }[] = [];
  const orchestrator = { onAgentGone: async (agentId: string, reason: string) => { gone.push({ agentId, reason }); } };
  const service = new RegistryService({ registry, verifier: new StaticVerifier(held), publisher, clock, orchestrator });
  return { registry, publisher, clock, gone, service };
}

function notices(publisher: RecordingPublisher, agentId: string): RejectNotice[] {
  return publisher.on(`agents/${agentId}/errors`).map((m) => RejectNotice.parse(m.payload));
}

function presence(event: 'connected' | 'disconnected', clientId: string, extra: Record<string, unknown> = {}) {
  return inbound(`$aws/events/presence/${event}/${clientId}`, { clientId, timestamp: 1_900_000_000_000, eventType: event, sessionIdentifier: 'abc', ...extra });
}

describe('RegistryService', () => {
  describe('onResume', () => {
    it('stores the seed résumé with its accreditations verified against the identity', async () => {
      const h = harness();
      expect(await h.service.onResume(inbound('agents/sql-agent/resume', SEED_RESUME))).toMatchObject({ status: 'accepted' });
      const record = await h.registry.get('sql-agent');
      expect(record).toMatchObject({ state: 'online', verifiedAccredit: ['ISO27001', 'gdpr'], unverifiedAccredit: [] });
      expect(record?.resume.skills).toEqual(['sql-optimiser', 'nl2chart']);
      expect(h.publisher.messages).toEqual([]);
    });

    it('stores the résumé but reports and keeps apart the claims the identity does not confirm', async () => {
      const h = harness({ 'sql-agent': ['ISO27001'] });
      const outcome = await h.service.onResume(inbound('agents/sql-agent/resume', SEED_RESUME));
      expect(outcome).toMatchObject({ status: 'accepted', detail: expect.stringMatching(/unverified accreditations dropped: gdpr/) });
      expect(await h.registry.get('sql-agent')).toMatchObject({ verifiedAccredit: ['ISO27001'], unverifiedAccredit: ['gdpr'] });
      expect(notices(h.publisher, 'sql-agent')).toEqual([expect.objectContaining({ code: 'not-authorized', message: expect.stringMatching(/gdpr/), topic: 'agents/sql-agent/resume' })]);
    });

    it('treats the same résumé again as a duplicate and sends no second notice', async () => {
      const h = harness({});
      await h.service.onResume(inbound('agents/sql-agent/resume', SEED_RESUME));
      const version = (await h.registry.get('sql-agent'))?.version;
      expect(await h.service.onResume(inbound('agents/sql-agent/resume', SEED_RESUME))).toMatchObject({ status: 'duplicate' });
      expect((await h.registry.get('sql-agent'))?.version).toBe(version);
      expect(notices(h.publisher, 'sql-agent')).toHaveLength(1);
    });

    it.each([
      ['malformed JSON', '{"skills":', 'invalid-json'],
      ['a schema error', '{"skills":[],"cost":{"usd":-1,"p95_ms":1},"region":"x"}', 'invalid-payload'],
      ['an oversize payload', `{"pad":"${'x'.repeat(130 * 1024)}"}`, 'payload-too-large'],
    ])('rejects %s with a notice to the agent and stores nothing', async (_name, payload, code) => {
      const h = harness();
      expect(await h.service.onResume(inbound('agents/sql-agent/resume', payload))).toMatchObject({ status: 'rejected', code });
      expect(notices(h.publisher, 'sql-agent')[0]?.code).toBe(code);
      expect(await h.registry.get('sql-agent')).toBeUndefined();
    });

    it('rejects a résumé published by another client and tells that client', async () => {
      const h = harness();
      expect(await h.service.onResume(inbound('agents/sql-agent/resume', SEED_RESUME, { clientId: 'mallory' }))).toMatchObject({ status: 'rejected', code: 'not-authorized' });
      expect(notices(h.publisher, 'mallory')).toHaveLength(1);
      expect(await h.registry.get('sql-agent')).toBeUndefined();
    });

    it('marks the agent offline and re-assigns its steps when the résumé is cleared', async () => {
      const h = harness();
      await h.service.onResume(inbound('agents/sql-agent/resume', SEED_RESUME));
      expect(await h.service.onResume(inbound('agents/sql-agent/resume', ''))).toMatchObject({ status: 'accepted' });
      expect((await h.registry.get('sql-agent'))?.state).toBe('offline');
      expect(h.gone).toEqual([{ agentId: 'sql-agent', reason: 'résumé cleared' }]);
      expect(await h.service.onResume(inbound('agents/unknown/resume', ''))).toMatchObject({ status: 'ignored' });
    });

    it('rejects a topic that is not a résumé topic', async () => {
      const h = harness();
      expect(await h.service.onResume(inbound('agents/a/b/resume', SEED_RESUME))).toMatchObject({ status: 'rejected', code: 'invalid-topic' });
      expect(await h.service.onResume(inbound('agents/sql-agent/status', SEED_RESUME))).toMatchObject({ status: 'rejected', code: 'invalid-topic' });
    });
  });

  describe('onStatus', () => {
    async function registered() {
      const h = harness();
      await h.service.onResume(inbound('agents/sql-agent/resume', SEED_RESUME));
      return h;
    }

    it('re-assigns live steps when the agent goes offline (the last will), once per change', async () => {
      const h = await registered();
      expect(await h.service.onStatus(inbound('agents/sql-agent/status', { state: 'offline', reason: 'will' }))).toMatchObject({ status: 'accepted' });
      expect((await h.registry.get('sql-agent'))?.state).toBe('offline');
      expect(h.gone).toEqual([{ agentId: 'sql-agent', reason: 'will' }]);
      expect(await h.service.onStatus(inbound('agents/sql-agent/status', { state: 'offline', reason: 'will' }))).toMatchObject({ status: 'duplicate' });
    });

    it('records draining without re-assigning live steps', async () => {
      const h = await registered();
      await h.service.onStatus(inbound('agents/sql-agent/status', { state: 'draining', load: { active: 2, max: 4 } }));
      expect(await h.registry.get('sql-agent')).toMatchObject({ state: 'draining', load: { active: 2, max: 4 } });
      expect(h.gone).toEqual([]);
    });

    it('ignores a status before the résumé and a cleared status', async () => {
      const h = harness();
      expect(await h.service.onStatus(inbound('agents/new/status', { state: 'online' }))).toMatchObject({ status: 'ignored' });
      expect(await h.service.onStatus(inbound('agents/new/status', ''))).toMatchObject({ status: 'ignored' });
    });

    it('rejects a bad status with a notice', async () => {
      const h = await registered();
      expect(await h.service.onStatus(inbound('agents/sql-agent/status', { state: 'sleepy' }))).toMatchObject({ status: 'rejected', code: 'invalid-payload' });
      expect(notices(h.publisher, 'sql-agent')[0]?.message).toMatch(/state/);
    });
  });

  describe('onTelemetry', () => {
    const telemetry = { executions: 10, costUsd: 0.01, p95Ms: 200, successRate: 0.9 };

    it('records telemetry for a registered agent; the same figures again are a duplicate', async () => {
      const h = harness();
      await h.service.onResume(inbound('agents/sql-agent/resume', SEED_RESUME));
      expect(await h.service.onTelemetry(inbound('agents/sql-agent/telemetry', telemetry))).toMatchObject({ status: 'accepted' });
      expect((await h.registry.get('sql-agent'))?.telemetry).toMatchObject(telemetry);
      expect(await h.service.onTelemetry(inbound('agents/sql-agent/telemetry', telemetry))).toMatchObject({ status: 'duplicate' });
    });

    it('rejects telemetry from an agent without a résumé, and bad telemetry', async () => {
      const h = harness();
      expect(await h.service.onTelemetry(inbound('agents/ghost/telemetry', telemetry))).toMatchObject({ status: 'rejected', code: 'invalid-state' });
      expect(notices(h.publisher, 'ghost')).toHaveLength(1);
      expect(await h.service.onTelemetry(inbound('agents/ghost/telemetry', { ...telemetry, successRate: 2 }))).toMatchObject({ status: 'rejected', code: 'invalid-payload' });
    });
  });

  describe('onPresence', () => {
    it('marks a registered agent offline on disconnect and re-assigns its steps', async () => {
      const h = harness();
      await h.service.onResume(inbound('agents/sql-agent/resume', SEED_RESUME));
      expect(await h.service.onPresence(presence('disconnected', 'sql-agent', { disconnectReason: 'CONNECTION_LOST' }))).toMatchObject({ status: 'accepted' });
      expect((await h.registry.get('sql-agent'))?.state).toBe('offline');
      expect(h.gone).toEqual([{ agentId: 'sql-agent', reason: 'disconnected (CONNECTION_LOST)' }]);
      expect(await h.service.onPresence(presence('disconnected', 'sql-agent', { disconnectReason: 'CONNECTION_LOST' }))).toMatchObject({ status: 'duplicate' });
    });

    it('ignores the disconnect of a session replaced by a reconnect', async () => {
      const h = harness();
      await h.service.onResume(inbound('agents/sql-agent/resume', SEED_RESUME));
      expect(await h.service.onPresence(presence('disconnected', 'sql-agent', { disconnectReason: 'DUPLICATE_CLIENTID' }))).toMatchObject({ status: 'ignored' });
      expect((await h.registry.get('sql-agent'))?.state).toBe('online');
      expect(h.gone).toEqual([]);
    });

    it('touches the record on connect without changing its state', async () => {
      const h = harness();
      await h.service.onResume(inbound('agents/sql-agent/resume', SEED_RESUME));
      const before = await h.registry.get('sql-agent');
      h.clock.advance(1000);
      expect(await h.service.onPresence(presence('connected', 'sql-agent'))).toMatchObject({ status: 'accepted' });
      const after = await h.registry.get('sql-agent');
      expect(after?.state).toBe(before?.state);
      expect(after?.updatedAt).toBe((before?.updatedAt ?? 0) + 1000);
    });

    describe('out of order and twice', () => {
      const T = 1_900_000_000_000;
      async function online() {
        const h = harness();
        await h.service.onResume(inbound('agents/sql-agent/resume', SEED_RESUME));
        return h;
      }
      const lost = (timestamp: number, versionNumber?: number) =>
        presence('disconnected', 'sql-agent', { disconnectReason: 'CONNECTION_LOST', timestamp, ...(versionNumber !== undefined ? { versionNumber } : {}) });
      const connected = (timestamp: number, versionNumber?: number) =>
        presence('connected', 'sql-agent', { timestamp, ...(versionNumber !== undefined ? { versionNumber } : {}) });

      it('ignores the disconnect of an old connection that arrives after the new connection\'s connect', async () => {
        const h = await online();
        expect(await h.service.onPresence(connected(T + 5_000, 8))).toMatchObject({ status: 'accepted' });
        // connection 7's disconnect, delayed; IoT Core stamps it later than it happened, but the version tells
        expect(await h.service.onPresence(lost(T + 6_000, 7))).toMatchObject({ status: 'ignored', detail: expect.stringMatching(/stale disconnect of agent sql-agent/) });
        expect((await h.registry.get('sql-agent'))?.state).toBe('online');
        expect(h.gone).toEqual([]);
      });

      it('marks offline on the disconnect of the newest connection, once, and ignores its late connect', async () => {
        const h = await online();
        expect(await h.service.onPresence(lost(T + 2_000, 8))).toMatchObject({ status: 'accepted' });
        expect(await h.service.onPresence(lost(T + 2_000, 8))).toMatchObject({ status: 'duplicate' });
        // the same connection's connect, delivered last, must not look like the agent came back
        expect(await h.service.onPresence(connected(T + 1_000, 8))).toMatchObject({ status: 'ignored', detail: expect.stringMatching(/stale connect/) });
        expect((await h.registry.get('sql-agent'))?.presence).toEqual({ event: 'disconnected', at: T + 2_000, version: 8 });
        expect((await h.registry.get('sql-agent'))?.state).toBe('offline');
        // the duplicate re-ran re-assignment (idempotent) while the agent was still offline
        expect(h.gone.map((g) => g.agentId)).toEqual(['sql-agent', 'sql-agent']);
      });

      it('orders by time when the events carry no version', async () => {
        const h = await online();
        expect(await h.service.onPresence(connected(T + 5_000))).toMatchObject({ status: 'accepted' });
        expect(await h.service.onPresence(lost(T + 4_000))).toMatchObject({ status: 'ignored' });
        expect(await h.service.onPresence(lost(T + 9_000))).toMatchObject({ status: 'accepted' });
        expect((await h.registry.get('sql-agent'))?.state).toBe('offline');
      });

      it('ignores a disconnect from before the agent last said it is online', async () => {
        const h = await online();
        expect(await h.service.onStatus(inbound('agents/sql-agent/status', { state: 'online' }, { receivedAt: T + 10_000 }))).toMatchObject({ status: expect.any(String) });
        expect(await h.service.onPresence(lost(T + 3_000, 4))).toMatchObject({ status: 'ignored' });
        expect((await h.registry.get('sql-agent'))?.state).toBe('online');
        expect(h.gone).toEqual([]);
      });

      it('does not re-assign on a duplicate disconnect once the agent is back online', async () => {
        const h = await online();
        expect(await h.service.onPresence(lost(T + 1_000, 3))).toMatchObject({ status: 'accepted' });
        // it comes back and says so; the connect event itself is still on its way
        expect(await h.service.onStatus(inbound('agents/sql-agent/status', { state: 'online' }, { receivedAt: T + 5_000 }))).toMatchObject({ status: 'accepted' });
        expect(await h.service.onPresence(lost(T + 1_000, 3))).toMatchObject({ status: 'ignored' });
        expect((await h.registry.get('sql-agent'))?.state).toBe('online');
        expect(h.gone).toHaveLength(1);
      });
    });

    it('ignores identities that are not registered agents', async () => {
      const h = harness();
      expect(await h.service.onPresence(presence('disconnected', 'client-1'))).toMatchObject({ status: 'ignored' });
    });

    it('rejects a malformed event and one that disagrees with its topic', async () => {
      const h = harness();
      expect(await h.service.onPresence(inbound('$aws/events/presence/connected/a1', 'nope'))).toMatchObject({ status: 'rejected', code: 'invalid-json' });
      expect(await h.service.onPresence(inbound('$aws/events/presence/connected/a1', { clientId: 'a2', timestamp: 1, eventType: 'connected' }))).toMatchObject({ status: 'rejected', code: 'invalid-payload' });
      expect(await h.service.onPresence(inbound('$aws/events/presence/paused/a1', { clientId: 'a1', timestamp: 1, eventType: 'connected' }))).toMatchObject({ status: 'rejected', code: 'invalid-topic' });
      expect(h.publisher.messages).toEqual([]);
    });
  });
});
