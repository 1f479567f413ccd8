/**
 * The Registry port over the single DynamoDB table (infra/table-definition.ts).
 *
 * Items
 * - profile: pk `AGENT#{id}`, sk `PROFILE`; the AgentRecord as a JSON string in `data` (résumé
 *   skill details carry arbitrary JSON schemas, which DynamoDB maps could not always hold: 32
 *   nesting levels at most), plus `version`, `state`, `skills`.
 * - skill index entry: pk `AGENT#{id}`, sk `SKILL#{skill}`, gsi1pk `SKILL#{skill}`, gsi1sk
 *   `AGENT#{id}`, carrying the same denormalised `data`, so `findBySkill` is one Query on the
 *   bySkill index and costs O(agents with the skill).
 *
 * Every change is read-modify-write of the profile under an optimistic `version`, with the skill
 * entries written in the same TransactWriteItems (skills no longer advertised are deleted there).
 * A lost race is retried from a fresh read, because résumé, status and telemetry updates touch
 * different fields and all of them should land.
 *
 * - measurement sums: pk `AGENT#{id}`, sk `STATS`; one number attribute per sum of
 *   core/reputation.ts `AgentMeasurements` (`steps`, `successes`, `timed`, `msSum`, `bidMsSum`,
 *   `costed`, `usdSum`, `bidUsdSum`) and one per latency bucket (`lat{index}`). A measurement is
 *   one UpdateItem that `ADD`s its increments: no read, no version, so concurrent recordings of
 *   the same agent all land, and the profile's read-modify-write never touches these sums.
 *
 * `list()`: the profile also carries gsi1pk `AGENTS` / gsi1sk `AGENT#{id}`, so listing agents is a
 * Query on the bySkill index's `AGENTS` partition (no skill name can collide: skill entries are
 * prefixed `SKILL#`). A Scan would read every task, proposal and pointer item in the table to find
 * the profiles; the cost is one more index entry per agent.
 */
import { GetCommand, PutCommand, TransactWriteCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { VersionConflictError } from '../../core/errors';
import type { AgentRecord } from '../../core/model';
import type { Registry, ResumeVerification } from '../../core/ports';
import { orderPresence, type PresenceMark, type PresenceOrder } from '../../core/presence';
import { increments, LATENCY_BUCKET_BOUNDS_MS, type AgentMeasurements, type MeasurementSample } from '../../core/reputation';
import type { AgentStatus, Resume, Telemetry } from '../../core/schemas';
import { TABLE } from '../../infra/table-definition';
import { ItemTooLargeError, StoreError } from './errors';
import {
  batchGet, cancellationReasons, isConditionalCheckFailed, itemSize, MAX_ITEM_BYTES, MAX_TRANSACT_ITEMS, queryAll, send, toStoreError,
  type Item,
} from './dynamo-support';

/** Construction options. */
export interface DynamoRegistryOptions {
  /** A DocumentClient; built once per process by the caller. */
  readonly client: DynamoDBDocumentClient;
  readonly tableName: string;
  /** Attempts per update when concurrent updates of the same agent race. @default 4 */
  readonly maxAttempts?: number;
}

/** gsi1pk of every profile: the partition `list()` queries. */
export const AGENTS_PARTITION = 'AGENTS';

const PROFILE_SK = 'PROFILE';
/** Sort key of an agent's measurement sums. */
export const STATS_SK = 'STATS';
/** The counters of the stats item, in the order the update names them. */
const COUNTERS = ['steps', 'successes', 'timed', 'msSum', 'bidMsSum', 'costed', 'usdSum', 'bidUsdSum'] as const;
/** Attribute of latency bucket `i`. */
const bucketAttribute = (i: number) => `lat${i}`;
const agentPk = (agentId: string) => `AGENT#${agentId}`;
const skillKey = (skill: string) => `SKILL#${skill}`;

interface Stored {
  readonly record: AgentRecord;
  readonly skills: string[];
}

/** Registry over DynamoDB with a per-skill index. See the module comment for the item layout. */
export class DynamoRegistry implements Registry {
  private readonly client: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly maxAttempts: number;

  constructor(options: DynamoRegistryOptions) {
    this.client = options.client;
    this.tableName = options.tableName;
    this.maxAttempts = options.maxAttempts ?? 4;
  }

  /** Stores the résumé and re-indexes the skills; a new agent starts `online` (it just published). */
  async putResume(agentId: string, resume: Resume, verified: ResumeVerification, at: number): Promise<AgentRecord> {
    const record = await this.update(agentId, (current) => ({
      ...(current ?? {}),
      agentId,
      resume,
      state: current?.state ?? 'online',
      verifiedAccredit: [...verified.verified],
      unverifiedAccredit: [...verified.unverified],
      verifiedPools: [...(verified.pools ?? [])],
      updatedAt: at,
      version: current?.version ?? 0,
    }));
    if (record === undefined) throw new StoreError(`store résumé of ${agentId}`, 'update produced no record', false);
    return record;
  }

  /** Records the agent's state and load; undefined (and no write) for an agent with no résumé. */
  async setStatus(agentId: string, status: AgentStatus, at: number): Promise<AgentRecord | undefined> {
    return this.update(agentId, (current) =>
      current === undefined
        ? undefined
        : { ...current, state: status.state, ...(status.load !== undefined ? { load: { ...status.load } } : {}), updatedAt: at },
    );
  }

  /** Records measured telemetry; undefined (and no write) for an agent with no résumé. */
  async recordTelemetry(agentId: string, telemetry: Telemetry, at: number): Promise<AgentRecord | undefined> {
    return this.update(agentId, (current) => (current === undefined ? undefined : { ...current, telemetry, updatedAt: at }));
  }

  /** Records a newer presence mark (and status) under the profile's version; a stale or duplicate one writes nothing. */
  async recordPresence(agentId: string, mark: PresenceMark, status: AgentStatus | undefined, at: number): Promise<{ order: PresenceOrder; record: AgentRecord } | undefined> {
    for (let attempt = 1; ; attempt += 1) {
      const current = await this.read(agentId);
      if (current === undefined) return undefined;
      const order = orderPresence(current.record.presence, mark);
      if (order !== 'newer') return { order, record: current.record };
      const next: AgentRecord = {
        ...current.record,
        ...(status !== undefined ? { state: status.state, ...(status.load !== undefined ? { load: { ...status.load } } : {}) } : {}),
        presence: { ...mark },
        updatedAt: at,
        version: current.record.version + 1,
      };
      try {
        await this.write(current, next);
        return { order, record: next };
      } catch (err) {
        // A concurrent update may have recorded a newer mark: order again from a fresh read.
        if (!(err instanceof VersionConflictError) || attempt >= this.maxAttempts) throw err;
      }
    }
  }

  /** Adds one measurement to the agent's stats item: a single UpdateItem with `ADD` (creates the item on first use). */
  async recordMeasurement(agentId: string, sample: MeasurementSample, at: number): Promise<void> {
    const { counters, bucket } = increments(sample);
    const names: Record<string, string> = { '#entity': 'entity', '#at': 'updatedAt' };
    const values: Record<string, unknown> = { ':entity': 'agent-stats', ':at': at };
    const adds: string[] = [];
    COUNTERS.forEach((c, i) => {
      names[`#c${i}`] = c;
      values[`:c${i}`] = counters[c];
      adds.push(`#c${i} :c${i}`);
    });
    if (bucket !== undefined) {
      names['#b'] = bucketAttribute(bucket);
      values[':one'] = 1;
      adds.push('#b :one');
    }
    await send(`record measurement of ${agentId}`, () =>
      this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: agentPk(agentId), sk: STATS_SK },
          UpdateExpression: `ADD ${adds.join(', ')} SET #entity = :entity, #at = :at`,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      ),
    );
  }

  /** The stats items of `agentIds` (BatchGetItem, 100 keys a call), by agent id; agents never measured are absent. */
  async measurements(agentIds: readonly string[]): Promise<Map<string, AgentMeasurements>> {
    const ids = [...new Set(agentIds)];
    const out = new Map<string, AgentMeasurements>();
    if (ids.length === 0) return out;
    const items = await batchGet(this.client, this.tableName, ids.map((id) => ({ pk: agentPk(id), sk: STATS_SK })), 'read agent measurements');
    for (const item of items) out.set(String(item.pk).slice('AGENT#'.length), parseMeasurements(item));
    return out;
  }

  /** The agent's profile, read consistently. */
  async get(agentId: string): Promise<AgentRecord | undefined> {
    return (await this.read(agentId))?.record;
  }

  /** Agents advertising `skill`, in agent-id order: one Query on the bySkill index. */
  async findBySkill(skill: string): Promise<AgentRecord[]> {
    return this.queryIndex(skillKey(skill), `find agents with skill ${skill}`);
  }

  /** Every agent, in agent-id order: one paginated Query on the index's `AGENTS` partition. */
  async list(): Promise<AgentRecord[]> {
    return this.queryIndex(AGENTS_PARTITION, 'list agents');
  }

  private async queryIndex(partition: string, operation: string): Promise<AgentRecord[]> {
    const { name, partitionKey } = TABLE.skillIndex;
    const items = await queryAll(
      this.client,
      {
        TableName: this.tableName,
        IndexName: name,
        KeyConditionExpression: '#gpk = :gpk',
        ExpressionAttributeNames: { '#gpk': partitionKey },
        ExpressionAttributeValues: { ':gpk': partition },
      },
      operation,
    );
    // With a KEYS_ONLY or INCLUDE projection the index has no `data`: read the profiles.
    const missing = items.filter((i) => typeof i.data !== 'string').map((i) => ({ pk: i.pk, sk: PROFILE_SK }));
    const fetched = missing.length > 0 ? await batchGet(this.client, this.tableName, missing, operation) : [];
    const profiles = new Map(fetched.map((f) => [String(f.pk), f]));
    const records: AgentRecord[] = [];
    for (const item of items) {
      const full = typeof item.data === 'string' ? item : profiles.get(String(item.pk));
      if (full !== undefined) records.push(parseRecord(full));
    }
    return records;
  }

  private async read(agentId: string): Promise<Stored | undefined> {
    const out = await send(`get agent ${agentId}`, () =>
      this.client.send(new GetCommand({ TableName: this.tableName, Key: { pk: agentPk(agentId), sk: PROFILE_SK }, ConsistentRead: true })),
    );
    if (out.Item === undefined) return undefined;
    return { record: parseRecord(out.Item), skills: Array.isArray(out.Item.skills) ? out.Item.skills.map(String) : [] };
  }

  /** Read, change, conditional write; retried from a fresh read when another update won the race. */
  private async update(agentId: string, change: (current: AgentRecord | undefined) => AgentRecord | undefined): Promise<AgentRecord | undefined> {
    for (let attempt = 1; ; attempt += 1) {
      const current = await this.read(agentId);
      const changed = change(current?.record);
      if (changed === undefined) return undefined;
      const next: AgentRecord = { ...changed, version: (current?.record.version ?? 0) + 1 };
      try {
        await this.write(current, next);
        return next;
      } catch (err) {
        if (!(err instanceof VersionConflictError) || attempt >= this.maxAttempts) throw err;
      }
    }
  }

  private async write(previous: Stored | undefined, next: AgentRecord): Promise<void> {
    const agentId = next.agentId;
    // Measurements live in their own item; a record a caller enriched with them must not copy them into the profile.
    const { measured: _measured, ...profileRecord } = next;
    const data = JSON.stringify(profileRecord);
    const skills = [...new Set(next.resume.skills)];
    const profile: Item = {
      pk: agentPk(agentId),
      sk: PROFILE_SK,
      entity: 'agent',
      version: next.version,
      state: next.state,
      skills,
      data,
      [TABLE.skillIndex.partitionKey]: AGENTS_PARTITION,
      [TABLE.skillIndex.sortKey]: agentPk(agentId),
    };
    const bytes = itemSize(profile);
    if (bytes > MAX_ITEM_BYTES) throw new ItemTooLargeError(`agent ${agentId}`, bytes, MAX_ITEM_BYTES);
    const condition =
      previous === undefined
        ? { ConditionExpression: 'attribute_not_exists(pk)' }
        : {
            ConditionExpression: '#version = :expected',
            ExpressionAttributeNames: { '#version': 'version' },
            ExpressionAttributeValues: { ':expected': previous.record.version },
          };
    const deletes = (previous?.skills ?? [])
      .filter((s) => !skills.includes(s))
      .map((s) => ({ Delete: { TableName: this.tableName, Key: { pk: agentPk(agentId), sk: skillKey(s) } } }));
    const puts = skills.map((s) => ({ Put: { TableName: this.tableName, Item: this.skillItem(agentId, s, next.version, data) } }));
    // Deletes ride in the transaction first: an agent must never stay findable under a dropped skill.
    const actions = [{ Put: { TableName: this.tableName, Item: profile, ...condition } }, ...deletes, ...puts];
    const inTransaction = actions.slice(0, MAX_TRANSACT_ITEMS);
    const overflow = puts.slice(Math.max(0, MAX_TRANSACT_ITEMS - 1 - deletes.length));
    try {
      await this.client.send(new TransactWriteCommand({ TransactItems: inTransaction }));
    } catch (err) {
      if (cancellationReasons(err)?.[0] === 'ConditionalCheckFailed' || isConditionalCheckFailed(err)) {
        throw new VersionConflictError(`agent ${agentId} changed while it was being updated`, { cause: err });
      }
      throw toStoreError(`update agent ${agentId}`, err);
    }
    await Promise.all(overflow.map((p) => this.putSkillIfNewer(p.Put.Item, next.version)));
  }

  /** Skill entries beyond one transaction: written unless a newer version already wrote them. */
  private async putSkillIfNewer(item: Item, version: number): Promise<void> {
    try {
      await this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: 'attribute_not_exists(pk) OR #version < :version',
          ExpressionAttributeNames: { '#version': 'version' },
          ExpressionAttributeValues: { ':version': version },
        }),
      );
    } catch (err) {
      if (!isConditionalCheckFailed(err)) throw toStoreError(`index skill of ${String(item.pk)}`, err);
    }
  }

  private skillItem(agentId: string, skill: string, version: number, data: string): Item {
    return {
      pk: agentPk(agentId),
      sk: skillKey(skill),
      entity: 'agent-skill',
      version,
      data,
      [TABLE.skillIndex.partitionKey]: skillKey(skill),
      [TABLE.skillIndex.sortKey]: agentPk(agentId),
    };
  }
}

function parseRecord(item: Item): AgentRecord {
  if (typeof item.data !== 'string') throw new StoreError(`read ${String(item.pk)}`, 'item has no data attribute', false);
  return JSON.parse(item.data) as AgentRecord;
}

/** The sums of a stats item; a missing attribute is 0. */
export function parseMeasurements(item: Item): AgentMeasurements {
  const num = (name: string): number => (typeof item[name] === 'number' ? (item[name]) : Number(item[name] ?? 0) || 0);
  const latency: Record<number, number> = {};
  for (let i = 0; i < LATENCY_BUCKET_BOUNDS_MS.length; i += 1) {
    const n = num(bucketAttribute(i));
    if (n > 0) latency[i] = n;
  }
  return {
    steps: num('steps'), successes: num('successes'), timed: num('timed'), msSum: num('msSum'), bidMsSum: num('bidMsSum'),
    costed: num('costed'), usdSum: num('usdSum'), bidUsdSum: num('bidUsdSum'), latency,
  };
}
