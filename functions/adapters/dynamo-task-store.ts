/**
 * The TaskStore port over the single DynamoDB table (infra/table-definition.ts).
 *
 * Items
 * - task: pk `TASK#{id}`, sk `TASK`. The record is stored as one JSON string (`data`) rather than
 *   a DynamoDB map: artifacts are arbitrary client JSON, and DynamoDB rejects maps nested deeper
 *   than 32 levels and empty-string map keys that JSON allows. Beside it sit the attributes the
 *   table itself needs: `version` (optimistic concurrency), `state`, `assignees`, `dueShard` /
 *   `dueAt` (the byDue index) and `expiresAt` (TTL, epoch seconds).
 * - proposal: pk `TASK#{id}`, sk `PROPOSAL#{agentId}`, the proposal JSON in `body`.
 * - assignee pointer: pk `ASSIGNEE#{agentId}`, sk `TASK#{taskId}`, one per agent with a live
 *   step of the task, so `tasksAssignedTo` is one Query. Pointers are written and deleted in the
 *   same TransactWriteItems as the task save that changes the assignee set, so they are never out
 *   of step with the task; a save that leaves the set unchanged is a single conditional Put.
 *
 * Due work: `dueAt` is core's `nextDueAt` (task-machine.ts): the earliest of the proposal-window
 * close, live leases, the deadline, the retention clean-up of a finished task, and the last update
 * while the outbox still holds messages. It is omitted (so the item drops out of the sparse byDue
 * index) when nothing can become due: a terminal task whose retained topics are cleared and whose
 * outbox is empty. `dueShard` spreads tasks over {@link DUE_SHARDS} index partitions by a hash of
 * the id, so one hot partition does not throttle the sweeper.
 */
import { createHash } from 'node:crypto';
import { GetCommand, PutCommand, TransactWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DuplicateTaskError, VersionConflictError } from '../../core/errors';
import { isTerminal, type ProposalRecord, type TaskRecord } from '../../core/model';
import { DEFAULT_ORCHESTRATOR_CONFIG, type OrchestratorConfig } from '../../core/orchestrator';
import { nextDueAt } from '../../core/task-machine';
import type { TaskStore } from '../../core/ports';
import { TABLE } from '../../infra/table-definition';
import { ItemTooLargeError, StoreError } from './errors';
import {
  batchGet, cancellationReasons, isConditionalCheckFailed, itemSize, MAX_ITEM_BYTES, MAX_TRANSACT_ITEMS, queryAll, send, toStoreError,
  type Item,
} from './dynamo-support';

/** Number of byDue index partitions. */
export const DUE_SHARDS = 4;

/** Default lifetime of proposal items after they arrive, ms (they matter only while a task plans). */
export const DEFAULT_PROPOSAL_TTL_MS = 7 * 24 * 3600 * 1000;

/** Construction options. */
export interface DynamoTaskStoreOptions {
  /** A DocumentClient; built once per process by the caller. */
  readonly client: DynamoDBDocumentClient;
  readonly tableName: string;
  /** How long a proposal item lives after it arrived, ms. @default DEFAULT_PROPOSAL_TTL_MS */
  readonly proposalTtlMs?: number;
  /** The orchestrator's settings; retention decides when a finished task is next due. @default DEFAULT_ORCHESTRATOR_CONFIG */
  readonly config?: OrchestratorConfig;
  /**
   * Told about a due task item that cannot be read (its `data` is not a task record), which
   * listDue skips so one bad item cannot stop every sweep. @default ignore
   */
  readonly onUnreadable?: (key: string, error: StoreError) => void;
}

const TASK_SK = 'TASK';
const taskPk = (taskId: string) => `TASK#${taskId}`;
const assigneePk = (agentId: string) => `ASSIGNEE#${agentId}`;
const PROPOSAL_PREFIX = 'PROPOSAL#';

/** The byDue partition of a task: `DUE#0` … `DUE#{DUE_SHARDS-1}`, stable for the task's life. */
export function dueShardOf(taskId: string): string {
  const first = createHash('sha256').update(taskId, 'utf8').digest()[0] ?? 0;
  return `DUE#${first % DUE_SHARDS}`;
}

/** Agents holding a live step of `task`, sorted; none once the task is terminal. */
export function assigneesOf(task: TaskRecord): string[] {
  if (isTerminal(task.state)) return [];
  const ids = new Set<string>();
  for (const step of Object.values(task.steps)) {
    if (step.state === 'assigned' && step.agentId !== undefined) ids.add(step.agentId);
  }
  return [...ids].sort();
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

/** The most recently seen assignee set per task; bounded, oldest evicted first. */
const ASSIGNEE_CACHE_SIZE = 512;

/** TaskStore over DynamoDB with conditional writes. See the module comment for the item layout. */
export class DynamoTaskStore implements TaskStore {
  private readonly client: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly proposalTtlMs: number;
  private readonly config: OrchestratorConfig;
  private readonly onUnreadable: (key: string, error: StoreError) => void;
  /**
   * Assignee set of the version this process last read or wrote, per task. A save needs the
   * previous set to delete pointers; a version is written once only, so a cached entry for the
   * expected version is exact. On a miss the store reads it (one consistent GetItem).
   */
  private readonly assigneeCache = new Map<string, { version: number; assignees: string[] }>();

  constructor(options: DynamoTaskStoreOptions) {
    this.client = options.client;
    this.tableName = options.tableName;
    this.proposalTtlMs = options.proposalTtlMs ?? DEFAULT_PROPOSAL_TTL_MS;
    this.config = options.config ?? DEFAULT_ORCHESTRATOR_CONFIG;
    this.onUnreadable = options.onUnreadable ?? (() => undefined);
  }

  /** Stores a new task; DuplicateTaskError (with the SDK error as cause) when the id exists. */
  async create(task: TaskRecord): Promise<void> {
    const item = this.taskItem(task);
    const assignees = assigneesOf(task);
    const put = { TableName: this.tableName, Item: item, ConditionExpression: 'attribute_not_exists(pk)' };
    try {
      if (assignees.length === 0) {
        await this.client.send(new PutCommand(put));
      } else {
        await this.client.send(new TransactWriteCommand({ TransactItems: [{ Put: put }, ...this.pointerPuts(task, assignees)] }));
      }
    } catch (err) {
      if (isConditionalCheckFailed(err) || cancellationReasons(err)?.[0] === 'ConditionalCheckFailed') {
        throw new DuplicateTaskError(task.taskId, { cause: err });
      }
      throw toStoreError(`create task ${task.taskId}`, err);
    }
    this.remember(task.taskId, task.version, assignees);
  }

  /** The task, read consistently, or undefined. */
  async get(taskId: string): Promise<TaskRecord | undefined> {
    const out = await send(`get task ${taskId}`, () =>
      this.client.send(new GetCommand({ TableName: this.tableName, Key: { pk: taskPk(taskId), sk: TASK_SK }, ConsistentRead: true })),
    );
    if (out.Item === undefined) return undefined;
    const task = parseTask(out.Item);
    this.remember(taskId, task.version, storedAssignees(out.Item));
    return task;
  }

  /**
   * Replaces the task if its stored version is `expectedVersion`; VersionConflictError otherwise.
   * Assignee pointers that change go in the same transaction as the task.
   */
  async save(task: TaskRecord, expectedVersion: number): Promise<void> {
    const item = this.taskItem(task);
    const next = assigneesOf(task);
    const previous = await this.previousAssignees(task.taskId, expectedVersion);
    const put = {
      TableName: this.tableName,
      Item: item,
      ConditionExpression: '#version = :expected',
      ExpressionAttributeNames: { '#version': 'version' },
      ExpressionAttributeValues: { ':expected': expectedVersion },
    };
    try {
      if (sameSet(previous, next)) {
        await this.client.send(new PutCommand(put));
      } else {
        const added = next.filter((a) => !previous.includes(a));
        const removed = previous.filter((a) => !next.includes(a));
        const deletes = removed.map((agentId) => ({
          Delete: { TableName: this.tableName, Key: { pk: assigneePk(agentId), sk: taskPk(task.taskId) } },
        }));
        const actions = [{ Put: put }, ...this.pointerPuts(task, added), ...deletes];
        if (actions.length > MAX_TRANSACT_ITEMS) {
          throw new StoreError(`save task ${task.taskId}`, `${actions.length - 1} assignee changes in one save; at most ${MAX_TRANSACT_ITEMS - 1} fit in a transaction`, false);
        }
        await this.client.send(new TransactWriteCommand({ TransactItems: actions }));
      }
    } catch (err) {
      if (isConditionalCheckFailed(err) || cancellationReasons(err)?.[0] === 'ConditionalCheckFailed') {
        this.assigneeCache.delete(task.taskId);
        throw new VersionConflictError(`task ${task.taskId} is no longer at version ${expectedVersion}`, { cause: err });
      }
      throw toStoreError(`save task ${task.taskId}`, err);
    }
    this.remember(task.taskId, task.version, next);
  }

  /**
   * Stores an agent's proposal unless an identical one is already there (a redelivery): the
   * condition compares the stored body, so a redelivery costs one failed conditional write and
   * keeps the first `receivedAt`.
   */
  async putProposal(proposal: ProposalRecord): Promise<boolean> {
    const body = JSON.stringify(proposal.proposal);
    const item: Item = {
      pk: taskPk(proposal.taskId),
      sk: `${PROPOSAL_PREFIX}${proposal.agentId}`,
      entity: 'proposal',
      taskId: proposal.taskId,
      agentId: proposal.agentId,
      body,
      receivedAt: proposal.receivedAt,
      [TABLE.ttlAttribute]: Math.ceil((proposal.receivedAt + this.proposalTtlMs) / 1000),
    };
    this.checkSize(item, `proposal of ${proposal.agentId} for task ${proposal.taskId}`);
    try {
      await this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: 'attribute_not_exists(pk) OR #body <> :body',
          ExpressionAttributeNames: { '#body': 'body' },
          ExpressionAttributeValues: { ':body': body },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionalCheckFailed(err)) return false;
      throw toStoreError(`store proposal ${proposal.agentId} for task ${proposal.taskId}`, err);
    }
  }

  /** Every proposal stored for the task (consistent read: the planner decides on it). */
  async listProposals(taskId: string): Promise<ProposalRecord[]> {
    const items = await queryAll(
      this.client,
      {
        TableName: this.tableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': taskPk(taskId), ':prefix': PROPOSAL_PREFIX },
        ConsistentRead: true,
      },
      `list proposals of task ${taskId}`,
    );
    return items.map((i) => ({
      taskId: String(i.taskId),
      agentId: String(i.agentId),
      proposal: JSON.parse(String(i.body)) as ProposalRecord['proposal'],
      receivedAt: Number(i.receivedAt),
    }));
  }

  /** Ids of tasks with a live step assigned to `agentId`, from the assignee pointers. */
  async tasksAssignedTo(agentId: string): Promise<string[]> {
    const items = await queryAll(
      this.client,
      {
        TableName: this.tableName,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': assigneePk(agentId) },
        ProjectionExpression: 'sk',
        ConsistentRead: true,
      },
      `list tasks assigned to ${agentId}`,
    );
    return items.map((i) => String(i.sk).slice('TASK#'.length));
  }

  /**
   * Live tasks due at or before `now`, most overdue first: one byDue Query per shard. Works with
   * any index projection: items projected without `data` are read from the table.
   */
  async listDue(now: number, limit: number): Promise<TaskRecord[]> {
    if (limit <= 0) return [];
    const { name, partitionKey, sortKey } = TABLE.dueIndex;
    const perShard = await Promise.all(
      Array.from({ length: DUE_SHARDS }, (_, i) =>
        queryAll(
          this.client,
          {
            TableName: this.tableName,
            IndexName: name,
            KeyConditionExpression: '#shard = :shard AND #dueAt <= :now',
            ExpressionAttributeNames: { '#shard': partitionKey, '#dueAt': sortKey },
            ExpressionAttributeValues: { ':shard': `DUE#${i}`, ':now': now },
            Limit: limit,
          },
          `list due tasks (shard ${i})`,
          limit,
        ),
      ),
    );
    const hits = perShard.flat().sort((a, b) => Number(a[sortKey]) - Number(b[sortKey])).slice(0, limit);
    const missing = hits.filter((h) => typeof h.data !== 'string').map((h) => ({ pk: h.pk, sk: h.sk }));
    const fetched = missing.length > 0 ? await batchGet(this.client, this.tableName, missing, 'read due tasks') : [];
    const full = new Map(fetched.map((f) => [String(f.pk), f]));
    const tasks: TaskRecord[] = [];
    for (const hit of hits) {
      const item = typeof hit.data === 'string' ? hit : full.get(String(hit.pk));
      // An item missing from the table was deleted (TTL) between the index read and this one.
      if (item === undefined) continue;
      try {
        tasks.push(parseTask(item));
      } catch (err) {
        if (!(err instanceof StoreError)) throw err;
        this.onUnreadable(String(item.pk), err);
      }
    }
    return tasks;
  }

  private taskItem(task: TaskRecord): Item {
    const dueAt = nextDueAt(task, this.config);
    const item: Item = {
      pk: taskPk(task.taskId),
      sk: TASK_SK,
      entity: 'task',
      version: task.version,
      state: task.state,
      assignees: assigneesOf(task),
      data: JSON.stringify(task),
      ...(dueAt !== undefined ? { [TABLE.dueIndex.partitionKey]: dueShardOf(task.taskId), [TABLE.dueIndex.sortKey]: dueAt } : {}),
      ...(task.expiresAt !== undefined ? { [TABLE.ttlAttribute]: task.expiresAt } : {}),
    };
    this.checkSize(item, `task ${task.taskId}`);
    return item;
  }

  private pointerPuts(task: TaskRecord, agentIds: readonly string[]) {
    return agentIds.map((agentId) => ({
      Put: {
        TableName: this.tableName,
        Item: {
          pk: assigneePk(agentId),
          sk: taskPk(task.taskId),
          entity: 'assignee',
          ...(task.expiresAt !== undefined ? { [TABLE.ttlAttribute]: task.expiresAt } : {}),
        },
      },
    }));
  }

  private checkSize(item: Item, what: string): void {
    const bytes = itemSize(item);
    if (bytes > MAX_ITEM_BYTES) throw new ItemTooLargeError(what, bytes, MAX_ITEM_BYTES);
  }

  private async previousAssignees(taskId: string, expectedVersion: number): Promise<string[]> {
    const cached = this.assigneeCache.get(taskId);
    if (cached !== undefined && cached.version === expectedVersion) return cached.assignees;
    const out = await send(`read assignees of task ${taskId}`, () =>
      this.client.send(
        new GetCommand({
          TableName: this.tableName,
          Key: { pk: taskPk(taskId), sk: TASK_SK },
          ConsistentRead: true,
          ProjectionExpression: '#version, assignees',
          ExpressionAttributeNames: { '#version': 'version' },
        }),
      ),
    );
    if (out.Item === undefined || out.Item.version !== expectedVersion) {
      const found = out.Item === undefined ? 'does not exist' : `is at version ${String(out.Item.version)}`;
      throw new VersionConflictError(`task ${taskId} ${found}, not version ${expectedVersion}`);
    }
    return storedAssignees(out.Item);
  }

  private remember(taskId: string, version: number, assignees: string[]): void {
    this.assigneeCache.delete(taskId);
    this.assigneeCache.set(taskId, { version, assignees });
    if (this.assigneeCache.size > ASSIGNEE_CACHE_SIZE) {
      const oldest = this.assigneeCache.keys().next().value;
      if (oldest !== undefined) this.assigneeCache.delete(oldest);
    }
  }
}

function storedAssignees(item: Item): string[] {
  return Array.isArray(item.assignees) ? item.assignees.map(String) : [];
}

function parseTask(item: Item): TaskRecord {
  if (typeof item.data !== 'string') throw new StoreError(`read ${String(item.pk)}`, 'item has no data attribute', false);
  try {
    return JSON.parse(item.data) as TaskRecord;
  } catch (err) {
    throw new StoreError(`read ${String(item.pk)}`, `data attribute is not JSON: ${(err as Error).message}`, false, { cause: err });
  }
}
