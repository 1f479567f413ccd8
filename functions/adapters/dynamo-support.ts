/**
 * Pieces both DynamoDB adapters share: item-size arithmetic (DynamoDB refuses items over 400 KB),
 * paginated queries, batched reads, and the translation of SDK failures at the boundary.
 */
import { BatchGetCommand, QueryCommand, type DynamoDBDocumentClient, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import { PorchlightError } from '../../core/errors';
import { AdapterError, errorMessage, isRetryableSdkError, sdkErrorName, StoreError } from './errors';

/** DynamoDB's hard item-size limit, bytes. */
export const MAX_ITEM_BYTES = 400 * 1024;

/** The most actions one TransactWriteItems call may carry. */
export const MAX_TRANSACT_ITEMS = 100;

/** The most keys one BatchGetItem call may carry. */
const MAX_BATCH_GET_KEYS = 100;

/** A DocumentClient item: attribute name → native JS value. */
export type Item = Record<string, unknown>;

function numberSize(n: number): number {
  const digits = String(Math.abs(n)).replace(/[.e+-]/g, '').replace(/^0+/, '').replace(/0+$/, '').length;
  return Math.min(21, Math.ceil(Math.max(digits, 1) / 2) + 1);
}

/**
 * Size of one attribute value as DynamoDB bills and limits it: UTF-8 bytes of strings, about one
 * byte per two significant digits of numbers, 3 bytes plus one per element of lists and maps.
 */
export function valueSize(value: unknown): number {
  if (value === null || value === undefined || typeof value === 'boolean') return 1;
  if (typeof value === 'string') return Buffer.byteLength(value, 'utf8');
  if (typeof value === 'number') return numberSize(value);
  if (value instanceof Uint8Array) return value.byteLength;
  if (value instanceof Set) return [...(value as Set<unknown>)].reduce<number>((n, v) => n + valueSize(v), 0);
  if (Array.isArray(value)) return value.reduce<number>((n, v) => n + 1 + valueSize(v), 3);
  if (typeof value === 'object') {
    return Object.entries(value as Item).reduce((n, [k, v]) => n + 1 + Buffer.byteLength(k, 'utf8') + valueSize(v), 3);
  }
  // bigint, the only other value the DocumentClient marshals: a number.
  return typeof value === 'bigint' ? numberSize(Number(value)) : 1;
}

/** Size of a whole item: attribute names plus values. */
export function itemSize(item: Item): number {
  return Object.entries(item).reduce((n, [k, v]) => n + Buffer.byteLength(k, 'utf8') + valueSize(v), 0);
}

/** Runs a Query to the end (or until `max` items), following LastEvaluatedKey. */
export async function queryAll(client: DynamoDBDocumentClient, input: QueryCommandInput, operation: string, max = Infinity): Promise<Item[]> {
  const items: Item[] = [];
  let startKey: Record<string, unknown> | undefined;
  do {
    const page = await send(operation, () =>
      client.send(new QueryCommand({ ...input, ...(startKey !== undefined ? { ExclusiveStartKey: startKey } : {}) })),
    );
    items.push(...((page.Items ?? []) as Item[]));
    startKey = page.LastEvaluatedKey;
  } while (startKey !== undefined && items.length < max);
  return items.slice(0, max);
}

/**
 * Reads items by key, 100 keys per call, re-requesting UnprocessedKeys (DynamoDB returns them
 * under load instead of failing). Returns the items found, in no particular order.
 */
export async function batchGet(client: DynamoDBDocumentClient, tableName: string, keys: readonly Item[], operation: string): Promise<Item[]> {
  const found: Item[] = [];
  for (let i = 0; i < keys.length; i += MAX_BATCH_GET_KEYS) {
    let pending: Item[] | undefined = keys.slice(i, i + MAX_BATCH_GET_KEYS);
    for (let round = 0; pending !== undefined && pending.length > 0; round += 1) {
      if (round >= 5) throw new StoreError(operation, `${pending.length} keys stayed unprocessed after ${round} rounds`, true);
      const keysToRead: Item[] = pending;
      const out = await send(operation, () =>
        client.send(new BatchGetCommand({ RequestItems: { [tableName]: { Keys: keysToRead, ConsistentRead: true } } })),
      );
      found.push(...((out.Responses?.[tableName] ?? []) as Item[]));
      pending = out.UnprocessedKeys?.[tableName]?.Keys as Item[] | undefined;
    }
  }
  return found;
}

/**
 * Sends one DynamoDB call, turning any SDK failure into a StoreError that says whether a retry
 * can help. Callers map condition failures to domain errors before this catch-all sees them.
 */
export async function send<T>(operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw toStoreError(operation, err);
  }
}

/** Wraps an SDK failure as a StoreError; Porchlight and adapter errors pass through unchanged. */
export function toStoreError(operation: string, err: unknown): Error {
  if (err instanceof PorchlightError || err instanceof AdapterError) return err;
  return new StoreError(operation, `${sdkErrorName(err)}: ${errorMessage(err)}`, isRetryableSdkError(err), { cause: err });
}

/** True for a plain conditional-write failure. */
export function isConditionalCheckFailed(err: unknown): boolean {
  return sdkErrorName(err) === 'ConditionalCheckFailedException';
}

/** Per-action reason codes of a cancelled transaction (`None` for actions that were fine). */
export function cancellationReasons(err: unknown): string[] | undefined {
  if (sdkErrorName(err) !== 'TransactionCanceledException') return undefined;
  const reasons = (err as { CancellationReasons?: { Code?: string }[] }).CancellationReasons;
  return (reasons ?? []).map((r) => r.Code ?? 'None');
}
