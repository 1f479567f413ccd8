import * as fs from 'node:fs';
import * as path from 'node:path';
import { TASK_ROOTS } from '../../../core/data-classes';
import { FUNCTION_NAMES, RULES, handlerEntry, ruleSql, type RuleDefinition } from '../../../infra/rules/catalogue';

describe('rule catalogue', () => {
  describe('RULES', () => {
    it("has request and cancel rules on every client's tree, and proposal, output and progress rules on the agent tree, for every task root", () => {
      for (const root of TASK_ROOTS) {
        const expected = [
          [`clients/+/${root}/+/request`, 'intake'], [`clients/+/${root}/+/cancel`, 'progress'],
          [`${root}/+/proposal/+`, 'planner'], [`${root}/+/output/+/+`, 'progress'], [`${root}/+/progress/+/+`, 'progress'],
        ] as const;
        for (const [filter, target] of expected) expect(RULES.filter((r) => r.topicFilter === filter && r.target === target)).toHaveLength(1);
      }
      // Nothing routes what agents read: the call for bids is the orchestrator's own publish.
      expect(RULES.some((r) => r.topicFilter.endsWith('/+/request') && !r.topicFilter.startsWith('clients/'))).toBe(false);
    });

    it('sends résumé, status and telemetry to the registry and presence only on AWS', () => {
      for (const leaf of ['resume', 'status', 'telemetry']) expect(RULES.find((r) => r.topicFilter === `agents/+/${leaf}`)?.target).toBe('registry');
      const awsOnly = RULES.filter((r) => r.awsOnly);
      expect(awsOnly.map((r) => [r.topicFilter, r.target])).toEqual([['$aws/events/presence/+/+', 'presence']]);
    });

    it('uses unique, valid IoT rule names', () => {
      const names = RULES.map((r) => r.name);
      expect(new Set(names).size).toBe(names.length);
      for (const n of names) expect(n).toMatch(/^[a-zA-Z0-9_]{1,128}$/);
    });
  });

  describe('ruleSql', () => {
    it('builds the envelope SQL of core/rule-event.ts', () => {
      const request = RULES.find((r) => r.topicFilter === 'clients/+/tasks/+/request') as RuleDefinition;
      expect(ruleSql(request)).toBe(
        "SELECT encode(*, 'base64') AS payload, topic() AS topic, clientid() AS clientId, timestamp() AS receivedAt, topic(2) AS tenant, topic(4) AS taskId FROM 'clients/+/tasks/+/request'",
      );
    });

    it('refuses a filter that would break out of the quoted FROM clause', () => {
      expect(() => ruleSql({ name: 'x', topicFilter: "a/'b", target: 'intake', topicFields: [], description: 'x' })).toThrow(/quote/);
    });

    it('refuses a topic field that is not a 1-based index with a plain alias', () => {
      expect(() => ruleSql({ name: 'x', topicFilter: 'a/+', target: 'intake', topicFields: [{ index: 0, as: 'id' }], description: 'x' })).toThrow(/bad topic field/);
      expect(() => ruleSql({ name: 'x', topicFilter: 'a/+', target: 'intake', topicFields: [{ index: 2, as: 'id, clientid() AS x' }], description: 'x' })).toThrow(/bad topic field/);
    });
  });

  describe('handlerEntry', () => {
    it('points at functions/<name>/handler.ts in the repository', () => {
      for (const fn of FUNCTION_NAMES) {
        expect(handlerEntry(fn)).toBe(path.resolve(__dirname, '..', '..', '..', 'functions', fn, 'handler.ts'));
      }
      expect(fs.existsSync(path.dirname(path.dirname(handlerEntry('intake'))))).toBe(true);
    });

    it('refuses an unknown function', () => {
      expect(() => handlerEntry('nope' as never)).toThrow(/unknown function "nope"/);
    });
  });
});
