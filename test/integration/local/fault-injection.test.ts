/**
 * The local stack's test-only faults and reconnection: the rules engine's duplicate delivery
 * (seeded, counted, same event twice), the rate check, and mqtt.js reconnect backoff with jitter.
 */
import { EventEmitter } from 'node:events';
import type { MqttClient } from 'mqtt';
import type { RuleEvent } from '../../../core/rule-event';
import { memoryDeadLetterSink } from '../../../local/dead-letters';
import { checkRate, seededRandom } from '../../../local/fault-injection';
import type { FunctionInvoker } from '../../../local/function-invoker';
import { reconnectWithBackoff } from '../../../local/mqtt-connect';
import { waitUntil } from '../../../local/processes';
import { startRulesEngine, type RulesEngine } from '../../../local/rules-engine';
import { connectMqtt, startTestBroker, type TestBroker } from '../../helpers/local-stack';

/** Records every invocation instead of running a handler. */
function recordingInvoker(): FunctionInvoker & { readonly calls: { functionName: string; event: RuleEvent }[] } {
  const calls: { functionName: string; event: RuleEvent }[] = [];
  return {
    calls,
    invoke: async (functionName, event) => {
      calls.push({ functionName, event: event as RuleEvent });
    },
    warm: async () => undefined,
    close: async () => undefined,
  };
}

describe('local fault injection', () => {
  describe('seededRandom and checkRate', () => {
    it('draws the same sequence in [0, 1) from the same seed', () => {
      const a = seededRandom(3);
      const b = seededRandom(3);
      const draws = Array.from({ length: 100 }, () => a());
      expect(draws).toEqual(Array.from({ length: 100 }, () => b()));
      expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...draws)).toBeLessThan(1);
      expect(seededRandom(4)()).not.toBe(draws[0]);
    });

    it('refuses a rate outside 0..1, naming the setting', () => {
      expect(checkRate(0.05, 'duplicateRate')).toBe(0.05);
      expect(() => checkRate(1.01, 'faults.duplicateRate')).toThrow(/faults.duplicateRate must be a number from 0 to 1/);
      expect(() => checkRate(Number.NaN, 'duplicateRate')).toThrow(RangeError);
    });
  });

  describe('rules engine duplicate delivery', () => {
    let broker: TestBroker;
    let engine: RulesEngine | undefined;

    beforeAll(async () => {
      broker = await startTestBroker();
    }, 30_000);

    afterAll(async () => {
      await engine?.stop();
      await broker.cleanup();
    });

    it('hands the chosen fraction of messages to their rule twice, with the same event, and counts them', async () => {
      const invoker = recordingInvoker();
      const orchestrator = await connectMqtt(broker, 'porchlight-orchestrator');
      engine = await startRulesEngine({ mqtt: orchestrator, invoker, deadLetters: memoryDeadLetterSink(), sweeper: false, shareGroup: false, duplicateRate: 0.5, random: seededRandom(11) });
      const client = await connectMqtt(broker, 'client-dup', { kind: 'client' });
      const count = 40;
      for (let i = 0; i < count; i += 1) await client.publishAsync(`clients/client-dup/tasks/d${i}/request`, `{"n":${i}}`, { qos: 1 });
      await waitUntil('every message received', async () => engine?.received === count, { timeoutMs: 10_000, intervalMs: 20 });
      await engine.idle();

      const expected = seededRandom(11);
      const duplicated = Array.from({ length: count }, () => expected() < 0.5).filter(Boolean).length;
      expect(engine.duplicatesInjected).toBe(duplicated);
      expect(duplicated).toBeGreaterThan(0);
      expect(invoker.calls).toHaveLength(count + duplicated);
      const byTopic = new Map<string, RuleEvent[]>();
      for (const call of invoker.calls) byTopic.set(call.event.topic, [...(byTopic.get(call.event.topic) ?? []), call.event]);
      const twice = [...byTopic.values()].filter((events) => events.length === 2);
      expect(twice).toHaveLength(duplicated);
      for (const [first, second] of twice) expect(second).toEqual(first);
    });
  });

  describe('reconnectWithBackoff', () => {
    it('grows the jittered ceiling on each failed attempt, caps it, and resets after a connection', () => {
      const client = Object.assign(new EventEmitter(), { options: { reconnectPeriod: 1000 } }) as unknown as MqttClient;
      reconnectWithBackoff(client, { minDelayMs: 100, maxDelayMs: 1000, random: () => 0.999 });
      const periods = [client.options.reconnectPeriod];
      for (let i = 0; i < 6; i += 1) {
        client.emit('reconnect');
        periods.push(client.options.reconnectPeriod);
      }
      expect(periods).toEqual([100, 200, 400, 799, 999, 999, 999]);
      client.emit('connect', { cmd: 'connack', sessionPresent: false });
      expect(client.options.reconnectPeriod).toBe(100);
    });

    it('spreads clients over the whole interval (full jitter) but never turns reconnection off', () => {
      const client = Object.assign(new EventEmitter(), { options: { reconnectPeriod: 1000 } }) as unknown as MqttClient;
      reconnectWithBackoff(client, { minDelayMs: 100, maxDelayMs: 1000, random: () => 0 });
      expect(client.options.reconnectPeriod).toBe(1);
      expect(() => reconnectWithBackoff(client, { minDelayMs: 0, maxDelayMs: 10 })).toThrow(RangeError);
    });
  });
});
