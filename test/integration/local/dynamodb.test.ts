import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { ATTRIBUTE_TYPES, TABLE } from '../../../infra/table-definition';
import { createTableInput, ensureTable, startDynamoDbLocal } from '../../../local/dynamodb';
import { PortInUseError } from '../../../local/free-port';
import { freePort } from '../../helpers/free-port';

describe('DynamoDB Local', () => {
  describe('createTableInput', () => {
    it('declares every key attribute, the primary key and both GSIs from the shared table definition', () => {
      const input = createTableInput('t');
      expect(input.AttributeDefinitions).toEqual(Object.entries(ATTRIBUTE_TYPES).map(([AttributeName, AttributeType]) => ({ AttributeName, AttributeType })));
      expect(input.KeySchema).toEqual([{ AttributeName: TABLE.partitionKey, KeyType: 'HASH' }, { AttributeName: TABLE.sortKey, KeyType: 'RANGE' }]);
      expect(input.GlobalSecondaryIndexes?.map((g) => [g.IndexName, g.Projection?.ProjectionType])).toEqual([[TABLE.skillIndex.name, 'ALL'], [TABLE.dueIndex.name, 'ALL']]);
      expect(input.BillingMode).toBe('PAY_PER_REQUEST');
    });
  });

  describe('on disk', () => {
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'porchlight-ddb-'));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('keeps items across a restart and finds its table again without error', async () => {
      const port = await freePort();
      const first = await startDynamoDbLocal({ port, dbPath: dir });
      try {
        await first.client.send(new PutItemCommand({ TableName: first.tableName, Item: { pk: { S: 'TASK#kept' }, sk: { S: 'TASK' } } }));
      } finally {
        await first.stop();
      }
      const second = await startDynamoDbLocal({ port, dbPath: dir });
      try {
        await ensureTable(second.client, second.tableName);
        const out = await second.client.send(new GetItemCommand({ TableName: second.tableName, Key: { pk: { S: 'TASK#kept' }, sk: { S: 'TASK' } } }));
        expect(out.Item).toBeDefined();
      } finally {
        await second.stop();
      }
    }, 60_000);

    it('refuses a port that is already taken instead of talking to whatever holds it', async () => {
      const port = await freePort();
      const running = await startDynamoDbLocal({ port });
      try {
        await expect(startDynamoDbLocal({ port })).rejects.toBeInstanceOf(PortInUseError);
      } finally {
        await running.stop();
      }
    }, 60_000);
  });
});
