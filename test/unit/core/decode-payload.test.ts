import { ValidationError } from '../../../core/errors';
import { Orchestrator, DEFAULT_ORCHESTRATOR_CONFIG } from '../../../core/orchestrator';
import { MAX_JSON_DEPTH, StepOutput, TaskRequest, decodePayload, jsonNestingDepth, parseMessage } from '../../../core/schemas';
import { InMemoryRegistry, InMemoryTaskStore, ManualClock, ManualTimer, RecordingPublisher, SequentialIds, inbound } from '../../helpers/in-memory-ports';

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
        tasks, registry: new InMemoryRegistry(), publisher, timer: new ManualTimer(), clock: new ManualClock(), ids: new SequentialIds(), config: DEFAULT_ORCHESTRATOR_CONFIG,
      });
      const text = `{"goal":"g","want":["x"],"input":{"a":${nestedArrays(30_000)}}}`;
      await expect(orchestrator.onRequest(inbound('tasks/t1/request', text))).resolves.toMatchObject({ status: 'rejected', code: 'invalid-payload' });
      expect(tasks.size).toBe(0);
      expect(publisher.last('tasks/t1/status')).toMatchObject({ state: 'rejected' });
    });
  });
});
