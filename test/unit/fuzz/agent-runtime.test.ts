/**
 * Hostile input for the agent runtime's inbound dispatch, over the in-memory bus: requests,
 * assignments (own and pool), task status while executing, reject notices, and topics that are
 * not Porchlight's. Nothing may throw out of the bus callback or reject unhandled; a bad message
 * is logged with the reason naming the field, and never reaches propose() or execute() nor
 * disturbs a step already running.
 */
import fc from 'fast-check';
import { AgentRuntime } from '../../../agents/runtime/agent-runtime';
import { defineAgent } from '../../../agents/runtime/define-agent';
import type { InboundMessage } from '../../../agents/runtime/mqtt-bus';
import { captureLogger, eventually, FakeBus } from '../agents/runtime/fake-bus';
import { badArtifactName, badId, brokenField, expectPrototypeClean, garbage, trapUnhandledRejections, withPollutionKey, type BreakableField } from './arbitraries';

const ID = 'agent-1';
const TOKEN = 'tok-0123456789abcdef-xyz';

trapUnhandledRejections();

/** The FakeBus, able to deliver raw bytes (not only UTF-8 text). */
class RawBus extends FakeBus {
  private raw: ((m: InboundMessage) => void) | undefined;
  override onMessage(handler: (m: InboundMessage) => void): void {
    this.raw = handler;
    super.onMessage(handler);
  }
  deliverRaw(topic: string, payload: string | Uint8Array): void {
    const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
    this.raw?.({ topic, payload: bytes, retain: false });
  }
}

function assignment(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    v: 1, taskId: 't1', stepId: 's1', epoch: 1, token: TOKEN, skill: 'echo', goal: 'echo things', inputs: { text: 'hello' }, produces: ['echoed'],
    deadline: new Date(Date.now() + 60_000).toISOString(), leaseMs: 30_000, ...overrides,
  };
}

function poolOffer(): Record<string, unknown> {
  return {
    v: 1, taskId: 't1', stepId: 's1', pool: 'echoers', epoch: 1, skill: 'echo', goal: 'echo things', consumes: ['text'], produces: ['echoed'],
    deadline: new Date(Date.now() + 60_000).toISOString(), claimWithinMs: 30_000,
  };
}

const REQUEST = { goal: 'echo hello', input: { text: 'hello' }, want: ['echoed'] };

async function started() {
  const calls = { propose: 0, execute: 0, aborted: [] as string[] };
  let release: () => void = () => undefined;
  const def = defineAgent({
    id: ID,
    resume: { skills: ['echo'], cost: { usd: 0.01, p95_ms: 50 }, region: 'eu-central-1', maxConcurrent: 2, pools: ['echoers'] },
    propose: () => {
      calls.propose += 1;
      return { steps: [{ id: 'echo', skill: 'echo', consumes: ['text'], produces: ['echoed'], estUsd: 0.01, estMs: 50 }] };
    },
    execute: (a, ctx) => {
      calls.execute += 1;
      return new Promise((resolve, reject) => {
        release = () => resolve({ echoed: a.inputs.text ?? null });
        ctx.signal.addEventListener('abort', () => {
          calls.aborted.push(a.stepId);
          reject(ctx.signal.reason instanceof Error ? ctx.signal.reason : new Error('aborted'));
        });
      });
    },
  });
  const bus = new RawBus();
  const log = captureLogger();
  const runtime = new AgentRuntime(def, bus, { log, statusMinGapMs: 10, telemetryMinGapMs: 10, progressIntervalMs: 50 });
  await runtime.start();
  const baseline = bus.published.length;
  return { bus, log, runtime, calls, baseline, release: () => release() };
}
type Started = Awaited<ReturnType<typeof started>>;

/** Lets queued microtasks and immediates (the async request path) run. */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

function warnings(s: Started, message: string): { error?: unknown }[] {
  return s.log.lines.filter((l) => l.level === 'warn' && l.message === message).map((l) => l.fields);
}

const REQUEST_FIELDS: readonly BreakableField[] = [{ path: ['goal'] }, { path: ['want'] }, { path: ['want', 0], bad: badArtifactName }];
const ASSIGNMENT_FIELDS: readonly BreakableField[] = [
  { path: ['taskId'], bad: badId }, { path: ['stepId'], bad: badId }, { path: ['epoch'], bad: fc.constantFrom(0, -1, 1.5) },
  { path: ['token'], bad: fc.constantFrom('', 'short') }, { path: ['skill'], bad: fc.constantFrom('', 'Not A Skill') }, { path: ['deadline'], bad: fc.constantFrom('tomorrow', '') },
  { path: ['leaseMs'], bad: fc.constantFrom(0, -1, 0.5) }, { path: ['produces'], bad: fc.constant([]) }, { path: ['inputs'] },
];

const OFFER_FIELDS: readonly BreakableField[] = [
  { path: ['taskId'], bad: badId }, { path: ['stepId'], bad: badId }, { path: ['pool'], bad: badId }, { path: ['epoch'], bad: fc.constantFrom(0, -1, 1.5) },
  { path: ['skill'], bad: fc.constantFrom('', 'Not A Skill') }, { path: ['deadline'], bad: fc.constantFrom('tomorrow', '') },
  { path: ['claimWithinMs'], bad: fc.constantFrom(0, -1, 0.5) }, { path: ['produces'], bad: fc.constant([]) },
];

describe('agent runtime inbound fuzz', () => {
  describe('requests', () => {
    it('logs garbage and broken requests with the reason, never calls propose() and publishes nothing', async () => {
      const s = await started();
      let n = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(garbage(REQUEST).map((payload) => ({ payload, path: undefined })), brokenField(REQUEST, REQUEST_FIELDS).map(({ path, payload }) => ({ payload: JSON.stringify(payload), path }))),
          async ({ payload, path }) => {
            n += 1;
            const before = warnings(s, 'invalid task request ignored').length;
            expect(() => s.bus.deliverRaw(`tasks/t${n}/request`, payload)).not.toThrow();
            await settle();
            const logged = warnings(s, 'invalid task request ignored');
            expect(logged).toHaveLength(before + 1);
            const reason = String(logged.at(-1)?.error);
            expect(reason).toMatch(/not valid JSON|is invalid|payload is \d+ bytes/);
            if (path !== undefined && !/nests deeper/.test(reason)) expect(reason).toContain(path.map(String).join('.'));
          },
        ),
        { numRuns: 120 },
      );
      expect(s.calls.propose).toBe(0);
      expect(s.bus.published).toHaveLength(s.baseline);
      await s.runtime.stop({ timeoutMs: 10 });
    });
  });

  describe('pool offers', () => {
    it('ignores garbage and broken pool offers with the reason; claims nothing and executes nothing', async () => {
      const s = await started();
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(garbage(poolOffer()).map((payload) => ({ payload, path: undefined })), brokenField(poolOffer(), OFFER_FIELDS).map(({ path, payload }) => ({ payload: JSON.stringify(payload), path }))),
          async ({ payload, path }) => {
            const before = warnings(s, 'invalid pool offer ignored').length;
            expect(() => s.bus.deliverRaw('tasks/t1/pool/echoers', payload)).not.toThrow();
            await settle();
            const logged = warnings(s, 'invalid pool offer ignored');
            expect(logged).toHaveLength(before + 1);
            const reason = String(logged.at(-1)?.error);
            if (path !== undefined && !/nests deeper/.test(reason)) expect(reason).toContain(path.map(String).join('.'));
          },
        ),
        { numRuns: 120 },
      );
      expect(s.calls.execute).toBe(0);
      expect(s.bus.published).toHaveLength(s.baseline);
      await s.runtime.stop({ timeoutMs: 10 });
    });
  });

  describe('assignments', () => {
    it.each([['own', `tasks/t1/assign/${ID}`]])('ignores garbage and broken %s assignments with the reason; execute() is never called', async (_kind, topic) => {
      const s = await started();
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(garbage(assignment()).map((payload) => ({ payload, path: undefined })), brokenField(assignment(), ASSIGNMENT_FIELDS).map(({ path, payload }) => ({ payload: JSON.stringify(payload), path }))),
          async ({ payload, path }) => {
            const before = warnings(s, 'invalid assignment ignored').length;
            expect(() => s.bus.deliverRaw(topic, payload)).not.toThrow();
            await settle();
            const logged = warnings(s, 'invalid assignment ignored');
            expect(logged).toHaveLength(before + 1);
            const reason = String(logged.at(-1)?.error);
            if (path !== undefined && !/nests deeper/.test(reason)) expect(reason).toContain(path.map(String).join('.'));
          },
        ),
        { numRuns: 120 },
      );
      expect(s.calls.execute).toBe(0);
      expect(s.bus.published).toHaveLength(s.baseline);
      await s.runtime.stop({ timeoutMs: 10 });
    });

    it('drops a prototype-pollution key and leaves Object.prototype clean', async () => {
      const s = await started();
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 1_000_000 }).chain((epoch) => withPollutionKey(assignment({ epoch }))), async (text) => {
          s.bus.deliverRaw(`tasks/t1/assign/${ID}`, text);
          await settle();
          expectPrototypeClean();
        }),
        { numRuns: 20 },
      );
      await s.runtime.stop({ timeoutMs: 10 });
    });
  });

  describe('topics', () => {
    it('ignores messages on topics with invalid ids, of other agents, or not Porchlight\'s', async () => {
      const s = await started();
      const topic = fc.oneof(
        badId.map((id) => `tasks/${id}/request`),
        badId.map((id) => `tasks/t1/assign/${id}`),
        fc.constantFrom(`tasks/t1/assign/agent-2`, 'tasks/t1/output/s1', `agents/${ID}/resume`, '$aws/events/presence/connected/x', '$SYS/broker/uptime'),
        fc.string({ maxLength: 40 }),
      );
      await fc.assert(
        fc.asyncProperty(topic, async (t) => {
          expect(() => s.bus.deliverRaw(t, JSON.stringify(assignment()))).not.toThrow();
          await settle();
        }),
        { numRuns: 150 },
      );
      expect(s.calls.execute).toBe(0);
      expect(s.calls.propose).toBe(0);
      expect(s.bus.published).toHaveLength(s.baseline);
      await s.runtime.stop({ timeoutMs: 10 });
    });
  });

  describe('task status while a step runs', () => {
    it('ignores garbage on the watched status topic, keeps executing, and still aborts on a genuine cancel', async () => {
      const s = await started();
      s.bus.deliver(`tasks/t1/assign/${ID}`, assignment());
      await eventually(() => expect(s.bus.subscribed).toContain('tasks/t1/status'));
      const status = { v: 1, taskId: 't1', state: 'working', phase: 'executing', errors: [], version: 3, updatedAt: new Date().toISOString() };
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            garbage(status),
            brokenField(status, [{ path: ['state'], bad: fc.constantFrom('cancelled', 'done') }, { path: ['version'], bad: fc.constant(-1) }, { path: ['taskId'], bad: badId }])
              .map(({ payload }) => JSON.stringify(payload)),
          ),
          async (payload) => {
            expect(() => s.bus.deliverRaw('tasks/t1/status', payload)).not.toThrow();
            await settle();
            expect(s.calls.aborted).toEqual([]);
          },
        ),
        { numRuns: 100 },
      );
      expect(warnings(s, 'invalid task status ignored').length).toBeGreaterThan(0);
      s.bus.deliver('tasks/t1/status', { ...status, state: 'canceled', phase: 'done', version: 4 });
      await eventually(() => expect(s.calls.aborted).toEqual(['s1']));
      expect(s.bus.on(`tasks/t1/output/s1/${ID}`)).toEqual([]);
      await s.runtime.stop({ timeoutMs: 10 });
    });
  });

  describe('reject notices', () => {
    it('logs garbage notices as invalid without throwing', async () => {
      const s = await started();
      const notice = { v: 1, code: 'stale-epoch', message: 'late', topic: 'tasks/t1/output/s1', at: new Date().toISOString() };
      await fc.assert(
        fc.asyncProperty(garbage(notice), async (payload) => {
          const before = warnings(s, 'invalid reject notice ignored').length;
          expect(() => s.bus.deliverRaw(`agents/${ID}/errors`, payload)).not.toThrow();
          expect(warnings(s, 'invalid reject notice ignored')).toHaveLength(before + 1);
        }),
        { numRuns: 100 },
      );
      await s.runtime.stop({ timeoutMs: 10 });
    });
  });
});
