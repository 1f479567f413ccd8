import { ValidationError } from '../../../core/errors';
import { Orchestrator, DEFAULT_ORCHESTRATOR_CONFIG } from '../../../core/orchestrator';
import { Constraints, MAX_JSON_DEPTH, Proposal, StepOutput, TaskRequest, decodePayload, jsonNestingDepth, parseMessage } from '../../../core/schemas';
import { InMemoryRegistry, InMemoryTaskStore, ManualClock, ManualTimer, RecordingPublisher, testFencer, inbound } from '../../helpers/in-memory-ports';

/** `depth` nested arrays around `leaf`, as JSON text. */
function nestedArrays(depth: number, leaf = '1'): string {
  return `${'['.repeat(depth)}${leaf}${']'.repeat(depth)}`;
}

function nestedValue(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

/**
 * Hostile nesting. JSON.parse accepts 100 000 levels, but zod's recursive z.json() (every
 * artifact field) overflowed the stack at a few thousand: a 10 KB payload of brackets made
 * decodePayload throw a RangeError, which core treats as a defect and rethrows, so a Lambda handler
 * failed and was retried with an input that can never succeed.
 */
describe('decodePayload', () => {
  describe('deeply nested JSON', () => {
    it('refuses a request nesting deeper than MAX_JSON_DEPTH as invalid-payload instead of overflowing the stack', () => {
      const text = `{"goal":"g","want":["x"],"input":{"a":${nestedArrays(20_000)}}}`;
      let error: unknown;
      try {
        decodePayload(TaskRequest, text, 'task request');
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ValidationError);
      expect(error).toMatchObject({ code: 'invalid-payload', message: expect.stringMatching(/nests deeper than 256 levels/) });
    });

    it('accepts nesting at the limit', () => {
      // Two levels are the request object and `input`.
      const text = `{"goal":"g","want":["x"],"input":{"a":${nestedArrays(MAX_JSON_DEPTH - 2)}}}`;
      expect(decodePayload(TaskRequest, text, 'task request').input.a).toBeDefined();
    });

    it('does not count brackets inside strings or escaped quotes', () => {
      expect(jsonNestingDepth('{"a":"[[[[\\"{{{{"}')).toBe(1);
      expect(jsonNestingDepth('[[["]"]]]')).toBe(3);
      expect(jsonNestingDepth('not json at all {[')).toBe(2);
    });
  });

  describe('parseMessage with a value built in code', () => {
    it('turns a stack overflow in validation into invalid-payload', () => {
      const output = { taskId: 't1', stepId: 's1', epoch: 1, token: 'tok-0123456789abcdef', ok: true, output: { a: nestedValue(50_000) } };
      expect(() => parseMessage(StepOutput, output, 'step output')).toThrow(expect.objectContaining({ code: 'invalid-payload', message: expect.stringMatching(/nested too deeply/) }));
    });
  });

  describe('through the orchestrator', () => {
    it('rejects a deeply nested request with a rejected status and stores nothing', async () => {
      const tasks = new InMemoryTaskStore();
      const publisher = new RecordingPublisher();
      const orchestrator = new Orchestrator({
        tasks, registry: new InMemoryRegistry(), publisher, timer: new ManualTimer(), clock: new ManualClock(), fencer: testFencer, config: DEFAULT_ORCHESTRATOR_CONFIG,
      });
      const text = `{"goal":"g","want":["x"],"input":{"a":${nestedArrays(30_000)}}}`;
      await expect(orchestrator.onRequest(inbound('clients/client-1/tasks/t1/request', text))).resolves.toMatchObject({ status: 'rejected', code: 'invalid-payload' });
      expect(tasks.size).toBe(0);
      expect(publisher.last('clients/client-1/tasks/t1/status')).toMatchObject({ state: 'rejected' });
    });
  });

  /**
   * A proposal is a union (bid or decline). zod reports a union that matched no branch as
   * "(root): Invalid input", which named no field: an agent whose bid had one bad estimate was
   * told nothing useful. The issues of the closest branch are reported instead.
   */
  describe('a union that matches no branch', () => {
    const step = { id: 's1', skill: 'sql', consumes: [], produces: ['x'], estUsd: 0.1, estMs: 10 };
    const messageOf = (schema: Parameters<typeof decodePayload>[0], value: unknown): string => {
      try {
        decodePayload(schema, JSON.stringify(value), 'proposal');
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error('expected a rejection');
    };

    it('names the bad field of a bid', () => {
      expect(messageOf(Proposal, { steps: [{ ...step, estUsd: 'free' }] })).toBe('proposal is invalid: steps.0.estUsd: Invalid input: expected number, received string');
    });

    it('names the bad field of a decline', () => {
      expect(messageOf(Proposal, { decline: true, reason: 5 })).toBe('proposal is invalid: reason: Invalid input: expected string, received number');
    });

    it('says what the value should have been when no branch took its type', () => {
      expect(messageOf(Proposal, 5)).toBe('proposal is invalid: (root): Invalid input: expected object, received number');
      expect(messageOf(Constraints, { region: 5 })).toMatch(/^proposal is invalid: region: .*expected string.* or .*expected array/);
    });
  });
});
