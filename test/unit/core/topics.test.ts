import { filters, isValidId, MAX_ID_LENGTH, parseTopic, topics, validateId } from '../../../core/topics';
import { InvalidIdError, TopicParseError } from '../../../core/errors';

describe('topics', () => {
  describe('validateId', () => {
    it.each([
      ['', /is empty/],
      ['a/b', /contains '\/'/],
      ['a+b', /contains '\+'/],
      ['a#', /contains '#'/],
      ['$SYS', /starts with '\$'/],
      ['x'.repeat(MAX_ID_LENGTH + 1), /at most 128/],
      ['a b', /contains " "/],
      ['a.b', /contains "\."/],
    ])('rejects %j with a specific message', (id, message) => {
      expect(() => validateId('agentId', id)).toThrow(InvalidIdError);
      expect(() => validateId('agentId', id)).toThrow(message);
    });

    it('accepts thing-name style ids and UUIDs', () => {
      expect(validateId('agentId', 'sql-optimiser_01:eu')).toBe('sql-optimiser_01:eu');
      expect(isValidId('6f1c2a4e-2b7d-4c3e-9a41-0c9d2b1e7f00')).toBe(true);
      expect(isValidId('x'.repeat(MAX_ID_LENGTH))).toBe(true);
    });
  });

  describe('builders', () => {
    it('builds every agent topic', () => {
      expect(topics.agentResume('a1')).toBe('agents/a1/resume');
      expect(topics.agentStatus('a1')).toBe('agents/a1/status');
      expect(topics.agentTelemetry('a1')).toBe('agents/a1/telemetry');
      expect(topics.agentErrors('a1')).toBe('agents/a1/errors');
    });

    it('builds task topics under the default root and a data-class root', () => {
      expect(topics.taskProposal('t1', 'a1')).toBe('tasks/t1/proposal/a1');
      expect(topics.taskAssign('t1', 'a1', 'patient-data')).toBe('patient-data/t1/assign/a1');
      expect(topics.taskOutput('t1', 's1', 'a1')).toBe('tasks/t1/output/s1/a1');
      expect(topics.taskProgress('t1', 's1', 'a1', 'patient-data')).toBe('patient-data/t1/progress/s1/a1');
    });

    it("builds a client's own tree, its id spliced in and validated", () => {
      expect(topics.clientRequest('c1', 't1')).toBe('clients/c1/tasks/t1/request');
      expect(topics.clientCancel('c1', 't1', 'patient-data')).toBe('clients/c1/patient-data/t1/cancel');
      expect(topics.clientStatus('c1', 't1')).toBe('clients/c1/tasks/t1/status');
      expect(topics.clientResult('c1', 't1')).toBe('clients/c1/tasks/t1/result');
      expect(topics.clientOutput('c1', 't1', 's1')).toBe('clients/c1/tasks/t1/output/s1');
      expect(topics.clientProgress('c1', 't1', 's1')).toBe('clients/c1/tasks/t1/progress/s1');
      expect(topics.clientErrors('c1')).toBe('clients/c1/errors');
      expect(filters.clientResults('c1')).toBe('clients/c1/tasks/+/result');
      expect(() => topics.clientRequest('+', 't1')).toThrow(InvalidIdError);
      expect(() => topics.clientStatus('c1', 't1', 'secrets')).toThrow(TopicParseError);
    });

    it('refuses to splice an invalid id or an unknown root', () => {
      expect(() => topics.taskRequest('t/1')).toThrow(InvalidIdError);
      expect(() => topics.taskStatus('t1', 'secrets')).toThrow(TopicParseError);
    });

    it('builds shared pool subscriptions with the pool as share group', () => {
      expect(filters.sharedPool('gpu')).toBe('$share/gpu/tasks/+/pool/gpu');
      expect(filters.assignmentsFor('a1')).toBe('tasks/+/assign/a1');
    });
  });

  describe('parseTopic', () => {
    it('round-trips every builder', () => {
      expect(parseTopic(topics.agentResume('a1'))).toEqual({ kind: 'agent-resume', agentId: 'a1' });
      expect(parseTopic(topics.taskRequest('t1'))).toEqual({ kind: 'task-request', taskRoot: 'tasks', taskId: 't1' });
      expect(parseTopic(topics.taskProposal('t1', 'a1', 'patient-data'))).toEqual({
        kind: 'task-proposal', taskRoot: 'patient-data', taskId: 't1', agentId: 'a1',
      });
      expect(parseTopic(topics.taskPool('t1', 'gpu'))).toEqual({ kind: 'task-pool', taskRoot: 'tasks', taskId: 't1', pool: 'gpu' });
      expect(parseTopic(topics.taskProgress('t1', 's2', 'a1'))).toEqual({ kind: 'task-progress', taskRoot: 'tasks', taskId: 't1', stepId: 's2', agentId: 'a1' });
      expect(parseTopic(topics.taskOutput('t1', 's2', 'a1'))).toEqual({ kind: 'task-output', taskRoot: 'tasks', taskId: 't1', stepId: 's2', agentId: 'a1' });
      const client = { clientId: 'c1', taskRoot: 'patient-data', taskId: 't1' };
      expect(parseTopic(topics.clientRequest('c1', 't1', 'patient-data'))).toEqual({ kind: 'client-request', ...client });
      expect(parseTopic(topics.clientCancel('c1', 't1', 'patient-data'))).toEqual({ kind: 'client-cancel', ...client });
      expect(parseTopic(topics.clientStatus('c1', 't1', 'patient-data'))).toEqual({ kind: 'client-status', ...client });
      expect(parseTopic(topics.clientResult('c1', 't1', 'patient-data'))).toEqual({ kind: 'client-result', ...client });
      expect(parseTopic(topics.clientOutput('c1', 't1', 's1', 'patient-data'))).toEqual({ kind: 'client-output', ...client, stepId: 's1' });
      expect(parseTopic(topics.clientProgress('c1', 't1', 's1', 'patient-data'))).toEqual({ kind: 'client-progress', ...client, stepId: 's1' });
      expect(parseTopic(topics.clientErrors('c1'))).toEqual({ kind: 'client-errors', clientId: 'c1' });
    });

    it('parses IoT lifecycle events', () => {
      expect(parseTopic('$aws/events/presence/disconnected/agent-7')).toEqual({ kind: 'presence', event: 'disconnected', clientId: 'agent-7' });
    });

    it.each([
      ['', /empty/],
      ['kitchen/temp', /not a Porchlight topic/],
      ['agents/a1/resume/extra', /must have 3 levels/],
      ['agents/a1/wishes', /unknown agent topic/],
      ['tasks/t1/explode', /unknown task topic/],
      ['tasks/t1/proposal', /unknown task topic/],
      ['tasks/t1/output/s1/a1/x', /has 6 levels/],
      ['tasks/t1/output/s1', /unknown task topic/],
      ['tasks/t1/cancel', /unknown task topic/],
      ['tasks/t1/result', /unknown task topic/],
      ['clients/c1/secrets/t1/request', /unknown task root/],
      ['clients/c1/tasks/t1/assign', /unknown client task topic/],
      ['clients/c1/tasks/t1/output/s1/x', /has 7 levels/],
      ['clients/c+/tasks/t1/request', /contains '\+'/],
      ['tasks/$bad/request', /starts with '\$'/],
      ['$aws/events/presence/rebooted/a1', /unknown presence event/],
    ])('rejects %j specifically', (topic, message) => {
      expect(() => parseTopic(topic)).toThrow(TopicParseError);
      expect(() => parseTopic(topic)).toThrow(message);
    });
  });
});
