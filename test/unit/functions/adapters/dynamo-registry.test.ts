import 'aws-sdk-client-mock-jest';
import { DynamoDBClient, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { VersionConflictError } from '../../../../core/errors';
import type { AgentRecord } from '../../../../core/model';
import { AGENTS_PARTITION, DynamoRegistry, STATS_SK } from '../../../../functions/adapters/dynamo-registry';
import { latencyBucket } from '../../../../core/reputation';
import { agentRecord, seedResume } from '../helpers/fixtures';

const ddb = mockClient(DynamoDBDocumentClient);
const client = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'eu-central-1' }));
const TABLE_NAME = 'porchlight-test';

function registry(maxAttempts?: number) {
  return new DynamoRegistry({ client, tableName: TABLE_NAME, ...(maxAttempts !== undefined ? { maxAttempts } : {}) });
}

function profile(record: AgentRecord) {
  return { pk: `AGENT#${record.agentId}`, sk: 'PROFILE', version: record.version, skills: record.resume.skills, data: JSON.stringify(record) };
}

function conflict() {
  return new TransactionCanceledException({ message: 'cancelled', $metadata: {}, CancellationReasons: [{ Code: 'ConditionalCheckFailed' }, { Code: 'None' }] });
}

beforeEach(() => ddb.reset());

describe('DynamoRegistry', () => {
  describe('putResume for a new agent', () => {
    it('creates the profile with attribute_not_exists(pk) and one bySkill entry per skill in one transaction', async () => {
      ddb.on(GetCommand).resolves({});
      ddb.on(TransactWriteCommand).resolves({});
      const record = await registry().putResume('agent-a', seedResume, { verified: ['gdpr'], unverified: ['ISO27001'], pools: ['sql-pool'] }, 5_000);
      expect(record).toEqual({
        agentId: 'agent-a',
        resume: seedResume,
        state: 'online',
        verifiedAccredit: ['gdpr'],
        unverifiedAccredit: ['ISO27001'],
        verifiedPools: ['sql-pool'],
        updatedAt: 5_000,
        version: 1,
      });
      expect(ddb).toHaveReceivedCommandTimes(TransactWriteCommand, 1);
      const items = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems!;
      const data = JSON.stringify(record);
      expect(items).toEqual([
        {
          Put: {
            TableName: TABLE_NAME,
            ConditionExpression: 'attribute_not_exists(pk)',
            Item: {
              pk: 'AGENT#agent-a', sk: 'PROFILE', entity: 'agent', version: 1, state: 'online', skills: ['sql-optimiser', 'nl2chart'], data,
              gsi1pk: AGENTS_PARTITION, gsi1sk: 'AGENT#agent-a',
            },
          },
        },
        { Put: { TableName: TABLE_NAME, Item: { pk: 'AGENT#agent-a', sk: 'SKILL#sql-optimiser', entity: 'agent-skill', version: 1, data, gsi1pk: 'SKILL#sql-optimiser', gsi1sk: 'AGENT#agent-a' } } },
        { Put: { TableName: TABLE_NAME, Item: { pk: 'AGENT#agent-a', sk: 'SKILL#nl2chart', entity: 'agent-skill', version: 1, data, gsi1pk: 'SKILL#nl2chart', gsi1sk: 'AGENT#agent-a' } } },
      ]);
    });
  });

  describe('putResume for a known agent', () => {
    it('deletes skill entries no longer advertised and keeps state, load and telemetry', async () => {
      const before = agentRecord({ state: 'draining', load: { active: 1, max: 2 }, version: 3 });
      ddb.on(GetCommand).resolves({ Item: profile(before) });
      ddb.on(TransactWriteCommand).resolves({});
      const resume = { ...seedResume, skills: ['nl2chart', 'summarise'] };
      const record = await registry().putResume('agent-a', resume, { verified: [], unverified: ['gdpr', 'ISO27001'] }, 9_000);
      expect(record).toMatchObject({ state: 'draining', load: { active: 1, max: 2 }, version: 4, verifiedAccredit: [] });
      const items = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems!;
      expect(items[0]!.Put).toMatchObject({ ConditionExpression: '#version = :expected', ExpressionAttributeNames: { '#version': 'version' }, ExpressionAttributeValues: { ':expected': 3 } });
      expect(items[1]).toEqual({ Delete: { TableName: TABLE_NAME, Key: { pk: 'AGENT#agent-a', sk: 'SKILL#sql-optimiser' } } });
      expect(items.slice(2).map((i) => i.Put!.Item!.sk)).toEqual(['SKILL#nl2chart', 'SKILL#summarise']);
    });

    it('retries from a fresh read when a concurrent update wins the race', async () => {
      ddb.on(GetCommand)
        .resolvesOnce({ Item: profile(agentRecord({ version: 3 })) })
        .resolvesOnce({ Item: profile(agentRecord({ version: 4, state: 'offline' })) });
      ddb.on(TransactWriteCommand).rejectsOnce(conflict()).resolves({});
      const record = await registry().putResume('agent-a', seedResume, { verified: ['gdpr'], unverified: [] }, 9_000);
      expect(record).toMatchObject({ version: 5, state: 'offline' });
      expect(ddb).toHaveReceivedCommandTimes(TransactWriteCommand, 2);
      expect(ddb.commandCalls(TransactWriteCommand)[1]!.args[0].input.TransactItems![0]!.Put!.ExpressionAttributeValues).toEqual({ ':expected': 4 });
    });

    it('gives up with VersionConflictError keeping the cause after the last attempt', async () => {
      ddb.on(GetCommand).resolves({ Item: profile(agentRecord({ version: 3 })) });
      const failure = conflict();
      ddb.on(TransactWriteCommand).rejects(failure);
      const err = await registry(2).putResume('agent-a', seedResume, { verified: [], unverified: [] }, 1).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(VersionConflictError);
      expect((err as Error).cause).toBe(failure);
      expect(ddb).toHaveReceivedCommandTimes(TransactWriteCommand, 2);
    });

    it('writes skill entries beyond one transaction as conditional puts that never overwrite a newer version', async () => {
      const many = Array.from({ length: 64 }, (_, i) => `old-${i}`);
      const fresh = Array.from({ length: 64 }, (_, i) => `new-${i}`);
      ddb.on(GetCommand).resolves({ Item: profile(agentRecord({ version: 2, resume: { ...seedResume, skills: many } })) });
      ddb.on(TransactWriteCommand).resolves({});
      ddb.on(PutCommand).resolves({});
      await registry().putResume('agent-a', { ...seedResume, skills: fresh }, { verified: [], unverified: [] }, 1);
      const items = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems!;
      expect(items).toHaveLength(100);
      expect(items.filter((i) => i.Delete !== undefined)).toHaveLength(64);
      expect(ddb).toHaveReceivedCommandTimes(PutCommand, 64 + 64 - 99);
      expect(ddb).toHaveReceivedCommandWith(PutCommand, {
        ConditionExpression: 'attribute_not_exists(pk) OR #version < :version',
        ExpressionAttributeValues: { ':version': 3 },
      });
    });
  });

  describe('setStatus', () => {
    it('updates the profile and every skill entry under the version condition', async () => {
      ddb.on(GetCommand).resolves({ Item: profile(agentRecord({ version: 2 })) });
      ddb.on(TransactWriteCommand).resolves({});
      const record = await registry().setStatus('agent-a', { v: 1, state: 'draining', load: { active: 3, max: 4 } }, 7_000);
      expect(record).toMatchObject({ state: 'draining', load: { active: 3, max: 4 }, updatedAt: 7_000, version: 3 });
      const items = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems!;
      expect(items).toHaveLength(3);
      expect(items.every((i) => JSON.parse(String(i.Put!.Item!.data)).state === 'draining')).toBe(true);
    });

    it('returns undefined and writes nothing for an agent without a résumé', async () => {
      ddb.on(GetCommand).resolves({});
      await expect(registry().setStatus('ghost', { v: 1, state: 'online' }, 1)).resolves.toBeUndefined();
      expect(ddb).not.toHaveReceivedCommand(TransactWriteCommand);
      expect(ddb).not.toHaveReceivedCommand(PutCommand);
    });
  });

  describe('recordPresence', () => {
    const offline = { v: 1 as const, state: 'offline' as const, reason: 'disconnected (CONNECTION_LOST)' };

    it('writes a newer mark with its status under the version condition', async () => {
      ddb.on(GetCommand).resolves({ Item: profile(agentRecord({ version: 2, presence: { event: 'connected', at: 1_000, version: 4 } })) });
      ddb.on(TransactWriteCommand).resolves({});
      const result = await registry().recordPresence('agent-a', { event: 'disconnected', at: 2_000, version: 4 }, offline, 9_000);
      expect(result?.order).toBe('newer');
      expect(result?.record).toMatchObject({ state: 'offline', presence: { event: 'disconnected', at: 2_000, version: 4 }, version: 3 });
      const put = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems![0]!.Put!;
      expect(put.ConditionExpression).toBe('#version = :expected');
      expect(put.ExpressionAttributeValues).toEqual({ ':expected': 2 });
    });

    it('writes nothing for a stale or duplicate mark', async () => {
      ddb.on(GetCommand).resolves({ Item: profile(agentRecord({ presence: { event: 'connected', at: 5_000, version: 8 } })) });
      await expect(registry().recordPresence('agent-a', { event: 'disconnected', at: 6_000, version: 7 }, offline, 9_000)).resolves.toMatchObject({ order: 'stale', record: { state: 'online' } });
      await expect(registry().recordPresence('agent-a', { event: 'connected', at: 5_000, version: 8 }, undefined, 9_000)).resolves.toMatchObject({ order: 'duplicate' });
      expect(ddb).not.toHaveReceivedCommand(TransactWriteCommand);
    });

    it('orders again after losing a race to a newer mark', async () => {
      ddb.on(GetCommand)
        .resolvesOnce({ Item: profile(agentRecord({ version: 2 })) })
        .resolves({ Item: profile(agentRecord({ version: 3, presence: { event: 'connected', at: 5_000, version: 9 } })) });
      ddb.on(TransactWriteCommand).rejectsOnce(conflict());
      const result = await registry().recordPresence('agent-a', { event: 'disconnected', at: 6_000, version: 8 }, offline, 9_000);
      expect(result).toMatchObject({ order: 'stale', record: { state: 'online', version: 3 } });
      expect(ddb).toHaveReceivedCommandTimes(TransactWriteCommand, 1);
    });

    it('returns undefined for an agent without a résumé', async () => {
      ddb.on(GetCommand).resolves({});
      await expect(registry().recordPresence('ghost', { event: 'connected', at: 1 }, undefined, 1)).resolves.toBeUndefined();
    });
  });

  describe('recordTelemetry', () => {
    it('stores the telemetry on the profile and skill entries', async () => {
      ddb.on(GetCommand).resolves({ Item: profile(agentRecord()) });
      ddb.on(TransactWriteCommand).resolves({});
      const telemetry = { v: 1 as const, executions: 10, costUsd: 0.01, p95Ms: 200, successRate: 0.9 };
      const record = await registry().recordTelemetry('agent-a', telemetry, 8_000);
      expect(record?.telemetry).toEqual(telemetry);
      expect(ddb).toHaveReceivedCommandTimes(TransactWriteCommand, 1);
    });

    it('returns undefined and writes nothing for an unknown agent', async () => {
      ddb.on(GetCommand).resolves({});
      await expect(registry().recordTelemetry('ghost', { v: 1, executions: 1, costUsd: 0, p95Ms: 1, successRate: 1 }, 1)).resolves.toBeUndefined();
      expect(ddb).not.toHaveReceivedCommand(TransactWriteCommand);
    });
  });

  describe('findBySkill', () => {
    it('runs one Query on the bySkill index partition of the skill', async () => {
      const a = agentRecord();
      ddb.on(QueryCommand).resolves({ Items: [{ pk: 'AGENT#agent-a', sk: 'SKILL#nl2chart', data: JSON.stringify(a) }] });
      await expect(registry().findBySkill('nl2chart')).resolves.toEqual([a]);
      expect(ddb).toHaveReceivedCommandTimes(QueryCommand, 1);
      expect(ddb).toHaveReceivedCommandWith(QueryCommand, {
        TableName: TABLE_NAME,
        IndexName: 'bySkill',
        KeyConditionExpression: '#gpk = :gpk',
        ExpressionAttributeNames: { '#gpk': 'gsi1pk' },
        ExpressionAttributeValues: { ':gpk': 'SKILL#nl2chart' },
      });
      expect(ddb).not.toHaveReceivedCommand(BatchGetCommand);
    });

    it('reads the profiles when the index does not project the data', async () => {
      const a = agentRecord();
      ddb.on(QueryCommand).resolves({ Items: [{ pk: 'AGENT#agent-a', sk: 'SKILL#nl2chart', gsi1pk: 'SKILL#nl2chart', gsi1sk: 'AGENT#agent-a' }] });
      ddb.on(BatchGetCommand).resolves({ Responses: { [TABLE_NAME]: [profile(a)] } });
      await expect(registry().findBySkill('nl2chart')).resolves.toEqual([a]);
      expect(ddb).toHaveReceivedCommandWith(BatchGetCommand, { RequestItems: { [TABLE_NAME]: { Keys: [{ pk: 'AGENT#agent-a', sk: 'PROFILE' }], ConsistentRead: true } } });
    });
  });

  describe('list', () => {
    it('pages through the AGENTS partition of the bySkill index', async () => {
      const a = agentRecord();
      const b = agentRecord({ agentId: 'agent-b' });
      ddb.on(QueryCommand)
        .resolvesOnce({ Items: [profile(a)], LastEvaluatedKey: { pk: 'AGENT#agent-a', sk: 'PROFILE', gsi1pk: AGENTS_PARTITION, gsi1sk: 'AGENT#agent-a' } })
        .resolvesOnce({ Items: [profile(b)] });
      await expect(registry().list()).resolves.toEqual([a, b]);
      expect(ddb).toHaveReceivedNthCommandWith(1, QueryCommand, { ExpressionAttributeValues: { ':gpk': AGENTS_PARTITION } });
      expect(ddb).toHaveReceivedNthCommandWith(2, QueryCommand, { ExclusiveStartKey: { pk: 'AGENT#agent-a', sk: 'PROFILE', gsi1pk: AGENTS_PARTITION, gsi1sk: 'AGENT#agent-a' } });
    });
  });

  describe('get', () => {
    it('reads the profile consistently', async () => {
      const a = agentRecord();
      ddb.on(GetCommand).resolves({ Item: profile(a) });
      await expect(registry().get('agent-a')).resolves.toEqual(a);
      expect(ddb).toHaveReceivedCommandWith(GetCommand, { Key: { pk: 'AGENT#agent-a', sk: 'PROFILE' }, ConsistentRead: true });
    });
  });
});

describe('DynamoRegistry measurements', () => {
  beforeEach(() => ddb.reset());
  const registry = () => new DynamoRegistry({ client: DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'eu-central-1' })), tableName: 'porchlight' });

  it('records a measurement as one UpdateItem that ADDs every counter and the latency bucket, reading nothing', async () => {
    ddb.on(UpdateCommand).resolves({});
    await registry().recordMeasurement('a1', { ok: true, ms: 750, bidMs: 50, usd: 0.02, bidUsd: 0.002 }, 123);
    expect(ddb).toHaveReceivedCommandTimes(UpdateCommand, 1);
    expect(ddb).not.toHaveReceivedCommand(GetCommand);
    const input = ddb.commandCalls(UpdateCommand)[0]!.args[0].input;
    expect(input.Key).toEqual({ pk: 'AGENT#a1', sk: STATS_SK });
    expect(input.ConditionExpression).toBeUndefined();
    expect(input.UpdateExpression).toMatch(/^ADD .* SET #entity = :entity, #at = :at$/);
    const added = Object.fromEntries(
      input.UpdateExpression!.replace(/^ADD /, '').replace(/ SET .*$/, '').split(', ').map((pair) => {
        const [name, value] = pair.split(' ');
        return [input.ExpressionAttributeNames![name!], input.ExpressionAttributeValues![value!]];
      }),
    );
    expect(added).toEqual({
      steps: 1, successes: 1, timed: 1, msSum: 750, bidMsSum: 50, costed: 1, usdSum: 0.02, bidUsdSum: 0.002, [`lat${latencyBucket(750)}`]: 1,
    });
  });

  it('adds no bucket and no cost for an untimed, unreported failure', async () => {
    ddb.on(UpdateCommand).resolves({});
    await registry().recordMeasurement('a1', { ok: false, bidMs: 50, bidUsd: 0.002 }, 1);
    const input = ddb.commandCalls(UpdateCommand)[0]!.args[0].input;
    expect(Object.values(input.ExpressionAttributeNames!)).not.toContain(`lat${latencyBucket(0)}`);
    expect(input.ExpressionAttributeValues).toMatchObject({ ':c0': 1, ':c1': 0, ':c2': 0, ':c5': 0 });
  });

  it('reads the stats items of several agents in one BatchGet and parses their sums', async () => {
    ddb.on(BatchGetCommand).resolves({
      Responses: { porchlight: [{ pk: 'AGENT#a1', sk: STATS_SK, steps: 2, successes: 1, timed: 2, msSum: 900, bidMsSum: 100, costed: 1, usdSum: 0.02, bidUsdSum: 0.002, lat20: 2 }] },
    });
    const found = await registry().measurements(['a1', 'a2']);
    expect(ddb.commandCalls(BatchGetCommand)[0]!.args[0].input.RequestItems!.porchlight!.Keys).toEqual([
      { pk: 'AGENT#a1', sk: STATS_SK }, { pk: 'AGENT#a2', sk: STATS_SK },
    ]);
    expect([...found.keys()]).toEqual(['a1']);
    expect(found.get('a1')).toEqual({ steps: 2, successes: 1, timed: 2, msSum: 900, bidMsSum: 100, costed: 1, usdSum: 0.02, bidUsdSum: 0.002, latency: { 20: 2 } });
  });
});
