import 'aws-sdk-client-mock-jest';
import { ConditionalCheckFailedException, DynamoDBClient, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { DuplicateTaskError, VersionConflictError } from '../../../../core/errors';
import { DEFAULT_ORCHESTRATOR_CONFIG } from '../../../../core/orchestrator';
import { DynamoTaskStore, dueShardOf, assigneesOf, DUE_SHARDS } from '../../../../functions/adapters/dynamo-task-store';
import { ItemTooLargeError, StoreError } from '../../../../functions/adapters/errors';
import { step, taskRecord } from '../helpers/fixtures';

const ddb = mockClient(DynamoDBDocumentClient);
const client = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'eu-central-1' }));
const TABLE_NAME = 'porchlight-test';

function store() {
  return new DynamoTaskStore({ client, tableName: TABLE_NAME });
}

function ccf() {
  return new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });
}

function cancelled(...codes: string[]) {
  return new TransactionCanceledException({
    message: 'Transaction cancelled',
    $metadata: {},
    CancellationReasons: codes.map((Code) => ({ Code })),
  });
}

function storedItem(task = taskRecord(), assignees: string[] = []) {
  return { pk: `TASK#${task.taskId}`, sk: 'TASK', version: task.version, assignees, data: JSON.stringify(task) };
}

beforeEach(() => ddb.reset());

describe('DynamoTaskStore', () => {
  describe('create', () => {
    it('puts the task item with attribute_not_exists(pk) when the task has no assignees', async () => {
      ddb.on(PutCommand).resolves({});
      const task = taskRecord();
      await store().create(task);
      expect(ddb).toHaveReceivedCommandTimes(PutCommand, 1);
      expect(ddb.calls()).toHaveLength(1);
      const input = ddb.commandCalls(PutCommand)[0]!.args[0].input;
      expect(input).toEqual({
        TableName: TABLE_NAME,
        ConditionExpression: 'attribute_not_exists(pk)',
        Item: {
          pk: 'TASK#t-1',
          sk: 'TASK',
          entity: 'task',
          version: 1,
          state: 'submitted',
          assignees: [],
          data: JSON.stringify(task),
          dueShard: dueShardOf('t-1'),
          dueAt: task.windowClosesAt,
        },
      });
    });

    it('throws DuplicateTaskError keeping the cause when the id exists', async () => {
      const failure = ccf();
      ddb.on(PutCommand).rejects(failure);
      const err = await store().create(taskRecord()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DuplicateTaskError);
      expect((err as DuplicateTaskError).taskId).toBe('t-1');
      expect((err as DuplicateTaskError).cause).toBe(failure);
      expect(ddb).not.toHaveReceivedCommand(TransactWriteCommand);
    });

    it('writes assignee pointers in the same transaction and maps a cancelled condition to DuplicateTaskError', async () => {
      const failure = cancelled('ConditionalCheckFailed', 'None');
      ddb.on(TransactWriteCommand).rejects(failure);
      const task = taskRecord({ state: 'working', phase: 'executing', steps: { s1: step('s1', { state: 'assigned', agentId: 'agent-b', epoch: 1, leaseExpiresAt: 1_005_000 }) } });
      const err = await store().create(task).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DuplicateTaskError);
      expect((err as Error).cause).toBe(failure);
      const items = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems!;
      expect(items).toHaveLength(2);
      expect(items[0]!.Put!.ConditionExpression).toBe('attribute_not_exists(pk)');
      expect(items[1]).toEqual({ Put: { TableName: TABLE_NAME, Item: { pk: 'ASSIGNEE#agent-b', sk: 'TASK#t-1', entity: 'assignee' } } });
      expect(ddb).not.toHaveReceivedCommand(PutCommand);
    });

    it('rejects an item over 400 KB with ItemTooLargeError and sends nothing', async () => {
      const task = taskRecord({ artifacts: { blob: 'x'.repeat(420 * 1024) } });
      const err = await store().create(task).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ItemTooLargeError);
      expect((err as ItemTooLargeError).code).toBe('payload-too-large');
      expect((err as Error).message).toMatch(/task t-1 would be a \d+-byte DynamoDB item; the limit is 409600 bytes/);
      expect(ddb.calls()).toHaveLength(0);
    });

    it('wraps a throttled write as a retryable StoreError', async () => {
      ddb.on(PutCommand).rejects(Object.assign(new Error('slow down'), { name: 'ProvisionedThroughputExceededException', $fault: 'client', $metadata: {} }));
      const err = await store().create(taskRecord()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).retryable).toBe(true);
    });
  });

  describe('save', () => {
    it('puts with #version = :expected after a get, without a read or a transaction when assignees are unchanged', async () => {
      ddb.on(GetCommand).resolves({ Item: storedItem() });
      ddb.on(PutCommand).resolves({});
      const s = store();
      const task = (await s.get('t-1'))!;
      task.version = 2;
      task.updatedAt = 1_001_000;
      await s.save(task, 1);
      expect(ddb).toHaveReceivedCommandTimes(GetCommand, 1);
      expect(ddb).toHaveReceivedCommandWith(PutCommand, {
        TableName: TABLE_NAME,
        ConditionExpression: '#version = :expected',
        ExpressionAttributeNames: { '#version': 'version' },
        ExpressionAttributeValues: { ':expected': 1 },
      });
      expect(ddb.commandCalls(PutCommand)[0]!.args[0].input.Item).toMatchObject({ version: 2, pk: 'TASK#t-1' });
      expect(ddb).not.toHaveReceivedCommand(TransactWriteCommand);
    });

    it('throws VersionConflictError keeping the cause when the stored version moved on', async () => {
      ddb.on(GetCommand).resolves({ Item: storedItem() });
      const failure = ccf();
      ddb.on(PutCommand).rejects(failure);
      const s = store();
      const task = (await s.get('t-1'))!;
      task.version = 2;
      const err = await s.save(task, 1).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(VersionConflictError);
      expect((err as Error).cause).toBe(failure);
    });

    it('adds and deletes assignee pointers in one transaction when the assignee set changes', async () => {
      const before = taskRecord({
        state: 'working',
        phase: 'executing',
        steps: { s1: step('s1', { state: 'assigned', agentId: 'agent-a', epoch: 1, leaseExpiresAt: 1_010_000 }) },
        stepOrder: ['s1'],
      });
      ddb.on(GetCommand).resolves({ Item: storedItem(before, ['agent-a']) });
      ddb.on(TransactWriteCommand).resolves({});
      const s = store();
      const task = (await s.get('t-1'))!;
      task.steps.s1 = step('s1', { state: 'assigned', agentId: 'agent-b', epoch: 2, leaseExpiresAt: 1_020_000, excluded: ['agent-a'] });
      task.version = 2;
      await s.save(task, 1);
      const items = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems!;
      expect(items).toHaveLength(3);
      expect(items[0]!.Put).toMatchObject({ ConditionExpression: '#version = :expected', ExpressionAttributeValues: { ':expected': 1 } });
      expect(items[0]!.Put!.Item).toMatchObject({ assignees: ['agent-b'], dueAt: 1_020_000 });
      expect(items[1]).toEqual({ Put: { TableName: TABLE_NAME, Item: { pk: 'ASSIGNEE#agent-b', sk: 'TASK#t-1', entity: 'assignee' } } });
      expect(items[2]).toEqual({ Delete: { TableName: TABLE_NAME, Key: { pk: 'ASSIGNEE#agent-a', sk: 'TASK#t-1' } } });
      expect(ddb).not.toHaveReceivedCommand(PutCommand);
    });

    it('maps a transaction cancelled by the version condition to VersionConflictError', async () => {
      ddb.on(GetCommand).resolves({ Item: { version: 1, assignees: [] } });
      const failure = cancelled('ConditionalCheckFailed', 'None');
      ddb.on(TransactWriteCommand).rejects(failure);
      const task = taskRecord({ version: 2, state: 'working', phase: 'executing', steps: { s1: step('s1', { state: 'assigned', agentId: 'agent-a', epoch: 1 }) } });
      const err = await store().save(task, 1).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(VersionConflictError);
      expect((err as Error).cause).toBe(failure);
    });

    it('treats a transaction conflict on a pointer as a retryable StoreError, not a version conflict', async () => {
      ddb.on(GetCommand).resolves({ Item: { version: 1, assignees: [] } });
      ddb.on(TransactWriteCommand).rejects(cancelled('None', 'TransactionConflict'));
      const task = taskRecord({ version: 2, state: 'working', phase: 'executing', steps: { s1: step('s1', { state: 'assigned', agentId: 'agent-a', epoch: 1 }) } });
      const err = await store().save(task, 1).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreError);
      expect(err).not.toBeInstanceOf(VersionConflictError);
    });

    it('reads the stored assignees consistently when it has not seen the expected version', async () => {
      ddb.on(GetCommand).resolves({ Item: { version: 4, assignees: ['agent-a'] } });
      ddb.on(TransactWriteCommand).resolves({});
      const task = taskRecord({ version: 5, state: 'completed', phase: 'done', finishedAt: 1_100_000, retainedClearedAt: 1_200_000, expiresAt: 2_000 });
      await store().save(task, 4);
      expect(ddb).toHaveReceivedCommandWith(GetCommand, {
        TableName: TABLE_NAME,
        Key: { pk: 'TASK#t-1', sk: 'TASK' },
        ConsistentRead: true,
        ProjectionExpression: '#version, assignees',
      });
      const items = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems!;
      expect(items.map((i) => Object.keys(i)[0])).toEqual(['Put', 'Delete']);
      const put = items[0]!.Put!.Item!;
      expect(put.expiresAt).toBe(2_000);
      expect(put).not.toHaveProperty('dueAt');
      expect(put).not.toHaveProperty('dueShard');
    });

    it('throws VersionConflictError without writing when the stored version is not the expected one', async () => {
      ddb.on(GetCommand).resolves({ Item: { version: 7, assignees: [] } });
      const err = await store().save(taskRecord({ version: 5 }), 4).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(VersionConflictError);
      expect((err as Error).message).toContain('is at version 7');
      expect(ddb).not.toHaveReceivedCommand(PutCommand);
      expect(ddb).not.toHaveReceivedCommand(TransactWriteCommand);
    });

    it('throws VersionConflictError when the task does not exist', async () => {
      ddb.on(GetCommand).resolves({});
      const err = await store().save(taskRecord({ version: 2 }), 1).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(VersionConflictError);
      expect(ddb).not.toHaveReceivedCommand(PutCommand);
    });
  });

  describe('get', () => {
    it('reads the task consistently and parses the stored JSON', async () => {
      const task = taskRecord({ artifacts: { deep: { a: [{ b: null }] } } });
      ddb.on(GetCommand).resolves({ Item: storedItem(task) });
      await expect(store().get('t-1')).resolves.toEqual(task);
      expect(ddb).toHaveReceivedCommandWith(GetCommand, { TableName: TABLE_NAME, Key: { pk: 'TASK#t-1', sk: 'TASK' }, ConsistentRead: true });
    });

    it('returns undefined for an unknown task', async () => {
      ddb.on(GetCommand).resolves({});
      await expect(store().get('nope')).resolves.toBeUndefined();
    });
  });

  describe('putProposal', () => {
    const proposal = { taskId: 't-1', agentId: 'agent-a', receivedAt: 1_000_500, proposal: { v: 1 as const, decline: true as const, reason: 'busy' } };

    it('stores the proposal unless an identical body is already there', async () => {
      ddb.on(PutCommand).resolves({});
      await expect(store().putProposal(proposal)).resolves.toBe(true);
      const body = JSON.stringify(proposal.proposal);
      expect(ddb.commandCalls(PutCommand)[0]!.args[0].input).toEqual({
        TableName: TABLE_NAME,
        ConditionExpression: 'attribute_not_exists(pk) OR #body <> :body',
        ExpressionAttributeNames: { '#body': 'body' },
        ExpressionAttributeValues: { ':body': body },
        Item: {
          pk: 'TASK#t-1',
          sk: 'PROPOSAL#agent-a',
          entity: 'proposal',
          taskId: 't-1',
          agentId: 'agent-a',
          body,
          receivedAt: 1_000_500,
          expiresAt: Math.ceil((1_000_500 + 7 * 24 * 3600 * 1000) / 1000),
        },
      });
    });

    it('returns false for a redelivered identical proposal', async () => {
      ddb.on(PutCommand).rejects(ccf());
      await expect(store().putProposal(proposal)).resolves.toBe(false);
    });
  });

  describe('listProposals', () => {
    it('queries the task partition for PROPOSAL# items, following pages', async () => {
      const item = (agentId: string) => ({ taskId: 't-1', agentId, receivedAt: 5, body: JSON.stringify({ v: 1, decline: true, reason: 'no' }) });
      ddb.on(QueryCommand).resolvesOnce({ Items: [item('a')], LastEvaluatedKey: { pk: 'TASK#t-1', sk: 'PROPOSAL#a' } }).resolvesOnce({ Items: [item('b')] });
      const found = await store().listProposals('t-1');
      expect(found.map((p) => p.agentId)).toEqual(['a', 'b']);
      expect(found[0]!.proposal).toEqual({ v: 1, decline: true, reason: 'no' });
      expect(ddb).toHaveReceivedNthCommandWith(1, QueryCommand, {
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': 'TASK#t-1', ':prefix': 'PROPOSAL#' },
        ConsistentRead: true,
      });
      expect(ddb).toHaveReceivedNthCommandWith(2, QueryCommand, { ExclusiveStartKey: { pk: 'TASK#t-1', sk: 'PROPOSAL#a' } });
    });
  });

  describe('tasksAssignedTo', () => {
    it('returns the task ids of the agent pointer items', async () => {
      ddb.on(QueryCommand).resolves({ Items: [{ sk: 'TASK#t-1' }, { sk: 'TASK#t-9' }] });
      await expect(store().tasksAssignedTo('agent-a')).resolves.toEqual(['t-1', 't-9']);
      expect(ddb).toHaveReceivedCommandWith(QueryCommand, { KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': 'ASSIGNEE#agent-a' } });
    });
  });

  describe('listDue', () => {
    it('queries every shard of byDue with dueAt <= now and returns the most overdue first, up to the limit', async () => {
      const a = taskRecord({ taskId: 'a', windowClosesAt: 30 });
      const b = taskRecord({ taskId: 'b', windowClosesAt: 10 });
      const c = taskRecord({ taskId: 'c', windowClosesAt: 20 });
      ddb.on(QueryCommand, { ExpressionAttributeValues: { ':shard': 'DUE#0', ':now': 100 } }).resolves({ Items: [{ ...storedItem(a), dueAt: 30 }] });
      ddb.on(QueryCommand, { ExpressionAttributeValues: { ':shard': 'DUE#1', ':now': 100 } }).resolves({ Items: [{ ...storedItem(b), dueAt: 10 }] });
      ddb.on(QueryCommand, { ExpressionAttributeValues: { ':shard': 'DUE#2', ':now': 100 } }).resolves({ Items: [{ ...storedItem(c), dueAt: 20 }] });
      ddb.on(QueryCommand, { ExpressionAttributeValues: { ':shard': 'DUE#3', ':now': 100 } }).resolves({ Items: [] });
      const due = await store().listDue(100, 2);
      expect(due.map((t) => t.taskId)).toEqual(['b', 'c']);
      expect(ddb).toHaveReceivedCommandTimes(QueryCommand, DUE_SHARDS);
      expect(ddb).toHaveReceivedCommandWith(QueryCommand, {
        IndexName: 'byDue',
        KeyConditionExpression: '#shard = :shard AND #dueAt <= :now',
        ExpressionAttributeNames: { '#shard': 'dueShard', '#dueAt': 'dueAt' },
        Limit: 2,
      });
    });

    it('reads the full items when the index projects keys only', async () => {
      const a = taskRecord({ taskId: 'a' });
      ddb.on(QueryCommand).resolves({ Items: [] });
      ddb.on(QueryCommand, { ExpressionAttributeValues: { ':shard': 'DUE#2', ':now': 100 } }).resolves({ Items: [{ pk: 'TASK#a', sk: 'TASK', dueShard: 'DUE#2', dueAt: 5 }] });
      ddb.on(BatchGetCommand).resolves({ Responses: { [TABLE_NAME]: [storedItem(a)] } });
      const due = await store().listDue(100, 10);
      expect(due).toEqual([a]);
      expect(ddb).toHaveReceivedCommandWith(BatchGetCommand, { RequestItems: { [TABLE_NAME]: { Keys: [{ pk: 'TASK#a', sk: 'TASK' }], ConsistentRead: true } } });
    });

    it('skips an item whose data is not a task record, reports it, and still returns the others', async () => {
      const good = taskRecord({ taskId: 'good', windowClosesAt: 20 });
      ddb.on(QueryCommand).resolves({ Items: [] });
      ddb.on(QueryCommand, { ExpressionAttributeValues: { ':shard': 'DUE#0', ':now': 100 } }).resolves({
        Items: [{ ...storedItem(good), dueAt: 20 }, { pk: 'TASK#bad', sk: 'TASK', dueShard: 'DUE#0', dueAt: 10, data: '{"taskId": "bad", ' }],
      });
      const unreadable: { key: string; error: StoreError }[] = [];
      const due = await new DynamoTaskStore({
        client, tableName: TABLE_NAME, onUnreadable: (key, error) => unreadable.push({ key, error }),
      }).listDue(100, 10);
      expect(due.map((t) => t.taskId)).toEqual(['good']);
      expect(unreadable).toEqual([{ key: 'TASK#bad', error: expect.any(StoreError) }]);
      expect(unreadable[0]?.error.message).toMatch(/data attribute is not JSON/);
    });
  });

  describe('due index attributes', () => {
    function savedItem(task: ReturnType<typeof taskRecord>) {
      return store().create(task).then(() => ddb.commandCalls(PutCommand)[0]!.args[0].input.Item!);
    }

    it('indexes a live task at its earliest lease, deadline or unflushed outbox', async () => {
      ddb.on(PutCommand).resolves({});
      const task = taskRecord({
        state: 'working',
        phase: 'executing',
        deadlineAt: 9_000,
        updatedAt: 8_000,
        outbox: [{ topic: 'tasks/t-1/status', payload: {}, qos: 1, retain: true }],
        steps: { s1: step('s1', { state: 'assigned', agentId: 'x', epoch: 1, leaseExpiresAt: 8_500 }) },
        stepOrder: ['s1'],
      });
      // The lease makes it a transaction: the assignee pointer rides along.
      ddb.on(TransactWriteCommand).resolves({});
      await store().create(task);
      const item = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems![0]!.Put!.Item!;
      expect(item).toMatchObject({ dueShard: dueShardOf('t-1'), dueAt: 8_000 });
    });

    it('indexes a finished task at its retention clean-up until its retained topics are cleared', async () => {
      ddb.on(PutCommand).resolves({});
      const item = await savedItem(taskRecord({ state: 'completed', phase: 'done', finishedAt: 50_000 }));
      expect(item.dueAt).toBe(50_000 + DEFAULT_ORCHESTRATOR_CONFIG.retentionMs);
    });

    it('drops out of the index when terminal, cleared and fully published', async () => {
      ddb.on(PutCommand).resolves({});
      const item = await savedItem(taskRecord({ state: 'failed', phase: 'done', finishedAt: 5, retainedClearedAt: 10, expiresAt: 99 }));
      expect(item).not.toHaveProperty('dueAt');
      expect(item).not.toHaveProperty('dueShard');
      expect(item.expiresAt).toBe(99);
    });

    it('stays indexed while a cleared task still has messages to publish', async () => {
      ddb.on(PutCommand).resolves({});
      const item = await savedItem(
        taskRecord({ state: 'failed', phase: 'done', updatedAt: 77, retainedClearedAt: 70, outbox: [{ topic: 'tasks/t-1/status', payload: null, qos: 1, retain: true }] }),
      );
      expect(item.dueAt).toBe(77);
    });
  });

  describe('assigneesOf', () => {
    it('lists each agent with an assigned step once, and nobody once the task is terminal', () => {
      const steps = {
        s1: step('s1', { state: 'assigned', agentId: 'b' }),
        s2: step('s2', { state: 'assigned', agentId: 'a' }),
        s3: step('s3', { state: 'assigned', agentId: 'b' }),
        s4: step('s4', { state: 'completed', agentId: 'c' }),
      };
      expect(assigneesOf(taskRecord({ state: 'working', steps }))).toEqual(['a', 'b']);
      expect(assigneesOf(taskRecord({ state: 'canceled', steps }))).toEqual([]);
    });
  });

  describe('dueShardOf', () => {
    it('maps an id to one of the shards, always the same one', () => {
      const shards = new Set(Array.from({ length: 64 }, (_, i) => dueShardOf(`task-${i}`)));
      expect([...shards].sort()).toEqual(['DUE#0', 'DUE#1', 'DUE#2', 'DUE#3']);
      expect(dueShardOf('t-1')).toBe(dueShardOf('t-1'));
    });
  });
});
