import 'aws-sdk-client-mock-jest';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { batchGet, itemSize, valueSize } from '../../../../functions/adapters/dynamo-support';
import { StoreError } from '../../../../functions/adapters/errors';

const ddb = mockClient(DynamoDBDocumentClient);
const client = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'eu-central-1' }));

beforeEach(() => ddb.reset());

describe('dynamo-support', () => {
  describe('itemSize', () => {
    it('counts attribute names and UTF-8 value bytes the way DynamoDB does', () => {
      expect(itemSize({ pk: 'TASK#1' })).toBe(2 + 6);
      expect(itemSize({ s: 'é' })).toBe(1 + 2);
      expect(valueSize(true)).toBe(1);
      expect(valueSize(null)).toBe(1);
      expect(valueSize(12345)).toBe(4);
      expect(valueSize(['ab', 'c'])).toBe(3 + (1 + 2) + (1 + 1));
      expect(valueSize({ k: 'v' })).toBe(3 + 1 + 1 + 1);
    });
  });

  describe('batchGet', () => {
    it('re-requests unprocessed keys until every item is read', async () => {
      ddb.on(BatchGetCommand)
        .resolvesOnce({ Responses: { t: [{ pk: 'a' }] }, UnprocessedKeys: { t: { Keys: [{ pk: 'b', sk: 'x' }] } } })
        .resolvesOnce({ Responses: { t: [{ pk: 'b' }] } });
      const items = await batchGet(client, 't', [{ pk: 'a', sk: 'x' }, { pk: 'b', sk: 'x' }], 'read');
      expect(items).toEqual([{ pk: 'a' }, { pk: 'b' }]);
      expect(ddb).toHaveReceivedNthCommandWith(2, BatchGetCommand, { RequestItems: { t: { Keys: [{ pk: 'b', sk: 'x' }], ConsistentRead: true } } });
    });

    it('splits more than 100 keys into several calls', async () => {
      ddb.on(BatchGetCommand).resolves({ Responses: { t: [] } });
      await batchGet(client, 't', Array.from({ length: 150 }, (_, i) => ({ pk: `p${i}`, sk: 's' })), 'read');
      expect(ddb).toHaveReceivedCommandTimes(BatchGetCommand, 2);
    });

    it('gives up with a retryable StoreError when keys stay unprocessed', async () => {
      ddb.on(BatchGetCommand).resolves({ UnprocessedKeys: { t: { Keys: [{ pk: 'a', sk: 'x' }] } } });
      const err = await batchGet(client, 't', [{ pk: 'a', sk: 'x' }], 'read').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreError);
      expect(err).toMatchObject({ retryable: true });
    });
  });
});
