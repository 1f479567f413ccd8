/**
 * A stateful stand-in for the single DynamoDB table behind the mocked DocumentClient: it keeps
 * items, evaluates the condition expressions the adapters use, applies transactions atomically,
 * and answers the key, byDue and bySkill queries. Lets a handler test run a message twice, or
 * fail half-way and retry, and compare where the table ends up.
 */
import { ConditionalCheckFailedException, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand, DeleteCommand, GetCommand, PutCommand, QueryCommand, TransactWriteCommand, type BatchGetCommandInput, type DeleteCommandInput,
  type GetCommandInput, type PutCommandInput, type QueryCommandInput, type TransactWriteCommandInput,
} from '@aws-sdk/lib-dynamodb';
import type { mocks } from './handler-env';
import { TABLE } from '../../../../infra/table-definition';

type Item = Record<string, unknown>;
type Condition = Pick<PutCommandInput, 'ConditionExpression' | 'ExpressionAttributeNames' | 'ExpressionAttributeValues'>;

const keyOf = (k: Record<string, unknown>): string => `${String(k.pk)}|${String(k.sk)}`;

/** The table. Items are deep-copied on the way in and out. */
export class FakeTable {
  private readonly items = new Map<string, Item>();
  /** Called before each write command is applied; may change the table (a concurrent writer) or throw (a failure). */
  beforeWrite: ((kind: 'put' | 'transact' | 'delete', input: unknown) => void) | undefined;
  /** Conditional writes that were refused. */
  refusedWrites = 0;

  /** Routes the mocked DocumentClient's commands to this table. */
  install(ddb: typeof mocks.ddb): void {
    ddb.on(GetCommand).callsFake((input: GetCommandInput) => this.get(input));
    ddb.on(PutCommand).callsFake((input: PutCommandInput) => this.put(input));
    ddb.on(DeleteCommand).callsFake((input: DeleteCommandInput) => this.delete(input));
    ddb.on(TransactWriteCommand).callsFake((input: TransactWriteCommandInput) => this.transact(input));
    ddb.on(QueryCommand).callsFake((input: QueryCommandInput) => this.query(input));
    ddb.on(BatchGetCommand).callsFake((input: BatchGetCommandInput) => this.batchGet(input));
  }

  /** Stores `item` as is. */
  seed(item: Item): void {
    this.items.set(keyOf(item), structuredClone(item));
  }

  /** The item under `pk`/`sk`, or undefined. */
  item(pk: string, sk: string): Item | undefined {
    const item = this.items.get(`${pk}|${sk}`);
    return item ? structuredClone(item) : undefined;
  }

  /** Every item, sorted by key: a comparable picture of the table. */
  snapshot(): Item[] {
    return [...this.items.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, item]) => structuredClone(item));
  }

  private get(input: GetCommandInput): { Item?: Item } {
    const item = this.items.get(keyOf(input.Key!));
    return item ? { Item: structuredClone(item) } : {};
  }

  private put(input: PutCommandInput): object {
    this.beforeWrite?.('put', input);
    if (!this.holds(input.Item!, input)) {
      this.refusedWrites += 1;
      throw new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });
    }
    this.items.set(keyOf(input.Item!), structuredClone(input.Item!));
    return {};
  }

  private delete(input: DeleteCommandInput): object {
    this.beforeWrite?.('delete', input);
    this.items.delete(keyOf(input.Key!));
    return {};
  }

  private transact(input: TransactWriteCommandInput): object {
    this.beforeWrite?.('transact', input);
    const actions = input.TransactItems ?? [];
    const reasons = actions.map((a) => (a.Put && !this.holds(a.Put.Item!, a.Put) ? 'ConditionalCheckFailed' : 'None'));
    if (reasons.some((r) => r !== 'None')) {
      this.refusedWrites += 1;
      throw new TransactionCanceledException({ message: 'Transaction cancelled', $metadata: {}, CancellationReasons: reasons.map((Code) => ({ Code })) });
    }
    for (const a of actions) {
      if (a.Put) this.items.set(keyOf(a.Put.Item!), structuredClone(a.Put.Item!));
      if (a.Delete) this.items.delete(keyOf(a.Delete.Key!));
    }
    return {};
  }

  private query(input: QueryCommandInput): { Items: Item[] } {
    const names = input.ExpressionAttributeNames ?? {};
    const values = input.ExpressionAttributeValues ?? {};
    const all = [...this.items.values()];
    let hits: Item[];
    if (input.IndexName === TABLE.dueIndex.name) {
      hits = all
        .filter((i) => i[names['#shard']!] === values[':shard'] && typeof i[names['#dueAt']!] === 'number' && (i[names['#dueAt']!] as number) <= (values[':now'] as number))
        .sort((a, b) => (a[names['#dueAt']!] as number) - (b[names['#dueAt']!] as number));
    } else if (input.IndexName !== undefined) {
      hits = all.filter((i) => i[names['#gpk']!] === values[':gpk']).sort((a, b) => String(a.pk).localeCompare(String(b.pk)));
    } else {
      const prefix = values[':prefix'] as string | undefined;
      hits = all.filter((i) => i.pk === values[':pk'] && (prefix === undefined || String(i.sk).startsWith(prefix)));
    }
    return { Items: hits.map((i) => structuredClone(i)) };
  }

  private batchGet(input: BatchGetCommandInput): object {
    const responses: Record<string, Item[]> = {};
    for (const [table, { Keys }] of Object.entries(input.RequestItems ?? {})) {
      responses[table] = (Keys ?? []).flatMap((k) => {
        const item = this.items.get(keyOf(k));
        return item ? [structuredClone(item)] : [];
      });
    }
    return { Responses: responses };
  }

  /** The condition expressions the adapters write. */
  private holds(item: Item, c: Condition): boolean {
    const existing = this.items.get(keyOf(item));
    const v = c.ExpressionAttributeValues ?? {};
    switch (c.ConditionExpression) {
      case undefined: return true;
      case 'attribute_not_exists(pk)': return existing === undefined;
      case '#version = :expected': return existing !== undefined && existing.version === v[':expected'];
      case 'attribute_not_exists(pk) OR #body <> :body': return existing === undefined || existing.body !== v[':body'];
      case 'attribute_not_exists(pk) OR #version < :version': return existing === undefined || (existing.version as number) < (v[':version'] as number);
      default: throw new Error(`FakeTable does not understand the condition ${c.ConditionExpression}`);
    }
  }
}
